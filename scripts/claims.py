"""The claims report: each quantitative claim of the paper beside its measured value, with a verdict.

    python -m scripts.claims --runs results/runs --out results/REPRODUCTION.md [--where KEY=VALUE ...]
                             [--resamples 2000] [--seed 0] [--min-images 10]

The rows are those of scripts/tables.py: one cell per (dataset, model, method) (``--where`` picks
one by its config), and the methods of each (dataset, architecture) compared on the image ids all
its cells have.  A comparison of a method with its opponents takes, on those images, the opponent
with the best mean (a family: the mean of its architectures' means) and reports the paired
difference with a 95% percentile bootstrap interval (images resampled within each architecture,
the seeds of scripts/tables.py) and the two-sided Wilcoxon signed-rank p-value of the per-image
differences (scipy.stats.wilcoxon).  Table 1 is read from ``<runs>/table1/`` (scripts/table1.py).
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmarks.results import add_row_arguments, cell_config, load_rows, where_argument
from scripts import paper
from scripts.tables import (CONFIDENCE, FAMILIES, LEVEL, LOCALIZATION, LOWER_BETTER, MODELS, OPTIONAL, REQUIRED, Stats,
                            bootstrap_means, cell_stats, common_ids, dataset_label, factor, family_of, interval,
                            method_label, select_cells)

BASELINES = paper.ORDER[:-1]
PAPER_DATASETS = ("ilsvrc", "alzheimer")  # the paper's datasets, in its order
METRICS = CONFIDENCE + LOCALIZATION
LOWER = LOWER_BETTER | {"seconds"}
ALPHA = 0.05
HOLDS, FAILS, NA = "holds", "does not hold", "cannot be measured here"
TIE = f"not resolved (CI contains 0 or p ≥ {ALPHA})"
FACTOR_TOLERANCE = 2.0  # a Table 8 factor is reproduced within this factor of the paper's
MUCH_SMALLER = 4  # "K << N": 1 + K at most a quarter of 1 + N


# -- claims and their measurement -------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """``subject`` better (or worse: ``expect``) than the best of ``opponents`` on ``metric`` over
    ``models`` of ``dataset`` (a family when several); ``paper``: the paper's (subject, opponent,
    opponent value, subject value) where it has them; ``margin``: a margin the text states."""
    section: str
    text: str
    dataset: str
    scope: str
    models: tuple[str, ...]
    metric: str
    expect: str = "better"
    subject: str = "cluscam"
    opponents: tuple[str, ...] = BASELINES
    paper: tuple[str, float, float] | None = None  # (best opponent, its value, subject's value)
    margin: float | None = None
    none: str = ""  # why there are no models, when there are none


@dataclass
class Result:
    claim: Claim
    verdict: str
    reason: str = ""
    subject_mean: float = np.nan
    opponent: str = ""
    opponent_mean: float = np.nan
    lo: float = np.nan
    hi: float = np.nan
    p: float = np.nan
    n: int = 0

    @property
    def diff(self) -> float:
        return self.subject_mean - self.opponent_mean


@dataclass
class Rows:
    """The rows on their common image ids, and what the report says about their cells."""
    rows: pd.DataFrame
    trimmed: dict
    configs: dict  # (dataset, model, method) -> flat config.json
    families: dict[str, str] = field(default_factory=dict)
    random_weights: bool = False  # every model's weights are random stand-ins (a rehearsal's hub caches)

    def models(self, dataset: str, family: str | None = None) -> tuple[str, ...]:
        ms = self.rows.loc[self.rows["dataset"] == dataset, "model"].unique()
        return tuple(sorted((m for m in ms if family is None or self.families[m] == family), key=_model_order))

    def images(self, dataset: str, models: Sequence[str]) -> dict[str, int]:
        """model -> how many image ids it has on ``dataset`` (those all its methods have)."""
        rows = self.rows[self.rows["dataset"] == dataset]
        return {m: rows.loc[rows["model"] == m, "id"].nunique() for m in models}

    def methods(self, dataset: str, model: str) -> set[str]:
        return set(self.rows.loc[(self.rows["dataset"] == dataset) & (self.rows["model"] == model), "method"])

    def precisions(self, dataset: str, models: Sequence[str], methods: Sequence[str]) -> dict[str, set[str]]:
        """method -> the precisions (run.precision) its cells on ``models`` ran in."""
        rows = self.rows[(self.rows["dataset"] == dataset) & self.rows["model"].isin(models)]
        return {meth: set(rows.loc[rows["method"] == meth, "precision"]) for meth in methods}

    def mixed_precision(self, dataset: str, models: Sequence[str], methods: Sequence[str]) -> str:
        """Why seconds per image of ``methods`` on ``models`` are not comparable ('' when they are):
        their cells ran in different precisions (e.g. ScoreCAM in bf16 after the paired check)."""
        found = self.precisions(dataset, models, methods)
        if len(set().union(*found.values())) <= 1:
            return ""
        return ("seconds not comparable across precisions: " +
                ", ".join(f"{method_label(m)} {'/'.join(sorted(p))}" for m, p in found.items() if p))

    def untrained(self, dataset: str, model: str) -> bool:
        """Whether a cell of the architecture ran on random weights (neither pretrained nor a checkpoint, or
        random stand-ins in the hub caches, ``--random-weights``)."""
        if self.random_weights:
            return True
        cfgs = [c for (d, m, _), c in self.configs.items() if (d, m) == (dataset, model)]
        return any(not c.get("model.pretrained", True) and not _checkpoint(c) for c in cfgs)


def _model_order(model: str) -> tuple[int, str]:
    return list(MODELS).index(model) if model in MODELS else len(MODELS), model


def read_rows(runs: str | Path, where: Mapping[str, str] | None = None) -> Rows:
    """The runs folder's rows (scripts/tables.py's selection and common image ids) with cell configs."""
    rows = load_rows(runs, where=where)
    if rows.empty:
        raise ValueError(f"no result rows under {runs}" + (f" with {where}" if where else ""))
    missing = [c for c in REQUIRED if c not in rows]
    if missing:
        raise ValueError(f"result rows lack columns {missing}")
    rows = rows.assign(**{c: v for c, v in OPTIONAL.items() if c not in rows})
    rows, trimmed = common_ids(select_cells(rows))
    cells = rows[["dataset", "model", "method", "cell"]].drop_duplicates()
    configs = {(d, m, meth): cell_config(Path(runs) / d / m / meth / c) for d, m, meth, c in cells.itertuples(False)}
    return Rows(rows, trimmed, configs, {m: family_of(m) for m in rows["model"].unique()})


def paired(rows: pd.DataFrame, dataset: str, model: str, a: str, b: str, column: str) -> np.ndarray:
    """[n, 2] values of methods ``a`` and ``b`` on the images where both have one (EP, LE: single-box
    images); metrics in %, seconds as they are."""
    g = rows[(rows["dataset"] == dataset) & (rows["model"] == model) & rows["method"].isin([a, b])]
    if column in LOCALIZATION:
        g = g[pd.to_numeric(g["n_boxes"], errors="coerce") == 1]
    wide = g.pivot(index="id", columns="method", values=column).reindex(columns=[a, b])
    values = wide.apply(pd.to_numeric, errors="coerce").dropna().to_numpy(float)
    return 100 * values if column in METRICS else values


def signed_rank_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of per-image differences (1 when all are zero)."""
    if not np.any(diff != 0):
        return 1.0
    return float(sps.wilcoxon(diff).pvalue)


