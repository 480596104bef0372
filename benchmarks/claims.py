"""The paper's claims and their measurement: each claim compares a subject with the best of its
opponents on the image ids all methods of an architecture have (a family: the best mean of its
architectures' means), by the paired difference of :mod:`benchmarks.stats` (image ids resampled
jointly across a family's architectures; the two-sided signed-rank p of the per-image differences
averaged over architectures), and gets a verdict; a stated margin is judged as a margin.  The rows
are those of the tables (:mod:`benchmarks.tables`).  The paper's studies (Table 1, App. D.1, Table 3,
Fig. 5) are :mod:`benchmarks.studies`; the report that renders both, :mod:`benchmarks.report`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from benchmarks import paper
from benchmarks.results import cell_config, load_rows
from benchmarks.stats import (CONFIDENCE, FAILS, FAMILIES, HOLDS, LOCALIZATION, LOWER, MARGIN_MISSED, NA,
                               REQUIRED, TIE, Stats, common_ids, comparison_seed, family_of, image_means, interval,
                               joint_bootstrap, margin_check, paired, select_cells, signed_rank_p, verdict,
                               with_optional_columns)
from benchmarks.tables import MODELS, dataset_label, factor, method_label, model_label

BASELINES = paper.ORDER[:-1]
PAPER_DATASETS = ("ilsvrc", "alzheimer")  # the paper's datasets, in its order
METRICS = CONFIDENCE + LOCALIZATION
FACTOR_TOLERANCE = 2.0  # a Table 8 factor is reproduced within this factor of the paper's
MUCH_SMALLER = 4  # "K << N": 1 + K at most a quarter of 1 + N
MIN_ARCHITECTURES = 2  # a family verdict needs at least this many architectures
TABLE8_DATASET = "ilsvrc"  # Table 8's factors are ratios of Table 2's ILSVRC values (18.93 / 7.82 = x2.42)
UNDEFINED = ("the interval is undefined: some resamples hold no image of an architecture (too few images shared "
             "across the family)")


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
    margin: tuple[float, float, float, float] | None = None  # (difference, lo, hi, p) against the margin's opponent

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
        return any(not c.get("model.pretrained", True) and not checkpoint_of(c) for c in cfgs)


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
    rows = with_optional_columns(rows)
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
        res.margin = (m.subject_mean - m.opponent_mean, m.lo, m.hi, m.p)
    res.verdict, res.reason = _checked(data, claim, absent, got.diffs.notna().sum().to_dict(), min_images,
                                       min_architectures, res)
    return res


def _absent(absent: Mapping[str, list[str]]) -> str:
    return "no rows for " + "; ".join(f"{method_label(meth)} on {', '.join(map(model_label, ms))}"
                                      for meth, ms in absent.items() if ms)


def _checked(data: Rows, claim: Claim, absent: Mapping[str, list[str]], images: Mapping[str, int], min_images: int,
             min_architectures: int, res: Result) -> tuple[str, str]:
    """(verdict, reason): a missing method, a family below ``min_architectures``, random weights or too
    few images first; then the direction, decided across precisions only where the low precision can
    only favour the side that lost; then a stated margin."""
    if any(absent.values()):
        return NA, _absent(absent) + " (the claim compares with every one)"
    if claim.family and len(claim.models) < min_architectures:
        return NA, _not_a_family(claim.models, min_architectures)
    untrained = [m for m in claim.models if data.untrained(claim.dataset, m)]
    if untrained:
        return NA, f"no trained model: {', '.join(map(model_label, untrained))} ran on random weights"
    few = too_few(images, min_images)
    if few:
        return NA, few
    if not np.isfinite([res.lo, res.hi]).all():
        return NA, UNDEFINED
    found = verdict(res.lo, res.hi, res.p, claim.metric, claim.expect)
    mixed = claim.metric == "seconds" and data.mixed_precision(claim.dataset, claim.models,
                                                                (claim.subject, *claim.opponents))
    if mixed:
        if found in (HOLDS, FAILS) and _low_precision_lost(data, claim, res):
            return found, f"decided across precisions ({mixed.split(': ', 1)[1]}): the faster side ran in fp32"
        return NA, mixed
    if found == HOLDS and claim.margin is not None:
        _, lo, hi, p = res.margin
        if not np.isfinite([lo, hi]).all():
            return NA, f"against {method_label(claim.margin_opponent)}, the stated margin's opponent: {UNDEFINED}"
        if verdict(lo, hi, p, claim.metric, claim.expect) == FAILS:
            return f"{MARGIN_MISSED} (on the other side of {method_label(claim.margin_opponent)})", ""
        size = margin_check(lo, hi, claim.margin, claim.metric, claim.expect)
        return (f"{MARGIN_MISSED} ({size})", "") if size else (HOLDS, "")
    return found, ""


def _not_a_family(models: Sequence[str], min_architectures: int) -> str:
    return (f"{len(models)} architecture ({', '.join(map(model_label, models))}), not the family: a family verdict "
            f"needs at least {min_architectures}")


def _low_precision_lost(data: Rows, claim: Claim, res: Result) -> bool:
    """Whether a seconds comparison across precisions is decided: the measured faster side ran in fp32
    only, so a lower precision (faster) could only have helped the slower side."""
    faster = [claim.subject] if res.hi < 0 else claim.opponents
    return not any(_low(data, claim.dataset, claim.models, m) for m in faster)


def too_few(images: Mapping[str, int], min_images: int) -> str:
    """Why no verdict can be given on ``images`` (model -> count) below ``min_images`` ('' when none is below)."""
    few = [f"{model_label(m)} {n}" for m, n in images.items() if n < min_images]
    return f"too few images (fewer than {min_images}): {', '.join(few)}" if few else ""


def checkpoint_of(cfg: Mapping) -> str | None:
    """The cell's checkpoint: its sha256 (cell identities since the registry redesign) or its path (older cells)."""
    sha = cfg.get("model.checkpoint_sha256")
    return f"sha256 {str(sha)[:12]}" if sha else cfg.get("model.checkpoint") and Path(str(cfg["model.checkpoint"])).name


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
    return models, f"{label} ({', '.join(map(model_label, models))})" if models else label


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
                                                         f" ({model_label(stand_in)}'s row stands in for {model_label(m)})")
                    out.append(Claim(names[d], text, d, model_label(m), (m,), metric, expect, paper=best))
                elif metric in CONFIDENCE and d in PAPER_DATASETS:
                    best, expect = _paper_best(table2[f"{d}/{f}", metric], "cluscam", BASELINES, metric)
                    out.append(Claim("Sec. 4.2", "the family's statement (architecture not in the paper; side of "
                                     "Table 2)", d, model_label(m), (m,), metric, expect))
                elif metric == "le" and f == "vit":
                    out.append(Claim("App. D.2", "lowest localization error on transformer backbones "
                                     "(architecture not in the paper)", d, model_label(m), (m,), metric))
    return out


