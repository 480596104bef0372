"""The claims report: each quantitative claim of the paper beside its measured value, with a verdict.

The rows are those of the tables (:mod:`benchmarks.tables`): one cell per (dataset, model, method),
and the methods of each (dataset, architecture) compared on the image ids all its cells have.  A
claim compares a subject with the best of its opponents on those images (a family: the best mean of
its architectures' means) by the paired difference of :mod:`benchmarks.stats`: a 95% percentile
bootstrap interval with image ids resampled jointly across the family's architectures, and the
two-sided Wilcoxon signed-rank p of the per-image differences averaged over architectures.  A
stated margin is judged as a margin; each claim is one row and counted once.  Table 1 is read from
``<runs>/table1/`` (:mod:`benchmarks.table1`), Fig. 5 from the ablation runs.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from benchmarks import paper
from benchmarks.results import cell_config, load_rows
from benchmarks.stats import (ALPHA, CONFIDENCE, FAILS, FAMILIES, HOLDS, LEVEL, LOCALIZATION, LOWER, MARGIN_MISSED, NA,
                               OPTIONAL, REQUIRED, TIE, Stats, bootstrap_means, cell_stats, common_ids,
                               comparison_seed, family_of, image_means, interval, joint_bootstrap, margin_check,
                               paired, select_cells, signed_rank_p, stated_difference, verdict)
from benchmarks.tables import MODELS, dataset_label, factor, method_label

BASELINES = paper.ORDER[:-1]
PAPER_DATASETS = ("ilsvrc", "alzheimer")  # the paper's datasets, in its order
METRICS = CONFIDENCE + LOCALIZATION
FACTOR_TOLERANCE = 2.0  # a Table 8 factor is reproduced within this factor of the paper's
MUCH_SMALLER = 4  # "K << N": 1 + K at most a quarter of 1 + N
MIN_ARCHITECTURES = 2  # a family verdict needs at least this many architectures
VERDICTS = (HOLDS, MARGIN_MISSED, FAILS, TIE, NA)
CONSISTENTLY = 0.9  # App. D.1's "consistently higher": at least this share of (image, group) pairs


# -- claims and their measurement -------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """``subject`` better (or worse: ``expect``) than the best of ``opponents`` on ``metric`` over
    ``models`` of ``dataset`` (a family when ``family``); ``paper``: the paper's (best opponent, its
    value, the subject's value) where it has them, factors vs GradCAM when ``factors``; ``margin``:
    a size the text states for the difference against ``margin_opponent``, in the metric's unit."""
    section: str
    text: str
    dataset: str
    scope: str
    models: tuple[str, ...]
    metric: str
    expect: str = "better"
    subject: str = "cluscam"
    opponents: tuple[str, ...] = BASELINES
    paper: tuple[str, float, float] | None = None
    margin: float | None = None
    margin_opponent: str = "opticam"
    none: str = ""  # why there are no models, when there are none
    family: bool = False
    factors: bool = False


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
    n: int = 0  # distinct images
    margin: tuple[float, float, float] | None = None  # (difference, lo, hi) against the margin's opponent

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


@dataclass
class Measured:
    """A paired comparison of a claim's subject with its best opponent: per-image differences
    [image ids x architectures], the means and the interval."""
    opponent: str
    subject_mean: float
    opponent_mean: float
    diffs: pd.DataFrame
    lo: float
    hi: float
    p: float


def measure(data: Rows, claim: Claim, opponents: Sequence[str], resamples: int, seed: int) -> Measured:
    """``claim.subject`` against the best of ``opponents`` (by the mean of the architectures' means) on
    the images where both have a value, ids resampled jointly across ``claim.models``."""
    sign = -1 if claim.metric in LOWER else 1
    pairs = {o: {m: paired(data.rows, claim.dataset, m, claim.subject, o, claim.metric) for m in claim.models}
             for o in opponents}

    def mean(o: str, column: str) -> float:
        values = [p[column].mean() for p in pairs[o].values() if len(p)]
        return float(np.mean(values)) if len(values) == len(claim.models) else np.nan

    best = max(opponents, key=lambda o: np.nan_to_num(sign * mean(o, o), nan=-np.inf))
    diffs = pd.concat({m: p[claim.subject] - p[best] for m, p in pairs[best].items()}, axis=1)
    boot = joint_bootstrap(diffs.to_numpy(float), resamples, comparison_seed(seed, claim.dataset, claim.models))
    lo, hi = interval(boot)
    return Measured(best, mean(best, claim.subject), mean(best, best), diffs, lo, hi,
                    signed_rank_p(image_means(diffs.to_numpy(float))))


def compare(data: Rows, claim: Claim, resamples: int, seed: int, min_images: int,
            min_architectures: int = MIN_ARCHITECTURES) -> Result:
    """The measurement of ``claim`` and its verdict."""
    if not claim.models:
        return Result(claim, NA, claim.none or f"no rows for {claim.scope} on {dataset_label(claim.dataset)}")
    needed = (claim.subject, *claim.opponents, *((claim.margin_opponent,) if claim.margin is not None else ()))
    absent = {meth: [m for m in claim.models if meth not in data.methods(claim.dataset, m)] for meth in needed}
    opponents = [o for o in claim.opponents if not absent[o]]
    if absent[claim.subject] or not opponents:
        return Result(claim, NA, _absent(absent))
    got = measure(data, claim, opponents, resamples, seed)
    res = Result(claim, TIE, "", got.subject_mean, got.opponent, got.opponent_mean, got.lo, got.hi, got.p,
                 len(got.diffs))
    if claim.margin is not None and not absent[claim.margin_opponent]:
        m = got if got.opponent == claim.margin_opponent else measure(data, claim, [claim.margin_opponent],
                                                                     resamples, seed)
        res.margin = (m.subject_mean - m.opponent_mean, m.lo, m.hi)
    res.verdict, res.reason = _checked(data, claim, absent, got.diffs.notna().sum().to_dict(), min_images,
                                       min_architectures, res)
    return res


