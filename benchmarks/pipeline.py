"""The paper's protocol as one planned, resumable run (``python -m scripts.reproduce``, ``make paper``).

A run is a list of steps, each a list of jobs; a job is a command a user could type (``python -m
scripts.train ...``, ``python -m benchmarks.run ...``) with what it costs (images, passes per image,
device seconds, disk) and whether it is done.  Steps, in order:

* ``train``: every Alzheimer checkpoint that is missing, fine-tuned from ImageNet weights with the
  model's ``train`` recipe under App. B's split (:mod:`scripts.train`);
* ``select``: Table 3 (Alg. 2-3, Eq. 10) on images the tables do not evaluate;
* ``ilsvrc``, ``alzheimer``: the runner cells of every model x method (and ``extra_methods``);
* ``table1``: Table 1's meta-representations on its own images;
* ``runtime``: the runtime cells on App. B's performance images, in ``<out>/runs-runtime``;
* ``ablation``: Fig. 5's ClusCAM variants;
* ``render``: the tables, figures and the claims report (always rerun: they only read rows).

Each step skips what is done (a checkpoint on disk, a cell with every image's row, a selection's JSON),
and the runner's cells resume image by image, so the same command continues an interrupted run.
A target (``table2``, ``figures``, ...) runs only the steps its output needs.
"""
from __future__ import annotations

import csv
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from baselines import method_class, method_names
from benchmarks import cost, hubcache, zoo
from benchmarks.ablation import ABLATION
from benchmarks.api import cell_dataset, cell_store, compose
from benchmarks.store import unwritable
from cluscam.base import PassCount
from cluscam.selection import select_hyperparameters

PIPELINE_DIR = zoo.CONF_DIR / "pipeline"
STEPS = ("train", "select", "ilsvrc", "alzheimer", "table1", "runtime", "ablation", "render")
# What each target needs: its steps, and the tables it renders ("all": every table, figure and the report).
TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "paper": (STEPS, ("all",)),
    "table1": (("table1",), ()),
    "table2": (("train", "ilsvrc", "alzheimer", "render"), ("2", "2ci")),
    "table3": (("train", "select"), ()),
    "table4": (("ilsvrc", "render"), ("4",)),
    "table5": (("ilsvrc", "render"), ("5",)),
    "table6": (("ilsvrc", "render"), ("6",)),
    "table7": (("train", "alzheimer", "render"), ("7",)),
    "table8": (("ilsvrc", "render"), ("8",)),
    "table9": (("ilsvrc", "render"), ("9",)),
    "figures": (("ilsvrc", "alzheimer", "table1", "runtime", "ablation", "render"), ("figures",)),
    "claims": (("train", "ilsvrc", "alzheimer", "render"), ("claims",)),
}
# The Alzheimer data of App. B when its root is not there to count: 5,120 training and 1,280 test images.
ALZHEIMER_SPLITS = {"train": 5120, "test": 1280}
ROW_BYTES = 600  # a runner row in rows.csv and its part file (committed cells: 250-300 bytes each)


# -- settings ------------------------------------------------------------------------------------
def load(name: str = "paper", overrides: Sequence[str] = ()) -> DictConfig:
    """The pipeline settings ``conf/pipeline/<name>.yaml`` (over the files its ``defaults:`` names) with
    ``key=value`` overrides."""
    path = PIPELINE_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PIPELINE_DIR.glob("*.yaml")))
        raise ValueError(f"no pipeline settings {name!r}; choose one of {known}")
    settings = zoo._composed(path)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ValueError(f"settings are key=value overrides, got {bad}")
    unknown = [o.split("=", 1)[0] for o in overrides if OmegaConf.select(settings, o.split("=", 1)[0].lstrip("+"),
                                                                         default="<missing>") == "<missing>"]
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; conf/pipeline/paper.yaml lists every setting")
    settings = OmegaConf.merge(settings, OmegaConf.from_dotlist(list(overrides)))
    for key in ("models", "methods", "train_overrides", "run_overrides"):
        value = settings[key]
        if isinstance(value, str):  # models=resnet18,vit_b_16 from a Makefile variable
            settings[key] = [v for v in value.split(",") if v]
    unknown_models = [m for m in settings.models if m not in zoo.MODEL_NAMES]
    if unknown_models:
        raise ValueError(f"unknown model(s) {unknown_models}; known models: {', '.join(zoo.MODEL_NAMES)}")
    return settings


