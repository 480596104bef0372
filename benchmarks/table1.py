"""Table 1 with the data of Fig. 2 and Fig. 9 (paper Sec. 4.1, App. D.1): meta-representations
against the mean of their members (``scripts/table1.py`` is the command line).

For each image, ClusCAM's meta-representation scores s_j = f_c(x ⊙ M_j) − f_c(x) (Eq. 5) and, for
each member F_i of group j alone, f_c(x ⊙ NormalizeUpsample(F_i)) − f_c(x) (N masked forward passes
per image); the group's member mean is the paper's baseline "obtained by averaging the internal
representations".  c is the predicted class.  Rows are written batch by batch with the runner's
:class:`~benchmarks.store.CellStore` into a ``groups`` and a ``members`` cell.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from scipy import stats
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from benchmarks.api import cell_dataset, cell_explainer, cell_identity, cell_method_options, cell_model, \
    cell_model_config
from benchmarks.data import collate
from benchmarks.provenance import git_commit, provenance, resolve_device
from benchmarks.store import CONFIG, CellStore, read_sessions
from cluscam.cluscam import ClusCAM
from cluscam.ops import descending_rank, normalize_upsampled
from benchmarks.tables import DASH, MODELS, Block, Table, render_latex, render_markdown, tex

TOP = 10  # Fig. 2 and Table 1: the top 10 groups by s_j
COLUMNS = ("Mean Difference (range)", "Cohen’s d (range)", "p (t-test)", "p (Wilcoxon)")


# -- the experiment -----------------------------------------------------------------------------------
@dataclass
class GroupShifts:
    """Logit changes of one batch: targets [B], meta-representation scores s_meta [B, K] (Eq. 5),
    each representation's group labels [B, N] (-1: in no group) and its own logit change s_members [B, N]."""

    targets: torch.Tensor
    s_meta: torch.Tensor
    labels: torch.Tensor
    s_members: torch.Tensor


def member_maps(cam: ClusCAM, cap) -> torch.Tensor:
    """Low-resolution maps [B, N, h, w] whose upsampling is NormalizeUpsample(F_i) of every
    representation: the channel maps, or for token grouping each token's indicator on the grid."""
    if getattr(cam, "grouping", "channels") == "tokens":
        b, (h, w) = cap.images.shape[0], cap.maps.shape[-2:]
        eye = torch.eye(h * w, device=cap.images.device).view(1, h * w, h, w).expand(b, -1, -1, -1)
        return normalize_upsampled(eye, cap.size)
    return normalize_upsampled(cap.maps.float(), cap.size)


@torch.no_grad()
def member_shifts(cam: ClusCAM, images: torch.Tensor, targets=None) -> GroupShifts:
    """s_j of each group (ClusCAM.group_scores) and each member's own logit change."""
    cap = cam.capture(images.to(cam.device), targets)
    meta = cam.meta_representations(cap)
    s_meta = cam.scores(cap, meta)
    base = cap.logits.gather(1, cap.targets[:, None]).float()
    s_members = cam.masked_target_logits(cap.images, member_maps(cam, cap), cap.targets) - base
    return GroupShifts(cap.targets, s_meta.float(), meta.labels, s_members.float())