def verdict(lo: float, hi: float, p: float, metric: str, expect: str) -> str:
    """``expect``ed direction against the interval of subject - opponent (oriented so that > 0 is
    better) and the signed-rank p: a side of 0 counts when the interval excludes 0 and p < ALPHA."""
    better = (-hi, -lo) if metric in LOWER else (lo, hi)
    if p >= ALPHA:
        return TIE
    if better[0] > 0:
        return HOLDS if expect == "better" else FAILS
    if better[1] < 0:
        return HOLDS if expect == "worse" else FAILS
    return TIE


def compare(data: Rows, claim: Claim, resamples: int, seed: int, min_images: int) -> Result:
    """The measurement of ``claim`` and its verdict."""
    if not claim.models:
        where = dataset_label(claim.dataset)
        return Result(claim, NA, claim.none or f"no rows for {claim.scope} on {where}")
    absent = {meth: [m for m in claim.models if meth not in data.methods(claim.dataset, m)]
              for meth in (claim.subject, *claim.opponents)}
    opponents = [o for o in claim.opponents if not absent[o]]
    if absent[claim.subject] or not opponents:
        return Result(claim, NA, _absent(absent))
    sign = -1 if claim.metric in LOWER else 1
    pairs = {o: [paired(data.rows, claim.dataset, m, claim.subject, o, claim.metric) for m in claim.models]
             for o in opponents}
    means = {o: [np.mean(v, 0) if len(v) else np.full(2, np.nan) for v in vs] for o, vs in pairs.items()}
    best = max(opponents, key=lambda o: sign * np.mean([mv[1] for mv in means[o]]))
    diffs = [v[:, 0] - v[:, 1] for v in pairs[best]]
    boot = np.mean([bootstrap_means(d[:, None], resamples, seed + zlib.crc32(f"{claim.dataset}/{m}".encode()))[:, 0]
                    for d, m in zip(diffs, claim.models)], 0)
    lo, hi = interval(boot)
    res = Result(claim, TIE, "", float(np.mean([mv[0] for mv in means[best]])), best,
                 float(np.mean([mv[1] for mv in means[best]])), lo, hi, signed_rank_p(np.concatenate(diffs)),
                 sum(map(len, diffs)))
    res.verdict, res.reason = _checked(data, claim, absent, diffs, min_images, res)
    return res