def methods(settings: DictConfig) -> list[str]:
    """The methods of every cell: ``methods``, or every registered method of both families."""
    return list(settings.methods) if settings.methods else method_names(supports=zoo.FAMILIES)


def out(settings: DictConfig) -> Path:
    return Path(settings.out).expanduser()


def checkpoints(settings: DictConfig) -> Path:
    return Path(settings.checkpoints).expanduser() if settings.checkpoints else out(settings) / "checkpoints"


def checkpoint(settings: DictConfig, model: str) -> Path:
    return checkpoints(settings) / f"{model}_alzheimer.pth"


# -- jobs ----------------------------------------------------------------------------------------
@dataclass
class Job:
    """One command of a step, what it costs and whether it is done.  ``passes`` are per image of the
    work the rows record (explanation, or a training image's epochs); ``extra`` are forward passes
    per image outside it (the metrics' passes), priced in the device time but not in the estimate set
    beside a measured time.  Cells sharing ``group`` run in one runner process (``-m method=a,b``)."""

    step: str
    label: str
    argv: list[str]
    model: str | None = None
    images: int = 0
    passes: PassCount = field(default_factory=PassCount)
    extra: float = 0.0
    done: bool = False
    measured_s: float | None = None
    disk: int = 0
    dataset: str | None = None
    hub: bool = False  # needs the model's ImageNet hub weights
    method: str | None = None
    group: tuple | None = None

    def seconds(self, throughput: cost.Throughput | None, extra: bool = True) -> float | None:
        """Estimated device seconds (None for a job without device work to price)."""
        if self.model is None or throughput is None or not self.images:
            return None
        p = self.passes
        passes = PassCount(p.forward + (self.extra if extra else 0.0), p.partial, p.backward)
        return cost.seconds(self.model, passes, self.images, throughput)


@dataclass
class Step:
    name: str
    jobs: list[Job]


def _run_args(settings: DictConfig) -> list[str]:
    return [f"run.device={settings.device}", f"run.precision={settings.precision}",
            f"run.batch_size={settings.batch_size}", f"run.workers={settings.workers}"]


def _roots(settings: DictConfig, dataset: str) -> list[str]:
    root = settings.ilsvrc_root if dataset == "ilsvrc" else settings.alzheimer_root
    return [f"dataset={dataset}", f"dataset.root={root}"]


def _count(settings: DictConfig, overrides: list[str], fallback: int | None) -> int:
    """Images of a range: listed from the data when its root is set, else the protocol's number."""
    try:
        return len(cell_dataset(compose(overrides)))
    except (ValueError, FileNotFoundError, OSError):
        if fallback is None:
            raise
        return fallback


def _alz_counts(settings: DictConfig) -> dict[str, int]:
    """Training, validation and evaluated test images of the Alzheimer protocol."""
    counts = dict(ALZHEIMER_SPLITS)
    if settings.alzheimer_root:
        for split in counts:
            counts[split] = _count(settings, [*_roots(settings, "alzheimer"), f"dataset.options.split={split}",
                                              "dataset.shuffle=null"], counts[split])
    val = int(settings.alzheimer.val_size)
    test = counts["test"] - val
    n = settings.alzheimer.images
    return {"train": counts["train"], "val": val, "held_out": test, "test": test if n is None else min(int(n), test)}