def shift_tables(ids: Sequence[str], labels: Sequence[int], res: GroupShifts) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``groups`` rows (non-empty groups only) and ``members`` rows (group -1: in no group) of one batch."""
    b, k = res.s_meta.shape
    n = res.labels.shape[1]
    member = (res.labels >= 0).float()  # label -1: in no group (HDBSCAN's noise)
    index = res.labels.clamp_min(0)
    sums = torch.zeros(b, k, device=res.s_meta.device).scatter_add_(1, index, res.s_members * member)
    sizes = torch.zeros(b, k, device=res.s_meta.device).scatter_add_(1, index, member)
    valid = sizes > 0
    rank = descending_rank(res.s_meta.masked_fill(~valid, -math.inf))
    keep = valid.cpu().numpy().ravel()
    ids, labels = np.asarray(ids, dtype=object), np.asarray(labels)
    flat = lambda t: t.cpu().numpy().ravel()  # noqa: E731
    groups = pd.DataFrame({
        "id": np.repeat(ids, k), "label": np.repeat(labels, k), "pred": np.repeat(res.targets.cpu().numpy(), k),
        "group": np.tile(np.arange(k), b), "rank": flat(rank), "size": flat(sizes.long()),
        "s_meta": flat(res.s_meta.double()), "s_members_mean": flat((sums / sizes.clamp_min(1)).double()),
    })[keep].reset_index(drop=True)
    members = pd.DataFrame({"id": np.repeat(ids, n), "group": flat(res.labels), "member": np.tile(np.arange(n), b),
                            "s_member": flat(res.s_members.double())})
    return groups, members


def table1_stores(cfg: DictConfig) -> tuple[CellStore, CellStore]:
    """The (groups, members) stores of the experiment ``cfg`` describes."""
    model_cfg = cell_model_config(cfg)
    identity = {**cell_identity(cfg, model_cfg, cell_method_options(cfg)), "experiment": "table1"}
    root = Path(cfg.run.out_dir) / "table1" / cfg.dataset.name / model_cfg.name
    return CellStore(root / "groups", identity), CellStore(root / "members", identity)


def run_table1(cfg: DictConfig, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute the rows of every image of ``cfg``'s range not yet on disk; return the range's
    (groups, members) rows.  Unreadable images are left out (the runner reports them)."""
    if cfg.method.name != "cluscam":
        raise ValueError(f"Table 1 studies ClusCAM's groups; got method={cfg.method.name}, use method=cluscam")
    if cfg.run.get("shard") is not None:
        raise ValueError(f"run.shard={cfg.run.shard} splits a runner cell; Table 1 runs in one process: leave run.shard "
                         f"unset")
    device = resolve_device(cfg.run.device)
    dataset = cell_dataset(cfg)
    groups_store, members_store = table1_stores(cfg)
    done = groups_store.done_ids()
    todo = [i for i, id_ in enumerate(dataset.ids) if id_ not in done]
    if todo:
        prov = provenance(device)
        groups_store.open(prov)
        members_store.open(prov)
        cam = cell_explainer(cfg, cell_model(cfg, device))
        loader = DataLoader(Subset(dataset, todo), batch_size=int(cfg.run.batch_size), collate_fn=collate,
                            num_workers=int(cfg.run.workers))
        for batch in tqdm(loader, desc=f"table1 {cfg.model.name}", unit="batch", disable=not progress):
            b = batch.select(batch.valid)
            if not len(b):
                continue
            groups, members = shift_tables(b.ids, b.labels.tolist(), member_shifts(cam, b.images.to(device)))
            members_store.write_part(members)  # members first: a groups part implies its members part
            groups_store.write_part(groups)
    keep = set(dataset.ids)
    groups, members = groups_store.finish(), members_store.finish()
    return (groups[groups["id"].isin(keep)].reset_index(drop=True),
            members[members["id"].isin(keep)].reset_index(drop=True))


# -- statistics ------------------------------------------------------------------------------------------
def t_log10_sf(t: float, df: float) -> float:
    """log10 of the t distribution's survival function at t > 0, in arbitrary precision (mpmath):
    sf(t) = I_{df/(df+t^2)}(df/2, 1/2) / 2, also where the value is below float precision."""
    import mpmath

    x = df / (df + t * t)
    return float(mpmath.log10(mpmath.betainc(df / 2, 0.5, 0, x, regularized=True) / 2))