def _absent(absent: Mapping[str, list[str]]) -> str:
    return "no rows for " + "; ".join(f"{method_label(meth)} on {', '.join(map(_name, ms))}"
                                      for meth, ms in absent.items() if ms)


def _checked(data: Rows, claim: Claim, absent: Mapping[str, list[str]], diffs: Sequence[np.ndarray],
             min_images: int, res: Result) -> tuple[str, str]:
    """(verdict, reason): a missing method, random weights or too few images first, else the rule."""
    if any(absent.values()):
        return NA, _absent(absent) + " (the claim compares with every one)"
    mixed = claim.metric == "seconds" and data.mixed_precision(claim.dataset, claim.models,
                                                                (claim.subject, *claim.opponents))
    if mixed:
        return NA, mixed
    untrained = [m for m in claim.models if data.untrained(claim.dataset, m)]
    if untrained:
        return NA, f"no trained model: {', '.join(map(_name, untrained))} ran on random weights"
    few = too_few({m: len(d) for m, d in zip(claim.models, diffs)}, min_images)
    if few:
        return NA, few
    return verdict(res.lo, res.hi, res.p, claim.metric, claim.expect), ""


def too_few(images: Mapping[str, int], min_images: int) -> str:
    """Why no verdict can be given on ``images`` (model -> count) below ``min_images`` ('' when none is below)."""
    few = [f"{_name(m)} {n}" for m, n in images.items() if n < min_images]
    return f"too few images (fewer than {min_images}): {', '.join(few)}" if few else ""


def _name(model: str) -> str:
    return MODELS.get(model, model)


# -- the claims -------------------------------------------------------------------------------------------
def _paper_best(values: Mapping[str, float], subject: str, opponents: Sequence[str], metric: str
                ) -> tuple[tuple[str, float, float], str]:
    """((best opponent, its value, subject's value), expected direction) from a paper table's row."""
    sign = -1 if metric in LOWER else 1
    best = max(opponents, key=lambda o: sign * values[o])
    expect = "better" if sign * (values[subject] - values[best]) > 0 else "worse"
    return (best, values[best], values[subject]), expect


def family_claims(data: Rows) -> list[Claim]:
    """Sec. 4.2 / Table 2: ClusCAM against the best baseline per dataset, family and metric, and the
    margins the text states (against OptiCAM)."""
    table2, out = paper.parse(paper.TABLE2), []
    for d in PAPER_DATASETS:
        for f, label in FAMILIES.items():
            models = data.models(d, f)
            scope = f"{label} ({', '.join(map(_name, models))})" if models else label
            text = paper.SEC4.get(f, "") or paper.SEC4[f"{f}/{d}"]
            for metric in CONFIDENCE:
                v = table2[f"{d}/{f}", metric]
                best, expect = _paper_best(v, "cluscam", BASELINES, metric)
                out.append(Claim("Sec. 4.2, Table 2", text, d, scope, models, metric, expect, paper=best))
                margin = paper.MARGINS.get((d, f, metric))
                if margin is not None:
                    out.append(Claim("Sec. 4.2, Table 2", text, d, scope, models, metric, expect,
                                     opponents=("opticam",), paper=("opticam", v["opticam"], v["cluscam"]),
                                     margin=margin))
    return out


def architecture_claims(data: Rows) -> list[Claim]:
    """Tables 4, 6, 7: ClusCAM against the best baseline on each architecture of the rows; the paper's
    ranking where it has the architecture, else its general claim that ClusCAM leads."""
    tables = {"ilsvrc": {**paper.parse(paper.TABLE6), **paper.parse(paper.TABLE4)},
              "alzheimer": paper.parse(paper.TABLE7)}
    names = {"ilsvrc": "Table 6 / Table 4", "alzheimer": "Table 7"}
    out = []
    for d in sorted(set(data.rows["dataset"]), key=lambda x: (x not in PAPER_DATASETS, x)):
        for m in data.models(d):
            for metric in METRICS if d == "ilsvrc" else CONFIDENCE:
                row = tables.get(d, {}).get((m, metric))
                if row:
                    best, expect = _paper_best(row, "cluscam", BASELINES, metric)
                    out.append(Claim(names[d], "per-architecture ranking", d, _name(m), (m,), metric, expect,
                                     paper=best))
                else:
                    out.append(Claim("Sec. 4.2, App. D.2, E", "ClusCAM leads on every architecture "
                                     "(architecture not in the paper)", d, _name(m), (m,), metric))
    return out