def train_jobs(settings: DictConfig) -> list[Job]:
    """Fine-tune each model whose Alzheimer checkpoint is missing (scripts.train, App. B's split)."""
    counts = _alz_counts(settings)
    jobs = []
    for m in settings.models:
        ck = checkpoint(settings, m)
        cfg = compose([f"model={m}", "dataset=alzheimer", *settings.train_overrides])
        recipe = cfg.model.train
        epochs, n = int(recipe.epochs), counts["train"]
        evaluated = counts["val"] + counts["held_out"]
        # per training image: each epoch's step and validation, then the saved weights' validation and test
        passes = PassCount(forward=epochs * (1 + counts["val"] / n) + evaluated / n, backward=epochs)
        report = ck.with_suffix(".json")
        measured = json.loads(report.read_text()).get("seconds") if report.is_file() else None
        argv = ["scripts.train", f"model={m}", f"dataset.root={settings.alzheimer_root}",
                f"run.device={settings.device}", f"run.precision={settings.precision}",
                f"run.workers={settings.workers}", *settings.train_overrides, "--out", str(checkpoints(settings)),
                "--val-size", str(settings.alzheimer.val_size), "--no-progress"]
        jobs.append(Job("train", f"{m} ({epochs} epochs, batch {recipe.batch_size}, lr {recipe.lr:g})", argv, m, n,
                        passes, done=ck.is_file(), measured_s=measured, disk=2 * _parameters(m) + 200_000,
                        dataset="alzheimer", hub=True))
    return jobs


def _parameters(model: str) -> int:
    import torch

    with torch.device("meta"):
        return sum(p.numel() for p in zoo._build(zoo.model_config(model), 1000).parameters())


def _ks(settings: DictConfig) -> list[int]:
    default = inspect.signature(select_hyperparameters).parameters["ks"].default
    return list(settings.select.ks or default)


def select_jobs(settings: DictConfig, datasets: Iterable[str]) -> list[Job]:
    """Table 3 per model: ILSVRC images after the evaluated range; Alzheimer validation ids."""
    ks = _ks(settings)
    passes = PassCount(forward=sum(1 + k for k in ks))  # a capture and K scored groups for each candidate K
    n_eval, n_sel = int(settings.ilsvrc.images), int(settings.select.images)
    jobs = []
    for dataset in datasets:
        folder = out(settings) / "tables" / ("alzheimer" if dataset == "alzheimer" else "")
        for m in settings.models:
            overrides = [f"model={m}", *_roots(settings, dataset), *_run_args(settings)]
            if dataset == "ilsvrc":
                overrides += [f"run.start={n_eval}", f"run.n_images={n_sel}"]
                flags = ["--evaluated", str(n_eval)]
                images = n_sel
            else:
                ck = checkpoint(settings, m)
                overrides += [f"model.checkpoint={ck}", f"run.n_images={n_sel}"]
                flags = ["--val-ids", str(ck.with_suffix(".json"))]
                images = min(n_sel, int(settings.alzheimer.val_size))
            # overrides first (the script reads them before its options); --ks last: it takes every value after it
            argv = ["scripts.select_hparams", *overrides, "--out", str(folder), *flags, "--ks", *map(str, ks)]
            jobs.append(Job("select", f"{dataset} {m}", argv, m, images, passes,
                            done=(folder / "table3" / f"{m}.json").is_file(), disk=50_000, dataset=dataset,
                            hub=dataset == "ilsvrc"))
    return jobs


def cell_overrides(settings: DictConfig, dataset: str, model: str, runs: Path, images: int | None) -> list[str]:
    """The runner overrides of a cell of ``model`` on ``dataset`` (its method apart)."""
    base = [f"model={model}", *_roots(settings, dataset), f"run.out_dir={runs}", *_run_args(settings),
            f"run.n_images={'null' if images is None else images}", *settings.run_overrides]
    if dataset == "alzheimer":
        ck = checkpoint(settings, model)
        base += [f"model.checkpoint={ck}", f"dataset.exclude={ck.with_suffix('.json')}"]
    return base


