"""The benchmark runner: one (model, method, dataset) cell per call, resumable, one CSV row per image.

    python -m benchmarks.run model=resnet50 method=cluscam dataset=ilsvrc dataset.root=/data/ilsvrc
    python -m benchmarks.run -m model=resnet18,vit_b_16 method=cluscam,scorecam dataset.root=...

:func:`run_cell` does the same from a config without Hydra (see :func:`compose`).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from baselines import check_options, create_explainer
from benchmarks import zoo
from benchmarks.data import Preprocess, build_dataset, collate, select_records
from benchmarks.metrics import confidence_change, image_metrics, summarize
from benchmarks.provenance import device_name, provenance, resolve_device
from benchmarks.store import CellStore

CONF_DIR = zoo.CONF_DIR
DATASET_HELP = {
    "ilsvrc": "download the ILSVRC2012 validation images with boxes (e.g. Kaggle's 'ImageNet Object Localization "
              "Challenge') and pass dataset.root=/path (or set ILSVRC_ROOT)",
    "alzheimer": "pass dataset.root= an image folder <root>/{train,test}/<class>/*.jpg, a save_to_disk copy, parquet "
                 "files or the hub id Falah/Alzheimer_MRI (or set ALZHEIMER_ROOT)",
}


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config for ``overrides`` (Hydra syntax) without running Hydra's app."""
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides or []), return_hydra_config=False)


def method_options(cfg: DictConfig) -> dict:
    """The explainer's keyword arguments: the model's options for the method (``method_options``),
    overridden by the method's options (null ClusCAM options take the model's Table 3 entry), and
    the run's baseline, chunk size and precision."""
    own = {k: v for k, v in OmegaConf.to_container(cfg.method.options, resolve=True).items() if v is not None}
    check_options(cfg.method.name, own, prefix="method.options.")
    opts = {**zoo.method_options(cfg.model, cfg.method.name), **own}
    if cfg.method.name == "cluscam":
        opts["seed"] = int(cfg.run.seed)
    chunk = cfg.run.chunk_size
    return {**opts, "baseline": cfg.run.baseline, "pixel_mean": list(cfg.model.input.mean),
            "pixel_std": list(cfg.model.input.std), "chunk_size": chunk if chunk == "auto" else int(chunk),
            "precision": cfg.run.precision}


def model_config(cfg: DictConfig) -> DictConfig:
    """The model's config with the dataset's number of classes."""
    model = cfg.model.copy()
    model.num_classes = int(cfg.dataset.num_classes)
    if model.num_classes != int(cfg.model.num_classes) and model.pretrained and model.checkpoint is None:
        raise ValueError(
            f"model {model.name!r} has ImageNet weights but dataset {cfg.dataset.name!r} has {model.num_classes} "
            f"classes: pass a fine-tuned checkpoint with model.checkpoint=/path (scripts/train.py makes one) or use "
            f"model.pretrained=false for random weights")
    return model


def dataset_for(cfg: DictConfig):
    """The cell's images: the range ``run.start`` / ``run.n_images`` of the dataset less ``dataset.exclude``."""
    d = cfg.dataset
    pre = Preprocess(size=tuple(cfg.model.input.size), mean=tuple(cfg.model.input.mean),
                     std=tuple(cfg.model.input.std), mode=cfg.model.input.resize)
    opts = OmegaConf.to_container(d.options, resolve=True)
    start = int(cfg.run.start)
    stop = None if cfg.run.n_images is None else start + int(cfg.run.n_images)
    if d.name in DATASET_HELP:
        if d.root is None:
            raise ValueError(f"dataset.root is not set for {d.name}: {DATASET_HELP[d.name]}")
        first = {"ilsvrc": "root", "alzheimer": "source"}[d.name]
        opts[first] = str(d.root)
    excluded = excluded_ids(d.get("exclude"))
    # Excluded ids leave the listing before the range: run.n_images counts the images that remain
    # (e.g. Alzheimer test images less a training report's validation ids).
    dataset = build_dataset(d.name, preprocess=pre, **({} if excluded else {"start": start, "stop": stop}), **opts)
    if excluded:
        dataset.records = select_records([rec for rec in dataset.records if rec.id not in excluded], start, stop)
    if not dataset.records:
        raise ValueError(f"no images to run: {d.name} has none in run.start={start}, run.n_images={cfg.run.n_images}"
                         f"{' less dataset.exclude' if excluded else ''}; widen the range or check dataset.options")
    return dataset


def check_keys(cfg: DictConfig) -> None:
    """Refuse ``run.*`` and ``metrics.*`` keys that conf/config.yaml does not define (e.g. +run.batchsize=4)."""
    known = OmegaConf.load(CONF_DIR / "config.yaml")
    for section in ("run", "metrics"):
        for key in cfg[section]:
            if key not in known[section]:
                close = difflib.get_close_matches(key, list(known[section]), n=1)
                guess = f"did you mean {section}.{close[0]}? " if close else ""
                raise ValueError(f"unknown option {section}.{key}; {guess}{section} takes {', '.join(known[section])}")


def excluded_ids(path: str | None) -> set[str]:
    """Ids to leave out: a training report's ``val_ids`` (JSON) or a text file with one id a line."""
    if not path:
        return set()
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"dataset.exclude={path!r} does not exist; give a training report (.json) or an id list")
    if file.suffix == ".json":
        return set(json.loads(file.read_text())["val_ids"])
    return {line.strip() for line in file.read_text().splitlines() if line.strip()}


MODEL_IDENTITY = ("name", "family", "source", "arch", "weights", "kwargs", "num_classes", "pretrained", "input")