def agcam_claims(data: Rows) -> list[Claim]:
    """Table 5 / App. D.3: AG-CAM beats GradCAM, GradCAM++ and ScoreCAM; OptiCAM and ClusCAM beat AG-CAM
    (the paper: ViT-B on ILSVRC; here every ViT with AG-CAM rows)."""
    table5 = paper.parse(paper.TABLE5, (*paper.ORDER, "agcam"))
    scopes = [(d, m) for d in sorted(set(data.rows["dataset"])) for m in data.models(d, "vit")
              if "agcam" in data.methods(d, m)] or [("ilsvrc", None)]
    none = ("no AG-CAM rows on a ViT in these rows (the paper's Table 5 is on ViT-B; AG-CAM reads the [class]-token "
            "attention of a timm or torchvision ViT, which LeViT, Swin-B and PVTv2 do not have)")
    out = []
    for d, m in scopes:
        models, scope = ((m,), _name(m)) if m else ((), "ViT-B")
        for metric in CONFIDENCE:
            v = table5["vit_b_16", metric]
            trio = ("gradcam", "gradcampp", "scorecam")
            best, _ = _paper_best(v, "agcam", trio, metric)
            out.append(Claim("App. D.3, Table 5", "AG-CAM clearly outperforms GradCAM, GradCAM++ and ScoreCAM",
                             d, scope, models, metric, subject="agcam", opponents=trio, paper=best, none=none))
            for subject in ("opticam", "cluscam"):
                out.append(Claim("App. D.3, Table 5", f"{method_label(subject)} beats AG-CAM on all three metrics",
                                 d, scope, models, metric, subject=subject, opponents=("agcam",),
                                 paper=("agcam", v["agcam"], v[subject]), none=none))
    return out


def runtime_claims(data: Rows) -> list[Claim]:
    """App. D.5: on ViTs ClusCAM is faster than ScoreCAM and OptiCAM (seconds per image)."""
    return [Claim("App. D.5, Table 8", "ClusCAM has the lowest runtime of the three gradient-free methods on ViTs",
                  d, FAMILIES["vit"], data.models(d, "vit"), "seconds", opponents=("scorecam", "opticam"))
            for d in PAPER_DATASETS]


# -- Tables 1, 8, 9 ---------------------------------------------------------------------------------------
def table1_results(runs: str | Path, resamples: int, seed: int, min_images: int) -> list[dict]:
    """Table 1 per groups cell of ``<runs>/table1/<dataset>/<model>/groups/<hash>/``: the paper's
    statistics and a bootstrap interval (images resampled) of the mean meta - members difference;
    no verdict on fewer than ``min_images`` images."""
    from scripts.table1 import read_provenance, table1_statistics

    out = []
    for path in sorted(Path(runs).glob("table1/*/*/groups/*/rows.csv")):
        groups = pd.read_csv(path, dtype={"id": str})
        st = table1_statistics(groups)
        per_image = (groups["s_meta"] - groups["s_members_mean"]).groupby(groups["id"]).agg(["sum", "size"])
        boot = bootstrap_means(per_image.to_numpy(float), resamples, seed)  # pair-weighted: sum / size
        lo, hi = interval(boot[:, 0] / boot[:, 1])
        ok = lo > 0 and st["tests"]["p_t"] < ALPHA and st["tests"]["p_wilcoxon"] < ALPHA
        devices = sorted({p.get("device", "unknown") for p in read_provenance(path.parent)[0]})
        few = too_few({path.parts[-4]: st["n_images"]}, min_images)
        out.append({"cell": path.parent.relative_to(runs).as_posix(), "st": st, "lo": lo, "hi": hi,
                    "devices": ", ".join(devices) or "unknown",
                    "verdict": f"{NA}: {few}" if few else HOLDS if ok else FAILS if hi < 0 else TIE})
    return out


def factor_rows(data: Rows, stats: Stats, min_images: int) -> list[dict]:
    """Table 8's factors vs GradCAM per dataset and family, paper beside measured (tables.factor); no
    verdict where an architecture has fewer than ``min_images`` images."""
    out = []
    for d in PAPER_DATASETS:
        for f, fam in paper.TABLE8.items():
            models = data.models(d, f)
            if not models:
                out.append({"dataset": d, "family": f, "metric": "", "method": "", "paper": np.nan,
                            "measured": np.nan, "verdict": f"{NA}: no rows for {FAMILIES[f]} on {dataset_label(d)}"})
                continue
            few = too_few(data.images(d, models), min_images)
            for column, paper_values in fam.items():
                for meth, value in paper_values.items():
                    measured = factor(stats, d, models, meth, column)
                    ratio = measured / value
                    mixed = column == "seconds" and data.mixed_precision(d, models, ("gradcam", meth))
                    out.append({"dataset": d, "family": f, "metric": column, "method": meth, "paper": value,
                                "measured": measured,
                                "verdict": NA if np.isnan(measured) else f"{NA}: {mixed or few}" if mixed or few
                                else HOLDS if 1 / FACTOR_TOLERANCE <= ratio <= FACTOR_TOLERANCE else FAILS})
    return out


