"""Table 3: ClusCAM's K, r and tau chosen per architecture by Alg. 2, Alg. 3 and Eq. 10.

    python -m scripts.select_hparams model=resnet18 dataset=ilsvrc dataset.root=/data/ilsvrc \\
        run.start=1000 run.n_images=1000 [--evaluated 1000] [--ks 5 10 15 ... 100] [--out results/tables]
    python -m scripts.select_hparams model=resnet18 dataset=alzheimer dataset.root=/data/alzheimer \\
        model.checkpoint=checkpoints/resnet18_alzheimer.pth --val-ids checkpoints/resnet18_alzheimer.json

Hydra-style overrides pick the model, the validation images (dataset, run.start, run.n_images) and the
run options (device, batch size, chunk size, seed); ``--ks`` the candidate K values.  Alg. 2-3 select
on held-out validation images (Sec. 3.4, Eq. 8: "a held-out validation set"), never on those the
tables evaluate: ILSVRC's range must start at or after ``--evaluated`` (the tables' images [0, N),
the paper's 1,000 by default, App. A); ``--val-ids`` selects exactly the ids of a training report's
``val_ids`` (Alzheimer: the 380 validation images, which the tables leave out) or of an id list.  Each model's
selection, with its curves P(K) and C(K) and provenance, goes to ``<out>/table3/<model>.json``; all
of them are then rendered as ``<out>/table3.md``/``.tex``/``.csv`` beside the paper's values.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from benchmarks import zoo
from benchmarks.data import collate
from benchmarks.provenance import provenance, resolve_device
from benchmarks.data.base import RecordDataset, select_records
from benchmarks.api import cell_dataset, cell_model, cell_model_config, compose, excluded_ids, one_line_errors
from cluscam.selection import select_hyperparameters

DEFAULT_KS = tuple(range(5, 101, 5))
EVALUATED = 1000  # App. A: "we evaluated on 1,000 images from the validation set"


def selection_dataset(cfg, val_ids: Path | None = None, evaluated: int = EVALUATED) -> RecordDataset:
    """The images Alg. 2-3 select on, disjoint from those the tables evaluate: the ids in ``val_ids``
    when given (then ``run.start``/``run.n_images`` range over those ids, in ``dataset.shuffle``'s order),
    else the range from ``run.start``, which must not start before ``evaluated`` (the tables' range
    [0, evaluated))."""
    if val_ids is not None:
        dataset = cell_dataset(OmegaConf.merge(cfg, {"run": {"start": 0, "n_images": None}}))
        keep = excluded_ids(str(val_ids))
        missing = keep - set(dataset.ids)
        if missing:
            raise ValueError(f"{len(missing)} of the {len(keep)} ids in {val_ids} are not in the {cfg.dataset.name} "
                             f"images (e.g. {sorted(missing)[0]!r}); check dataset.options.split")
        stop = None if cfg.run.n_images is None else int(cfg.run.start) + int(cfg.run.n_images)
        dataset.records = select_records([rec for rec in dataset.records if rec.id in keep], int(cfg.run.start), stop,
                                         shuffle=cfg.dataset.get("shuffle"))
        return dataset
    dataset = cell_dataset(cfg)
    if int(cfg.run.start) < evaluated:
        raise ValueError(f"run.start={cfg.run.start} selects on images [0, {evaluated}) that the tables evaluate: "
                         f"pass run.start={evaluated} (or --evaluated N for tables of N images), or --val-ids")
    if not dataset.records:
        raise ValueError(f"no {cfg.dataset.name} images to select on: check run.start and run.n_images")
    return dataset


def select(overrides: list[str], ks=DEFAULT_KS, val_ids: Path | None = None, evaluated: int = EVALUATED) -> dict:
    """Run the selection for the config ``overrides`` describe, on :func:`selection_dataset`; the
    JSON-ready record."""
    cfg = compose(overrides)
    device = resolve_device(cfg.run.device)
    model_cfg = cell_model_config(cfg)
    model = cell_model(cfg, device)
    dataset = selection_dataset(cfg, val_ids, evaluated)
    batches = [b.select(b.valid).images for b in DataLoader(dataset, batch_size=int(cfg.run.batch_size),
                                                                collate_fn=collate, num_workers=int(cfg.run.workers))]
    options = {k: v for k, v in zoo.method_options(model_cfg, "cluscam").items() if k not in ("k", "r", "tau")}
    chunk = cfg.run.chunk_size
    sel = select_hyperparameters(model, zoo.layer_spec(model_cfg, "cluscam"), batches, ks, seed=int(cfg.run.seed),
                                 chunk_size=chunk if chunk == "auto" else int(chunk), **options)
    paper = zoo.method_options(zoo.model_config(model_cfg.name), "cluscam")
    return {"model": model_cfg.name, "k": sel.k, "r": sel.r, "tau": sel.tau, "ks": sel.ks, "proxy": sel.proxy,
            "curvature": sel.curvature, "n_images": sum(len(b) for b in batches), "dataset": cfg.dataset.name,
            "paper": {"k": paper["k"], "r": paper["r"], "tau": paper["tau"]}, "provenance": provenance(device),
            "overrides": overrides, "val_ids": None if val_ids is None else str(val_ids),
            "shuffle": cfg.dataset.get("shuffle"), "ids": [rec.id for rec in dataset.records]}


def render(folder: Path, out: Path) -> pd.DataFrame:
    """Table 3 from every ``<folder>/*.json`` selection."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    table = pd.DataFrame([{"Arch.": r["model"], "K": r["k"], "r (%)": round(100 * r["r"], 2), "τ": round(r["tau"], 2),
                           "paper K": r["paper"]["k"], "paper r (%)": round(100 * r["paper"]["r"], 2),
                           "paper τ": r["paper"]["tau"], "images": r["n_images"]} for r in records])
    note = "; ".join(sorted({f"{r['provenance']['commit'][:12]} on {r['provenance']['device']}, "
                             f"{r['provenance']['date']}" for r in records}))
    (out / "table3.md").write_text(table.to_markdown(index=False) + f"\n\nSelected by Alg. 2-3 and Eq. 10 ({note}).\n")
    (out / "table3.tex").write_text(f"% {note}\n" + table.to_latex(index=False))
    table.to_csv(out / "table3.csv", index=False)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=resnet18 dataset.root=...")
    parser.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS), help="candidate K values, ascending")
    parser.add_argument("--out", type=Path, default=Path("results/tables"))
    parser.add_argument("--val-ids", type=Path, help="select on exactly these ids: a training report (its val_ids) "
                                                     "or a file of one id a line")
    parser.add_argument("--evaluated", type=int, default=EVALUATED,
                        help="the tables evaluate images [0, EVALUATED): run.start must not be below it")
    parser.add_argument("--force", action="store_true", help="select again even when <out>/table3/<model>.json "
                                                                "holds a selection made with the same arguments")
    args = parser.parse_args(argv)
    folder = args.out / "table3"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = compose(args.overrides)
    path = folder / f"{cell_model_config(cfg).name}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    same = {"overrides": args.overrides, "ks": args.ks, "val_ids": None if args.val_ids is None else str(args.val_ids),
            "shuffle": cfg.dataset.get("shuffle")}
    if not args.force and all(done.get(k) == v for k, v in same.items()):
        print(f"{path}: already selected with these arguments (--force selects again)")
    else:
        path.write_text(json.dumps(select(args.overrides, args.ks, args.val_ids, args.evaluated), indent=2))
    print(render(folder, args.out).to_markdown(index=False))


if __name__ == "__main__":
    with one_line_errors():
        main()