def _absent(absent: Mapping[str, list[str]]) -> str:
    return "no rows for " + "; ".join(f"{method_label(meth)} on {', '.join(map(_name, ms))}"
                                      for meth, ms in absent.items() if ms)


def _checked(data: Rows, claim: Claim, absent: Mapping[str, list[str]], images: Mapping[str, int], min_images: int,
             min_architectures: int, res: Result) -> tuple[str, str]:
    """(verdict, reason): a missing method, a family below ``min_architectures``, random weights or too
    few images first; then the direction, decided across precisions only where the low precision can
    only favour the side that lost; then a stated margin."""
    if any(absent.values()):
        return NA, _absent(absent) + " (the claim compares with every one)"
    if claim.family and len(claim.models) < min_architectures:
        return NA, (f"{len(claim.models)} architecture ({', '.join(map(_name, claim.models))}), not the family: a "
                    f"family verdict needs at least {min_architectures}")
    untrained = [m for m in claim.models if data.untrained(claim.dataset, m)]
    if untrained:
        return NA, f"no trained model: {', '.join(map(_name, untrained))} ran on random weights"
    few = too_few(images, min_images)
    if few:
        return NA, few
    found = verdict(res.lo, res.hi, res.p, claim.metric, claim.expect)
    mixed = claim.metric == "seconds" and data.mixed_precision(claim.dataset, claim.models,
                                                                (claim.subject, *claim.opponents))
    if mixed:
        if found in (HOLDS, FAILS) and _low_precision_lost(data, claim, res):
            return found, f"decided across precisions ({mixed.split(': ', 1)[1]}): the faster side ran in fp32"
        return NA, mixed
    if found == HOLDS and claim.margin is not None:
        if res.margin is None:
            return NA, f"no rows for {method_label(claim.margin_opponent)}, the stated margin's opponent"
        size = margin_check(res.margin[1], res.margin[2], claim.margin, claim.metric, claim.expect)
        return (f"{MARGIN_MISSED} ({size})", "") if size else (HOLDS, "")
    return found, ""


def _low_precision_lost(data: Rows, claim: Claim, res: Result) -> bool:
    """Whether a seconds comparison across precisions is decided: the measured faster side ran in fp32
    only, so a lower precision (faster) could only have helped the slower side."""
    found = data.precisions(claim.dataset, claim.models, (claim.subject, *claim.opponents))
    subject_faster = res.hi < 0
    faster = [claim.subject] if subject_faster else list(claim.opponents)
    return all(found[m] <= {"fp32"} for m in faster)


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


def _scope(data: Rows, dataset: str, family: str) -> tuple[tuple[str, ...], str]:
    models = data.models(dataset, family)
    label = FAMILIES[family]
    return models, f"{label} ({', '.join(map(_name, models))})" if models else label


def family_claims(data: Rows) -> list[Claim]:
    """Sec. 4.2 / Table 2: ClusCAM against the best baseline per dataset, family and metric, the side
    from Table 2; where the text states a margin (ClusCAM minus OptiCAM, in points), judged with it."""
    table2, out = paper.parse(paper.TABLE2), []
    for d in PAPER_DATASETS:
        for f in FAMILIES:
            models, scope = _scope(data, d, f)
            text = paper.SEC4.get(f, "") or paper.SEC4[f"{f}/{d}"]
            for metric in CONFIDENCE:
                best, expect = _paper_best(table2[f"{d}/{f}", metric], "cluscam", BASELINES, metric)
                out.append(Claim("Sec. 4.2, Table 2", text, d, scope, models, metric, expect, paper=best,
                                 margin=paper.MARGINS.get((d, f, metric)), family=True))
    return out


def localization_claims(data: Rows) -> list[Claim]:
    """App. D.2: on transformer backbones ClusCAM has the lowest localization error (ILSVRC, Table 4)."""
    table4 = paper.parse(paper.TABLE4)
    vits = [m for (m, metric) in table4 if metric == "le" and family_of(m) == "vit"]
    values = {meth: float(np.mean([table4[m, "le"][meth] for m in vits])) for meth in paper.ORDER}
    best, expect = _paper_best(values, "cluscam", BASELINES, "le")
    models, scope = _scope(data, "ilsvrc", "vit")
    return [Claim("App. D.2, Table 4", paper.D2, "ilsvrc", scope, models, "le", expect, paper=best, family=True)]


def architecture_claims(data: Rows) -> list[Claim]:
    """Tables 4, 6, 7: ClusCAM against the best baseline on each architecture of the rows, the side
    from the paper's row of the architecture or of the one standing in for it (:data:`paper.STAND_INS`);
    for an architecture the paper has no row for, its general statements: Sec. 4.2 (AD, IC, AG, the
    side of Table 2's family) and App. D.2 (LE on ViTs); none on the other metrics."""
    tables = {"ilsvrc": {**paper.parse(paper.TABLE6), **paper.parse(paper.TABLE4)},
              "alzheimer": paper.parse(paper.TABLE7)}
    names = {"ilsvrc": "Table 6 / Table 4", "alzheimer": "Table 7"}
    table2, out = paper.parse(paper.TABLE2), []
    for d in sorted(set(data.rows["dataset"]), key=lambda x: (x not in PAPER_DATASETS, x)):
        for m in data.models(d):
            f = data.families[m]
            stand_in = m if (m, "ad") in tables.get(d, {}) else paper.STAND_INS.get(m)
            for metric in METRICS if d == "ilsvrc" else CONFIDENCE:
                row = tables.get(d, {}).get((stand_in, metric))
                if row:
                    best, expect = _paper_best(row, "cluscam", BASELINES, metric)
                    text = "per-architecture ranking" + ("" if stand_in == m else
                                                         f" ({_name(stand_in)}'s row stands in for {_name(m)})")
                    out.append(Claim(names[d], text, d, _name(m), (m,), metric, expect, paper=best))
                elif metric in CONFIDENCE and d in PAPER_DATASETS:
                    best, expect = _paper_best(table2[f"{d}/{f}", metric], "cluscam", BASELINES, metric)
                    out.append(Claim("Sec. 4.2", "the family's statement (architecture not in the paper; side of "
                                     "Table 2)", d, _name(m), (m,), metric, expect))
                elif metric == "le" and f == "vit":
                    out.append(Claim("App. D.2", "lowest localization error on transformer backbones "
                                     "(architecture not in the paper)", d, _name(m), (m,), metric))
    return out


