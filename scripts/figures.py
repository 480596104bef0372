"""The paper's figures as PNG files (matplotlib, Agg backend).

    python -m scripts.figures all model=resnet18 dataset.root=/data/ilsvrc --runs runs/paper  # every figure
    python -m scripts.figures fig2 [--table1-csv runs/table1/ilsvrc/resnet18/groups/<hash>/rows.csv] [--top 10]
    python -m scripts.figures fig9 [--table1-csv ... [--members-csv ...]] [--ids ID1 ID2] [--seed 0]
    python -m scripts.figures fig3 dataset.root=/data/ilsvrc [--ids ID ...] [--n 3] [--methods gradcam ...] [--run]
    python -m scripts.figures fig4 dataset.root=/data/ilsvrc [...]            # fig3's grid for model=vit_b_16
    python -m scripts.figures fig5 model=resnet18 dataset.root=/data/ilsvrc [--images 500] [--run]
    python -m scripts.figures fig6 --runs runs/paper [--dataset ilsvrc] [--log]
    python -m scripts.figures fig8 model=resnet18 dataset.root=/data/ilsvrc [--ids ID ...] [--n 3] [--taus 1.0 0.5 ...]

Each figure goes to ``<--out>/<figure>.png`` (default ``results/figures``).  Every ``key=value``
argument is a Hydra override of ``conf/config.yaml``, the runner's config (dataset ilsvrc and
model resnet18 by default; fig4 uses model=vit_b_16).
- fig2 (Sec. 4.1), fig9 (App. D.1): from the rows of ``python -m scripts.table1`` with the same
  overrides (or ``--table1-csv``); fig9 shows two random images unless ``--ids``.
- fig3/fig4 (Sec. 4.3): rows = images, columns = the image and each method's map, read from the
  runner's cells run with ``run.save_maps=true`` (``--run`` runs the missing cells; with no ``--ids``
  the cells cover the first ``--n`` images unless ``run.n_images`` is given; run.out_dir defaults
  to runs/maps, as for fig8).
- fig5 (Sec. 4.4): AD and IC of the ablation variants of :data:`ABLATION`, one ClusCAM runner cell
  each (``--run`` runs them), in run.out_dir=runs/ablation unless given, so that the tables and
  fig6 see only the default ClusCAM cells.
- fig6 (Sec. 4.4): mean seconds per image of each method, averaged over each family's architectures,
  from the latest cells under ``--runs``; ClusCAM's bar is split into clustering and scoring where
  its rows have ``phase_clustering`` (seconds of clustering per image).
- fig8 (App. B): ClusCAM's maps for temperatures tau = 1.0, 0.9, ..., 0.1, computed directly.
- all: every figure, running the cells they need; reports the figures it could not make.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from baselines import METHODS, method_names  # noqa: E402
from benchmarks.ablation import ABLATION, variant_overrides  # noqa: E402
from benchmarks.metrics import summarize  # noqa: E402
from benchmarks.provenance import resolve_device  # noqa: E402
from benchmarks.api import cell_dataset, cell_explainer, cell_model, cell_store, compose, run_cell  # noqa: E402
from benchmarks.stats import FAMILIES, common_ids, family_of, select_cells  # noqa: E402
from benchmarks.table1 import TOP, split_overrides, table1_stores  # noqa: E402
from benchmarks.tables import method_label  # noqa: E402

DPI = 100
PANELS = (10.0, 4.0)  # inches of the two-panel figures (2, 5, 6, 9)
CELL = 1.6  # inches per image of the map grids (3, 4, 8)
QUALITATIVE = tuple(method_names(supports=tuple(FAMILIES)))  # Figs. 3/4: the methods of every family
MAPS_DIR, ABLATION_DIR = "runs/maps", "runs/ablation"  # default run.out_dir of the map and ablation cells
TAUS = tuple(round(t / 10, 1) for t in range(10, 0, -1))  # Fig. 8: 1.0, 0.9, ..., 0.1



def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)
    plt.close(fig)
    return path


# -- Fig. 2 and Fig. 9: Table 1's rows --------------------------------------------------------------------
def fig2(groups: pd.DataFrame, path: str | Path, top: int = TOP, dpi: int = DPI) -> Path:
    """Left: box plots of s_meta − s_members_mean per group rank (top ``top``); right: histogram of
    the differences of every (image, group)."""
    diff = groups["s_meta"] - groups["s_members_mean"]
    ranks = range(min(top, int(groups["rank"].max()) + 1))
    fig, (left, right) = plt.subplots(1, 2, figsize=PANELS, dpi=dpi, gridspec_kw={"width_ratios": [3, 2]})
    left.boxplot([diff[groups["rank"] == r].to_numpy() for r in ranks], showfliers=False)
    left.set_xticks(range(1, len(ranks) + 1), [str(r + 1) for r in ranks])
    left.axhline(0, color="grey", lw=0.8, ls="--")
    left.set(xlabel="group (rank by $s_j$)", ylabel="logit difference (meta − members' mean)")
    values = diff.to_numpy(float)
    spread = np.ptp(values) > 1e-9 * max(1.0, float(np.abs(values).max()))  # a constant (e.g. one-member groups)
    right.hist(values, bins=50 if spread else 1, color="tab:blue", alpha=0.8)
    right.axvline(0, color="grey", lw=0.8, ls="--")
    right.set(xlabel="logit difference", ylabel="count (image, group)")
    fig.tight_layout()
    return _save(fig, path)


def sample_ids(groups: pd.DataFrame, n: int = 2, seed: int = 0) -> list[str]:
    """``n`` image ids drawn at random (fixed seed) from Table 1's rows."""
    ids = sorted(groups["id"].astype(str).unique())
    if len(ids) < n:
        raise ValueError(f"need {n} images, the rows have {len(ids)}")
    return sorted(np.random.default_rng(seed).choice(ids, n, replace=False).tolist())


