"""Fine-tune a zoo model on the 4-class Alzheimer MRI dataset and save a checkpoint the runner loads.

    python -m scripts.train model=resnet18 model.pretrained=false dataset.root=/data/alzheimer_mri model.train.epochs=30
    python -m scripts.train model=efficientnet_lite0 dataset.root=/data/alzheimer_mri --out checkpoints
    python -m benchmarks.run model=resnet18 method=cluscam dataset=alzheimer dataset.root=/data/alzheimer_mri \\
        model.checkpoint=checkpoints/resnet18_alzheimer.pth

Positional ``key=value`` arguments are Hydra overrides of the runner's own config (``conf/``): the
model (``model=...``, ``model.pretrained``, ``model.checkpoint`` to start from a 4-class state_dict),
the dataset (``dataset=alzheimer`` is implied, ``dataset.root``) and the run settings the runner
already has: ``run.device`` (auto: CUDA when available), ``run.seed``, ``run.workers`` (DataLoader
processes) and ``run.precision`` (fp32 | bf16 autocast).  Images are preprocessed exactly as the
runner does (the model's ``input``: size, normalization, resize mode).  The training recipe is the
model's ``train`` config (epochs, batch size, optimizer, learning rate, weight decay, warmup,
augmentation; defaults in conf/model/base/common.yaml and vit.yaml): ``model.train.lr=1e-3``.
``--flags`` are the options only training has (protocol split, output, saved dtype).

Protocol (the paper, Appendix B: "fine-tuned on a training set of 5,120 samples, validated on 380
images, and tested on 900 images"): these numbers are the Hugging Face ``Falah/Alzheimer_MRI`` splits,
5,120 train and 1,280 test = 380 + 900, so by default (``--val-from test``) the validation images are a
class-stratified, seeded draw of ``--val-size`` images from the test split and the rest of it is the
test set.  ``--val-from train`` draws them from the training split instead and tests on the whole test
split.  Starting weights: the model's ImageNet weights with a new 4-class head when
``model.pretrained`` (offline, only ``efficientnet_lite0`` has them), random init with
``model.pretrained=false``.  Optimizer (``model.train``): AdamW (Loshchilov & Hutter, 2019) or SGD with Nesterov
momentum; the learning rate warms up linearly (Goyal et al., 2017) and then follows a cosine to zero
(Loshchilov & Hutter, 2017, without restarts), stepped per batch.  Optional light augmentation:
horizontal flip, rotation within +-10 degrees, scaling within +-10 %, shifts within +-5 %, applied on
the device.  Each split is decoded once and kept in memory on the training device.  The state with the
best validation accuracy (ties: lower validation loss) is kept, rounded to ``--save-dtype`` (float16 by
default: half the file, loaded back as float32 by ``model.checkpoint=``), and written as a plain
state_dict to ``<out>/<model>_alzheimer.pth``, with ``<model>_alzheimer.json`` beside it (provenance,
command, options, per-epoch history, class counts, held-out ids, and the saved weights' validation and
test accuracy, balanced accuracy, per-class recall and confusion matrix).

An interrupted training resumes: after each epoch the whole training state (weights, optimizer, schedule,
shuffling and augmentation generators, history, best state) goes atomically to
``<out>/<model>_alzheimer.resume.pt``; the same command continues after the last finished epoch, with
the same result as an uninterrupted run, also on another device (a long CPU training can finish on a
GPU), and deletes the file at the end.  A command that would train differently (other options, model,
seed, precision or images) refuses the file: delete it to start over.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from benchmarks import zoo
from benchmarks.data import RecordDataset, collate
from benchmarks.provenance import provenance, resolve_device
from benchmarks.store import unwritable
from benchmarks.api import cell_dataset, compose

DATASET = "alzheimer"
AUX_WEIGHT = 0.4  # weight of auxiliary heads (Inception-v3), as in PyTorch's transfer-learning tutorial
MAX_ROTATION = math.radians(10.0)
MAX_SCALE = 0.1
MAX_SHIFT = 0.05  # fraction of the image side
DTYPES = {"float16": torch.float16, "float32": torch.float32}  # --save-dtype: floating tensors of the checkpoint


@dataclass(frozen=True)
class TrainOptions:
    """The options only training has (everything else comes from the runner's config)."""

    epochs: int = 10
    batch_size: int = 32
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    val_size: int | float = 380  # an image count, or a fraction of the split in (0, 1)
    val_from: Literal["test", "train"] = "test"
    augment: bool = True
    out: Path = field(default=Path("checkpoints"))
    save_dtype: Literal["float16", "float32"] = "float16"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"--epochs and --batch-size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use 'adamw' or 'sgd'")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError(f"need --lr > 0, --weight-decay >= 0, --warmup-epochs >= 0; got {self.lr}, "
                             f"{self.weight_decay}, {self.warmup_epochs}")
        if self.save_dtype not in DTYPES:
            raise ValueError(f"--save-dtype must be one of {sorted(DTYPES)}, got {self.save_dtype!r}")
        if self.val_from not in ("test", "train"):
            raise ValueError(f"--val-from must be 'test' (the paper's 380 + 900 split) or 'train', got {self.val_from!r}")
        size = float(self.val_size)
        if not (size >= 1 and size.is_integer() or 0 < size < 1):
            raise ValueError(f"--val-size must be an image count >= 1 or a fraction in (0, 1), got {self.val_size}")
        object.__setattr__(self, "val_size", int(size) if size >= 1 else size)
        object.__setattr__(self, "out", Path(self.out))