def agcam_claims(data: Rows) -> list[Claim]:
    """Table 5 / App. D.3: AG-CAM against GradCAM, GradCAM++ and ScoreCAM; OptiCAM and ClusCAM against
    AG-CAM; each side from Table 5's row (the paper: ViT-B on ILSVRC; here every ViT with AG-CAM rows)."""
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
            best, expect = _paper_best(v, "agcam", trio, metric)
            out.append(Claim("App. D.3, Table 5", "AG-CAM clearly outperforms GradCAM, GradCAM++ and ScoreCAM",
                             d, scope, models, metric, expect, subject="agcam", opponents=trio, paper=best, none=none))
            for subject in ("opticam", "cluscam"):
                best, expect = _paper_best(v, subject, ("agcam",), metric)
                out.append(Claim("App. D.3, Table 5", f"{method_label(subject)} beats AG-CAM on all three metrics",
                                 d, scope, models, metric, expect, subject=subject, opponents=("agcam",),
                                 paper=best, none=none))
    return out


def ordering_claims(data: Rows) -> list[Claim]:
    """Table 8 / App. D.5: ClusCAM's factor vs GradCAM against ScoreCAM's and OptiCAM's per family and
    metric, the side from Table 8 (the paper's factor ordering is its mean ordering: the GradCAM
    denominator is common)."""
    out = []
    for d in PAPER_DATASETS:
        for f, fam in paper.TABLE8.items():
            models, scope = _scope(data, d, f)
            for metric in CONFIDENCE:
                for o in ("scorecam", "opticam"):
                    ours, theirs = fam[metric]["cluscam"], fam[metric][o]
                    out.append(Claim("App. D.5, Table 8", paper.D5[f], d, scope, models, metric,
                                     "better" if ours > theirs else "worse", opponents=(o,),
                                     paper=(o, theirs, ours), family=True, factors=True))
    return out


def runtime_claims(data: Rows) -> list[Claim]:
    """App. D.5: on ViTs ClusCAM is faster than ScoreCAM and OptiCAM; App. E adds AblationCAM."""
    out = []
    for d in PAPER_DATASETS:
        models, scope = _scope(data, d, "vit")
        out.append(Claim("App. D.5, Table 8", "ClusCAM has the lowest runtime of the three gradient-free methods on "
                         "ViTs", d, scope, models, "seconds", opponents=("scorecam", "opticam"), family=True))
        out.append(Claim("App. E", paper.APP_E + " (ScoreCAM and OptiCAM: App. D.5's claim)", d, scope, models,
                         "seconds", opponents=("ablationcam",), family=True))
    return out