def agcam_claims(data: Rows) -> list[Claim]:
    """Table 5 / App. D.3 on ViT-B and ILSVRC, the paper's only AG-CAM rows: AG-CAM against GradCAM,
    GradCAM++ and ScoreCAM; OptiCAM and ClusCAM against AG-CAM; each side from Table 5's row (other ViTs
    with AG-CAM rows are in the tables, not the claims: the paper states nothing about them)."""
    table5 = paper.parse(paper.TABLE5, (*paper.ORDER, "agcam"))
    scopes = [("ilsvrc", "vit_b_16")] if "agcam" in data.methods("ilsvrc", "vit_b_16") else [("ilsvrc", None)]
    none = ("no AG-CAM rows on ViT-B and ILSVRC in these rows (the paper's Table 5; AG-CAM reads the [class]-token "
            "attention of a timm or torchvision ViT, which LeViT, Swin-B and PVTv2 do not have)")
    out = []
    for d, m in scopes:
        models, scope = ((m,), model_label(m)) if m else ((), "ViT-B")
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
    """Table 8 / App. D.5 on ILSVRC: per family and metric, ClusCAM's factor vs GradCAM against the better
    of ScoreCAM's and OptiCAM's, the side from Table 8 (a factor ordering is a mean ordering: the GradCAM
    denominator is common). One claim per (family, metric): on CNNs, "the best improvements across
    all three metrics"."""
    out = []
    models_of = {f: _scope(data, TABLE8_DATASET, f) for f in paper.TABLE8}
    for f, fam in paper.TABLE8.items():
        models, scope = models_of[f]
        for metric in CONFIDENCE:
            values = fam[metric]
            best = max(("scorecam", "opticam"), key=values.get)
            out.append(Claim("App. D.5, Table 8", paper.D5[f], TABLE8_DATASET, scope, models, metric,
                             "better" if values["cluscam"] > values[best] else "worse",
                             opponents=("scorecam", "opticam"), paper=(best, values[best], values["cluscam"]),
                             family=True, factors=True))
    return out


