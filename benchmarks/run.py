"""The benchmark runner: one (model, method, dataset) cell per call, resumable, one CSV row per image.

    python -m benchmarks.run model=resnet50 method=cluscam dataset=ilsvrc dataset.root=/data/ilsvrc
    python -m benchmarks.run -m model=resnet18,vit_b_16 method=cluscam,scorecam dataset.root=...

:func:`benchmarks.api.run_cell` does the same from a config without Hydra (see :mod:`benchmarks.api`).
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from benchmarks.api import run_cell
from benchmarks.metrics import summarize


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    rows = run_cell(cfg)
    ok = rows[rows["status"] == "ok"] if len(rows) else rows
    summary = summarize(ok) if len(ok) else {}
    n_skipped = len(rows) - len(ok)
    print(f"{cfg.model.name} / {cfg.method.name} / {cfg.dataset.name}: {len(ok)} images"
          + (f", {n_skipped} unreadable (see status column)" if n_skipped else "")
          + "".join(f", {k.upper()} {summary[k]:.2f}" for k in ("ad", "ic", "ag", "ep", "le") if k in summary)
          + (f", {ok['seconds'].mean():.4f} s/image" if len(ok) else ""))


if __name__ == "__main__":
    main()