# -- Tables 1, 3, 8, 9 and App. D.1 -----------------------------------------------------------------------
def table1_results(runs: str | Path, resamples: int, seed: int, min_images: int) -> list[dict]:
    """Table 1 per groups cell of ``<runs>/table1/<dataset>/<model>/groups/<hash>/``: the paper's
    statistics (over (image, group) pairs), and with images as the unit: one-sided t and Wilcoxon
    tests of the per-image mean difference over the top ranks, and bootstrap intervals (images
    resampled) of the mean difference and Cohen's d averaged over the ranks, judged against the
    paper's 1.31 and 0.82 as margins; no verdict on fewer than ``min_images`` images."""
    from scipy import stats as sps

    from benchmarks.table1 import read_provenance, table1_statistics

    out = []
    for path in sorted(Path(runs).glob("table1/*/*/groups/*/rows.csv")):
        groups = pd.read_csv(path, dtype={"id": str})
        st = table1_statistics(groups)
        top = groups[groups["rank"] < st["top"]]
        wide = (top["s_meta"] - top["s_members_mean"]).groupby([top["id"], top["rank"]]).mean().unstack()
        per_image = wide.mean(1).to_numpy(float)
        values = wide.to_numpy(float)
        means, squares = (bootstrap_means(v, resamples, seed) for v in (values, values ** 2))  # the same draws
        n = np.maximum((~np.isnan(values)).sum(0), 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = means / np.sqrt((squares - means ** 2) * n / (n - 1))
        d[~np.isfinite(d)] = np.nan  # a rank without spread in a resample
        (lo, hi), (d_lo, d_hi) = interval(means.mean(1)), interval(d.mean(1))
        tests = ({"t": sps.ttest_1samp(per_image, 0, alternative="greater").pvalue,
                  "wilcoxon": sps.wilcoxon(per_image, alternative="greater").pvalue}
                 if len(per_image) > 1 and np.any(per_image != 0) else {"t": np.nan, "wilcoxon": np.nan})
        devices = sorted({p.get("device", "unknown") for p in read_provenance(path.parent)[0]})
        few = too_few({path.parts[-4]: st["n_images"]}, min_images)
        out.append({"cell": path.parent.relative_to(runs).as_posix(), "st": st, "lo": lo, "hi": hi, "d_lo": d_lo,
                    "d_hi": d_hi, "p_images": tests, "devices": ", ".join(devices) or "unknown",
                    "verdict": f"{NA}: {few}" if few else _table1_verdict(lo, hi, d_lo, d_hi, tests)})
    return out


def _table1_verdict(lo: float, hi: float, d_lo: float, d_hi: float, p: Mapping[str, float]) -> str:
    """Direction (the interval of the mean difference above 0, both image-level p < ALPHA), then the
    paper's magnitudes (:data:`paper.TABLE1`) as margins."""
    if hi < 0:
        return FAILS
    if lo <= 0 or not (p["t"] < ALPHA and p["wilcoxon"] < ALPHA):
        return TIE
    sizes = {name: margin_check(a, b, paper.TABLE1[name], "logit", "better")
             for name, (a, b) in (("mean difference", (lo, hi)), ("Cohen's d", (d_lo, d_hi)))}
    missed = [f"{name} {size}" for name, size in sizes.items() if size]
    return f"{MARGIN_MISSED} ({'; '.join(missed)})" if missed else HOLDS


def d1_results(runs: str | Path, resamples: int, seed: int, min_images: int) -> list[dict]:
    """App. D.1 / Fig. 9 per Table 1 groups cell: the share of (image, group) pairs whose
    meta-representation shifts the logit more than its members' mean, with an image-bootstrap interval;
    "consistently higher across all clusters" read as at least :data:`CONSISTENTLY` of the pairs."""
    out = []
    for path in sorted(Path(runs).glob("table1/*/*/groups/*/rows.csv")):
        groups = pd.read_csv(path, dtype={"id": str})
        per_image = (groups["s_meta"] > groups["s_members_mean"]).groupby(groups["id"]).agg(["sum", "size"])
        boot = bootstrap_means(per_image.to_numpy(float), resamples, seed)
        share = per_image["sum"].sum() / per_image["size"].sum()
        lo, hi = interval(boot[:, 0] / boot[:, 1])
        few = too_few({path.parts[-4]: len(per_image)}, min_images)
        out.append({"cell": path.parent.relative_to(runs).as_posix(), "images": len(per_image),
                    "pairs": int(per_image["size"].sum()), "share": share, "lo": lo, "hi": hi,
                    "verdict": f"{NA}: {few}" if few else HOLDS if lo >= CONSISTENTLY else
                    FAILS if hi < CONSISTENTLY else TIE})
    return out


def table3_rows(selections: Sequence[str | Path], min_images: int) -> list[dict]:
    """Table 3 per selection of scripts/select_hparams.py (``<folder>/<model>.json``, which records the
    paper's K, r, tau of the architecture or its stand-in): the selected tau in App. B's [0.3, 0.5]
    (:data:`paper.TAU_RANGE`) and K equal to the paper's; r shown beside the paper's."""
    out = []
    for folder in selections:
        for path in sorted(Path(folder).glob("*.json")):
            sel = json.loads(path.read_text())
            few = too_few({sel["model"]: int(sel.get("n_images") or 0)}, min_images)
            lo, hi = paper.TAU_RANGE
            ref = sel.get("paper") or {}
            out.append({"dataset": sel.get("dataset", "?"), "model": sel["model"], "k": sel["k"], "r": sel["r"],
                        "tau": sel["tau"], "paper": ref, "images": sel.get("n_images"),
                        "tau_verdict": f"{NA}: {few}" if few else HOLDS if lo <= sel["tau"] <= hi else FAILS,
                        "k_verdict": f"{NA}: {few}" if few else
                        f"{NA}: not in the paper's Table 3 ({_name(paper.STAND_INS[sel['model']])}'s values shown)"
                        if sel["model"] in paper.STAND_INS else f"{NA}: the selection records no paper K"
                        if "k" not in ref else HOLDS if sel["k"] == ref["k"] else FAILS})
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
    verdict each: one opponent's cells may run at another precision than ClusCAM's; across precisions
    a ratio below 0.1 with ClusCAM in fp32 still fails, a faster opponent only raising it); no verdict
    where an architecture has fewer than ``min_images`` images."""
    out = []
    for d in PAPER_DATASETS:
        models = data.models(d, "cnn")
        few = too_few(data.images(d, models), min_images)
        ours = factor(stats, d, models, "cluscam", "seconds") if models else np.nan
        for o in ("scorecam", "opticam"):
            ratio = ours / factor(stats, d, models, o, "seconds") if models else np.nan
            mixed = data.mixed_precision(d, models, ("cluscam", o))
            decided = ratio < 0.1 and data.precisions(d, models, ("cluscam",))["cluscam"] <= {"fp32"}
            out.append({"dataset": d, "opponent": o, "ratio": ratio,
                        "verdict": f"{NA}: no rows for CNNs (or a method) on {dataset_label(d)}" if np.isnan(ratio) else
                        f"{NA}: {few}" if few else f"{NA}: {mixed}" if mixed and not decided else
                        HOLDS if 0.1 <= ratio <= 10 else FAILS})
    return out


def pronounced_rows(data: Rows, stats: Stats, min_images: int, min_architectures: int = MIN_ARCHITECTURES
                    ) -> list[dict]:
    """Sec. 4.4: ClusCAM's runtime advantage over ScoreCAM "is even more pronounced on the ViTs": ClusCAM /
    ScoreCAM seconds lower on ViTs than on CNNs; no verdict where a family has fewer than
    ``min_architectures`` architectures or too few images, or where the two families' cells ran in
    different precisions."""
    out = []
    for d in PAPER_DATASETS:
        ratios, why = {}, []
        for f in FAMILIES:
            models = data.models(d, f)
            if len(models) < min_architectures:
                why.append(f"{FAMILIES[f]}: {len(models)} architecture(s), fewer than {min_architectures}")
                continue
            ratios[f] = factor(stats, d, models, "cluscam", "seconds") / factor(stats, d, models, "scorecam", "seconds")
            why += [few] if (few := too_few(data.images(d, models), min_images)) else []
        precisions = {f: data.precisions(d, data.models(d, f), ("cluscam", "scorecam")) for f in ratios}
        if len(ratios) == 2 and precisions["cnn"] != precisions["vit"]:
            why.append("the families' cells ran in different precisions")
        ok = len(ratios) == 2 and ratios["vit"] < ratios["cnn"]
        out.append({"dataset": d, "cnn": ratios.get("cnn", np.nan), "vit": ratios.get("vit", np.nan),
                    "verdict": f"{NA}: {'; '.join(why)}" if why else HOLDS if ok else FAILS})
    return out


def declared_channels(data: Rows, dataset: str, model: str, method: str) -> float:
    """N of Table 9: the channels (maps) of the layer ``method`` hooks on ``model``, as declared by its
    config (``layer.shape``, or ``method_layers``); NaN for a model the zoo does not know."""
    from benchmarks.zoo import layer_shape

    name = str(data.configs.get((dataset, model, method), {}).get("model.name", model))
    try:
        return float(layer_shape(name, method)[0])
    except ValueError:
        return np.nan


def pass_rows(data: Rows, stats: Stats, min_images: int) -> list[dict]:
    """Table 9 per (dataset, architecture): measured forward (+ partial) passes per image against
    1 + the paper's count (the explainers' capture pass), N the declared channels of the method's
    hooked layer (:func:`declared_channels`) and K from ClusCAM's config; ClusCAM also needs K << N
    (N of ScoreCAM's layer); no verdict on fewer than ``min_images`` images."""
    out = []
    for d, m in dict.fromkeys(zip(data.rows["dataset"], data.rows["model"])):
        fp = {meth: stats.cells[d, m, meth]["fp"] for meth in paper.TABLE9 if (d, m, meth) in stats.cells}
        n = {meth: declared_channels(data, d, m, meth) for meth in ("scorecam", "ablationcam")}
        k = data.configs.get((d, m, "cluscam"), {}).get("method.k", np.nan)
        expected = {"gradcam": 1, "gradcampp": 1, "scorecam": 1 + n["scorecam"], "ablationcam": 1 + n["ablationcam"],
                    "cluscam": 1 + k}
        few = too_few(data.images(d, [m]), min_images)
        for meth, count in paper.TABLE9.items():
            ok = meth in fp and np.isclose(fp[meth], expected[meth])
            if meth == "cluscam":  # and K << N
                ok = ok and (1 + k) * MUCH_SMALLER <= 1 + n["scorecam"]
            unknown = meth not in fp or np.isnan(expected[meth]) or (meth == "cluscam" and np.isnan(n["scorecam"]))
            out.append({"dataset": d, "model": m, "method": meth, "paper": count, "expected": expected[meth],
                        "measured": fp.get(meth, np.nan), "bp": stats.cells.get((d, m, meth), {}).get("bp", np.nan),
                        "verdict": NA if unknown else f"{NA}: {few}" if few else HOLDS if ok else FAILS})
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
    rows = rows.assign(**{c: v for c, v in OPTIONAL.items() if c not in rows})
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
                out += [Claim("Sec. 4.4, Fig. 5", paper.SEC44["all"], d, _name(m), (m,), metric, subject=FULL,
                              opponents=(v,)) for v in (*CLUSTERING_VARIANTS, *WEIGHTING_VARIANTS)]
                out += [Claim("Sec. 4.4, Fig. 5", paper.SEC44["no clustering"], d, _name(m), (m,), metric,
                              subject="No clustering", opponents=(v,)) for v in ("Spectral", "HDBSCAN")]
                out.append(Claim("Sec. 4.4, Fig. 5", paper.SEC44["temperature"], d, _name(m), (m,), metric,
                                 subject="Only temp-softmax", opponents=("Only softmax",)))
    return out


def fig5_levels(data: Rows | None, resamples: int, seed: int, min_images: int) -> list[dict]:
    """Sec. 4.4's numbers: IC below 45% for the clustering variants ("typically") and below 43% for
    Discarding softmax (intervals of the variant's IC, images resampled); the largest degradation
    of the K-Means++ variants, up to 18.54 points of AD and 23.37 of IC (an interval of the maximum of
    their mean paired differences with the full model, images resampled jointly), judged as a margin."""
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
                diffs = pd.concat({v: sign * (p[v] - p[FULL]) for v in variants
                                   for p in [paired(data.rows, d, m, FULL, v, metric)]}, axis=1)
                boot = bootstrap_means(diffs.to_numpy(float), resamples, s).max(1)
                lo, hi = interval(boot)
                worst = diffs.mean().idxmax()
                found = FAILS if hi < 0 else "not resolved (CI contains 0)" if lo <= 0 else \
                    (f"{MARGIN_MISSED} ({size})" if (size := margin_check(lo, hi, stated, "ic", "better")) else HOLDS)
                out.append({"dataset": d, "model": m,
                            "statement": f"largest {metric.upper()} degradation of the K-Means++ variants: up to {stated:g} points",
                            "measured": f"{diffs.mean().max():.2f} ({worst}) [{lo:.2f}, {hi:.2f}]",
                            "verdict": f"{NA}: {few}" if few else found})
    return out


def fig5_section(data: Rows | None, claims: Sequence[Result], levels: Sequence[dict]) -> list[str]:
    counts = (f"{len(data.rows['id'].unique())} images in common to the variants" if data is not None else "no rows")
    lines = [[dataset_label(r["dataset"]), _name(r["model"]), r["statement"], r["measured"], r["verdict"]]
             for r in levels]
    return (["> " + " ".join(dict.fromkeys(paper.SEC44.values())), "",
             f"The variants of `benchmarks/ablation.py`, one ClusCAM cell each ({counts}; the paper used 500 images).",
             "", *comparison_table(claims)]
            + (["Sec. 4.4's numbers (IC levels: interval of the variant's mean IC; degradations: interval of the "
                "largest mean paired difference among Only logit, Only softmax, Discarding softmax and Only "
                "temp-softmax, the variants without discarding or temperature, images resampled jointly):", "",
                *_table(["Dataset", "Architecture", "Statement", "Measured [95% CI]", "Verdict"], lines)]
               if lines else []))


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
    if c.factors:
        return f"×{sv:{fmt}} vs {method_label(opp)} ×{ov:{fmt}} (factors vs GradCAM)"
    return f"{sv:{fmt}} vs {method_label(opp)} {ov:{fmt}} (Δ {sv - ov:+{fmt}})"


def _margin_cell(r: Result) -> str:
    c = r.claim
    if c.margin is None:
        return "–"
    stated = f"{stated_difference(c.margin, c.metric, c.expect):+.2f} vs {method_label(c.margin_opponent)}"
    if r.margin is None:
        return f"{stated}; not measured"
    diff, lo, hi = r.margin
    return f"{stated}; measured {_f(diff, '{:+.2f}')} [{_f(lo)}, {_f(hi)}]"


def comparison_table(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        c = r.claim
        lines.append([dataset_label(c.dataset), c.scope, _label(c.metric), _expected(c),
                      _paper_cell(c, ".2f"),
                      f"{_f(r.subject_mean)} vs {method_label(r.opponent)} {_f(r.opponent_mean)}"
                      if r.opponent else "–",
                      f"{_f(r.diff, '{:+.2f}')} [{_f(r.lo)}, {_f(r.hi)}]" if r.opponent else "–", _margin_cell(r),
                      _f(r.p, "{:.2g}"), r.n or "–", r.verdict + (f": {r.reason}" if r.reason else "")])
    return _table(["Dataset", "Scope", "Metric", "Claim", "Paper (subject vs best opponent)",
                   "Measured (same images)", "Δ [95% CI]", "Stated margin (Δ) [95% CI]", "Wilcoxon p",
                   "Distinct images", "Verdict"], lines)


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
                      f"1e{tests['log10_p_wilcoxon']:.1f}", f"[{r['lo']:.2f}, {r['hi']:.2f}]",
                      f"[{r['d_lo']:.2f}, {r['d_hi']:.2f}]",
                      f"{_f(r['p_images']['t'], '{:.2g}')}, {_f(r['p_images']['wilcoxon'], '{:.2g}')}", r["devices"],
                      r["verdict"]])
    return head + _table(["Cell", "Images", "Pairs", "Mean difference (top ranks)", "Cohen's d", "p (t, pairs)",
                          "p (Wilcoxon, pairs)", "95% CI mean difference (images resampled)", "95% CI Cohen's d",
                          "p over images (t, Wilcoxon; one-sided)", "Device(s)", "Verdict"], lines)


