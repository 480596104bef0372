"""The paper's studies beside its claims: Table 1 and App. D.1 (meta-representations against their
members, from the rows of :mod:`benchmarks.table1`), Table 3 (the selections of
``scripts/select_hparams.py``) and Fig. 5 (the ablation variants of :mod:`benchmarks.ablation`, one
ClusCAM cell each), measured with :mod:`benchmarks.stats` and judged as :mod:`benchmarks.claims` judges.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from benchmarks import paper
from benchmarks.claims import Claim, Rows, too_few
from benchmarks.results import cell_config, load_rows
from benchmarks.stats import (ALPHA, FAILS, HOLDS, MARGIN_MISSED, NA, TIE, bootstrap_means, common_ids,
                               comparison_seed, family_of, interval, margin_check, paired, select_cells,
                               signed_rank_p, verdict, with_optional_columns)
from benchmarks.tables import model_label

MIN_STUDY_IMAGES = 200  # the fewest images of a verdict on Table 1, App. D.1 and Fig. 5 (the paper: 500-2,000)
RANDOM = "no trained model: the rows ran on random weights (--random-weights)"
CONSISTENTLY = 0.9  # App. D.1's "consistently higher": at least this share of (image, group) pairs


def read_groups(runs: str | Path) -> dict[str, tuple[Path, pd.DataFrame]]:
    """Every Table 1 groups cell under ``<runs>/table1/`` (``--where`` not applied): its name relative to
    ``runs`` -> (its folder, its rows), read once for Table 1 and App. D.1."""
    return {path.parent.relative_to(runs).as_posix(): (path.parent, pd.read_csv(path, dtype={"id": str}))
            for path in sorted(Path(runs).glob("table1/*/*/groups/*/rows.csv"))}


def table1_results(cells: Mapping[str, tuple[Path, pd.DataFrame]], resamples: int, seed: int, min_images: int,
                   random_weights: bool = False) -> list[dict]:
    """Table 1 per groups cell of ``<runs>/table1/<dataset>/<model>/groups/<hash>/``: the paper's
    statistics (over (image, group) pairs), and with images as the unit: one-sided t and Wilcoxon
    tests of the per-image mean difference over the top ranks, and bootstrap intervals (images
    resampled) of the mean difference and Cohen's d averaged over the ranks, judged against the
    paper's 1.31 and 0.82 as margins; no verdict on fewer than ``min_images`` images."""
    from scipy import stats as sps

    from benchmarks.table1 import read_provenance, table1_statistics

    out = []
    for cell, (folder, groups) in cells.items():
        st = table1_statistics(groups)
        top = groups[groups["rank"] < st["top"]]
        wide = (top["s_meta"] - top["s_members_mean"]).groupby([top["id"], top["rank"]]).mean().unstack()
        per_image = wide.mean(1).to_numpy(float)
        values = wide.to_numpy(float)
        # the same draws (same seed and rows) for the means, the means of squares and each rank's count
        means, squares, seen = (bootstrap_means(v, resamples, seed)
                                for v in (values, values ** 2, (~np.isnan(values)).astype(float)))
        n = seen * len(values)  # the images of each rank in each resample
        with np.errstate(invalid="ignore", divide="ignore"):
            d = means / np.sqrt((squares - means ** 2) * n / (n - 1))
        d[~np.isfinite(d)] = np.nan  # a rank without spread in a resample: left out of that resample's mean
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            (lo, hi), (d_lo, d_hi) = interval(means.mean(1)), interval(np.nanmean(d, 1))
        tests = ({"t": sps.ttest_1samp(per_image, 0, alternative="greater").pvalue,
                  "wilcoxon": sps.wilcoxon(per_image, alternative="greater").pvalue,
                  "two-sided": signed_rank_p(per_image)}
                 if len(per_image) > 1 and np.any(per_image != 0) else dict.fromkeys(("t", "wilcoxon", "two-sided"),
                                                                                      np.nan))
        devices = sorted({p.get("device", "unknown") for p in read_provenance(folder)[0]})
        few = RANDOM if random_weights else too_few({folder.parts[-3]: st["n_images"]}, min_images)
        out.append({"cell": cell, "st": st, "lo": lo, "hi": hi, "d_lo": d_lo,
                    "d_hi": d_hi, "p_images": tests, "devices": ", ".join(devices) or "unknown",
                    "verdict": f"{NA}: {few}" if few else _table1_verdict(lo, hi, d_lo, d_hi, tests)})
    return out


