"""The public API of benchmark cells: compose a config, resolve a cell's model config, method options,
dataset, model and explainer, run it (resumable, one CSV row per image) and read its store back.

    cfg = compose(["model=resnet50", "method=cluscam", "dataset=ilsvrc", "dataset.root=/data/ilsvrc"])
    rows = run_cell(cfg)                       # explain and evaluate what is not on disk yet
    cell_store(cfg).rows(), cell_store(cfg).maps()   # read it back

The runner (``python -m benchmarks.run``), training, figures, Table 1 and the selection use these
and nothing else of the runner.  ``cell_*`` resolve a whole cell's config (a Hydra ``DictConfig`` of
conf/config.yaml); :mod:`benchmarks.zoo`'s ``model_config`` / ``method_options`` are one model's.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from baselines import check_options, create_explainer, method_class, method_parameters
from benchmarks import zoo
from benchmarks.data import Preprocess, RecordDataset, build_dataset, collate, dataset_class, select_records
from benchmarks.faithfulness import SUBSTRATES, TESTS, image_tests
from benchmarks.metrics import confidence_change, image_metrics
from benchmarks.provenance import device_name, provenance, resolve_device
from benchmarks.shards import Shard, parse_shard
from benchmarks.store import CellLocked, CellStore
from cluscam.base import PRECISIONS, Explainer

CONF_DIR = zoo.CONF_DIR


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config for ``overrides`` (Hydra syntax) without running Hydra's app."""
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides or []), return_hydra_config=False)


def cell_method_options(cfg: DictConfig) -> dict:
    """The explainer's keyword arguments: the model's options for the method (:func:`zoo.method_options`),
    overridden by the method's options (null ClusCAM options take the model's Table 3 entry), ``run.seed``
    for a method with a seed, and the run's baseline, chunk size and precision."""
    own = {k: v for k, v in OmegaConf.to_container(cfg.method.options, resolve=True).items() if v is not None}
    check_options(cfg.method.name, own, prefix="method.options.")
    opts = {**zoo.method_options(cfg.model, cfg.method.name), **own}
    if "seed" in method_parameters(cfg.method.name):  # a randomized method (ClusCAM's K-means++) takes run.seed
        opts["seed"] = int(cfg.run.seed)
    chunk = cfg.run.chunk_size
    return {**opts, "baseline": cfg.run.baseline, "pixel_mean": list(cfg.model.input.mean),
            "pixel_std": list(cfg.model.input.std), "chunk_size": chunk if chunk == "auto" else int(chunk),
            "precision": cfg.run.precision}


def cell_model_config(cfg: DictConfig) -> DictConfig:
    """The model's config with the dataset's number of classes."""
    model = cfg.model.copy()
    model.num_classes = int(cfg.dataset.num_classes)
    if model.num_classes != int(cfg.model.num_classes) and model.pretrained and model.checkpoint is None:
        raise ValueError(
            f"model {model.name!r} has ImageNet weights but dataset {cfg.dataset.name!r} has {model.num_classes} "
            f"classes: pass a fine-tuned checkpoint with model.checkpoint=/path (scripts/train.py makes one) or use "
            f"model.pretrained=false for random weights")
    return model