# -- config and data -----------------------------------------------------------------------------
def compose_config(overrides: Sequence[str]) -> DictConfig:
    """The runner's config for ``overrides``, with ``dataset=alzheimer`` unless a dataset is named."""
    overrides = list(overrides)
    if not any(o.split("=", 1)[0].lstrip("+~") == "dataset" for o in overrides):
        overrides.insert(0, f"dataset={DATASET}")
    cfg = compose(overrides)
    if cfg.dataset.name != DATASET:
        raise ValueError(f"scripts/train.py fine-tunes on the Alzheimer MRI dataset (dataset={DATASET}); "
                         f"got dataset={cfg.dataset.name}")
    return cfg


def load_split(cfg: DictConfig, split: str) -> RecordDataset:
    """The whole ``split`` with the runner's preprocessing (and its errors for a missing root), listed by
    id: the seeded validation draw indexes this listing, so ``dataset.shuffle`` must not reorder it."""
    return cell_dataset(OmegaConf.merge(cfg, {"dataset": {"options": {"split": split}, "shuffle": None},
                                             "run": {"start": 0, "n_images": None}}))


def stratified_split(labels: Sequence[int], size: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) sorted indices: ``size`` images (a count, or a fraction) drawn per class in
    proportion to the class counts (largest remainders), reproducibly from ``seed``."""
    index = np.arange(len(labels))
    try:
        kept, held = train_test_split(index, test_size=size, stratify=np.asarray(labels), random_state=seed)
    except ValueError as err:
        raise ValueError(f"cannot hold out {size} of {len(labels)} images stratified by class ({err}); "
                         "change --val-size") from err
    return np.sort(kept), np.sort(held)


def make_splits(cfg: DictConfig, opts: TrainOptions) -> dict[str, Subset]:
    """Train, validation and test subsets (see the module docstring for the protocol)."""
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    source = test if opts.val_from == "test" else train
    kept, held = stratified_split(source.labels, opts.val_size, int(cfg.run.seed))
    everything = lambda ds: Subset(ds, list(range(len(ds))))  # noqa: E731
    if opts.val_from == "test":
        return {"train": everything(train), "val": Subset(test, held.tolist()), "test": Subset(test, kept.tolist())}
    return {"train": Subset(train, kept.tolist()), "val": Subset(train, held.tolist()), "test": everything(test)}


def subset_ids(subset: Subset) -> list[str]:
    return [subset.dataset.records[i].id for i in subset.indices]


def class_counts(subset: Subset) -> dict[str, int]:
    ds = subset.dataset
    counts = np.bincount([ds.records[i].label for i in subset.indices], minlength=len(ds.classes))
    return {c: int(n) for c, n in zip(ds.classes, counts)}


# -- model, augmentation, optimization ----------------------------------------------------------
def initial_model(cfg: DictConfig, device: torch.device | None = None) -> tuple[nn.Module, DictConfig, str]:
    """The model with the dataset's classes, its config and where its weights came from."""
    model_cfg = OmegaConf.merge(cfg.model, {"num_classes": int(cfg.dataset.num_classes)})
    torch.manual_seed(int(cfg.run.seed))
    model = zoo.create_model(model_cfg, device=device)
    if model_cfg.checkpoint is not None:
        init = f"checkpoint {model_cfg.checkpoint}"
    else:
        init = "imagenet" if model_cfg.pretrained else "random"
    return model, model_cfg, init


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flip, rotation, scale and shift of each image (parameters drawn on the CPU generator)."""
    return warp(images, torch.rand(images.shape[0], 5, generator=generator).to(images.device) * 2 - 1)


def warp(images: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Images [B, C, H, W] resampled at once (bilinear, border padding) by the transforms ``u`` [B, 5] in
    [-1, 1]: rotation, scale, x and y shift as fractions of their maxima, and a flip where u[:, 4] < 0."""
    angle, scale, shift = u[:, 0] * MAX_ROTATION, 1 + u[:, 1] * MAX_SCALE, u[:, 2:4] * 2 * MAX_SHIFT
    flip = torch.where(u[:, 4] < 0, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([flip * cos, -sin, shift[:, 0]], 1),
                         torch.stack([flip * sin, cos, shift[:, 1]], 1)], 1).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def make_optimizer(model: nn.Module, opts: TrainOptions, steps: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer and its per-step schedule: linear warmup, then cosine decay to zero."""
    params = [p for p in model.parameters() if p.requires_grad]
    if opts.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=opts.lr, momentum=0.9, nesterov=True, weight_decay=opts.weight_decay)
    warmup = min(steps, round(opts.warmup_epochs * steps / opts.epochs))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def loss_and_logits(output, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the main logits plus AUX_WEIGHT times that of any auxiliary head."""
    logits, *aux = output if isinstance(output, (tuple, list)) else (output,)
    loss = F.cross_entropy(logits.float(), labels)
    for extra in aux:
        loss = loss + AUX_WEIGHT * F.cross_entropy(extra.float(), labels)
    return loss, logits


@dataclass
class Decoded:
    """A split decoded once and kept in memory (on the training device): images [N, 3, H, W], labels [N],
    their ids, and the ids of unreadable images."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    skipped: list[str]


def decode(subset: Subset, workers: int, device: torch.device) -> Decoded:
    """Every image of ``subset`` through the runner's preprocessing, read once (every epoch reuses it)."""
    loader = DataLoader(subset, batch_size=256, collate_fn=collate, num_workers=workers)
    images, labels, ids, skipped = [], [], [], []
    for batch in loader:
        skipped += [s.id for s in batch.skipped()]
        ok = batch.select(batch.valid)
        images.append(ok.images.to(device))
        labels.append(ok.labels.to(device))
        ids += list(ok.ids)
    return Decoded(torch.cat(images), torch.cat(labels), ids, skipped)


def batches(n: int, batch_size: int, generator: torch.Generator | None, drop_last: bool) -> list[torch.Tensor]:
    """Index batches over ``n`` images: shuffled by ``generator`` when given, in order otherwise."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n > batch_size else n
    return list(order[:stop].split(batch_size))


def scores(confusion: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy (the mean recall of the classes present) and per-class recall of a
    confusion matrix (rows: true class, columns: prediction)."""
    support = confusion.sum(1)
    recall = np.divide(np.diag(confusion), support, out=np.full(len(support), np.nan), where=support > 0)
    return {"acc": float(np.trace(confusion) / max(confusion.sum(), 1)),
            "balanced_acc": float(np.nanmean(recall)) if (support > 0).any() else float("nan"),
            "recall": {c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, recall)},
            "confusion": confusion.tolist()}