def _table1_verdict(lo: float, hi: float, d_lo: float, d_hi: float, p: Mapping[str, float]) -> str:
    """Direction (the interval of the mean difference above 0 and both one-sided image-level p < ALPHA;
    below 0 with the two-sided signed-rank p < ALPHA: does not hold), then the paper's magnitudes
    (:data:`paper.TABLE1`) as margins; an undefined interval is not judged."""
    if not np.isfinite([lo, hi]).all():
        return f"{NA}: the interval of the mean difference is undefined"
    if hi < 0 and p["two-sided"] < ALPHA:
        return FAILS
    if lo <= 0 or not (p["t"] < ALPHA and p["wilcoxon"] < ALPHA):
        return TIE
    intervals = {"mean difference": (lo, hi), "Cohen's d": (d_lo, d_hi)}
    undefined = [name for name, ab in intervals.items() if not np.isfinite(ab).all()]
    missed = [f"{name} {size}" for name, ab in intervals.items() if name not in undefined
              and (size := margin_check(*ab, paper.TABLE1[name], "logit", "better"))]
    found = f"{MARGIN_MISSED} ({'; '.join(missed)})" if missed else HOLDS
    return found + (f": {', '.join(undefined)} not judged (interval undefined)" if undefined else "")


def d1_results(cells: Mapping[str, tuple[Path, pd.DataFrame]], resamples: int, seed: int, min_images: int,
               random_weights: bool = False) -> list[dict]:
    """App. D.1 / Fig. 9 per Table 1 groups cell: the share of (image, group) pairs whose
    meta-representation shifts the logit more than its members' mean, with an image-bootstrap interval;
    "consistently higher across all clusters" read as at least :data:`CONSISTENTLY` of the pairs."""
    out = []
    for cell, (folder, groups) in cells.items():
        per_image = (groups["s_meta"] > groups["s_members_mean"]).groupby(groups["id"]).agg(["sum", "size"])
        boot = bootstrap_means(per_image.to_numpy(float), resamples, seed)
        share = per_image["sum"].sum() / per_image["size"].sum()
        lo, hi = interval(boot[:, 0] / boot[:, 1])
        few = RANDOM if random_weights else too_few({folder.parts[-3]: len(per_image)}, min_images)
        out.append({"cell": cell, "images": len(per_image),
                    "pairs": int(per_image["size"].sum()), "share": share, "lo": lo, "hi": hi,
                    "verdict": f"{NA}: {few}" if few else HOLDS if lo >= CONSISTENTLY else
                    FAILS if hi < CONSISTENTLY else TIE})
    return out


def table3_rows(selections: Sequence[str | Path], min_images: int, random_weights: bool = False) -> list[dict]:
    """Table 3 per selection of scripts/select_hparams.py (``<folder>/<model>.json``, which records the
    paper's K, r, tau of the architecture or its stand-in): the selected tau in App. B's [0.3, 0.5]
    (:data:`paper.TAU_RANGE`) and K equal to the paper's; r shown beside the paper's."""
    out = []
    for folder in selections:
        for path in sorted(Path(folder).glob("*.json")):
            sel = json.loads(path.read_text())
            few = RANDOM if random_weights else too_few({sel["model"]: int(sel.get("n_images") or 0)}, min_images)
            lo, hi = paper.TAU_RANGE
            ref = sel.get("paper") or {}
            out.append({"dataset": sel.get("dataset", "?"), "model": sel["model"], "k": sel["k"], "r": sel["r"],
                        "tau": sel["tau"], "paper": ref, "images": sel.get("n_images"),
                        "tau_verdict": f"{NA}: {few}" if few else HOLDS if lo <= sel["tau"] <= hi else FAILS,
                        "k_verdict": f"{NA}: {few}" if few else
                        f"{NA}: not in the paper's Table 3 ({model_label(paper.STAND_INS[sel['model']])}'s values shown)"
                        if sel["model"] in paper.STAND_INS else f"{NA}: the selection records no paper K"
                        if "k" not in ref else HOLDS if sel["k"] == ref["k"] else FAILS})
    return out


# -- Fig. 5: the ablation (Sec. 4.4) ----------------------------------------------------------------------
FULL = "ClusCAM (full)"
CLUSTERING_VARIANTS = ("No clustering", "Spectral", "HDBSCAN")
WEIGHTING_VARIANTS = ("Only logit", "Only softmax", "Discarding softmax", "Only temp-softmax")


def _option(override: str) -> tuple[str, object]:
    """``method.options.tau=1`` as the flat config key and value of a cell (``method.tau``, 1)."""
    key, value = override.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return f"method.{key.rsplit('.', 1)[-1]}", parsed


def ablation_variants(configs: Mapping[str, Mapping]) -> dict[str, str]:
    """cell -> variant name of :data:`benchmarks.ablation.ABLATION` for the ClusCAM cells of one (dataset,
    model) (cell -> flat config): the full model is the cell from which the most variants differ by
    exactly their overrides; cells that are none of them are left out."""
    from benchmarks.ablation import ABLATION

    def method_part(cfg: Mapping) -> dict:
        return {k: v for k, v in cfg.items() if k.startswith("method.")}

    def matches(full: Mapping) -> dict[str, str]:
        found = {}
        for name, overrides in ABLATION.items():
            expected = {**method_part(full), **dict(map(_option, overrides))}
            found.update({cell: name for cell, cfg in configs.items() if method_part(cfg) == expected})
        return found

    return max((matches(cfg) for cfg in configs.values()), key=len, default={})