def wilcoxon_z(diff: np.ndarray) -> float:
    """The normal-approximation z of the Wilcoxon signed-rank statistic T+ (zero differences
    dropped, tie-corrected variance, no continuity correction: scipy's ``method='approx'``)."""
    d = diff[diff != 0]
    n = d.size
    ranks = stats.rankdata(np.abs(d))
    _, ties = np.unique(np.abs(d), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - (ties ** 3 - ties).sum() / 48
    return float((ranks[d > 0].sum() - n * (n + 1) / 4) / math.sqrt(var))


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """One-sided paired t-test and Wilcoxon signed-rank test of a > b (scipy), with log10 p-values
    that stay finite where scipy's p underflows to 0 (from the t statistic, resp. the normal z)."""
    t = stats.ttest_rel(a, b, alternative="greater")
    w = stats.wilcoxon(a, b, alternative="greater")
    tiny = np.finfo(float).tiny
    t_log = math.log10(t.pvalue) if t.pvalue >= tiny else t_log10_sf(float(t.statistic), float(t.df))
    w_log = (math.log10(w.pvalue) if w.pvalue >= tiny
             else float(stats.norm.logsf(wilcoxon_z(a - b))) / math.log(10))
    return {"t": float(t.statistic), "df": float(t.df), "p_t": float(t.pvalue), "log10_p_t": t_log,
            "wilcoxon": float(w.statistic), "p_wilcoxon": float(w.pvalue), "log10_p_wilcoxon": w_log}


def rank_statistics(groups: pd.DataFrame, top: int = TOP) -> pd.DataFrame:
    """Per group rank 0..top-1: pairs, mean, sample std of d = s_meta − s_members_mean and Cohen's
    d = mean / std (the paired effect size)."""
    diff = groups["s_meta"] - groups["s_members_mean"]
    g = diff[groups["rank"] < top].groupby(groups["rank"])
    out = pd.DataFrame({"n_pairs": g.size(), "mean_diff": g.mean(), "std_diff": g.std(ddof=1)})
    out["cohen_d"] = out["mean_diff"] / out["std_diff"]
    return out.rename_axis("rank").reset_index()


def spread(values: pd.Series) -> dict[str, float]:
    """Mean, sample std, min and max of per-rank values."""
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "min": float(values.min()),
            "max": float(values.max())}


def table1_statistics(groups: pd.DataFrame, top: int = TOP) -> dict:
    """Table 1: the spread over the top ``top`` ranks of the per-rank mean difference and Cohen's d,
    and the one-sided paired tests over every (image, group) pair."""
    missing = [c for c in ("id", "rank", "s_meta", "s_members_mean") if c not in groups]
    if missing:
        raise ValueError(f"Table 1 rows lack columns {missing}; pass the groups rows of scripts.table1.run_table1")
    if len(groups) < 2:
        raise ValueError(f"Table 1 needs at least 2 (image, group) pairs, got {len(groups)}")
    ranks = rank_statistics(groups, top)
    return {"ranks": ranks, "mean_diff": spread(ranks["mean_diff"]), "cohen_d": spread(ranks["cohen_d"]),
            "tests": paired_tests(groups["s_meta"].to_numpy(float), groups["s_members_mean"].to_numpy(float)),
            "n_images": int(groups["id"].nunique()), "n_pairs": len(groups), "top": top}


# -- formatting and rendering ------------------------------------------------------------------------
def format_p(log10_p: float) -> dict[str, str]:
    """A p-value from its log10 for Markdown and LaTeX: 3 decimals down to 0.001, then 2 significant
    digits down to 1e-10, then the paper's bound p < 10^-k with the largest true k."""
    if not np.isfinite(log10_p):
        return {"md": DASH, "tex": "--"}
    if log10_p >= -3:
        s = f"{10 ** log10_p:.3f}"
        return {"md": s, "tex": s}
    if log10_p >= -10:
        mantissa, exponent = f"{10 ** log10_p:.1e}".split("e")
        return {"md": f"{mantissa}e{exponent}", "tex": f"${mantissa} \\times 10^{{{int(exponent)}}}$"}
    k = math.ceil(-log10_p) - 1
    return {"md": f"< 1e-{k}", "tex": f"$< 10^{{-{k}}}$"}