def cell_dataset(cfg: DictConfig) -> RecordDataset:
    """The cell's images: the range ``run.start`` / ``run.n_images`` of the dataset less ``dataset.exclude``,
    listed by id or shuffled with ``dataset.shuffle``."""
    d = cfg.dataset
    pre = Preprocess(size=tuple(cfg.model.input.size), mean=tuple(cfg.model.input.mean),
                     std=tuple(cfg.model.input.std), mode=cfg.model.input.resize)
    opts = OmegaConf.to_container(d.options, resolve=True)
    start = int(cfg.run.start)
    stop = None if cfg.run.n_images is None else start + int(cfg.run.n_images)
    cls = dataset_class(d.name)
    if cls.root_arg is not None and d.root is None:
        raise ValueError(f"dataset.root is not set for {d.name}: {cls.root_help}")
    excluded = excluded_ids(d.get("exclude"))
    shuffle = d.get("shuffle")
    # Excluded ids leave the listing before the range: run.n_images counts the images that remain
    # (e.g. Alzheimer test images less a training report's validation ids).  Both, and a shuffled
    # listing, range here over the whole dataset, so its filter must not run first.
    reorder = bool(excluded) or shuffle is not None
    if reorder and opts.get("single_box_only"):
        raise ValueError("dataset.options.single_box_only ranges the listing by id before filtering; it cannot be "
                         "combined with dataset.exclude or dataset.shuffle: leave those unset")
    span = {} if reorder else {"start": start, "stop": stop}
    dataset = build_dataset(d.name, root=d.root, preprocess=pre, **span, **opts)
    if reorder:
        dataset.records = select_records([rec for rec in dataset.records if rec.id not in excluded], start, stop,
                                         shuffle=shuffle)
    if not dataset.records:
        raise ValueError(f"no images to run: {d.name} has none in run.start={start}, run.n_images={cfg.run.n_images}"
                         f"{' less dataset.exclude' if excluded else ''}; widen the range or check dataset.options")
    return dataset


OWN_PACKAGES = ("benchmarks", "cluscam", "baselines", "scripts")
PROJECT = Path(__file__).resolve().parents[1]


def user_error(err: BaseException) -> str | None:
    """The one line that states a user's mistake, or None for a bug (whose traceback matters): Hydra's
    refusal of an override or config name, an operating-system error on a named file, or a ValueError,
    OSError, :class:`CellLocked` or :class:`zoo.WeightsUnavailable` that this suite's code raised."""
    from hydra.errors import CompactHydraException

    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if isinstance(err, CompactHydraException):
        return " ".join(lines)
    if isinstance(err, OSError) and err.errno is not None and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = Path(tb.tb_frame.f_code.co_filename).resolve() if tb is not None else Path("/")
    own = any(where.is_relative_to(PROJECT / package) for package in OWN_PACKAGES)  # by file: a script runs as __main__
    return " ".join(lines) if own and isinstance(err, (ValueError, OSError, CellLocked, zoo.WeightsUnavailable)) else None


@contextmanager
def one_line_errors(full: bool | None = None) -> Iterator[None]:
    """The body of a command line: a user's mistake (:func:`user_error`) ends it with one line, ``error: ...``,
    and exit status 2; a bug keeps its traceback, as does every error with ``full`` (default: the environment's
    ``HYDRA_FULL_ERROR=1``)."""
    try:
        yield
    except Exception as err:
        full = os.environ.get("HYDRA_FULL_ERROR") == "1" if full is None else full
        line = None if full else user_error(err)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def check_keys(cfg: DictConfig) -> None:
    """Refuse ``run.*`` and ``metrics.*`` keys that conf/config.yaml does not define (e.g. +run.batchsize=4)."""
    known = OmegaConf.load(CONF_DIR / "config.yaml")
    for section in ("run", "metrics"):
        for key in cfg[section]:
            if key not in known[section]:
                close = difflib.get_close_matches(key, list(known[section]), n=1)
                guess = f"did you mean {section}.{close[0]}? " if close else ""
                raise ValueError(f"unknown option {section}.{key}; {guess}{section} takes {', '.join(known[section])}")


def check_run(cfg: DictConfig) -> None:
    """Refuse ``run.*`` and faithfulness-test values out of range, naming the key (before any library sees them)."""
    r = cfg.run

    def integer(key: str, low: int, none_ok: bool = False) -> None:
        value = r[key]
        if value is None and none_ok:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            null = " or null (to the end of the dataset)" if none_ok else ""
            raise ValueError(f"run.{key}={value!r} must be an integer >= {low}{null}")

    integer("start", 0)
    integer("n_images", 0, none_ok=True)
    integer("batch_size", 1)
    integer("workers", 0)
    if r.chunk_size != "auto":
        integer("chunk_size", 1)
    if r.precision not in PRECISIONS:
        raise ValueError(f"run.precision={r.precision!r} is not one of {', '.join(PRECISIONS)}")
    if r.baseline not in ("mean", "black"):
        raise ValueError(f"run.baseline={r.baseline!r} is not one of mean, black")
    resolve_device(str(r.device))
    parse_shard(r.shard)
    m = cfg.metrics
    unknown = sorted(set(m.faithfulness or []) - set(TESTS))
    if unknown:
        raise ValueError(f"metrics.faithfulness: unknown test(s) {', '.join(unknown)}; use any of {', '.join(TESTS)}")
    for key in ("deletion_substrate", "insertion_substrate"):
        if m[key] not in SUBSTRATES:
            raise ValueError(f"metrics.{key}={m[key]!r} is not one of {', '.join(SUBSTRATES)}")