def read_ablation(runs: str | Path) -> Rows | None:
    """The ablation runs' ClusCAM cells as rows whose method is their variant (Fig. 5), on the image ids
    all variants of a (dataset, model) have; None when the folder has no rows."""
    if not Path(runs).is_dir():
        return None
    rows = load_rows(runs)
    if rows.empty:
        return None
    rows = with_optional_columns(rows)
    rows = rows[rows["method"] == "cluscam"]
    keep, configs = [], {}
    for (d, m), g in rows.groupby(["dataset", "model"], sort=False):
        cells = {c: cell_config(Path(runs) / d / m / "cluscam" / c) for c in g["cell"].unique()}
        variants = ablation_variants(cells)
        keep.append(g[g["cell"].isin(variants)].assign(method=g["cell"].map(variants)))
        configs.update({(d, m, name): cells[c] for c, name in variants.items()})
    if not keep:
        return None
    picked, trimmed = common_ids(select_cells(pd.concat(keep)))
    return Rows(picked, trimmed, configs, {m: family_of(m) for m in picked["model"].unique()})


def fig5_claims(data: Rows | None) -> list[Claim]:
    """Sec. 4.4's comparisons on each ablated architecture: the full model ahead of every variant in AD
    and IC; No clustering ahead of Spectral and HDBSCAN; temperature softmax ahead of softmax."""
    if data is None:
        return [Claim("Sec. 4.4, Fig. 5", paper.SEC44["all"], "ilsvrc", "–", (), metric, subject=FULL,
                      opponents=("a variant",), none="no ablation rows (python -m scripts.figures fig5 --run)")
                for metric in ("ad", "ic")]
    out = []
    for d in sorted(set(data.rows["dataset"])):
        for m in data.models(d):
            for metric in ("ad", "ic"):
                out += [Claim("Sec. 4.4, Fig. 5", paper.SEC44["all"], d, model_label(m), (m,), metric, subject=FULL,
                              opponents=(v,)) for v in (*CLUSTERING_VARIANTS, *WEIGHTING_VARIANTS)]
                out += [Claim("Sec. 4.4, Fig. 5", paper.SEC44["no clustering"], d, model_label(m), (m,), metric,
                              subject="No clustering", opponents=(v,)) for v in ("Spectral", "HDBSCAN")]
                out.append(Claim("Sec. 4.4, Fig. 5", paper.SEC44["temperature"], d, model_label(m), (m,), metric,
                                 subject="Only temp-softmax", opponents=("Only softmax",)))
    return out


def fig5_levels(data: Rows | None, resamples: int, seed: int, min_images: int) -> list[dict]:
    """Sec. 4.4's numbers: IC below 45% for the clustering variants ("typically") and below 43% for
    Discarding softmax (intervals of the variant's IC, images resampled); the largest degradation
    of the K-Means++ variants, up to 18.54 points of AD and 23.37 of IC (the variant with the largest mean
    degradation: its own paired interval and signed-rank test, then the stated size as a margin)."""
    if data is None:
        return []
    out = []
    for d in sorted(set(data.rows["dataset"])):
        for m in data.models(d):
            names = data.methods(d, m)
            few = too_few(data.images(d, [m]), min_images)
            s = comparison_seed(seed, d, [m])
            for v, level in [*((v, 45.0) for v in CLUSTERING_VARIANTS), ("Discarding softmax", 43.0)]:
                if v not in names:
                    continue
                ic = 100 * data.rows.loc[(data.rows["dataset"] == d) & (data.rows["model"] == m)
                                         & (data.rows["method"] == v), "ic"].to_numpy(float)
                lo, hi = interval(bootstrap_means(ic[:, None], resamples, s)[:, 0])
                out.append({"dataset": d, "model": m, "statement": f"{v}: IC below {level:g}%",
                            "measured": f"{ic.mean():.2f} [{lo:.2f}, {hi:.2f}]",
                            "verdict": f"{NA}: {few}" if few else HOLDS if hi < level else FAILS if lo > level
                            else f"not resolved (CI contains {level:g})"})
            variants = [v for v in WEIGHTING_VARIANTS if v in names]
            if FULL not in names or not variants:
                continue
            for metric, stated in (("ad", 18.54), ("ic", 23.37)):
                sign = 1 if metric == "ad" else -1  # degradation: AD up, IC down
                diffs = {v: sign * (p[v] - p[FULL]).to_numpy(float)
                         for v in variants for p in [paired(data.rows, d, m, FULL, v, metric)]}
                worst = max(diffs, key=lambda v: diffs[v].mean())
                lo, hi = interval(bootstrap_means(diffs[worst][:, None], resamples, s)[:, 0])
                found = verdict(lo, hi, signed_rank_p(diffs[worst]), "ic", "better")  # > 0: a degradation
                if found == HOLDS and (size := margin_check(lo, hi, stated, "ic", "better")):
                    found = f"{MARGIN_MISSED} ({size})"
                out.append({"dataset": d, "model": m,
                            "statement": f"largest {metric.upper()} degradation of the K-Means++ variants: up to "
                                         f"{stated:g} points",
                            "measured": f"{diffs[worst].mean():.2f} ({worst}) [{lo:.2f}, {hi:.2f}]",
                            "verdict": f"{NA}: {few}" if few else found})
    return out