def d1_section(results: Sequence[dict]) -> list[str]:
    head = ["> App. D.1 / Fig. 9: \"Across all clusters, meta representations consistently yield higher logit shifts "
            "than the internal cluster means.\"", "",
            f"Read as: in at least {CONSISTENTLY:.0%} of the (image, group) pairs of a Table 1 cell; interval: "
            f"images resampled.", ""]
    if not results:
        return head + [f"Verdict: {NA}: no Table 1 rows.", ""]
    lines = [[r["cell"], r["images"], r["pairs"], f"{r['share']:.1%}", f"[{r['lo']:.1%}, {r['hi']:.1%}]",
              r["verdict"]] for r in results]
    return head + _table(["Cell", "Images", "Pairs", "Meta above members' mean", "95% CI", "Verdict"], lines)


def table3_section(rows: Sequence[dict]) -> list[str]:
    lo, hi = paper.TAU_RANGE
    head = [f"> Table 3 / App. B: the hyperparameters of each architecture (K, r, tau); \"saliency maps generated "
            f"with tau in [{lo}, {hi}] yield the best visual clarity\".", "",
            "Selections of `scripts/select_hparams.py` (Alg. 2-3, Eq. 10), with the paper's values of the "
            "architecture (EfficientNet's for EfficientNet-Lite). K holds when it equals the paper's; tau when it "
            f"lies in [{lo}, {hi}]; r is shown, not judged (the paper gives no interval).", ""]
    if not rows:
        return head + [f"Verdict: {NA}: no selections found.", ""]
    lines = [[dataset_label(r["dataset"]), _name(r["model"]), r["images"],
              f"{r['k']} (paper {r['paper'].get('k', '–')})", r["k_verdict"],
              f"{100 * r['r']:.2f} (paper {_f(100 * r['paper']['r']) if 'r' in r['paper'] else '–'})",
              f"{r['tau']:.2f} (paper {r['paper'].get('tau', '–')})", r["tau_verdict"]] for r in rows]
    return head + _table(["Dataset", "Architecture", "Images", "K", "K verdict", "r (%)", "tau", "tau verdict"], lines)