def check_supported(cfg: DictConfig) -> None:
    """Refuse a method that does not explain the model's family (e.g. AG-CAM, ViT attention only, on a CNN)."""
    cls = method_class(cfg.method.name)
    if not cls.supports(cfg.model.family):
        raise ValueError(f"method {cfg.method.name} explains {' and '.join(cls.families)} models only; model "
                         f"{cfg.model.name} is a {cfg.model.family}: choose another model or method")


def cell_model(cfg: DictConfig, device: torch.device) -> nn.Module:
    """The cell's model (:func:`cell_model_config`) on ``device``, in eval mode; random weights are
    seeded with ``run.seed``, so they are the same in every session."""
    torch.manual_seed(int(cfg.run.seed))
    return zoo.create_model(cell_model_config(cfg), device=device)


def cell_explainer(cfg: DictConfig, model: nn.Module) -> Explainer:
    """The cell's method for ``model``, hooked at the layer the model's config gives it, with
    :func:`cell_method_options`."""
    layer = zoo.layer_spec(cell_model_config(cfg), cfg.method.name)
    return create_explainer(cfg.method.name, model, layer, **cell_method_options(cfg))


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


PAPER_METRIC_OPTIONS = ("ag_variant", "le_region")  # metrics.* of the paper's metrics (the rest: faithfulness tests)
MODEL_IDENTITY = ("name", "family", "source", "arch", "weights", "kwargs", "num_classes", "pretrained", "input")