def run_epoch(model: nn.Module, data: Decoded, n_classes: int, opts: TrainOptions, precision: str, desc: str,
              step: Callable[[torch.Tensor], None] | None = None, shuffle: torch.Generator | None = None,
              aug: torch.Generator | None = None) -> dict:
    """One pass over ``data``: training when ``step`` (an optimizer-step callable) is given, else
    evaluation; returns the mean loss, the accuracy and the confusion matrix [n_classes, n_classes]."""
    training = step is not None
    model.train(training)
    device = data.images.device
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    preds = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    fmt = next(model.parameters()).is_contiguous(memory_format=torch.channels_last) and data.images.dim() == 4
    with torch.set_grad_enabled(training):
        for idx in tqdm(batches(len(data.labels), opts.batch_size, shuffle, training), desc=desc, unit="batch",
                        leave=False, disable=not opts.progress):
            idx = idx.to(device)
            images, labels = data.images[idx], data.labels[idx]
            if aug is not None:
                images = augment(images, aug)
            if fmt:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss, logits = loss_and_logits(model(images), labels)
            if training:
                step(loss)
            sums += torch.stack([loss.detach().double() * len(labels), (logits.argmax(1) == labels).sum().double()])
            preds.append(torch.stack([labels, logits.argmax(1)]))
    n = sum(p.shape[1] for p in preds)
    loss, acc = (sums / max(n, 1)).tolist()
    pairs = torch.cat(preds, 1).cpu().numpy() if preds else np.zeros((2, 0), dtype=int)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (pairs[0], pairs[1]), 1)
    return {"loss": loss, "acc": acc, "n": n, "confusion": confusion}