def runtime_claims(data: Rows) -> list[Claim]:
    """App. D.5 (Table 8, ILSVRC): on ViTs ClusCAM is faster than ScoreCAM and OptiCAM; App. E (both
    datasets): faster than AblationCAM too."""
    models, scope = _scope(data, TABLE8_DATASET, "vit")
    out = [Claim("App. D.5, Table 8", "ClusCAM has the lowest runtime of the three gradient-free methods on ViTs",
                 TABLE8_DATASET, scope, models, "seconds", opponents=("scorecam", "opticam"), family=True)]
    for d in PAPER_DATASETS:
        models, scope = _scope(data, d, "vit")
        out.append(Claim("App. E", paper.APP_E + " (ScoreCAM and OptiCAM: App. D.5's claim)", d, scope, models,
                         "seconds", opponents=("ablationcam",), family=True))
    return out


def _family_gate(data: Rows, dataset: str, family: str, min_images: int, min_architectures: int) -> str:
    """Why a family-level number gets no verdict ('' when it can): no rows, too few architectures or images."""
    models = data.models(dataset, family)
    if not models:
        return f"no rows for {FAMILIES[family]} on {dataset_label(dataset)}"
    if len(models) < min_architectures:
        return _not_a_family(models, min_architectures)
    return too_few(data.images(dataset, models), min_images)


def _low(data: Rows, dataset: str, models: Sequence[str], method: str) -> bool:
    """Whether a cell of ``method`` on ``models`` ran below fp32 (faster)."""
    return not data.precisions(dataset, models, (method,))[method] <= {"fp32"}


def factor_rows(data: Rows, stats: Stats, min_images: int, min_architectures: int = MIN_ARCHITECTURES
                ) -> list[dict]:
    """Table 8's factors vs GradCAM per family on ILSVRC (:data:`TABLE8_DATASET`), paper beside measured
    (tables.factor), a verdict within ×:data:`FACTOR_TOLERANCE`. A runtime factor across precisions is
    decided where the low precision could only have moved it towards the paper's: a bf16 method over an
    fp32 GradCAM already too slow, or an fp32 method over a bf16 GradCAM already too fast."""
    out = []
    for f, fam in paper.TABLE8.items():
        models = data.models(TABLE8_DATASET, f)
        gate = _family_gate(data, TABLE8_DATASET, f, min_images, min_architectures)
        for column, paper_values in fam.items():
            for meth, value in paper_values.items():
                measured = factor(stats, TABLE8_DATASET, models, meth, column) if models else np.nan
                ratio = measured / value
                found = HOLDS if 1 / FACTOR_TOLERANCE <= ratio <= FACTOR_TOLERANCE else FAILS
                mixed = column == "seconds" and data.mixed_precision(TABLE8_DATASET, models, ("gradcam", meth))
                if mixed:
                    slow = _low(data, TABLE8_DATASET, models, meth) and not _low(data, TABLE8_DATASET, models, "gradcam")
                    fast = _low(data, TABLE8_DATASET, models, "gradcam") and not _low(data, TABLE8_DATASET, models, meth)
                    decided = (slow and ratio > FACTOR_TOLERANCE) or (fast and ratio < 1 / FACTOR_TOLERANCE)
                    found = f"{FAILS}: decided across precisions ({mixed.split(': ', 1)[1]})" if decided else \
                        f"{NA}: {mixed}"
                out.append({"dataset": TABLE8_DATASET, "family": f, "metric": column, "method": meth, "paper": value,
                            "measured": measured,
                            "verdict": f"{NA}: {gate}" if gate else NA if np.isnan(measured) else found})
    return out


