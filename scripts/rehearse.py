"""The dress rehearsal of ``python -m scripts.reproduce paper`` offline, on the CPU, at tiny sizes.

    python -m scripts.rehearse --work /tmp/rehearsal --ilsvrc-root ../shared/data/ilsvrc_val \\
        --alzheimer-root ../shared/data/alzheimer_mri [--keep results/rehearsal] [key=value ...]

1. Fills a torch hub cache (``<work>/torch``) and a Hugging Face cache (``<work>/huggingface``) with RANDOM
   weights of every model under the exact file names the hubs use (:mod:`benchmarks.hubcache`), so that
   the real loading code runs unchanged with ``TORCH_HOME`` / ``HF_HUB_CACHE`` / ``HF_HUB_OFFLINE=1``.
2. Copies a few images per class of the Alzheimer data into ``<work>/alzheimer`` (4 training and 3 test
   images per class: one training step per architecture, 4 validation and 8 test images).
3. Runs the whole pipeline with ``--settings rehearsal`` (conf/pipeline/rehearsal.yaml: 1 ILSVRC image,
   1 Alzheimer test image, Table 1 on 2 images, ...; ``key=value`` overrides it, e.g.
   ``models=resnet18,levit_192``): its plan first, then every step, every table, figure and the
   claims report, which says that the weights are random and measures no claim.
4. With ``--keep DIR``, copies the log, the plan, the per-step times beside their estimates, the tables
   and REPRODUCTION.md there (what results/rehearsal/ holds).

Rerun the same command to continue an interrupted rehearsal.  Nothing it computes measures anything:
the weights are random.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 3


def tiny_alzheimer(root: Path, dest: Path) -> Path:
    """The first images of each class of the image-folder layout ``root/{train,test}/<class>/``."""
    for split, n in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        classes = sorted(p for p in (root / split).iterdir() if p.is_dir()) if (root / split).is_dir() else []
        if not classes:
            raise SystemExit(f"error: {root / split} has no class folders; the rehearsal copies from the image-folder "
                             "layout <root>/{train,test}/<class>/")
        for folder in classes:
            target = dest / split / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for image in sorted(folder.iterdir())[:n]:
                if not (target / image.name).exists():
                    shutil.copy2(image, target / image.name)
    return dest


def caches(work: Path) -> dict[str, str]:
    """The environment that points the torch hub and Hugging Face caches into ``work``, offline."""
    return {"TORCH_HOME": str(work / "torch"), "HF_HOME": str(work / "huggingface"),
            "HF_HUB_CACHE": str(work / "huggingface" / "hub"), "HF_HUB_OFFLINE": "1"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.rehearse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="settings of conf/pipeline/rehearsal.yaml, key=value")
    parser.add_argument("--work", type=Path, required=True, help="folder of the caches, data copy and the run")
    parser.add_argument("--ilsvrc-root", type=Path, required=True)
    parser.add_argument("--alzheimer-root", type=Path, required=True, help="image-folder layout")
    parser.add_argument("--keep", type=Path, help="copy the log, plan, times, tables and report here")
    args = parser.parse_intermixed_args(argv)
    work = args.work.resolve()
    env = {**os.environ, **caches(work), "PYTHONUNBUFFERED": "1"}
    alz = tiny_alzheimer(args.alzheimer_root, work / "alzheimer")
    out = work / "out"
    settings = [f"out={out}", f"ilsvrc_root={args.ilsvrc_root.resolve()}", f"alzheimer_root={alz}", *args.overrides]
    python = [sys.executable, "-m"]
    # The caches: every model of the run and of the figures, random weights (benchmarks.hubcache).
    models = subprocess.run([*python, "scripts.reproduce", "--settings", "rehearsal", "--list-models", *settings],
                            env=env, check=True, capture_output=True, text=True).stdout.split()
    log = work / "rehearsal.log"
    with log.open("a") as fh:
        for cmd in ([*python, "benchmarks.hubcache", "fill", *models],
                    [*python, "scripts.reproduce", "paper", "--settings", "rehearsal", "--plan",
                     "--plan-out", str(out / "plan"), *settings],
                    [*python, "scripts.reproduce", "paper", "--settings", "rehearsal", *settings]):
            line = "$ " + " ".join(["python", *cmd[1:]])
            print(line, flush=True)
            fh.write(line + "\n")
            fh.flush()
            with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
                for text in proc.stdout:
                    sys.stdout.write(text)
                    fh.write(text)
                if proc.wait():
                    print(f"rehearsal stopped: {line[2:]} failed (log: {log}); rerun to continue", file=sys.stderr)
                    return proc.returncode
    if args.keep:
        keep(work, args.keep)
    return 0


def keep(work: Path, dest: Path) -> None:
    """The rehearsal's log, plan, times, tables, Table 3, figures' list and report, copied to ``dest``."""
    out = work / "out"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(work / "rehearsal.log", dest / "rehearsal.log")
    for name in ("plan.md", "plan.csv", "REPRODUCTION.md"):
        if (out / name).is_file():
            shutil.copy2(out / name, dest / name)
    shutil.copy2(out / "logs" / "times.csv", dest / "times.csv")
    for path in sorted((out / "tables").rglob("*.md")):
        target = dest / "tables" / path.relative_to(out / "tables")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    figures = sorted(str(p.relative_to(out)) for p in (out / "figures").rglob("*.png"))
    (dest / "figures.txt").write_text("\n".join(figures) + "\n")


if __name__ == "__main__":
    sys.exit(main())