def order_of_magnitude_rows(data: Rows, stats: Stats, min_images: int) -> list[dict]:
    """App. D.5 on CNNs: ClusCAM's runtime within a factor of 10 of ScoreCAM's, and of OptiCAM's (a
    verdict each: one opponent's cells may run at another precision than ClusCAM's); no verdict where
    an architecture has fewer than ``min_images`` images."""
    out = []
    for d in PAPER_DATASETS:
        models = data.models(d, "cnn")
        few = too_few(data.images(d, models), min_images)
        ours = factor(stats, d, models, "cluscam", "seconds") if models else np.nan
        for o in ("scorecam", "opticam"):
            ratio = ours / factor(stats, d, models, o, "seconds") if models else np.nan
            mixed = data.mixed_precision(d, models, ("cluscam", o))
            out.append({"dataset": d, "opponent": o, "ratio": ratio,
                        "verdict": f"{NA}: no rows for CNNs (or a method) on {dataset_label(d)}" if np.isnan(ratio) else
                        f"{NA}: {mixed or few}" if mixed or few else HOLDS if 0.1 <= ratio <= 10 else FAILS})
    return out


def pass_rows(data: Rows, stats: Stats, min_images: int) -> list[dict]:
    """Table 9 per (dataset, architecture): measured forward (+ partial) passes per image against
    1 + the paper's count (the explainers' capture pass), N = ScoreCAM's or AblationCAM's passes - 1
    and K from ClusCAM's config; no verdict on fewer than ``min_images`` images."""
    out = []
    for d, m in dict.fromkeys(zip(data.rows["dataset"], data.rows["model"])):
        fp = {meth: stats.cells[d, m, meth]["fp"] for meth in paper.TABLE9 if (d, m, meth) in stats.cells}
        n = next((fp[x] - 1 for x in ("scorecam", "ablationcam") if x in fp), np.nan)
        k = data.configs.get((d, m, "cluscam"), {}).get("method.k", np.nan)
        expected = {"gradcam": 1, "gradcampp": 1, "scorecam": 1 + n, "ablationcam": 1 + n, "cluscam": 1 + k}
        few = too_few(data.images(d, [m]), min_images)
        for meth, count in paper.TABLE9.items():
            ok = meth in fp and np.isclose(fp[meth], expected[meth])
            if meth == "cluscam":  # and K << N
                ok = ok and (1 + k) * MUCH_SMALLER <= 1 + n
            unknown = meth not in fp or np.isnan(expected[meth]) or (meth == "cluscam" and np.isnan(n))
            out.append({"dataset": d, "model": m, "method": meth, "paper": count, "expected": expected[meth],
                        "measured": fp.get(meth, np.nan), "bp": stats.cells.get((d, m, meth), {}).get("bp", np.nan),
                        "verdict": NA if unknown else f"{NA}: {few}" if few else HOLDS if ok else FAILS})
    return out


# -- the report -------------------------------------------------------------------------------------------
def _f(x: float, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or not np.isfinite(x) else fmt.format(x)


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, line)) + " |" for line in lines), ""]


def _grouped(values: Mapping[str, str]) -> str:
    """"fp32" when every method has it, else "fp32; bf16: ScoreCAM"."""
    by: dict[str, list[str]] = {}
    for meth, v in values.items():
        by.setdefault(v, []).append(method_label(meth))
    if len(by) == 1:
        return next(iter(by))
    main_value = max(by, key=lambda v: len(by[v]))
    return "; ".join([main_value, *(f"{v}: {', '.join(ms)}" for v, ms in by.items() if v != main_value)])


def _checkpoint(cfg: Mapping) -> str | None:
    """The cell's checkpoint: its sha256 (cell identities since the registry redesign) or its path (older cells)."""
    sha = cfg.get("model.checkpoint_sha256")
    return f"sha256 {str(sha)[:12]}" if sha else cfg.get("model.checkpoint") and Path(str(cfg["model.checkpoint"])).name


def _weights(cfg: Mapping) -> str:
    checkpoint = _checkpoint(cfg)
    if checkpoint:
        return f"checkpoint ({checkpoint})"
    return "pretrained" if cfg.get("model.pretrained", True) else "random weights"