def factor_section(factors: Sequence[dict], magnitudes: Sequence[dict], orderings: Sequence[Result],
                   runtime: Sequence[Result], pronounced: Sequence[dict]) -> list[str]:
    lines = [[dataset_label(r["dataset"]), FAMILIES[r["family"]], _label(r["metric"]) if r["metric"] else "all",
              method_label(r["method"]) if r["method"] else "all", _f(r["paper"], "×{:.2f}"), _f(r["measured"], "×{:.2f}"), r["verdict"]]
             for r in factors]
    mags = [[dataset_label(r["dataset"]), f"ClusCAM / {method_label(r['opponent'])}", _f(r["ratio"], "×{:.2f}"),
             r["verdict"]] for r in magnitudes]
    return (["> App. D.5: on CNNs ClusCAM is ×44.24 slower than GradCAM, its runtime within the same order of "
             "magnitude as ScoreCAM and OptiCAM, \"achieving the best improvements across all three metrics\"; on "
             "ViTs it has the lowest runtime of the three. App. E: faster than ScoreCAM, AblationCAM and OptiCAM on "
             "ViTs.", "",
             "Factors vs GradCAM from the family means (Table 8 of `scripts/tables.py`; AD: GradCAM / method, others: "
             "method / GradCAM). Runtimes depend on the device and precision of the rows (see *Rows compared*).", ""]
            + _table(["Dataset", "Family", "Metric", "Method", "Paper", "Measured", f"Within ×{FACTOR_TOLERANCE:g}"],
                     lines)
            + ["The orderings of Table 8 (ClusCAM's factor against ScoreCAM's and OptiCAM's; the side from the "
               "paper's factors), tested as paired differences of the methods' values:", ""]
            + comparison_table(orderings)
            + ["ClusCAM's seconds per image over ScoreCAM's and over OptiCAM's on CNNs (same order of magnitude: "
               "between ×0.1 and ×10):", ""]
            + _table(["Dataset", "Ratio", "Measured", "Verdict"], mags)
            + ["Runtime orderings on ViTs (App. D.5, App. E):", ""]
            + comparison_table(runtime)
            + ["Sec. 4.4: \"The advantage is even more pronounced on the ViTs\": ClusCAM / ScoreCAM seconds per image "
               "on each family:", ""]
            + _table(["Dataset", "CNNs", "ViTs", "Verdict"],
                     [[dataset_label(r["dataset"]), _f(r["cnn"], "×{:.2f}"), _f(r["vit"], "×{:.2f}"), r["verdict"]]
                      for r in pronounced]))