def order_of_magnitude_rows(data: Rows, stats: Stats, min_images: int, min_architectures: int = MIN_ARCHITECTURES
                            ) -> list[dict]:
    """App. D.5 on ILSVRC's CNNs: ClusCAM's runtime within a factor of 10 of ScoreCAM's, and of OptiCAM's
    (a verdict each). Across precisions a ratio is decided where the low precision could only have
    moved it towards the range: below ×0.1 with the opponent in bf16, above ×10 with ClusCAM in bf16."""
    d, out = TABLE8_DATASET, []
    models = data.models(d, "cnn")
    gate = _family_gate(data, d, "cnn", min_images, min_architectures)
    ours = factor(stats, d, models, "cluscam", "seconds") if models else np.nan
    for o in ("scorecam", "opticam"):
        ratio = ours / factor(stats, d, models, o, "seconds") if models else np.nan
        side = f"ClusCAM more than 10 times {'faster' if ratio < 0.1 else 'slower'}"
        found = HOLDS if 0.1 <= ratio <= 10 else f"{FAILS}: {side}"
        mixed = data.mixed_precision(d, models, ("cluscam", o))
        if mixed:
            decided = (ratio < 0.1 and _low(data, d, models, o) and not _low(data, d, models, "cluscam")) or \
                (ratio > 10 and _low(data, d, models, "cluscam") and not _low(data, d, models, o))
            found = (f"{FAILS}: {side}, decided across precisions ({mixed.split(': ', 1)[1]})" if decided
                     else f"{NA}: {mixed}")
        out.append({"dataset": d, "opponent": o, "ratio": ratio,
                    "verdict": f"{NA}: {gate}" if gate else NA if np.isnan(ratio) else found})
    return out


def pronounced_rows(data: Rows, stats: Stats, min_images: int, min_architectures: int = MIN_ARCHITECTURES
                    ) -> list[dict]:
    """Sec. 4.4 (Fig. 6, ILSVRC): ClusCAM's runtime advantage over ScoreCAM "is even more pronounced on the
    ViTs": ClusCAM / ScoreCAM seconds lower on ViTs than on CNNs; no verdict where a family cannot have
    one (:func:`_family_gate`), a ratio is undefined, or a cell ran below fp32 (bf16's speed-up differs
    by architecture, so it could tilt the comparison either way)."""
    d = TABLE8_DATASET
    why = [f"{FAMILIES[f]}: {g}" for f in FAMILIES if (g := _family_gate(data, d, f, min_images, min_architectures))]
    ratios = {f: factor(stats, d, data.models(d, f), "cluscam", "seconds")
              / factor(stats, d, data.models(d, f), "scorecam", "seconds") if data.models(d, f) else np.nan
              for f in FAMILIES}
    if not why and not np.isfinite(list(ratios.values())).all():
        why.append("a family lacks ClusCAM's or ScoreCAM's seconds")
    low = [f"{method_label(m)} on {FAMILIES[f]}" for f in FAMILIES for m in ("cluscam", "scorecam")
           if data.models(d, f) and _low(data, d, data.models(d, f), m)]
    if not why and low:
        why.append(f"cells below fp32 ({', '.join(low)}): bf16's speed-up differs by architecture")
    return [{"dataset": d, "cnn": ratios["cnn"], "vit": ratios["vit"],
             "verdict": f"{NA}: {'; '.join(why)}" if why else HOLDS if ratios["vit"] < ratios["cnn"] else FAILS}]


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
