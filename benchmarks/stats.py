"""The suite's statistics over per-image result rows: one cell per (dataset, model, method), the image
ids an architecture's methods share, per-cell means with image bootstraps, families, and the paired
comparisons and verdicts of the claims report (:mod:`benchmarks.claims`).

The image is the unit of resampling: a cell's interval resamples its images; a comparison over a
family (:func:`joint_bootstrap`) resamples image ids jointly across its architectures, so that an
image seen by several architectures is one draw and their correlated differences stay together, and
its signed-rank test runs on per-image means over the architectures (:func:`image_means`).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

FAMILIES = {"cnn": "CNNs", "vit": "ViTs"}
CONFIDENCE = ("ad", "ic", "ag")
LOCALIZATION = ("ep", "le")
LOWER_BETTER = {"ad", "le", "deletion", "road_morf"}  # the paper's and the faithfulness tests' (benchmarks.beyond)
KEYS = ["dataset", "model", "method"]
REQUIRED = (*KEYS, "cell", "id", *CONFIDENCE)
OPTIONAL = {"ep": np.nan, "le": np.nan, "n_boxes": np.nan, "seconds": np.nan, "forward": np.nan, "partial": 0.0,
            "backward": np.nan, "device": "unknown", "commit": "unknown", "date": "unknown", "precision": "fp32"}
LEVEL = 0.95
Key = tuple[str, str, str]


# -- per-cell statistics ------------------------------------------------------------------------------
@dataclass
class Stats:
    """Per (dataset, model, method): metric means in %, bootstrap means, counts, cost and provenance;
    ``trimmed``: (kept, total) image ids of the cells that lost ids to the common set."""
    cells: dict[Key, dict]
    trimmed: dict[Key, tuple[int, int]]
    resamples: int
    seed: int


def with_optional_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the :data:`OPTIONAL` columns they lack, at their defaults (older cells)."""
    return rows.assign(**{c: v for c, v in OPTIONAL.items() if c not in rows})