def rows_section(data: Rows) -> list[str]:
    """Per (dataset, architecture): common images, cells cut to them, devices, precisions, weights."""
    lines = []
    for (d, m), g in data.rows.groupby(["dataset", "model"], sort=False):
        cfgs = {meth: data.configs.get((d, m, meth), {}) for meth in g["method"].unique()}
        cut: dict[int, list[str]] = {}
        for (dd, mm, meth), (_, total) in data.trimmed.items():
            if (dd, mm) == (d, m):
                cut.setdefault(total, []).append(method_label(meth))
        lines.append([dataset_label(d), _name(m), FAMILIES.get(data.families[m], data.families[m]),
                      g["id"].nunique(), ", ".join(method_label(x) for x in cfgs),
                      "; ".join(f"{', '.join(ms)} had {n}" for n, ms in cut.items()) or "none",
                      ", ".join(sorted(set(g["device"].astype(str)))),
                      _grouped({k: str(c.get("method.precision", "not recorded")) for k, c in cfgs.items()}),
                      _grouped({k: _weights(c) for k, c in cfgs.items()})])
    return _table(["Dataset", "Architecture", "Family", "Common images", "Methods", "Cells cut to the common set",
                   "Device(s)", "Precision", "Weights"], lines)


def _label(metric: str) -> str:
    return "seconds/image (↓)" if metric == "seconds" else f"{metric.upper()} ({'↓' if metric in LOWER else '↑'})"


def _expected(c: Claim) -> str:
    others = "the best baseline" if c.opponents == BASELINES else " / ".join(method_label(o) for o in c.opponents)
    return f"{method_label(c.subject)} {'ahead of' if c.expect == 'better' else 'behind'} {others}"


def _paper_cell(c: Claim, fmt: str) -> str:
    if c.paper is None:
        return "–"
    opp, ov, sv = c.paper
    text = f"{sv:{fmt}} vs {method_label(opp)} {ov:{fmt}} (Δ {sv - ov:+{fmt}})"
    return text + (f"; stated margin {c.margin:g}" if c.margin is not None else "")