def cell_identity(cfg: DictConfig, model_cfg: DictConfig, options: dict) -> dict:
    """Everything that changes a cell's rows, resolved for its method: the model's builder, weights
    (a checkpoint by its content, not its path), input and the layer this method hooks; the method's
    options; the dataset, seed and metrics. Not the model's settings for other methods, nor the
    batch size, chunk size, device or image range."""
    keep = {k: v for k, v in options.items() if k != "chunk_size"}
    model = {k: OmegaConf.to_container(model_cfg, resolve=True)[k] for k in MODEL_IDENTITY}
    model["layer"] = asdict(zoo.layer_spec(model_cfg, cfg.method.name))
    model["checkpoint_sha256"] = file_sha256(model_cfg.checkpoint) if model_cfg.checkpoint else None
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    return {"model": model, "method": {"name": cfg.method.name, **keep},
            "dataset": dataset, "seed": int(cfg.run.seed), "metrics": OmegaConf.to_container(cfg.metrics)}


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes (a missing file is reported when the model is built)."""
    file = Path(path).expanduser()
    return hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else f"missing: {path}"


def run_cell(cfg: DictConfig, progress: bool = True) -> pd.DataFrame:
    """Explain and evaluate every image of the cell's range not yet on disk (retrying those skipped
    as unreadable before) while holding the cell's lock; return the range's rows."""
    check_keys(cfg)
    device = resolve_device(cfg.run.device)
    model_cfg = model_config(cfg)
    options = method_options(cfg)
    dataset = dataset_for(cfg)
    store = _store(cfg, model_cfg, options)
    with store.locked():
        done, skipped = store.done_ids(), store.skipped_ids()
        todo = [i for i, id_ in enumerate(dataset.ids) if id_ not in done]
        retried = sum(dataset.ids[i] in skipped for i in todo)
        if retried:
            print(f"{model_cfg.name} / {cfg.method.name}: retrying {retried} image(s) skipped as unreadable before")
        if todo:
            _explain(store, Subset(dataset, todo), device, cfg, model_cfg, options, progress)
        rows = store.finish()
    return rows[rows["id"].isin(set(dataset.ids))].reset_index(drop=True)


def _explain(store: CellStore, images: Subset, device: torch.device, cfg: DictConfig, model_cfg: DictConfig,
             options: dict, progress: bool) -> None:
    """Explain ``images`` batch by batch into ``store`` (whose folder appears with the first batch)."""
    store.open(provenance(device))
    torch.manual_seed(int(cfg.run.seed))  # random-init models are the same in every session
    model = zoo.create_model(model_cfg, device=device)
    model = model.to(memory_format=zoo.memory_format(model_cfg, cfg.run.precision))
    explainer = create_explainer(cfg.method.name, model, zoo.layer_spec(model_cfg, cfg.method.name), **options)
    loader = DataLoader(images, batch_size=int(cfg.run.batch_size), collate_fn=collate,
                        num_workers=int(cfg.run.workers), pin_memory=device.type == "cuda")
    for batch in tqdm(loader, desc=f"{model_cfg.name}/{cfg.method.name}", unit="batch", disable=not progress):
        rows, maps = evaluate_batch(explainer, model, batch, device, cfg, model_cfg)
        store.write_part(rows, maps if cfg.run.save_maps else None)


def cell_store(cfg: DictConfig) -> CellStore:
    """The store of the cell ``cfg`` describes (for reading its rows and maps back)."""
    return _store(cfg, model_config(cfg), method_options(cfg))


def _store(cfg: DictConfig, model_cfg: DictConfig, options: dict) -> CellStore:
    return CellStore(Path(cfg.run.out_dir) / cfg.dataset.name / model_cfg.name / cfg.method.name,
                     cell_identity(cfg, model_cfg, options))


def evaluate_batch(explainer, model, batch, device: torch.device, cfg: DictConfig,
                   model_cfg: DictConfig) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Rows of one batch (explanation time and passes, then the metrics, not timed) and its maps."""
    skipped = pd.DataFrame([{"id": s.id, "path": s.path, "status": f"skipped: unreadable image ({s.reason})"}
                            for s in batch.skipped()])
    ok = batch.valid.cpu()
    if not bool(ok.any()):
        return skipped, {}
    b = batch.select(ok)
    images = b.images.to(device, non_blocking=True)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *a: None)
    with torch.no_grad():
        targets = model(images).argmax(1)  # explained class: the prediction (untimed, uncounted)
    sync()
    start = time.perf_counter()
    sal = explainer(images, targets)
    sync()
    seconds = (time.perf_counter() - start) / len(b)
    with torch.no_grad():
        p, p_masked = confidence_change(model, images, sal, targets, cfg.run.baseline,
                                        pixel_mean=list(model_cfg.input.mean), pixel_std=list(model_cfg.input.std))
        metrics = image_metrics(p, p_masked, sal, b.padded_boxes.to(device), b.num_boxes.to(device),
                                ag_variant=cfg.metrics.ag_variant, le_region=cfg.metrics.le_region)
    passes = explainer.last_passes
    rows = pd.DataFrame({
        "id": b.ids, "path": b.paths, "status": "ok", "label": b.labels.tolist(), "pred": targets.tolist(),
        **{k: v.detach().cpu().double().numpy() for k, v in metrics.items()},
        "n_boxes": b.num_boxes.tolist(), "seconds": seconds, "forward": passes.forward, "partial": passes.partial,
        "backward": passes.backward, "device": device_name(device),
        **{f"phase_{name}": sec for name, sec in explainer.last_phases.items()},
    })
    maps = dict(zip(b.ids, sal.cpu().numpy()))
    return (pd.concat([rows, skipped], ignore_index=True) if len(skipped) else rows), maps


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
