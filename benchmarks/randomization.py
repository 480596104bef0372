"""The model-parameter randomization check as an experiment over a cell's images (Adebayo et al. 2018;
:func:`benchmarks.faithfulness.randomization_check`): per image and stage, cascading from the logits down,
the Spearman correlation and SSIM between the method's map on the trained model and on the model with that
stage and all above it re-initialized, for the class the trained model predicts.

Rows go, batch by batch, into a :class:`~benchmarks.store.CellStore` at
``<run.out_dir>/randomization/<dataset>/<model>/<method>/<hash>``: one row per (image, stage) with id,
stage, depth (1 = the first stage randomized), spearman, ssim, forward / partial / backward (the method's
passes per image on that randomized model).  ``scripts/randomization.py`` is the command line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from benchmarks.api import cell_dataset, cell_explainer, cell_identity, cell_method_options, cell_model, cell_model_config
from benchmarks.data import collate
from benchmarks.faithfulness import cascading_randomization, default_stages, spearman, ssim
from benchmarks.provenance import provenance, resolve_device
from benchmarks.store import CellStore


def randomization_store(cfg: DictConfig, stages: Sequence[str]) -> CellStore:
    """The cell of the experiment ``cfg`` with ``stages`` describes."""
    model_cfg = cell_model_config(cfg)
    identity = {**cell_identity(cfg, model_cfg, cell_method_options(cfg)), "experiment": "randomization",
                "stages": list(stages)}
    return CellStore(Path(cfg.run.out_dir) / "randomization" / cfg.dataset.name / model_cfg.name / cfg.method.name, identity)


def run_randomization(cfg: DictConfig, stages: Sequence[str] | None = None, progress: bool = True) -> pd.DataFrame:
    """Rows of every image of ``cfg``'s range not yet on disk (``stages``: module paths, top first; default
    :func:`default_stages` of the model); return the range's rows.  Unreadable images are left out."""
    device = resolve_device(cfg.run.device)
    model = cell_model(cfg, device)
    stages = list(stages or default_stages(model))
    dataset = cell_dataset(cfg)
    store = randomization_store(cfg, stages)
    with store.locked():
        done = store.done_ids()
        todo = [i for i, id_ in enumerate(dataset.ids) if id_ not in done]
        if todo:
            store.open(provenance(device))
            loader = DataLoader(Subset(dataset, todo), batch_size=int(cfg.run.batch_size), collate_fn=collate,
                                num_workers=int(cfg.run.workers))
            for batch in tqdm(loader, desc=f"randomization {cfg.model.name}/{cfg.method.name}", unit="batch",
                              disable=not progress):
                b = batch.select(batch.valid)
                if len(b):
                    store.write_part(_batch_rows(cfg, model, stages, b.ids, b.images.to(device)))
        rows = store.finish()
    return rows[rows["id"].isin(set(dataset.ids))].reset_index(drop=True)


def _batch_rows(cfg: DictConfig, model: torch.nn.Module, stages: list[str], ids: list[str],
                images: torch.Tensor) -> pd.DataFrame:
    with torch.no_grad():
        targets = model(images).argmax(1)  # the trained model's class, explained on every randomized model
    original = cell_explainer(cfg, model)(images, targets).float()
    frames = []
    for depth, (stage, random) in enumerate(cascading_randomization(model, stages, int(cfg.run.seed)), start=1):
        explainer = cell_explainer(cfg, random)
        maps = explainer(images, targets).float()
        passes = explainer.last_passes
        frames.append(pd.DataFrame({"id": ids, "stage": stage, "depth": depth,
                                    "spearman": spearman(original, maps).cpu().numpy(),
                                    "ssim": ssim(original, maps).cpu().numpy(), "forward": passes.forward,
                                    "partial": passes.partial, "backward": passes.backward}))
    return pd.concat(frames, ignore_index=True)