def rounded_state(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's state on the CPU with floating tensors in ``dtype`` (what is saved)."""
    return {k: (v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype, copy=True))
            for k, v in model.state_dict().items()}


# -- training ------------------------------------------------------------------------------------
Step = Callable[[torch.Tensor], None]
Best = tuple[dict[str, torch.Tensor], dict]  # a float32 state and its history entry


def train(cfg: DictConfig, opts: TrainOptions, command: str = "") -> tuple[nn.Module, dict]:
    """Fine-tune ``cfg.model`` on the Alzheimer splits; write the best state (floating tensors in
    ``opts.save_dtype``) and its report to ``opts.out``; return the model (the saved state, eval mode)
    and the report, whose validation and test scores are those of the saved weights."""
    writable(opts.out)
    device, precision = resolve_device(cfg.run.device), str(cfg.run.precision)
    splits = make_splits(cfg, opts)
    model, model_cfg, init = initial_model(cfg, device)
    model = model.to(memory_format=zoo.memory_format(model_cfg, precision, device))
    # Decoded after the model is built: their DataLoaders draw from the generator its init seeded.
    data = {name: decode(subset, int(cfg.run.workers), device) for name, subset in splits.items()}
    classes = list(splits["train"].dataset.classes)
    checkpoint = opts.out / f"{model_cfg.name}_{cfg.dataset.name}.pth"
    resume = ResumeFile(checkpoint.with_suffix(".resume.pt"), fingerprint(cfg, model_cfg, opts, splits))
    start = time.perf_counter()
    history, (best, chosen), earlier = fit(model, model_cfg.name, data, classes, opts, cfg, resume)
    state, final = evaluate_saved(model, best, data, classes, opts, precision)
    save_state(state, checkpoint)
    report = {"model": model_cfg.name, "arch": model_cfg.arch, "dataset": cfg.dataset.name,
              "checkpoint": str(checkpoint), "saved_dtype": opts.save_dtype, "init": init, "command": command,
              "seed": int(cfg.run.seed), "epochs": opts.epochs, "best_epoch": chosen["epoch"],
              **split_report(splits, data, final, classes), "history": history, **settings(cfg, model_cfg, opts),
              "seconds": earlier + time.perf_counter() - start, "provenance": provenance(device)}
    checkpoint.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    resume.path.unlink(missing_ok=True)
    return model.eval(), report


def writable(folder: Path) -> None:
    """Refuse an output folder that cannot be created and written (before any data is read, not after
    the first epoch)."""
    reason = unwritable(folder)
    if reason is not None:
        raise ValueError(f"cannot write the output folder {folder} ({reason}); pass --out a folder you can create "
                         "and write")