def format_spread(s: dict[str, float]) -> dict[str, str]:
    """'mean ± std (min–max)', the paper's range cells."""
    text = f"{s['mean']:.2f} ± {s['std']:.2f} ({s['min']:.2f}–{s['max']:.2f})"
    return {"md": text, "tex": tex(text)}


def table1_table(st: dict, model: str | None = None) -> Table:
    """The Table 1 layout: one row, the four columns of :data:`COLUMNS`."""
    texts = [(st["mean_diff"]["mean"], format_spread(st["mean_diff"])),
             (st["cohen_d"]["mean"], format_spread(st["cohen_d"])),
             (st["tests"]["log10_p_t"], format_p(st["tests"]["log10_p_t"])),
             (st["tests"]["log10_p_wilcoxon"], format_p(st["tests"]["log10_p_wilcoxon"]))]
    cells = [{"row": ("Across all clusters",), "col": (col,), "value": value, "text": text, "group": col, "metric": col}
             for col, (value, text) in zip(COLUMNS, texts)]
    where = f" ({MODELS.get(model, model)}, {st['n_images']} images)" if model else f" ({st['n_images']} images)"
    title = (f"Table 1: Statistical summary{where}. Average logit differences between meta-representations and "
             "the baseline (the mean of the members' logit changes), effect sizes (Cohen’s d), and p-values from a "
             "one-sided paired t-test (H0: mean <= 0) and a one-sided Wilcoxon signed-rank test (H0: median <= 0).")
    return Table("table1", title, [Block("", ("",), cells, emphasis=0)], keys=[])


def table1_meta(st: dict, prov: list[dict], model: str | None) -> dict:
    """The footer's and ``table1.meta.json``'s provenance for Table 1."""
    dates = sorted(p["date"] for p in prov if "date" in p)
    notes = [f"Ranges: mean ± sample std (min–max) over the per-rank values of the top {st['top']} groups by s_j; "
             f"Cohen’s d = mean / sample std of the paired differences; p-values over all {st['n_pairs']} "
             "(image, group) pairs (bounds from the t statistic / normal z where scipy's p underflows)."]
    return {"table": "table1", "images_per_cell": {"images": {"min": st["n_images"], "max": st["n_images"]}},
            "models": [model] if model else [], "model_names": [MODELS.get(model, model)] if model else [],
            "commits": sorted({p.get("commit", "unknown") for p in prov}),
            "devices": sorted({p.get("device", "unknown") for p in prov}),
            "dates": [dates[0], dates[-1]] if dates else [], "missing": [], "common_ids": {}, "cells": [],
            "rendered_at": git_commit(), "notes": notes,
            "statistics": {"mean_diff": st["mean_diff"], "cohen_d": st["cohen_d"], "tests": st["tests"],
                           "n_images": st["n_images"], "n_pairs": st["n_pairs"], "top": st["top"]}}


def write_table1(groups: pd.DataFrame, out: str | Path, top: int = TOP, model: str | None = None,
                 prov: Sequence[dict] = ()) -> list[Path]:
    """Write ``<out>/table1.md``, ``.tex``, ``.csv`` (per-rank statistics) and ``.meta.json``."""
    st = table1_statistics(groups, top)
    table, meta = table1_table(st, model), table1_meta(st, list(prov), model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in ((".md", render_markdown(table, meta)), (".tex", render_latex(table, meta)),
                         (".csv", st["ranks"].to_csv(index=False, float_format="%.6g")),
                         (".meta.json", json.dumps(meta, indent=2) + "\n")):
        path = out / f"table1{suffix}"
        path.write_text(text)
        written.append(path)
    return written


def read_provenance(cell_dir: Path) -> tuple[list[dict], str | None]:
    """The sessions' provenance and the model name of a store's cell folder (empty when absent)."""
    config_path = cell_dir / CONFIG
    model = json.loads(config_path.read_text())["model"]["name"] if config_path.exists() else None
    return read_sessions(cell_dir), model


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(options, Hydra overrides): every ``key=value`` argument not starting with '-' is an override."""
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    return [a for a in argv if a not in overrides], overrides