def passes_section(rows: Sequence[dict]) -> list[str]:
    lines = [[dataset_label(r["dataset"]), _name(r["model"]), method_label(r["method"]), r["paper"],
              _f(r["expected"], "{:.0f}"), _f(r["measured"], "{:.5g}"), _f(r["bp"], "{:.5g}"), r["verdict"]]
             for r in rows]
    return (["> Table 9: forward passes per image: GradCAM 1, GradCAM++ 1, ScoreCAM N, AblationCAM N, ClusCAM K "
             "(K << N).", "",
             "Measured: forward + partial passes per image (mean over the common images). Expected here: 1 + the "
             "paper's count (every explainer's capture pass), N the channels of the method's hooked layer as its "
             "model config declares them (not a count taken from the measured passes), K from "
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
  the architectures' mean paired differences), with a {100 * LEVEL:.0f}% percentile bootstrap interval in which
  the image ids are resampled jointly across the family's architectures (an image seen by several
  architectures is one draw), and the two-sided Wilcoxon signed-rank p of the per-image differences
  averaged over the architectures. *Distinct images* counts image ids, each once. EP and LE use the
  single-box images where both methods have a value.
- **Verdict** of "subject ahead of (behind) the opponent", with the interval oriented so that > 0 is
  better (AD, LE and seconds: lower is better): *{HOLDS}* when it lies entirely on the claimed side
  of 0 and the Wilcoxon p < {ALPHA}, *{FAILS}* when it lies entirely on the other side and p < {ALPHA},
  *{TIE}* otherwise: the interval contains 0 (an exact tie included) or the signed-rank test does
  not confirm it. The paper's numbers decide the side of each row (e.g. its Table 2 puts ClusCAM
  behind OptiCAM in AD on Alzheimer's CNNs and ILSVRC ViTs; its Table 5 puts AG-CAM behind ScoreCAM
  in AG). An architecture the paper has no row for takes the row of the one standing in for it
  (EfficientNet for EfficientNet-Lite), else the paper's general statement where it makes one
  (Sec. 4.2 for AD, IC, AG; App. D.2 for LE on ViTs), and no claim where it makes none.