def cell_identity(cfg: DictConfig, model_cfg: DictConfig, options: dict) -> dict:
    """Everything that changes a cell's rows, resolved for its method: the model's builder, weights
    (a checkpoint by its content, not its path), input and the layer this method hooks; the method's
    options; the dataset, seed and metrics. Not the model's settings for other methods, nor the
    batch size, chunk size, device, image range or shard (nor ``dataset.shuffle``)."""
    keep = {k: v for k, v in options.items() if k != "chunk_size"}
    keep = method_class(cfg.method.name).effective_options(zoo.layer_shape(model_cfg, cfg.method.name), **keep)
    model = {k: OmegaConf.to_container(model_cfg, resolve=True)[k] for k in MODEL_IDENTITY}
    model["layer"] = asdict(zoo.layer_spec(model_cfg, cfg.method.name))
    model["checkpoint_sha256"] = file_sha256(model_cfg.checkpoint) if model_cfg.checkpoint else None
    # dataset.shuffle, like the range, picks images and changes no row
    dataset = {k: v for k, v in OmegaConf.to_container(cfg.dataset, resolve=True).items() if k != "shuffle"}
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True)
    if not metrics.get("faithfulness"):  # the paper's metrics alone: the options of the others change no row
        metrics = {k: v for k, v in metrics.items() if k in PAPER_METRIC_OPTIONS}
    return {"model": model, "method": {"name": cfg.method.name, **keep},
            "dataset": dataset, "seed": int(cfg.run.seed), "metrics": metrics}


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes (a missing file is reported when the model is built)."""
    file = Path(path).expanduser()
    return hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else f"missing: {path}"


def run_cell(cfg: DictConfig, progress: bool = True) -> pd.DataFrame:
    """Explain and evaluate every image of the cell's range (of its shard with ``run.shard=i/n``) not yet
    on disk (retrying those skipped as unreadable before) while holding the cell's (shard's) lock; return
    the rows of those images."""
    check_keys(cfg)
    check_run(cfg)
    check_supported(cfg)
    device = resolve_device(cfg.run.device)
    model_cfg = cell_model_config(cfg)
    options = cell_method_options(cfg)
    dataset = cell_dataset(cfg)
    store = _store(cfg, model_cfg, options)
    shard = parse_shard(cfg.run.shard)
    mine = range(len(dataset.ids)) if shard is None else shard.positions(len(dataset.ids), int(cfg.run.batch_size))
    with store.locked(shard):
        done, skipped = store.done_ids(), store.skipped_ids()
        todo = [i for i in mine if dataset.ids[i] not in done]
        retried = sum(dataset.ids[i] in skipped for i in todo)
        if retried:
            print(f"{model_cfg.name} / {cfg.method.name}: retrying {retried} image(s) skipped as unreadable before")
        if todo:
            _explain(store, Subset(dataset, todo), device, cfg, model_cfg, progress, shard)
        rows = store.finish()
    return rows[rows["id"].isin({dataset.ids[i] for i in mine})].reset_index(drop=True)


def _explain(store: CellStore, images: Subset, device: torch.device, cfg: DictConfig, model_cfg: DictConfig,
             progress: bool, shard: Shard | None = None) -> None:
    """Explain ``images`` batch by batch into ``store`` (whose folder appears with the first batch); the
    session's provenance names its shard."""
    store.open({**provenance(device), **({"shard": str(shard)} if shard else {})})
    model = cell_model(cfg, device).to(memory_format=zoo.memory_format(model_cfg, cfg.run.precision, device))
    explainer = cell_explainer(cfg, model)
    loader = DataLoader(images, batch_size=int(cfg.run.batch_size), collate_fn=collate,
                        num_workers=int(cfg.run.workers), pin_memory=device.type == "cuda")
    for batch in tqdm(loader, desc=f"{model_cfg.name}/{cfg.method.name}", unit="batch", disable=not progress):
        rows, maps = evaluate_batch(explainer, model, batch, device, cfg, model_cfg)
        store.write_part(rows, maps if cfg.run.save_maps else None)


def cell_store(cfg: DictConfig) -> CellStore:
    """The store of the cell ``cfg`` describes (for reading its rows and maps back: ``.rows()``, ``.maps()``)."""
    return _store(cfg, cell_model_config(cfg), cell_method_options(cfg))


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
    tests = list(cfg.metrics.faithfulness or [])
    if tests:  # beyond the paper: Deletion / Insertion, ROAD (their passes are not the method's)
        m = cfg.metrics
        chunk = 64 if cfg.run.chunk_size == "auto" else int(cfg.run.chunk_size)
        metrics.update(image_tests(model, images, sal, targets, tests, step=int(m.curve_step),
                                   deletion_substrate=m.deletion_substrate, insertion_substrate=m.insertion_substrate,
                                   percentiles=list(m.road_percentiles), noise=float(m.road_noise), seed=int(cfg.run.seed),
                                   pixel_mean=list(model_cfg.input.mean), pixel_std=list(model_cfg.input.std),
                                   chunk_size=chunk))
    rows = pd.DataFrame({
        "id": b.ids, "path": b.paths, "status": "ok", "label": b.labels.tolist(), "pred": targets.tolist(),
        **{k: v.detach().cpu().double().numpy() for k, v in metrics.items()},
        "n_boxes": b.num_boxes.tolist(), "seconds": seconds, "forward": passes.forward, "partial": passes.partial,
        "backward": passes.backward, "device": device_name(device),
        **{f"phase_{name}": sec for name, sec in explainer.last_phases.items()},
    })
    maps = dict(zip(b.ids, sal.cpu().numpy()))
    return (pd.concat([rows, skipped], ignore_index=True) if len(skipped) else rows), maps


__all__ = ["cell_dataset", "cell_explainer", "cell_identity", "cell_method_options", "cell_model", "cell_model_config",
           "cell_store", "compose", "evaluate_batch", "excluded_ids", "one_line_errors", "run_cell", "user_error"]