def cell_jobs(settings: DictConfig, step: str, dataset: str, runs: Path, images: int | None,
              method_list: Sequence[str], extra_methods: bool = True) -> list[Job]:
    """One job per (model, method) cell that the method supports, priced by its declared passes."""
    n = _alz_counts(settings)["test"] if dataset == "alzheimer" else int(images)
    jobs = []
    for m in settings.models:
        cfg = zoo.model_config(m)
        own = list(settings.extra_methods.get(m, [])) if extra_methods else []
        base = cell_overrides(settings, dataset, m, runs, images)
        for method in [*method_list, *[x for x in own if x not in method_list]]:
            cls = method_class(method)
            if not cls.supports(cfg.family):
                continue
            passes = cls.expected_passes(zoo.layer_shape(cfg, method), **zoo.method_options(cfg, method))
            done, measured = _cell_state(base, method, runs / dataset / m / method)
            jobs.append(Job(step, f"{dataset} {m} {method}", ["benchmarks.run", *base, f"method={method}"], m, n,
                            passes, cost.METRIC_FORWARDS, done, measured, n * ROW_BYTES, dataset,
                            hub=dataset != "alzheimer", method=method, group=(step, dataset, m)))
    return jobs


def _cell_state(base: list[str], method: str, folder: Path) -> tuple[bool, float | None]:
    """(whether the cell has a row for every image of its range, its rows' seconds) without running it."""
    if not folder.is_dir():
        return False, None
    try:
        cfg = compose([*base, f"method={method}"])
        ids = set(cell_dataset(cfg).ids)
        store = cell_store(cfg)
    except (ValueError, FileNotFoundError, OSError):
        return False, None
    done = ids <= store.done_ids()
    if not (store.dir / "rows.csv").is_file():
        return done, None
    rows = store.rows()
    rows = rows[rows["id"].isin(ids) & (rows["status"] == "ok")]
    return done, float(rows["seconds"].sum()) if len(rows) else None


def table1_job(settings: DictConfig) -> Job:
    """Table 1 (Sec. 4.1): each group's meta-representation and each of its members alone."""
    m, n = settings.table1.model, int(settings.table1.images)
    cfg = zoo.model_config(m)
    passes = PassCount(forward=1 + int(cfg.cluscam.k) + int(cfg.layer.shape[0]))
    meta = out(settings) / "tables" / "table1.meta.json"
    done = meta.is_file() and json.loads(meta.read_text())["images_per_cell"]["images"]["min"] >= n
    argv = ["scripts.table1", *_table1_overrides(settings), "--out", str(out(settings) / "tables"), "--no-progress"]
    return Job("table1", f"ilsvrc {m} ({passes.forward:.0f} passes per image)", argv, m, n, passes, done=done,
               disk=n * (int(cfg.layer.shape[0]) + 60) * 60, dataset="ilsvrc", hub=True)


def _table1_overrides(settings: DictConfig) -> list[str]:
    return [f"model={settings.table1.model}", *_roots(settings, "ilsvrc"), *_run_args(settings),
            f"run.n_images={settings.table1.images}", f"run.out_dir={out(settings) / 'runs'}"]