def fig9(groups: pd.DataFrame, members: pd.DataFrame, ids: Sequence[str], path: str | Path, dpi: int = DPI) -> Path:
    """One panel per image: each member's logit shift (blue dots) per group, ranked by s_j, the
    meta-representation's shift (red star) and the members' mean (green triangle)."""
    fig, axes = plt.subplots(1, len(ids), figsize=PANELS, dpi=dpi, squeeze=False)
    for ax, id_ in zip(axes[0], ids):
        g = groups[groups["id"].astype(str) == str(id_)]
        if g.empty:
            raise ValueError(f"image {id_!r} is not in Table 1's rows")
        m = members[members["id"].astype(str) == str(id_)].merge(g[["group", "rank"]], on="group")
        ax.scatter(m["rank"] + 1, m["s_member"], s=10, color="tab:blue", alpha=0.6, label="feature map")
        ax.scatter(g["rank"] + 1, g["s_meta"], marker="*", s=90, color="red", label="meta-representation")
        ax.scatter(g["rank"] + 1, g["s_members_mean"], marker="^", s=40, color="green", label="members' mean")
        ax.set(title=str(id_), xlabel="group (rank by $s_j$)", ylabel="logit change")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


# -- map grids (Figs. 3, 4, 8) ---------------------------------------------------------------------------
def overlay_grid(images: np.ndarray, columns: Mapping[str, np.ndarray], path: str | Path,
                 row_titles: Sequence[str] | None = None, dpi: int = DPI) -> Path:
    """Rows: images [n, H, W, 3] in [0, 1]; columns: the image, then each map [n, H, W] over it."""
    n, cols = len(images), 1 + len(columns)
    fig, axes = plt.subplots(n, cols, figsize=(CELL * cols, CELL * n), dpi=dpi, squeeze=False)
    for i, image in enumerate(images):
        axes[i, 0].imshow(image)
        if row_titles is not None:
            axes[i, 0].set_title(row_titles[i], fontsize=7)
        for j, (name, maps) in enumerate(columns.items(), start=1):
            axes[i, j].imshow(image)
            axes[i, j].imshow(np.asarray(maps[i], dtype=np.float32), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def dataset_images(cfg: DictConfig, ids: Sequence[str] | None = None,
                   n: int = 3) -> tuple[list[str], torch.Tensor, np.ndarray]:
    """(ids, normalized images [n, 3, H, W], displayable images [n, H, W, 3]) of ``cfg``'s dataset:
    the given ids, else its first ``n``."""
    dataset = cell_dataset(cfg)
    index = {id_: i for i, id_ in enumerate(dataset.ids)}
    ids = list(dataset.ids[:n]) if ids is None else list(ids)
    unknown = [i for i in ids if i not in index]
    if unknown:
        raise ValueError(f"ids {unknown} are not in the dataset's range (run.start / run.n_images)")
    images = torch.stack([dataset[index[i]].image for i in ids])
    mean = torch.tensor(list(cfg.model.input.mean)).view(1, 3, 1, 1)
    std = torch.tensor(list(cfg.model.input.std)).view(1, 3, 1, 1)
    return ids, images, (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def with_default(overrides: Sequence[str], key: str, value) -> list[str]:
    """``overrides`` with ``key=value`` first unless they set ``key``."""
    if any(o.lstrip("+~").startswith(f"{key}=") for o in overrides):
        return list(overrides)
    return [f"{key}={value}", *overrides]


def ensure_cell(cfg: DictConfig, run: bool, hint: str) -> pd.DataFrame:
    """The rows of ``cfg``'s cell over its image range; runs the missing images when ``run``, else
    a missing image is an error (``hint`` says how to make the cell)."""
    missing = set(cell_dataset(cfg).ids) - cell_store(cfg).done_ids()
    if missing and not run:
        raise ValueError(f"cell {cfg.model.name}/{cfg.method.name} at {cell_store(cfg).dir} lacks {len(missing)} "
                         f"images; {hint} or pass --run")
    return run_cell(cfg, progress=run)


def qualitative(overrides: Sequence[str], path: str | Path, methods: Sequence[str] = QUALITATIVE,
                ids: Sequence[str] | None = None, n: int = 3, run: bool = False, dpi: int = DPI) -> Path:
    """Figs. 3/4: each method's saved maps (cells with run.save_maps=true) of the images ``ids``
    (default: the first ``n`` of the cells' range)."""
    cfgs = {m: compose([*overrides, f"method={m}", "run.save_maps=true"]) for m in methods}
    maps = {}
    for m, cfg in cfgs.items():
        ensure_cell(cfg, run, f"run python -m benchmarks.run {' '.join(overrides)} method={m} run.save_maps=true")
        maps[m] = cell_store(cfg).maps()
    ids, _, shown = dataset_images(next(iter(cfgs.values())), ids, n)
    lacking = {m: [i for i in ids if i not in got] for m, got in maps.items()}
    lacking = {m: v for m, v in lacking.items() if v}
    if lacking:
        raise ValueError(f"no saved maps for {lacking}: these cells ran without run.save_maps=true; rerun them with "
                         "run.save_maps=true and a fresh run.out_dir")
    columns = {method_label(m): np.stack([maps[m][i] for i in ids]) for m in methods}
    return overlay_grid(shown, columns, path, row_titles=ids, dpi=dpi)


def temperature_maps(cfg: DictConfig, images: torch.Tensor, taus: Sequence[float] = TAUS) -> np.ndarray:
    """ClusCAM maps [len(taus), n, H, W] of ``images`` for each temperature (App. B, Fig. 8), the
    other options from ``cfg`` (model's Table 3 entry and method.options), predicted classes."""
    cam = cell_explainer(cfg, cell_model(cfg, resolve_device(cfg.run.device)))  # random-init models as in the runner
    scores, meta = cam.group_scores(images)  # tau changes only the weights: group and score once
    maps = []
    for t in taus:
        cam.tau = float(t)
        maps.append(cam.finish(cam.combine(scores, meta), tuple(images.shape[-2:])).cpu().numpy())
    return np.stack(maps)


def fig8(images: np.ndarray, maps: np.ndarray, taus: Sequence[float], path: str | Path,
         row_titles: Sequence[str] | None = None, dpi: int = DPI) -> Path:
    """Rows: images; columns: the image and ClusCAM's map for each tau (``maps`` [len(taus), n, H, W])."""
    return overlay_grid(images, {f"τ = {t:g}": m for t, m in zip(taus, maps)}, path, row_titles, dpi)


# -- Fig. 5: ablation ------------------------------------------------------------------------------------
def ablation_rows(overrides: Sequence[str], variants: Mapping[str, Sequence[str]] = ABLATION,
                  run: bool = False) -> pd.DataFrame:
    """One row per variant: model, AD and IC (%) and images of its ClusCAM cell."""
    base = compose([*overrides, "method=cluscam"])
    out = []
    for name, variant in variants.items():
        cfg = compose([*overrides, "method=cluscam", *variant_overrides(base.method.options, variant)])
        rows = ensure_cell(cfg, run, f"run python -m benchmarks.run {' '.join([*overrides, *variant])}")
        ok = rows[rows["status"] == "ok"]
        s = summarize(ok[["ad", "ic"]])
        out.append({"variant": name, "model": cfg.model.name, "ad": s["ad"], "ic": s["ic"], "n": len(ok)})
    return pd.DataFrame(out)


def _bars(ax: plt.Axes, table: pd.DataFrame, colors: Sequence[str] | None = None) -> None:
    """Grouped bars: one group per row of ``table``, one bar per column."""
    k = table.shape[1]
    width = 0.8 / k
    x = np.arange(len(table))
    for j, col in enumerate(table.columns):
        ax.bar(x + (j - (k - 1) / 2) * width, table[col].to_numpy(float), width, label=str(col),
               color=None if colors is None else colors)
    ax.set_xticks(x, list(table.index), rotation=35, ha="right", fontsize=8)


def fig5(summary: pd.DataFrame, path: str | Path, dpi: int = DPI) -> Path:
    """AD (↓) and IC (↑) bar charts of the ablation variants (rows of :func:`ablation_rows`; a
    ``model`` column with several models gives grouped bars)."""
    summary = summary.assign(model=summary["model"] if "model" in summary else "")
    order = list(dict.fromkeys(summary["variant"]))
    fig, axes = plt.subplots(1, 2, figsize=PANELS, dpi=dpi)
    several = summary["model"].nunique() > 1
    colors = None if several else ["tab:red" if i == 0 else "tab:blue" for i in range(len(order))]
    for ax, metric, label in zip(axes, ("ad", "ic"), ("AD (%) ↓", "IC (%) ↑")):
        _bars(ax, summary.pivot(index="variant", columns="model", values=metric).reindex(order), colors)
        ax.set_ylabel(label)
        if several:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


# -- Fig. 6: running time --------------------------------------------------------------------------------
def runtime_summary(rows: pd.DataFrame, dataset: str = "ilsvrc",
                    families: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per (family, method): the mean over the family's architectures of the mean seconds per image
    and, where the rows have ``phase_clustering``, of the clustering seconds per image (as the
    tables: one cell per model and method, on the image ids all methods of a model have)."""
    rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise ValueError(f"no result rows for dataset {dataset!r}")
    rows, _ = common_ids(select_cells(rows))
    rows = rows.assign(clustering=rows["phase_clustering"] if "phase_clustering" in rows else np.nan)
    per_model = rows.groupby(["model", "method"], as_index=False)[["seconds", "clustering"]].mean()
    per_model["family"] = [family_of(m, families) for m in per_model["model"]]
    out = per_model.groupby(["family", "method"], as_index=False)[["seconds", "clustering"]].mean()
    rank = {m: i for i, m in enumerate(METHODS)}
    return out.sort_values("method", key=lambda s: s.map(lambda m: rank.get(m, len(rank))), kind="stable")


def fig6(summary: pd.DataFrame, path: str | Path, log: bool = False, dpi: int = DPI) -> Path:
    """One panel per family (CNNs, ViTs): seconds per image of each method; a method with a
    clustering time is drawn as clustering (K-Means) below scoring."""
    families = [f for f in FAMILIES if f in set(summary["family"])] + sorted(set(summary["family"]) - set(FAMILIES))
    fig, axes = plt.subplots(1, len(families), figsize=PANELS, dpi=dpi, squeeze=False)
    for ax, family in zip(axes[0], families):
        s = summary[summary["family"] == family].reset_index(drop=True)
        x = np.arange(len(s))
        split = s["clustering"].notna().to_numpy()
        clustering = s["clustering"].fillna(0).to_numpy(float)
        ax.bar(x[~split], s["seconds"].to_numpy(float)[~split], color="tab:blue")
        if split.any():
            ax.bar(x[split], clustering[split], color="tab:orange", label="K-Means")
            ax.bar(x[split], (s["seconds"].to_numpy(float) - clustering)[split], bottom=clustering[split],
                   color="tab:green", label="Scoring")
            for xi, c, total in zip(x[split], clustering[split], s["seconds"].to_numpy(float)[split]):
                # the K-Means share as text: a few ms vanish under a log axis (or beside ScoreCAM's bar)
                ax.annotate(f"K-Means {100 * c / total:.1f}%", (xi, total), ha="center", va="bottom", fontsize=7)
            ax.legend(fontsize=8)
        ax.set_xticks(x, [method_label(m) for m in s["method"]], rotation=35, ha="right", fontsize=8)
        ax.set(title=FAMILIES.get(family, family), ylabel="seconds per image")
        if log:
            ax.set_yscale("log")
    fig.tight_layout()
    return _save(fig, path)


# -- command line ----------------------------------------------------------------------------------------
FIGURES = ("fig2", "fig3", "fig4", "fig5", "fig6", "fig8", "fig9")


def table1_rows(args: argparse.Namespace, overrides: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(groups, members) rows of scripts.table1: from --table1-csv (members from --members-csv or the
    store beside it), else from the Table 1 store of the overrides' config."""
    if args.table1_csv is not None:
        groups_csv = Path(args.table1_csv)
        members_csv = args.members_csv or groups_csv.parents[2] / "members" / groups_csv.parent.name / groups_csv.name
    else:
        groups_store, members_store = table1_stores(compose(["method=cluscam", *overrides]))
        groups_csv, members_csv = groups_store.dir / "rows.csv", members_store.dir / "rows.csv"
    for path in (groups_csv, members_csv):
        if not Path(path).is_file():
            raise ValueError(f"no Table 1 rows at {path}: run python -m scripts.table1 {' '.join(overrides)} first, "
                             "or pass --table1-csv (and --members-csv)")
    return pd.read_csv(groups_csv, dtype={"id": str}), pd.read_csv(members_csv, dtype={"id": str})


def make_figure(fig: str, args: argparse.Namespace, overrides: list[str]) -> Path:
    """Figure ``fig`` from the parsed command line; returns its path."""
    path = args.out / f"{fig}.png"
    if fig in ("fig2", "fig9"):
        groups, members = table1_rows(args, overrides)
        if fig == "fig2":
            return fig2(groups, path, args.top)
        return fig9(groups, members, args.ids or sample_ids(groups, 2, args.seed), path)
    if fig == "fig6":
        from benchmarks.results import load_rows

        return fig6(runtime_summary(load_rows(args.runs), args.dataset), path, args.log)
    if fig == "fig5":
        cells = with_default(with_default(overrides, "run.out_dir", ABLATION_DIR), "run.n_images", args.images)
        return fig5(ablation_rows(cells, run=args.run), path)
    # The map figures need only their images: cells over the first n images unless told otherwise.
    few = with_default(overrides, "run.out_dir", MAPS_DIR)
    few = few if args.ids else with_default(few, "run.n_images", args.n)
    if fig in ("fig3", "fig4"):
        model = "resnet18" if fig == "fig3" else "vit_b_16"
        return qualitative(with_default(few, "model", model), path, args.methods, args.ids, args.n, args.run)
    cfg = compose(["method=cluscam", *few])
    ids, images, shown = dataset_images(cfg, args.ids, args.n)
    return fig8(shown, temperature_maps(cfg, images, args.taus), args.taus, path, ids)


def make_all(args: argparse.Namespace, overrides: list[str]) -> list[Path]:
    """Every figure, running the cells it needs (fig4 with model=vit_b_16); a figure that cannot be
    made (no Table 1 rows, no weights, no timed cells) is reported and the others go on."""
    args.run, made, failed = True, [], []
    for fig in FIGURES:
        own = [o for o in overrides if not o.startswith("model=")] if fig == "fig4" else overrides
        try:
            made.append(make_figure(fig, args, own))
        except (ValueError, RuntimeError, OSError) as err:
            failed.append(f"{fig}: {type(err).__name__}: {err}")
    if failed:
        raise SystemExit("made:\n  " + "\n  ".join(map(str, made)) + "\nnot made:\n  " + "\n  ".join(failed))
    return made


def main(argv: Sequence[str] | None = None) -> list[Path]:
    import sys

    options, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=[*FIGURES, "all"])
    parser.add_argument("--out", type=Path, default=Path("results/figures"), help="folder of <figure>.png")
    parser.add_argument("--table1-csv", type=Path, help="fig2/fig9: groups rows of scripts.table1")
    parser.add_argument("--members-csv", type=Path, help="fig9: members rows (default: the store beside --table1-csv)")
    parser.add_argument("--top", type=int, default=TOP, help="fig2: ranks in the box plots")
    parser.add_argument("--ids", nargs="+", help="fig3/4/8/9: image ids")
    parser.add_argument("--n", type=int, default=3, help="fig3/4/8: the first n images when --ids is not given")
    parser.add_argument("--seed", type=int, default=0, help="fig9: seed of the two random images")
    parser.add_argument("--methods", nargs="+", default=list(QUALITATIVE), help="fig3/4: methods (columns)")
    parser.add_argument("--run", action="store_true", help="fig3/4/5: run the missing runner cells first")
    parser.add_argument("--images", type=int, default=500, help="fig5: images per variant unless run.n_images is set")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="fig6: the runner's out_dir of the timed cells")
    parser.add_argument("--dataset", default="ilsvrc", help="fig6: dataset of the timed cells")
    parser.add_argument("--log", action="store_true", help="fig6: log-scale seconds")
    parser.add_argument("--taus", nargs="+", type=float, default=list(TAUS), help="fig8: temperatures")
    args = parser.parse_args(options)
    try:
        paths = make_all(args, overrides) if args.figure == "all" else [make_figure(args.figure, args, overrides)]
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    print("\n".join(map(str, paths)))
    return paths


if __name__ == "__main__":
    main()