- **Stated margins are judged.** Where the text states a size (Sec. 4.2's margins; Table 1's mean
  difference and Cohen's d), a direction that holds is *{HOLDS}* only when the interval of the
  difference against the margin's opponent contains the stated difference; otherwise
  *{MARGIN_MISSED} (smaller / larger)*. Each claim is one row and counted once.
- **{NA}** when the dataset or family has no rows, a compared method has no rows on an
  architecture (the verdict needs every opponent), a family has fewer than {MIN_ARCHITECTURES} architectures
  (one architecture is not the family: its own row is in Tables 4, 6, 7), an architecture ran on random
  weights (no trained model), or an architecture has fewer paired images than the minimum
  (`--min-images`; Tables 1, 3, 8 and 9 too).
- **Runtimes across precisions** (a bf16 cell against fp32 ones): lower precision makes a cell faster
  (here ScoreCAM's fp32 cells of `results/runs-precision` take 3-7 times the seconds per image of its
  bf16 cells), so an ordering is decided when the measured faster side ran in fp32 (a slower bf16
  opponent would be slower still in fp32), and not otherwise; likewise a ClusCAM / ScoreCAM ratio
  below ×0.1 with ClusCAM in fp32.
- **Table 1** (every groups cell under `<runs>/table1/`, `--where` not applied): images are the unit:
  the one-sided t and Wilcoxon tests run on the per-image mean difference over the top ranks, and the
  intervals of the mean difference and Cohen's d resample images; direction as above, then the
  paper's 1.31 and 0.82 as stated sizes.
- **Table 8:** a factor *{HOLDS}* within ×{FACTOR_TOLERANCE:g} of the paper's (runtimes depend on the device);
  its orderings (ClusCAM against ScoreCAM and OptiCAM per metric) are tested as paired comparisons.
  **Table 9:** the measured passes equal the expected count.
"""


def verdict_kind(verdict: str) -> str:
    """A verdict without its reason or detail: "holds", "does not hold", "not resolved", ..."""
    return verdict.split(":")[0].split(" (")[0]


def summary(sections: Mapping[str, Sequence[str]]) -> list[str]:
    """Verdict counts per section: one per claim."""
    kinds = [verdict_kind(x) for x in VERDICTS]
    lines = [[name, len(vs), *(sum(verdict_kind(v) == k for v in vs) for k in kinds)] for name, vs in sections.items()]
    total = ["All", *(sum(line[i] for line in lines) for i in range(1, len(kinds) + 2))]
    return _table(["Claims", "Distinct claims", *kinds], [*lines, total])


def paper_inconsistencies() -> list[str]:
    """Where the paper's Table 2 is not the mean of its own per-architecture Tables 6 and 7 (to 0.01)."""
    table2 = paper.parse(paper.TABLE2)
    per_arch = {"ilsvrc": paper.parse(paper.TABLE6), "alzheimer": paper.parse(paper.TABLE7)}
    found = []
    for (key, metric), values in table2.items():
        d, f = key.split("/")
        rows = [row for (m, mm), row in per_arch[d].items() if mm == metric and family_of(m) == f]
        for meth, v in values.items():
            mean = float(np.mean([row[meth] for row in rows]))
            if abs(mean - v) > 0.01:
                found.append(f"{dataset_label(d)} {FAMILIES[f]} {metric.upper()} {method_label(meth)}: Table 2 "
                             f"{v:.2f}, mean of the {len(rows)} architectures {mean:.2f}")
    return found


def spreads_section(data: Rows, stats: Stats) -> list[str]:
    """Table 2's spreads (sample std over the family's architectures) beside the measured ones: shown,
    not judged (the text states nothing about them; the measured families have fewer architectures)."""
    table2_std, lines = paper.parse(paper.TABLE2_STD), []
    for d in PAPER_DATASETS:
        for f in FAMILIES:
            models = data.models(d, f)
            for metric in CONFIDENCE:
                measured = {meth: [stats.cells[d, m, meth][metric] for m in models if (d, m, meth) in stats.cells]
                            for meth in paper.ORDER}
                lines.append([dataset_label(d), f"{FAMILIES[f]} ({len(models)})", _label(metric), *(
                    f"{table2_std[f'{d}/{f}', metric][meth]:.2f} / "
                    + (f"{np.std(v, ddof=1):.2f}" if len(v) == len(models) > 1 else "–")
                    for meth, v in measured.items())])
    return (["Table 2's ± (the paper: over six architectures per family) against the same spread over the "
             "architectures measured here (their number in brackets; – below two). Shown, not judged: the text "
             "makes no claim about them.", ""]
            + _table(["Dataset", "Family", "Metric", *(f"{method_label(m)} (paper / here)" for m in paper.ORDER)],
                     lines))


RANDOM_BANNER = ("**Random weights.** Every model of these rows ran on random weights placed in the hub caches "
                 "(a rehearsal of the pipeline, `scripts/rehearse.py`): no number below measures the paper's "
                 "methods, and no claim that needs trained models can be measured.")


def report(data: Rows, runs: str | Path, command: str, resamples: int = 2000, seed: int = 0, min_images: int = 10,
           commit: str | None = None, selections: Sequence[str | Path] = (),
           min_architectures: int = MIN_ARCHITECTURES, ablation: Rows | None = None) -> str:
    """The Markdown report; ``selections``: folders of Table 3 selections (``<model>.json``); ``ablation``:
    the rows of Fig. 5's variants (:func:`read_ablation`)."""
    from benchmarks.provenance import git_commit

    stats = cell_stats(data.rows, resamples=1, seed=seed)  # means only

    def measured(claims: Sequence[Claim], rows: Rows = data) -> list[Result]:
        return [compare(rows, c, resamples, seed, min_images, min_architectures) for c in claims]

    family, loc = measured(family_claims(data)), measured(localization_claims(data))
    arch, agcam = measured(architecture_claims(data)), measured(agcam_claims(data))
    orderings, runtime = measured(ordering_claims(data)), measured(runtime_claims(data))
    t1, d1 = table1_results(runs, resamples, seed, min_images), d1_results(runs, resamples, seed, min_images)
    t3 = table3_rows(selections, min_images)
    fig5, levels = measured(fig5_claims(ablation), ablation), fig5_levels(ablation, resamples, seed, min_images)
    factors, mags = factor_rows(data, stats, min_images), order_of_magnitude_rows(data, stats, min_images)
    passes = pass_rows(data, stats, min_images)
    pronounced = pronounced_rows(data, stats, min_images, min_architectures)
    counts = {"Sec. 4.2 / Table 2 (families)": [r.verdict for r in family],
              "App. D.2 (localization on ViTs)": [r.verdict for r in loc],
              "Tables 4, 6, 7 (architectures)": [r.verdict for r in arch],
              "Table 5 (AG-CAM)": [r.verdict for r in agcam],
              "Table 1": [r["verdict"] for r in t1] or [NA],
              "App. D.1 / Fig. 9": [r["verdict"] for r in d1] or [NA],
              "Table 3 (K, tau)": [v for r in t3 for v in (r["k_verdict"], r["tau_verdict"])] or [NA],
              "Sec. 4.4 / Fig. 5 (ablation)": [r.verdict for r in fig5] + [r["verdict"] for r in levels],
              "Table 8 / App. D.5 (factors)": [r["verdict"] for r in factors],
              "Table 8 / App. D.5 (orderings)": [r.verdict for r in orderings],
              "App. D.5, App. E, Sec. 4.4 (runtime)": [r["verdict"] for r in mags + pronounced]
              + [r.verdict for r in runtime],
              "Table 9": [r["verdict"] for r in passes]}
    inconsistent = paper_inconsistencies()
    out = ["# Reproduction of the paper's quantitative claims", "",
           "Generated from the per-image rows by `scripts/claims.py`; do not edit by hand.", "",
           *([RANDOM_BANNER, ""] if data.random_weights else []),
           f"- Command: `{command}`", f"- Commit: {commit or git_commit()}",
           f"- Date: {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}", f"- Runs folder: `{runs}`",
           f"- Bootstrap: {resamples} resamples, seed {seed} (+ CRC32 of the dataset and architecture(s)); "
           f"at least {min_images} paired images per architecture, {min_architectures} architectures per family", "",
           "## Summary", "", *summary(counts), "## Rows compared", "", *rows_section(data), "## How to read it", "",
           RULES, *(["## The paper's Table 2 against its Tables 6 and 7", "",
                     "Table 2 is the mean of each family's architectures except in these cells (the claims above "
                     "use Table 2 as printed):", "", *(f"- {line}" for line in inconsistent), ""] if inconsistent else []),
           "## Sec. 4.2 and Table 2: ClusCAM against the best baseline per family", "", *_quotes(family),
           *comparison_table(family), "## Table 2: spreads across architectures", "", *spreads_section(data, stats), "## App. D.2: localization on ViTs", "", *_quotes(loc), *comparison_table(loc),
           "## Tables 4, 6 and 7: per architecture", "", *_quotes(arch),
           *comparison_table(arch), "## Table 5: AG-CAM on ViTs", "", *_quotes(agcam), *comparison_table(agcam),
           "## Table 1: meta-representations", "", *table1_section(t1, runs),
           "## App. D.1 and Fig. 9: meta-representations against their members", "", *d1_section(d1),
           "## Table 3: hyperparameters", "", *table3_section(t3),
           "## Sec. 4.4 and Fig. 5: ablation", "", *fig5_section(ablation, fig5, levels),
           "## Table 8: trade-off against GradCAM", "", *factor_section(factors, mags, orderings, runtime, pronounced),
           "## Table 9: passes per image", "", *passes_section(passes)]
    return "\n".join(out).rstrip() + "\n"