def select_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows``, checked to hold one cell per (dataset, model, method); else an error naming the cells."""
    cells = rows.groupby(KEYS, sort=False)["cell"].unique()
    several = {key: list(names) for key, names in cells.items() if len(names) > 1}
    if several:
        listed = "; ".join(f"{'/'.join(key)}: {', '.join(names)}" for key, names in several.items())
        raise ValueError(f"several cells (configs) for one dataset/model/method: {listed}. Choose one by its config "
                         f"with --where KEY=VALUE (a dotted key of the cells' config.json, e.g. "
                         f"dataset.options.single_box_only=false) or move the others out of the runs folder")
    return rows


def common_ids(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[Key, tuple[int, int]]]:
    """The rows of the image ids that every method of their (dataset, model) has, and (kept, total)
    ids of each cell that lost some; an error naming the cells when a (dataset, model) has none in common."""
    keep, trimmed = [], {}
    for (dataset, model), g in rows.groupby(["dataset", "model"], sort=False):
        ids = g.groupby("method", sort=False)["id"].agg(set)
        common = set.intersection(*ids)
        if not common:
            sizes = ", ".join(f"{meth} {len(v)}" for meth, v in ids.items())
            raise ValueError(f"{dataset}/{model}: its cells have no image id in common (ids per method: {sizes}); "
                             f"run every method on the same range (run.start, run.n_images)")
        trimmed.update({(dataset, model, meth): (len(common), len(v))
                        for meth, v in ids.items() if len(v) > len(common)})
        keep.append(g[g["id"].isin(common)])
    return pd.concat(keep) if keep else rows, trimmed


def bootstrap_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """NaN-ignoring column means [resamples, k] of ``resamples`` resamples (with replacement) of the
    rows of ``values`` [n, k]; NaN where a resample has no value."""
    n, k = values.shape
    if n == 0:
        return np.full((resamples, k), np.nan)
    idx = np.random.default_rng(seed).integers(0, n, (resamples, n))
    counts = np.bincount((idx + n * np.arange(resamples)[:, None]).ravel(), minlength=resamples * n)
    counts = counts.reshape(resamples, n).astype(float)
    valid = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts @ np.where(valid, values, 0) / (counts @ valid)


def interval(boot: np.ndarray | None, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap means (NaN when undefined)."""
    if boot is None or np.isnan(boot).any():
        return np.nan, np.nan
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def metric_values(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """[n, 5] per-image AD, IC, AG, EP, LE terms in % (EP and LE NaN except on single-box images,
    Appendix C) and the single-box mask [n]."""
    single = (pd.to_numeric(rows.get("n_boxes", pd.Series(np.nan, rows.index)), errors="coerce") == 1).to_numpy()
    values = 100 * rows.reindex(columns=list(CONFIDENCE + LOCALIZATION)).apply(pd.to_numeric, errors="coerce").to_numpy(float)
    values[~single, len(CONFIDENCE):] = np.nan
    return values, single


def cell_stats(rows: pd.DataFrame, resamples: int = 2000, seed: int = 0) -> Stats:
    """Statistics of each cell of the long table of :func:`benchmarks.results.load_rows`.  EP and LE
    use the images with exactly one box (Appendix C); passes are per image, forward + partial and backward;
    ``ids`` and ``values`` keep the per-image terms for :func:`family_bootstrap`."""
    missing = [c for c in REQUIRED if c not in rows]
    if missing:
        raise ValueError(f"result rows lack columns {missing}; pass the table of benchmarks.results.load_rows(out_dir)")
    rows = with_optional_columns(rows)
    rows = rows if "started" in rows else rows.assign(started=rows["date"])
    rows, trimmed = common_ids(select_cells(rows))
    cells = {}
    metrics = CONFIDENCE + LOCALIZATION
    for key, g in rows.groupby(KEYS, sort=False):
        values, single = metric_values(g)
        boot = bootstrap_means(values, resamples, seed + zlib.crc32(f"{key[0]}/{key[1]}".encode()))
        rec = {"cell": str(g["cell"].iloc[0]), "commits": str(g["commit"].iloc[0]).split(),
               "started": str(g["started"].iloc[0]), "date": str(g["date"].iloc[0]),
               "devices": sorted(set(g["device"].astype(str))), "n": len(g), "n_box1": int(single.sum()),
               "precision": str(g["precision"].iloc[0]),
               "seconds": g["seconds"].mean(), "fp": (g["forward"] + g["partial"]).mean(), "bp": g["backward"].mean()}
        for j, metric in enumerate(metrics):  # NaN-ignoring means, as benchmarks.metrics.summarize
            ok = values[:, j][~np.isnan(values[:, j])]
            rec[metric], rec["boot_" + metric] = ok.mean() if ok.size else np.nan, boot[:, j]
            rec["n_" + metric] = ok.size
        rec["ids"], rec["values"] = g["id"].astype(str).to_numpy(), values
        cells[key] = rec
    return Stats(cells, trimmed, resamples, seed)



def family_of(model: str, families: Mapping[str, str] | None = None) -> str:
    """``families[model]``, else the ``family`` field of ``conf/model/<model>.yaml``."""
    if families and model in families:
        return str(families[model]).lower()
    from benchmarks.zoo import model_config
    try:
        family = model_config(model).get("family")
    except ValueError as err:
        raise ValueError(f"no family for model {model!r} ({err}); pass families={{model: 'cnn'|'vit'}}") from err
    if family is None:
        raise ValueError(f"model {model!r} has no family: add `family: cnn` or `family: vit` to "
                         f"conf/model/{model}.yaml or pass families={{model: ...}}")
    return str(family).lower()



# -- paired comparisons and verdicts --------------------------------------------------------------------
ALPHA = 0.05
LOWER = LOWER_BETTER | {"seconds"}
HOLDS, FAILS, NA = "holds", "does not hold", "cannot be measured here"
TIE = f"not resolved (CI contains 0 or p ≥ {ALPHA})"
MARGIN_MISSED = "direction holds, margin not reproduced"


def paired(rows: pd.DataFrame, dataset: str, model: str, a: str, b: str, column: str) -> pd.DataFrame:
    """Per image id (index), the values of methods ``a`` and ``b`` (columns) where both have one (EP,
    LE: single-box images, Appendix C); metrics in %, seconds as they are."""
    g = rows[(rows["dataset"] == dataset) & (rows["model"] == model) & rows["method"].isin([a, b])]
    if column in LOCALIZATION:
        g = g[pd.to_numeric(g["n_boxes"], errors="coerce") == 1]
    wide = g.pivot(index="id", columns="method", values=column).reindex(columns=[a, b])
    wide = wide.apply(pd.to_numeric, errors="coerce").dropna()
    return 100 * wide if column in CONFIDENCE + LOCALIZATION else wide


def joint_bootstrap(diffs: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """[resamples] bootstrap means over architectures of their mean differences, from ``diffs``
    [image ids, architectures] (NaN where an architecture lacks the id): the ids are resampled jointly,
    so an image is one draw for every architecture and correlated differences stay correlated."""
    return bootstrap_means(np.asarray(diffs, float), resamples, seed).mean(1)


def image_means(diffs: np.ndarray) -> np.ndarray:
    """Per image id, the mean of its differences over the architectures that have it (the unit of the
    signed-rank test: images are not independent across architectures)."""
    diffs = np.asarray(diffs, float)
    seen = ~np.isnan(diffs).all(1)
    return np.nanmean(diffs[seen], 1) if seen.any() else np.zeros(0)


def comparison_seed(seed: int, dataset: str, models: Sequence[str]) -> int:
    """The bootstrap seed of a comparison: ``seed`` + CRC32 of dataset/model (that of the cell's own
    interval, :func:`cell_stats`) or of dataset/model+model+... for a family."""
    return seed + zlib.crc32(f"{dataset}/{'+'.join(models)}".encode())


def signed_rank_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of per-image differences (1 when all are zero)."""
    from scipy import stats as sps

    if not np.any(diff != 0):
        return 1.0
    return float(sps.wilcoxon(diff).pvalue)


def verdict(lo: float, hi: float, p: float, metric: str, expect: str) -> str:
    """``expect``ed direction ("better" / "worse") against the interval of subject - opponent
    (oriented so that > 0 is better) and the signed-rank p: a side of 0 counts when the interval
    excludes 0 and p < ALPHA."""
    better = (-hi, -lo) if metric in LOWER else (lo, hi)
    if p >= ALPHA:
        return TIE
    if better[0] > 0:
        return HOLDS if expect == "better" else FAILS
    if better[1] < 0:
        return HOLDS if expect == "worse" else FAILS
    return TIE


def stated_difference(margin: float, metric: str, expect: str) -> float:
    """The subject - opponent difference a stated ``margin`` (a size, in the metric's unit) claims:
    negative for "better" on a lower-is-better metric and for "worse" on a higher-is-better one."""
    return margin if (metric in LOWER) == (expect == "worse") else -margin


def margin_check(lo: float, hi: float, margin: float, metric: str, expect: str) -> str:
    """'' when the interval [lo, hi] of subject - opponent contains the difference the stated margin
    claims; else whether the measured one is "smaller" or "larger" in size."""
    if not np.isfinite([lo, hi]).all():
        raise ValueError(f"no margin check on an undefined interval [{lo}, {hi}]")
    claimed = stated_difference(margin, metric, expect)
    if lo <= claimed <= hi:
        return ""
    below = hi < claimed  # the whole interval on the smaller side of the claim
    return "smaller" if below == (claimed >= 0) else "larger"


def family_bootstrap(stats: Stats, dataset: str, models: Sequence[str], method: str, metric: str
                     ) -> tuple[np.ndarray, int]:
    """Bootstrap means of a family's mean of ``method``'s ``metric`` over ``models`` (image ids
    resampled jointly, :func:`joint_bootstrap`) and the distinct images it averaged."""
    j = (CONFIDENCE + LOCALIZATION).index(metric)
    recs = [stats.cells[dataset, m, method] for m in models]
    frame = pd.concat({m: pd.Series(r["values"][:, j], index=r["ids"]) for m, r in zip(models, recs)}, axis=1)
    values = frame.to_numpy(float)
    boot = joint_bootstrap(values, stats.resamples, comparison_seed(stats.seed, dataset, models))
    return boot, int((~np.isnan(values)).any(1).sum())


def verdict_kind(verdict: str) -> str:
    """A verdict without its reason or detail: "holds", "does not hold", "not resolved", ..."""
    return verdict.split(":")[0].split(" (")[0]