def ablation_job(settings: DictConfig) -> Job:
    """Fig. 5: one ClusCAM cell per ablation variant."""
    m, n = settings.ablation.model, int(settings.ablation.images)
    cfg = zoo.model_config(m)
    total = PassCount()
    for variant in ABLATION.values():
        opts = {**zoo.method_options(cfg, "cluscam"),
                **{o.split("=", 1)[0].rsplit(".", 1)[-1]: _value(o.split("=", 1)[1]) for o in variant}}
        p = method_class("cluscam").expected_passes(tuple(cfg.layer.shape), **opts)
        total = PassCount(total.forward + p.forward, total.partial + p.partial, total.backward + p.backward)
    figures = out(settings) / "figures"
    argv = ["scripts.figures", "fig5", f"model={m}", *_roots(settings, "ilsvrc"), *_run_args(settings),
            f"run.out_dir={out(settings) / 'runs-ablation'}", "--images", str(n), "--run", "--out", str(figures)]
    return Job("ablation", f"ilsvrc {m}: {len(ABLATION)} variants", argv, m, n, total,
               cost.METRIC_FORWARDS * len(ABLATION), (figures / "fig5.png").is_file(),
               disk=n * ROW_BYTES * len(ABLATION), dataset="ilsvrc", hub=True)


def _value(text: str):
    """An override's value as Hydra reads it (``none`` a string, ``0`` an int, ``1.5`` a float)."""
    return OmegaConf.from_dotlist([f"v={text}"]).v


def render_jobs(settings: DictConfig, tables: Sequence[str]) -> list[Job]:
    """The tables, figures and claims report from the rows (cheap; always rerun)."""
    o = out(settings)
    runs, jobs = o / "runs", []
    names = [t for t in tables if t not in ("all", "figures", "claims")]
    if "all" in tables or names:
        jobs.append(Job("render", "tables " + (" ".join(names) or "all"),
                        ["scripts.tables", "--runs", str(runs), "--out", str(o / "tables"),
                         *(["--tables", *names] if names else [])]))
    if "all" in tables or "figures" in tables:
        fig = [f"model={settings.figures.model}", *_roots(settings, "ilsvrc"), *_run_args(settings),
               f"run.out_dir={o / 'runs-figures'}"]
        timed = o / "runs-runtime" if int(settings.runtime.images) else runs
        figures = str(o / "figures")
        jobs += [Job("render", f"figure {f}", ["scripts.figures", f, *_table1_overrides(settings), "--out", figures],
                     settings.table1.model, hub=True) for f in ("fig2", "fig9")]
        shown = ["--n", str(settings.figures.images), "--methods",
                 *[m for m in (settings.figures.methods or methods(settings))
                   if method_class(m).supports("cnn") and method_class(m).supports("vit")]]
        vit = [o if not o.startswith("model=") else f"model={settings.figures.vit_model}" for o in fig]
        jobs += [Job("render", "figure fig3", ["scripts.figures", "fig3", *fig, *shown, "--run", "--out", figures],
                     settings.figures.model, hub=True),
                 Job("render", "figure fig4", ["scripts.figures", "fig4", *vit, *shown, "--run", "--out", figures],
                     settings.figures.vit_model, hub=True),
                 Job("render", "figure fig8", ["scripts.figures", "fig8", *fig, "--n", str(settings.figures.images),
                                               "--out", figures], settings.figures.model, hub=True)]
        jobs.append(Job("render", "figure fig6 (ilsvrc)", ["scripts.figures", "fig6", "--runs", str(timed),
                                                          "--dataset", "ilsvrc", "--log", "--out", figures]))
        jobs.append(Job("render", "figure fig6 (alzheimer)", ["scripts.figures", "fig6", "--runs", str(runs), "--dataset",
                                                             "alzheimer", "--log", "--out", f"{figures}/alzheimer"]))
    if "all" in tables or "claims" in tables:
        jobs.append(Job("render", "claims report", ["scripts.claims", "--runs", str(runs), "--out",
                                                    str(o / "REPRODUCTION.md"), "--tables", str(o / "tables"),
                                                    "--ablation-runs", str(o / "runs-ablation"),
                                                    *(["--random-weights"] if settings.random_weights else [])]))
    return jobs