def comparison_table(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        c = r.claim
        inside = "" if c.margin is None or np.isnan(r.lo) else \
            f"; stated margin {'inside' if r.lo <= c.margin <= r.hi else 'outside'} the CI"
        lines.append([dataset_label(c.dataset), c.scope, _label(c.metric), _expected(c),
                      _paper_cell(c, ".2f"),
                      f"{_f(r.subject_mean)} vs {method_label(r.opponent)} {_f(r.opponent_mean)}"
                      if r.opponent else "–",
                      f"{_f(r.diff, '{:+.2f}')} [{_f(r.lo)}, {_f(r.hi)}]{inside}" if r.opponent else "–",
                      _f(r.p, "{:.2g}"), r.n or "–", r.verdict + (f": {r.reason}" if r.reason else "")])
    return _table(["Dataset", "Scope", "Metric", "Claim", "Paper (subject vs best opponent)",
                   "Measured (same images)", "Δ [95% CI]", "Wilcoxon p", "Images", "Verdict"], lines)


def _quotes(results: Sequence[Result]) -> list[str]:
    texts = dict.fromkeys(f"{r.claim.section}: {r.claim.text}" for r in results)
    return [f"> {t}" for t in texts] + [""]


def table1_section(results: Sequence[dict], runs: str | Path) -> list[str]:
    head = ["> Table 1: meta-representations raise the logit more than their members' mean: mean difference "
            "1.31 ± 0.05 (1.25–1.41), Cohen's d 0.82 ± 0.04 (0.76–0.88), one-sided p < 1e-202 (t-test), "
            "< 1e-199 (Wilcoxon).", ""]
    if not results:
        return head + [f"Verdict: {NA}: cannot be measured from these rows: no Table 1 rows under "
                       f"`{Path(runs) / 'table1'}` (`python -m scripts.table1` writes them there).", ""]
    lines = []
    for r in results:
        st = r["st"]
        md, cd, tests = st["mean_diff"], st["cohen_d"], st["tests"]
        lines.append([r["cell"], st["n_images"], st["n_pairs"],
                      f"{md['mean']:.2f} ± {md['std']:.2f} ({md['min']:.2f}–{md['max']:.2f})",
                      f"{cd['mean']:.2f} ± {cd['std']:.2f}", f"1e{tests['log10_p_t']:.1f}",
                      f"1e{tests['log10_p_wilcoxon']:.1f}", f"[{r['lo']:.2f}, {r['hi']:.2f}]", r["devices"],
                      r["verdict"]])
    return head + _table(["Cell", "Images", "Pairs", "Mean difference (top ranks)", "Cohen's d", "p (t, one-sided)",
                          "p (Wilcoxon, one-sided)", "95% CI, mean pair difference", "Device(s)", "Verdict"], lines)


def factor_section(factors: Sequence[dict], magnitudes: Sequence[dict], runtime: Sequence[Result]) -> list[str]:
    lines = [[dataset_label(r["dataset"]), FAMILIES[r["family"]], _label(r["metric"]) if r["metric"] else "all",
              method_label(r["method"]) if r["method"] else "all", _f(r["paper"], "×{:.2f}"), _f(r["measured"], "×{:.2f}"), r["verdict"]]
             for r in factors]
    mags = [[dataset_label(r["dataset"]), f"ClusCAM / {method_label(r['opponent'])}", _f(r["ratio"], "×{:.2f}"),
             r["verdict"]] for r in magnitudes]
    return (["> App. D.5: on CNNs ClusCAM is ×44.24 slower than GradCAM, its runtime within the same order of "
             "magnitude as ScoreCAM and OptiCAM; on ViTs it has the lowest runtime of the three.", "",
             "Factors vs GradCAM from the family means (scripts/tables.py's Table 8; AD: GradCAM / method, others: "
             "method / GradCAM). Runtimes depend on the device and precision of the rows (see *Rows compared*).", ""]
            + _table(["Dataset", "Family", "Metric", "Method", "Paper", "Measured", f"Within ×{FACTOR_TOLERANCE:g}"],
                     lines)
            + ["ClusCAM's seconds per image over ScoreCAM's and over OptiCAM's on CNNs (same order of magnitude: "
               "between ×0.1 and ×10):", ""]
            + _table(["Dataset", "Ratio", "Measured", "Verdict"], mags)
            + comparison_table(runtime))


def passes_section(rows: Sequence[dict]) -> list[str]:
    lines = [[dataset_label(r["dataset"]), _name(r["model"]), method_label(r["method"]), r["paper"],
              _f(r["expected"], "{:.0f}"), _f(r["measured"], "{:.5g}"), _f(r["bp"], "{:.5g}"), r["verdict"]]
             for r in rows]
    return (["> Table 9: forward passes per image: GradCAM 1, GradCAM++ 1, ScoreCAM N, AblationCAM N, ClusCAM K "
             "(K << N).", "",
             "Measured: forward + partial passes per image (mean over the common images). Expected here: 1 + the "
             "paper's count (every explainer's capture pass), N = ScoreCAM's (else AblationCAM's) passes - 1, K from "
             f"ClusCAM's config; ClusCAM's row also needs K << N (1 + K at most 1/{MUCH_SMALLER} of 1 + N).", ""]
            + _table(["Dataset", "Architecture", "Method", "Paper", "Expected here", "Measured FP", "Backward",
                      "Verdict"], lines))


RULES = f"""\
- **Margins are percentage points.** Every margin the text states is a difference of Table 2's values in
  points, and none is a relative difference: ViTs on ILSVRC, IC 54.71 - 41.28 = 13.43 and AG
  31.22 - 9.00 = 22.22 (relative: 32.5% and 247%); the AD degradations 11.25 - 9.51 = 1.74 (Alzheimer's
  CNNs) and 5.64 - 4.12 = 1.52. The CNN margins are also against OptiCAM, not the second best of each
  metric: IC 59.58 - 41.78 = 17.80 (ILSVRC; ScoreCAM's 47.99 is second) and AG 58.22 - 34.03 = 24.19
  (Alzheimer's; ScoreCAM's 42.71 is second). Δ below is therefore the subject minus its opponent in points.
- **Comparison.** On the image ids all methods of an architecture have, the opponent is the one with
  the best mean (a family: the mean of its architectures' means). Δ = subject - opponent (the mean of
  the architectures' mean paired differences), with a {100 * LEVEL:.0f}% percentile bootstrap interval (images
  resampled within each architecture) and the two-sided Wilcoxon signed-rank p of the per-image
  differences. EP and LE use the single-box images where both methods have a value.
- **Verdict** of "subject ahead of (behind) the opponent", with the interval oriented so that > 0 is
  better (AD, LE and seconds: lower is better): *{HOLDS}* when it lies entirely on the claimed side
  of 0 and the Wilcoxon p < {ALPHA}, *{FAILS}* when it lies entirely on the other side and p < {ALPHA},
  *{TIE}* otherwise: the interval contains 0 (an exact tie included) or the signed-rank test does
  not confirm it (a percentile interval is too narrow on few images). The paper's numbers decide
  the side of each row (e.g. its Table 2 puts ClusCAM behind OptiCAM in AD on Alzheimer's CNNs and
  ILSVRC ViTs); architectures absent from the paper take its general claim (ClusCAM ahead). Whether a stated margin lies inside the interval is shown, not judged.
- **{NA}** when the dataset or family has no rows, a compared method has no rows on an
  architecture (the verdict needs every opponent), an architecture ran on random weights (no trained
  model), or an architecture has fewer paired images than the minimum (`--min-images`; Tables 1, 8
  and 9 too: fewer images of the groups cell or architecture).
- **Table 1** (every groups cell under `<runs>/table1/`, `--where` not applied): *{HOLDS}* when the one-sided
  t-test and Wilcoxon p-values are below {ALPHA} and the interval of the mean pair difference (images
  resampled) lies above 0; *{FAILS}* when it lies below 0.
- **Table 8:** a factor *{HOLDS}* within ×{FACTOR_TOLERANCE:g} of the paper's (runtimes depend on the device); a
  runtime compared across precisions (a bf16 cell against fp32 ones) *{NA}*.
  **Table 9:** the measured passes equal the expected count.
"""


def summary(sections: Mapping[str, Sequence[str]]) -> list[str]:
    """Verdict counts per section."""
    verdicts = (HOLDS, FAILS, TIE, NA)
    lines = [[name, *(sum(v.startswith(x) for v in vs) for x in verdicts)] for name, vs in sections.items()]
    return _table(["Claims", *verdicts], lines)


RANDOM_BANNER = ("**Random weights.** Every model of these rows ran on random weights placed in the hub caches "
                 "(a rehearsal of the pipeline, `scripts/rehearse.py`): no number below measures the paper's "
                 "methods, and no claim that needs trained models can be measured.")


def report(data: Rows, runs: str | Path, command: str, resamples: int = 2000, seed: int = 0, min_images: int = 10,
           commit: str | None = None) -> str:
    """The Markdown report."""
    from benchmarks.provenance import git_commit

    stats = cell_stats(data.rows, resamples=1, seed=seed)  # means only
    measure = lambda claims: [compare(data, c, resamples, seed, min_images) for c in claims]  # noqa: E731
    family, arch, agcam = measure(family_claims(data)), measure(architecture_claims(data)), measure(agcam_claims(data))
    runtime = measure(runtime_claims(data))
    t1 = table1_results(runs, resamples, seed, min_images)
    factors, mags = factor_rows(data, stats, min_images), order_of_magnitude_rows(data, stats, min_images)
    passes = pass_rows(data, stats, min_images)
    counts = {"Sec. 4.2 / Table 2 (families)": [r.verdict for r in family],
              "Tables 4, 6, 7 (architectures)": [r.verdict for r in arch],
              "Table 5 (AG-CAM)": [r.verdict for r in agcam],
              "Table 1": [r["verdict"] for r in t1] or [NA],
              "Table 8 / App. D.5": [r["verdict"] for r in factors + mags] + [r.verdict for r in runtime],
              "Table 9": [r["verdict"] for r in passes]}
    out = ["# Reproduction of the paper's quantitative claims", "",
           "Generated from the per-image rows by `scripts/claims.py`; do not edit by hand.", "",
           *([RANDOM_BANNER, ""] if data.random_weights else []),
           f"- Command: `{command}`", f"- Commit: {commit or git_commit()}",
           f"- Date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}", f"- Runs folder: `{runs}`",
           f"- Bootstrap: {resamples} resamples, seed {seed} (+ CRC32 of dataset/model, as scripts/tables.py); "
           f"at least {min_images} paired images per architecture", "", "## Summary", "", *summary(counts),
           "## Rows compared", "", *rows_section(data), "## How to read it", "", RULES,
           "## Sec. 4.2 and Table 2: ClusCAM against the best baseline per family", "", *_quotes(family),
           *comparison_table(family), "## Tables 4, 6 and 7: per architecture", "", *_quotes(arch),
           *comparison_table(arch), "## Table 5: AG-CAM on ViTs", "", *_quotes(agcam), *comparison_table(agcam),
           "## Table 1: meta-representations", "", *table1_section(t1, runs),
           "## Table 8: trade-off against GradCAM", "", *factor_section(factors, mags, runtime),
           "## Table 9: passes per image", "", *passes_section(passes)]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_row_arguments(parser)
    parser.add_argument("--out", default="results/REPRODUCTION.md", help="the report's path")
    parser.add_argument("--min-images", type=int, default=10, help="fewest paired images per architecture")
    parser.add_argument("--random-weights", action="store_true",
                        help="the rows ran on random stand-ins for the hub weights (a rehearsal): say so, measure no claim")
    args = parser.parse_args(argv)
    where = where_argument(parser, args)
    try:
        data = read_rows(args.runs, where)
        data.random_weights = args.random_weights
        text = report(data, args.runs, "python -m scripts.claims " + shlex.join(argv), args.resamples, args.seed,
                      args.min_images)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(out)


if __name__ == "__main__":
    main()