def fingerprint(cfg: DictConfig, model_cfg: DictConfig, opts: TrainOptions, splits: dict[str, Subset]) -> str:
    """What decides the training's result: the options, model, seed, precision and each split's image ids
    (not the device, workers, output folder or dataset path)."""
    what = {"options": {k: v for k, v in asdict(opts).items() if k not in ("out", "progress")},
            "model": OmegaConf.to_container(model_cfg, resolve=True), "seed": int(cfg.run.seed),
            "precision": str(cfg.run.precision), "ids": {name: subset_ids(s) for name, s in splits.items()}}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ResumeFile:
    """The training state after the last finished epoch, in ``path``, for the run ``fingerprint`` names."""

    path: Path
    fingerprint: str

    def load(self) -> dict | None:
        """The saved state (None when there is none); a state of another run is an error."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(f"{self.path} holds an interrupted training with other options, model, seed, "
                             "precision or images than this command; rerun that command to finish it, or delete "
                             "the file to start over")
        return state

    def save(self, state: dict) -> None:
        """Write ``state`` atomically (an interruption leaves the previous epoch's file intact)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({**state, "fingerprint": self.fingerprint}, tmp)
        os.replace(tmp, self.path)


def fit(model: nn.Module, name: str, data: dict[str, Decoded], classes: list[str], opts: TrainOptions,
        cfg: DictConfig, resume: ResumeFile) -> tuple[list[dict], Best, float]:
    """Train for ``opts.epochs`` epochs (after those ``resume`` holds), validating after each and saving
    the state to ``resume``; return the per-epoch history, the best state (validation accuracy, ties:
    lower validation loss) and the seconds spent by earlier, interrupted runs."""
    seed, precision = int(cfg.run.seed), str(cfg.run.precision)
    steps = opts.epochs * len(batches(len(data["train"].labels), opts.batch_size, None, True))
    optimizer, scheduler = make_optimizer(model, opts, steps)
    step = optimizer_step(optimizer, scheduler)
    shuffle = torch.Generator().manual_seed(seed)
    aug = torch.Generator().manual_seed(seed + 1) if opts.augment else None
    history, best, earlier = [], None, 0.0
    if (saved := resume.load()) is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        shuffle.set_state(saved["shuffle"])
        if aug is not None:
            aug.set_state(saved["aug"])
        history, best, earlier = saved["history"], (saved["best"], saved["best_entry"]), saved["seconds"]
        print(f"{name}: resuming after epoch {len(history)}/{opts.epochs} from {resume.path}", file=sys.stderr)
    start = time.perf_counter()
    for epoch in range(len(history) + 1, opts.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        tr = run_epoch(model, data["train"], len(classes), opts, precision, f"epoch {epoch} train", step, shuffle, aug)
        va = run_epoch(model, data["val"], len(classes), opts, precision, f"epoch {epoch} val")
        h = {"epoch": epoch, "lr": lr, **{f"train_{k}": tr[k] for k in ("loss", "acc", "n")},
             **{f"val_{k}": va[k] for k in ("loss", "acc", "n")},
             "val_balanced_acc": scores(va["confusion"], classes)["balanced_acc"]}
        history.append(h)
        print(f"{name} epoch {epoch}/{opts.epochs}: train loss {h['train_loss']:.4f} acc {h['train_acc']:.4f}, "
              f"val loss {h['val_loss']:.4f} acc {h['val_acc']:.4f}", file=sys.stderr)
        if best is None or (h["val_acc"], -h["val_loss"]) > (best[1]["val_acc"], -best[1]["val_loss"]):
            best = (rounded_state(model, torch.float32), h)
        resume.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "shuffle": shuffle.get_state(),
                     "aug": aug.get_state() if aug is not None else None, "history": history, "best": best[0],
                     "best_entry": best[1], "seconds": earlier + time.perf_counter() - start})
    return history, best, earlier


def optimizer_step(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR) -> Step:
    """The training step of a batch's loss: backward, optimizer step, schedule step."""
    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    return step