def build(settings: DictConfig, targets: Sequence[str] = ("paper",)) -> list[Step]:
    """The steps the ``targets`` need, in order, each job's state read from disk."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    wanted = {s for t in targets for s in TARGETS[t][0]}
    tables = [x for t in targets for x in TARGETS[t][1]]
    o, ms = out(settings), methods(settings)
    if "table5" in targets and "vit_b_16" not in settings.models:
        raise ValueError("table5 compares AG-CAM on vit_b_16: add it to models")
    steps = []
    if "train" in wanted:
        steps.append(Step("train", [j for j in train_jobs(settings)]))
    if "select" in wanted:
        steps.append(Step("select", select_jobs(settings, ("ilsvrc", "alzheimer"))))
    if "ilsvrc" in wanted:
        steps.append(Step("ilsvrc", cell_jobs(settings, "ilsvrc", "ilsvrc", o / "runs", int(settings.ilsvrc.images), ms)))
    if "alzheimer" in wanted:
        steps.append(Step("alzheimer", cell_jobs(settings, "alzheimer", "alzheimer", o / "runs",
                                                 settings.alzheimer.images, ms, extra_methods=False)))
    if "table1" in wanted:
        steps.append(Step("table1", [table1_job(settings)]))
    if "runtime" in wanted and int(settings.runtime.images):
        steps.append(Step("runtime", cell_jobs(settings, "runtime", "ilsvrc", o / "runs-runtime",
                                               int(settings.runtime.images), list(settings.runtime.methods or ms))))
    if "ablation" in wanted:
        steps.append(Step("ablation", [ablation_job(settings)]))
    if "render" in wanted:
        steps.append(Step("render", render_jobs(settings, tables)))
    return steps


def models_loaded(steps: Sequence[Step]) -> list[str]:
    """Every model whose hub weights a job loads (the run's and the figures')."""
    return sorted({j.model for s in steps for j in s.jobs if j.model and j.hub})


# -- the plan ------------------------------------------------------------------------------------
def throughputs(steps: Sequence[Step], device: str, precision: str = "fp32", perf_csv: str | Path | None = None,
                batch: int = 32) -> dict[str, cost.Throughput]:
    """Each priced model's forward throughput: from ``perf_csv`` when given, else measured on ``device``."""
    models = sorted({j.model for s in steps for j in s.jobs if j.model})
    if perf_csv is not None:
        return cost.from_perf_csv(perf_csv, models, precision)
    from benchmarks.provenance import resolve_device

    dev = resolve_device(device, key="device")
    return {m: cost.measure(m, dev, precision, batch) for m in models}


def plan_rows(steps: Sequence[Step], rates: dict[str, cost.Throughput]) -> pd.DataFrame:
    """One row per job: step, job, state, images, passes per image, estimated device seconds (with the
    metric passes), the estimate comparable to a measured time (without them), the measured time, disk."""
    rows = []
    for s in steps:
        for j in s.jobs:
            rate = rates.get(j.model) if j.model else None
            rows.append({"step": s.name, "job": j.label, "state": "done" if j.done else "to do", "images": j.images,
                         "forward": j.passes.forward, "partial": j.passes.partial, "backward": j.passes.backward,
                         "extra_forward": j.extra, "estimate_s": j.seconds(rate),
                         "estimate_rows_s": j.seconds(rate, extra=False), "measured_s": j.measured_s,
                         "disk_bytes": j.disk})
    return pd.DataFrame(rows)


