"""Beyond the paper (Table 10 and its section of REPRODUCTION.md): does ClusCAM's lead on AD, IC and AG
survive the field's other faithfulness tests (:mod:`benchmarks.faithfulness`)?

The rows are the runner's with ``metrics.faithfulness=[deletion,insertion,road]``: each cell holds the
paper's AD / IC / AG terms and Deletion / Insertion AUC and ROAD (MoRF, LeRF, combined) of the same maps
of the same images, all in % here.  Per dataset and family (:func:`benchmarks.stats.family_of`), each
method's value is the mean of its architectures' means over the image ids all methods of an architecture
share; ClusCAM is compared with the best baseline of each metric (chosen by that mean, which can only
favour the baseline) by the mean of ClusCAM minus it, its percentile interval resampling image ids jointly
across the family's architectures and the signed-rank p of per-image means (:mod:`benchmarks.stats`); the
verdict is the claims report's (:func:`benchmarks.stats.verdict`).  The randomization check (Adebayo et al.
2018) is read per architecture and method at the fully randomized model: a method whose maps keep a
Spearman correlation above ``threshold`` with the original (the interval's lower end) is flagged.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from baselines import METHODS
from benchmarks.stats import (CONFIDENCE, FAMILIES, LOWER_BETTER, TIE, bootstrap_means, common_ids, comparison_seed,
                              image_means, interval, joint_bootstrap, select_cells, signed_rank_p, verdict,
                              verdict_kind)
from benchmarks.tables import (DASH, MODELS, Block, Table, dataset_label, family_groups, method_label,
                               registry_sorted)

TESTS = ("deletion", "insertion", "road_morf", "road_lerf", "road_combined")
COLUMNS = (*CONFIDENCE, *TESTS)
NAMES = {"ad": "AD", "ic": "IC", "ag": "AG", "deletion": "Deletion", "insertion": "Insertion", "road_morf": "ROAD MoRF",
         "road_lerf": "ROAD LeRF", "road_combined": "ROAD"}
LABELS = {m: f"{NAMES[m]} ({'↓' if m in LOWER_BETTER else '↑'})" for m in COLUMNS}
SUBJECT = "cluscam"
THRESHOLD = 0.5  # the randomization check's Spearman correlation above which maps "do not change"


@dataclass
class Comparison:
    dataset: str
    family: str
    models: tuple[str, ...]
    metric: str
    means: dict[str, float]  # method -> family mean in %
    best: str  # the best baseline by its family mean
    diff: float  # ClusCAM - best, mean over the family's architectures
    lo: float
    hi: float
    p: float
    images: int  # distinct image ids
    verdict: str


def comparisons(rows: pd.DataFrame, families: Mapping[str, str] | None = None, resamples: int = 2000,
                seed: int = 0) -> list[Comparison]:
    """ClusCAM against the best baseline per dataset, family and metric of :data:`COLUMNS` the rows have."""
    rows, _ = common_ids(select_cells(rows))
    out = []
    for dataset, g in rows.groupby("dataset", sort=False):
        for family, models in family_groups(registry_sorted(g["model"], MODELS), families).items():
            sub = g[g["model"].isin(models)]
            methods = [m for m in METHODS if all(((sub["model"] == a) & (sub["method"] == m)).any() for a in models)]
            if SUBJECT not in methods or len(methods) < 2:
                continue
            for metric in (c for c in COLUMNS if c in sub and sub[c].notna().any()):
                out.append(_compare(sub, dataset, family, tuple(models), methods, metric, resamples, seed))
    return out


def _compare(rows: pd.DataFrame, dataset: str, family: str, models: tuple[str, ...], methods: Sequence[str],
             metric: str, resamples: int, seed: int) -> Comparison:
    wide = {m: 100 * rows[rows["model"] == m].pivot(index="id", columns="method", values=metric)
            .apply(pd.to_numeric, errors="coerce") for m in models}
    means = {meth: float(np.mean([wide[m][meth].mean() for m in models])) for meth in methods}
    sign = 1 if metric in LOWER_BETTER else -1
    best = min((m for m in methods if m != SUBJECT), key=lambda m: sign * means[m])
    diffs = pd.concat({m: wide[m][SUBJECT] - wide[m][best] for m in models}, axis=1).to_numpy(float)
    boot = joint_bootstrap(diffs, resamples, comparison_seed(seed, dataset, models) + zlib.crc32(metric.encode()))
    lo, hi = interval(boot)
    per_image = image_means(diffs)
    p = signed_rank_p(per_image[~np.isnan(per_image)])
    call = verdict(lo, hi, p, metric, "better") if np.isfinite([lo, hi]).all() else TIE
    return Comparison(dataset, family, models, metric, means, best, float(np.nanmean(np.nanmean(diffs, 0))), lo, hi,
                      p, int((~np.isnan(diffs)).any(1).sum()), call)


# -- the randomization check ------------------------------------------------------------------------------
def read_randomization(folder: str | Path) -> pd.DataFrame:
    """The rows of every randomization cell under ``folder`` (``<dataset>/<model>/<method>/<hash>/rows.csv``,
    :mod:`benchmarks.randomization`) with their dataset, model and method; empty when there are none."""
    frames = [pd.read_csv(p, dtype={"id": str}).assign(dataset=p.parts[-5], model=p.parts[-4], method=p.parts[-3])
              for p in sorted(Path(folder).glob("*/*/*/*/rows.csv"))]  # rows per (image, stage): read as they are
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def randomization_summary(rows: pd.DataFrame, threshold: float = THRESHOLD, resamples: int = 2000,
                          seed: int = 0) -> pd.DataFrame:
    """Per dataset, model and method at its deepest stage (every stage random): images, mean Spearman and
    its interval (images resampled), mean SSIM, and whether the maps change: ``no (flagged)`` when the
    interval lies above ``threshold``, ``yes`` below it, else ``not resolved``.  A constant map has no ranks,
    so its Spearman correlation is undefined (NaN in the rows); it keeps none of the other map's ordering and
    counts as 0, and ``constant`` says for how many images that happened."""
    if rows.empty:  # no randomization cell yet: Table 10 renders the tests alone
        return pd.DataFrame()
    out = []
    for (dataset, model, method), g in rows.groupby(["dataset", "model", "method"], sort=False):
        last = g[g["depth"] == g["depth"].max()]
        values = last[["spearman", "ssim"]].to_numpy(float, copy=True)
        constant = np.isnan(values[:, 0])
        values[constant, 0] = 0.0
        boot = bootstrap_means(values, resamples, seed + zlib.crc32(f"{dataset}/{model}/{method}".encode()))
        lo, hi = interval(boot[:, :1])
        changes = "no (flagged)" if lo > threshold else "yes" if hi < threshold else "not resolved"
        out.append({"dataset": dataset, "model": model, "method": method, "stage": str(last["stage"].iloc[0]),
                    "stages": int(g["depth"].max()), "images": len(last), "spearman": values[:, 0].mean(),
                    "lo": lo, "hi": hi, "ssim": np.nanmean(values[:, 1]), "constant": int(constant.sum()),
                    "changes": changes})
    out = pd.DataFrame(out).sort_values(["dataset", "model", "method"], kind="stable", key=_in_order)
    return out.reset_index(drop=True)


def _in_order(column: pd.Series) -> pd.Series:
    """Sort key: models and methods in the registries' order (the tables'), anything else as it is."""
    order = {"model": MODELS, "method": METHODS}.get(str(column.name))
    return column if order is None else column.map({n: i for i, n in enumerate(registry_sorted(column, order))})


# -- Table 10 and the report's section --------------------------------------------------------------------
def _family(dataset: str, family: str) -> str:
    return f"{dataset_label(dataset)}, {FAMILIES.get(family, family)}"


def _signed(x: float) -> str:
    return DASH if not np.isfinite(x) else f"{x:+.2f}".replace("-", "−")


def table10(results: Sequence[Comparison], randomization: pd.DataFrame, threshold: float = THRESHOLD) -> Table | None:
    """Table 10: per dataset and family, each method's mean per metric and ClusCAM minus the best baseline
    with its interval and verdict; then the randomization check per architecture and method."""
    blocks, keys = [], []
    groups: dict[tuple, list[Comparison]] = {}
    for c in results:
        groups.setdefault((c.dataset, c.family, c.models), []).append(c)
    for (dataset, family, models), cs in groups.items():
        cells = []
        for c in cs:
            col = (LABELS[c.metric],)
            cells += [{"row": (method_label(m),), "col": col, "value": v, "metric": c.metric, "group": c.metric}
                      for m, v in c.means.items()]
            text = f"{_signed(c.diff)} [{_signed(c.lo)}, {_signed(c.hi)}] vs {method_label(c.best)}: {verdict_kind(c.verdict)}"
            cells.append({"row": ("ClusCAM − best baseline",), "col": col, "value": np.nan, "metric": c.metric,
                          "group": c.metric, "text": {"md": text, "tex": text.replace("−", "-")}})
        names = ", ".join(MODELS.get(m, m) for m in models)
        blocks.append(Block(f"{_family(dataset, family)} ({names}; {cs[0].images} images)",
                            ("Method",), cells))
        keys += [(dataset, m, meth) for m in models for meth in cs[0].means]
    if len(randomization):
        cells = []
        for r in randomization.itertuples():
            row = (dataset_label(r.dataset), MODELS.get(r.model, r.model), method_label(r.method))
            cells += [{"row": row, "col": ("Spearman, all random",), "value": r.spearman, "lo": r.lo, "hi": r.hi,
                       "metric": "spearman", "group": "s"},
                      {"row": row, "col": ("SSIM, all random",), "value": r.ssim, "metric": "ssim", "group": "x"},
                      {"row": row, "col": ("images",), "value": np.nan, "metric": "n", "group": "n",
                       "text": {"md": str(r.images), "tex": str(r.images)}},
                      {"row": row, "col": ("constant maps",), "value": np.nan, "metric": "k", "group": "k",
                       "text": {"md": str(r.constant), "tex": str(r.constant)}},
                      {"row": row, "col": ("maps change?",), "value": np.nan, "metric": "c", "group": "c",
                       "text": {"md": r.changes, "tex": r.changes}}]
        blocks.append(Block(f"Randomization check (cascading from the logits; flagged: Spearman's interval above "
                            f"{threshold}; a constant map counts as Spearman 0)", ("Dataset", "Architecture", "Method"),
                            cells, emphasis=0, show_ci=True))
    if not blocks:
        return None
    return Table("table10", "Table 10 (beyond the paper): ClusCAM's lead under Deletion/Insertion, ROAD and the "
                 "randomization check", blocks, keys)


def section(results: Sequence[Comparison], randomization: pd.DataFrame, runs: str | Path) -> list[str]:
    """REPRODUCTION.md's "beyond the paper" lines: per dataset and family, whether ClusCAM's lead on the
    paper's AD / IC / AG carries over to each test, and the randomization check."""
    if not results and not len(randomization):
        return [f"No rows with the faithfulness tests under `{runs}` (the runner's `metrics.faithfulness`)."]
    out = [f"Rows: `{runs}`; each row's maps are scored by the paper's metrics and by the tests, so the two are "
           f"compared on the same maps of the same images. The best baseline is chosen per metric by its mean, "
           f"which can only favour the baseline.", ""]
    groups: dict[tuple, list[Comparison]] = {}
    for c in results:
        groups.setdefault((c.dataset, c.family, c.models), []).append(c)
    for (dataset, family, models), cs in groups.items():
        names = ", ".join(MODELS.get(m, m) for m in models)
        out += [f"### {_family(dataset, family)} ({names})", "",
                f"Methods, each on the same images of each architecture: "
                f"{', '.join(method_label(m) for m in cs[0].means)}.", "",
                "| Metric | ClusCAM | Best baseline | ClusCAM − best [95% CI] | p | Images | Verdict |",
                "|---|---:|---|---:|---:|---:|---|"]
        for c in cs:
            out.append(f"| {LABELS[c.metric]} | {c.means[SUBJECT]:.2f} | {method_label(c.best)} {c.means[c.best]:.2f} | "
                       f"{_signed(c.diff)} [{_signed(c.lo)}, {_signed(c.hi)}] | {c.p:.2g} | {c.images} | {c.verdict} |")
        lead = [NAMES[c.metric] for c in cs if c.metric in CONFIDENCE and verdict_kind(c.verdict) == "holds"]
        tests = {verdict_kind(c.verdict): [] for c in cs}
        for c in cs:
            if c.metric in TESTS:
                tests[verdict_kind(c.verdict)].append(NAMES[c.metric])
        said = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in tests.items() if names)
        out += ["", (f"ClusCAM leads the best baseline on {', '.join(lead)} here; beyond the paper, ClusCAM better "
                     f"than the best baseline {said}." if lead else
                     f"ClusCAM leads on none of AD, IC, AG here, so there is no lead to carry over; beyond the paper, "
                     f"ClusCAM better than the best baseline {said}."), ""]
    if len(randomization):
        out += ["### The randomization check", "",
                "Spearman correlation and SSIM between each image's map on the trained model and on the model with "
                "every stage re-initialized; a constant map (no ranks) counts as Spearman 0.", "",
                "| Dataset | Architecture | Method | Images | Constant maps | Spearman, all random [95% CI] | SSIM | "
                "Maps change? |",
                "|---|---|---|---:|---:|---:|---:|---|"]
        for r in randomization.itertuples():
            out.append(f"| {dataset_label(r.dataset)} | {MODELS.get(r.model, r.model)} | {method_label(r.method)} | "
                       f"{r.images} | {r.constant} | {r.spearman:.3f} [{r.lo:.3f}, {r.hi:.3f}] | {r.ssim:.3f} | "
                       f"{r.changes} |")
        out.append("")
    return out