def evaluate_saved(model: nn.Module, best: dict[str, torch.Tensor], data: dict[str, Decoded], classes: list[str],
                   opts: TrainOptions, precision: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Load ``best`` rounded to ``opts.save_dtype`` (the weights that are saved) into ``model`` and
    score them on the validation and test splits; return the rounded state and the scores."""
    model.load_state_dict(best)
    state = rounded_state(model, DTYPES[opts.save_dtype])
    model.load_state_dict(state)
    final = {name: run_epoch(model, data[name], len(classes), opts, precision, name) for name in ("val", "test")}
    return state, {name: {"loss": r["loss"], "n": r["n"], **scores(r["confusion"], classes)} for name, r in final.items()}


def save_state(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Write ``state`` as a plain state_dict to ``path`` (its folder made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def split_report(splits: dict[str, Subset], data: dict[str, Decoded], final: dict, classes: list[str]) -> dict:
    """The report's entries on the splits: the saved weights' scores, class counts and image ids."""
    return {
        "val_acc": final["val"]["acc"], "val_balanced_acc": final["val"]["balanced_acc"], "val_loss": final["val"]["loss"],
        "test_acc": final["test"]["acc"], "test_balanced_acc": final["test"]["balanced_acc"],
        "test_loss": final["test"]["loss"], "scores": final, "classes": classes,
        "class_counts": {name: class_counts(subset) for name, subset in splits.items()},
        "val_ids": subset_ids(splits["val"]), "test_ids": data["test"].ids,
        "skipped": sorted({i for d in data.values() for i in d.skipped}),
    }


def settings(cfg: DictConfig, model_cfg: DictConfig, opts: TrainOptions) -> dict:
    """The report's record of the training options and the resolved model, dataset and run settings."""
    return {"options": {**asdict(opts), "out": str(opts.out)},
            "config": {"model": OmegaConf.to_container(model_cfg, resolve=True),
                       "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
                       "run": {k: cfg.run[k] for k in ("device", "seed", "workers", "precision")}}}


# -- command line --------------------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> tuple[dict, list[str]]:
    """(the options only training has, as TrainOptions keywords; Hydra overrides) of a command line.
    The recipe (epochs, batch, optimizer, rate, decay, warmup, augmentation) is the model's ``train``
    config: override it as ``model.train.epochs=30``."""
    d = TrainOptions()
    p = argparse.ArgumentParser(prog="python -m scripts.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="Hydra overrides: model=..., dataset.root=..., model.pretrained=false, "
                                                "model.train.epochs=..., run.device=..., run.seed=..., run.workers=..., "
                                                "run.precision=...")
    p.add_argument("--val-size", type=float, default=d.val_size,
                   help="validation images: a count (default 380, the paper's) or a fraction such as 0.1")
    p.add_argument("--val-from", choices=("test", "train"), default=d.val_from,
                   help="split the validation images come from (test: the paper's 5,120 / 380 / 900)")
    p.add_argument("--out", type=Path, default=d.out, help="folder of <model>_alzheimer.pth and .json (made when missing; checked writable before "
                                                          "anything is read)")
    p.add_argument("--save-dtype", choices=sorted(DTYPES), default=d.save_dtype,
                   help="floating tensors of the saved state_dict (float16 halves the file; the zoo loads it as float32)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=d.progress)
    args = vars(p.parse_intermixed_args(list(argv)))
    overrides = args.pop("overrides")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        p.error(f"positional arguments must be Hydra overrides key=value, got {bad}")
    return args, overrides


RECIPE = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "warmup_epochs", "augment")


def options(cfg: DictConfig, **flags) -> TrainOptions:
    """The training options of ``cfg``: its model's ``train`` recipe (conf/model/base/common.yaml) and
    the command line's ``flags``."""
    recipe = cfg.model.get("train")
    if recipe is None:
        raise ValueError(f"model {cfg.model.name!r} has no training recipe: add a `train:` block to its config "
                         "(conf/model/base/common.yaml has the default)")
    unknown = sorted(set(recipe) - set(RECIPE))
    if unknown:
        raise ValueError(f"unknown model.train keys {unknown}; the recipe takes {', '.join(RECIPE)}")
    return TrainOptions(**{k: recipe[k] for k in RECIPE}, **flags)


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags, overrides = parse_args(argv)
    command = shlex.join(["python", "-m", "scripts.train", *argv])
    try:
        cfg = compose_config(overrides)
        _, report = train(cfg, options(cfg, **flags), command)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    print(f"{report['model']}: val acc {report['val_acc']:.4f} (epoch {report['best_epoch']}), "
          f"test acc {report['test_acc']:.4f}; wrote {report['checkpoint']}\n"
          f"use it with: python -m benchmarks.run model={report['model']} dataset={DATASET} "
          f"dataset.root={cfg.dataset.root} model.checkpoint={report['checkpoint']}")
    return report


if __name__ == "__main__":
    main()