def duration(seconds: float | None) -> str:
    if seconds is None or pd.isna(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render_plan(rows: pd.DataFrame, rates: dict[str, cost.Throughput], settings: DictConfig) -> str:
    """The plan as Markdown: every job, each step's total, the total to do, and the throughputs used."""
    def fmt(r) -> str:
        passes = f"{r.forward:g} / {r.partial:g} / {r.backward:g}" + (f" (+{r.extra_forward:g})" if r.extra_forward else "")
        beside = f"{duration(r.measured_s)} (est. {duration(r.estimate_rows_s)})" if r.measured_s is not None \
            and not pd.isna(r.measured_s) else "-"
        return (f"| {r.step} | {r.job} | {r.state} | {r.images:,} | {passes} | {duration(r.estimate_s)} | {beside} | "
                f"{size(r.disk_bytes)} |")

    lines = [f"# Plan: {out(settings)}", "",
             f"Models: {', '.join(settings.models)}; device {settings.device}, {settings.precision}. Passes per image: "
             "forward / partial / backward (+ the metrics' forward passes of a runner cell).", "",
             "| step | job | state | images | passes per image | device time (est.) | measured (est. of the same work) | disk |",
             "|---|---|---|---:|---|---:|---:|---:|"]
    lines += [fmt(r) for r in rows.itertuples()]
    todo = rows[rows["state"] == "to do"]
    lines += ["", "| step | jobs | to do | device time to do (est.) | disk to do |", "|---|---:|---:|---:|---:|"]
    for step, g in rows.groupby("step", sort=False):
        t = g[g["state"] == "to do"]
        lines.append(f"| {step} | {len(g)} | {len(t)} | {duration(t['estimate_s'].fillna(0).sum())} | "
                     f"{size(t['disk_bytes'].sum())} |")
    lines.append(f"| **total** | {len(rows)} | {len(todo)} | **{duration(todo['estimate_s'].fillna(0).sum())}** | "
                 f"**{size(todo['disk_bytes'].sum())}** |")
    lines += ["", "Throughput (forward images/s) behind the estimates; a backward pass is priced as two forward ones, "
              "a partial pass by the FLOPs after the hooked layer (benchmarks/cost.py):", ""]
    lines += [f"- {m}: {t.images_per_s:,.1f} images/s ({t.source})" for m, t in sorted(rates.items())]
    return "\n".join(lines) + "\n"


# -- before the work -----------------------------------------------------------------------------
def preflight(settings: DictConfig, steps: Sequence[Step], disk_needed: float) -> list[str]:
    """Every problem that would stop the run, one line each, before any work: a data root that is not
    set or not readable, hub weights that are neither cached nor reachable, a checkpoint of the wrong
    architecture or class count, an output folder that cannot be written, too little disk."""
    jobs = [j for s in steps for j in s.jobs if not j.done]
    problems = []
    for dataset, key in (("ilsvrc", "ilsvrc_root"), ("alzheimer", "alzheimer_root")):
        if any(j.dataset == dataset for j in jobs):
            problems += _root_problem(settings, dataset, key)
    hub = sorted({j.model for j in jobs if j.hub and j.model})
    problems += hubcache.missing_weights([zoo.model_config(m) for m in hub])
    for m in settings.models:
        ck = checkpoint(settings, m)
        if ck.is_file() and any(s.name in ("alzheimer", "select", "train") for s in steps):
            problems += _checkpoint_problem(m, ck)
    folder = out(settings)
    reason = unwritable(folder)
    if reason is not None:
        problems.append(f"cannot write {folder} ({reason}): choose another out=")
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    free = shutil.disk_usage(existing).free
    if free < disk_needed:
        problems.append(f"too little disk at {existing}: the run needs about {size(disk_needed)}, {size(free)} are "
                        "free; free some or choose another out=")
    return problems


def _root_problem(settings: DictConfig, dataset: str, key: str) -> list[str]:
    root = settings[key]
    if not root:
        return [f"{key} is not set but the run uses {dataset}: pass {key}=/path (README: Datasets) or choose "
                "targets without it"]
    try:
        n = len(cell_dataset(compose(_roots(settings, dataset) + (["dataset.options.split=test"]
                                                                  if dataset == "alzheimer" else []))))
    except (ValueError, FileNotFoundError, OSError) as err:
        return [f"{key}={root}: {err}"]
    need = int(settings.ilsvrc.images) + int(settings.select.images) if dataset == "ilsvrc" else 0
    if n < need:
        return [f"{key}={root} has {n} images; the run evaluates ilsvrc.images={settings.ilsvrc.images} and selects "
                f"Table 3 on the next select.images={settings.select.images}: lower them or give the whole set"]
    return []


def _checkpoint_problem(model: str, path: Path) -> list[str]:
    cfg = OmegaConf.merge(zoo.model_config(model), {"num_classes": 4, "pretrained": False})
    try:
        zoo.create_model(cfg, checkpoint=path)
    except (ValueError, FileNotFoundError) as err:
        return [f"{model}: {err} (delete it to fine-tune a new one, or set checkpoints=)"]
    return []


# -- the work ------------------------------------------------------------------------------------
def groups(jobs: Sequence[Job]) -> list[list[Job]]:
    """Jobs in order, cells of one group together (one runner process each)."""
    out_: dict = {}
    for j in jobs:
        out_.setdefault(j.group if j.group is not None else id(j), []).append(j)
    return list(out_.values())


def command(group: Sequence[Job]) -> list[str]:
    """The command of a group of jobs: a runner sweep over the group's methods, or the job's own."""
    first = group[0]
    if len(group) == 1 or first.method is None:
        return [sys.executable, "-m", *first.argv]
    base = [a for a in first.argv if not a.startswith("method=")]
    return [sys.executable, "-m", base[0], "-m", *base[1:], "method=" + ",".join(j.method for j in group)]


def execute(steps: Sequence[Step], settings: DictConfig, rates: dict[str, cost.Throughput],
            env: dict[str, str] | None = None, stream=sys.stdout) -> Path:
    """Run every job that is not done, step by step; each command's output goes to ``stream`` and to
    ``<out>/logs/<step>.log``, its wall time beside its estimate to ``<out>/logs/times.csv``.  A failing
    command stops the run (rerun the same command to continue)."""
    logs = out(settings) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    times = logs / "times.csv"
    new = not times.is_file()
    with times.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["date", "step", "job", "images", "estimate_s", "wall_s", "status", "command"])
        for s in steps:
            for group in groups(s.jobs):
                todo = [j for j in group if not j.done]
                if not todo:
                    continue
                argv = command(todo)
                estimate = sum(j.seconds(rates.get(j.model)) or 0.0 for j in todo)
                label = todo[0].label if len(todo) == 1 else f"{todo[0].group[1]} {todo[0].group[2]}: " + \
                    ", ".join(j.method for j in todo)
                print(f"\n== {s.name}: {label} (est. {duration(estimate)})\n$ {' '.join(argv[1:])}", file=stream,
                      flush=True)
                start = time.perf_counter()
                code = _run(argv, logs / f"{s.name}.log", env, stream)
                wall = time.perf_counter() - start
                writer.writerow([datetime.now(timezone.utc).isoformat(timespec="seconds"), s.name, label,
                                 sum(j.images for j in todo), round(estimate, 2), round(wall, 2),
                                 "ok" if code == 0 else f"exit {code}", " ".join(["python", *argv[1:]])])
                fh.flush()
                if code != 0:
                    raise SystemExit(f"step {s.name}: {label} failed (exit {code}); its output is in "
                                     f"{logs / (s.name + '.log')}. Fix it and rerun the same command to continue.")
                for j in todo:
                    j.done = True
    return times


def _run(argv: list[str], log: Path, env: dict[str, str] | None, stream) -> int:
    with log.open("a") as fh, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}) as proc:
        fh.write(f"$ {' '.join(argv)}\n")
        for line in proc.stdout:
            fh.write(line)
            stream.write(line)
        return proc.wait()


def disk(rows: pd.DataFrame) -> float:
    return float(rows.loc[rows["state"] == "to do", "disk_bytes"].sum())


__all__ = ["Job", "STEPS", "Step", "TARGETS", "build", "command", "execute", "load", "plan_rows", "preflight",
           "render_plan", "throughputs"]
