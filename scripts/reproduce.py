"""The paper's protocol as one command: fine-tuning, Table 3, every cell, Table 1, runtime, ablations, then
Tables 1-9, the figures and REPRODUCTION.md under one folder (benchmarks/pipeline.py).

    python -m scripts.reproduce paper out=/data/cluscam ilsvrc_root=/data/ilsvrc alzheimer_root=/data/alz device=cuda
    python -m scripts.reproduce paper --plan out=... ilsvrc_root=... alzheimer_root=...   # the cost, then exit
    python -m scripts.reproduce table2 --plan --perf results/perf/nvidia-h200.csv        # priced from a perf run

Targets: ``paper`` (everything) or ``table1`` ... ``table9``, ``figures``, ``claims`` (the steps their output
needs). ``key=value`` arguments override ``conf/pipeline/<--settings>.yaml`` (``models=resnet18,vit_b_16``,
``ilsvrc.images=100``, ``checkpoints=results/checkpoints``).  ``--plan`` prints every step and job with its
images, passes per image, estimated device time (from a forward throughput measurement of each architecture
on the device, or ``--perf CSV``), disk, and, for finished work, the measured time beside its estimate; then
exits.  Without ``--plan`` the same plan's total is printed, every problem that would stop the run is
listed before any work (one line each; exit 2), and the steps run, skipping what is done: rerun the same
command to continue an interrupted run.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from benchmarks import pipeline, provenance


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help=f"targets ({', '.join(pipeline.TARGETS)}) and key=value settings")
    parser.add_argument("--settings", default="paper", help="conf/pipeline/<name>.yaml (paper, rehearsal)")
    parser.add_argument("--plan", action="store_true", help="print the plan and exit")
    parser.add_argument("--perf", type=Path, help="price from this benchmarks.perf CSV instead of measuring")
    parser.add_argument("--plan-out", type=Path, help="also write the plan (Markdown) and its rows (.csv) here")
    parser.add_argument("--list-models", action="store_true", help="print the models whose weights the run loads")
    args = parser.parse_intermixed_args(argv)
    targets = [i for i in args.items if "=" not in i] or ["paper"]
    try:
        settings = pipeline.load(args.settings, [i for i in args.items if "=" in i])
        steps = pipeline.build(settings, targets)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    if args.list_models:
        print(" ".join(pipeline.models_loaded(steps)))
        return 0
    if not args.plan:  # the problems that would stop the run, before minutes of throughput measurement
        problems = pipeline.preflight(settings, steps, pipeline.disk(pipeline.plan_rows(steps, {})))
        if problems:
            print("cannot start:\n" + "\n".join(f"- {p}" for p in problems), file=sys.stderr)
            return 2
    rates = pipeline.throughputs(steps, settings.device, settings.precision, args.perf, int(settings.batch_size))
    rows = pipeline.plan_rows(steps, rates)
    text = pipeline.render_plan(rows, rates, settings)
    if args.plan_out is not None:
        args.plan_out.parent.mkdir(parents=True, exist_ok=True)
        command = " ".join(["python -m scripts.reproduce", *(argv if argv is not None else sys.argv[1:])])
        made = (f"Command: `{command}`. Commit {provenance.git_commit()}, "
                f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}.\n\n")
        args.plan_out.with_suffix(".md").write_text(text.replace("\n\n", "\n\n" + made, 1))
        rows.to_csv(args.plan_out.with_suffix(".csv"), index=False)
    if args.plan:
        print(text, end="")
        return 0
    todo = rows[rows["state"] == "to do"]
    print(f"{len(todo)} of {len(rows)} jobs to do, about {pipeline.duration(todo['estimate_s'].fillna(0).sum())} of "
          f"device time and {pipeline.size(pipeline.disk(rows))} of disk (--plan lists them)", flush=True)
    times = pipeline.execute(steps, settings, rates)
    print(f"done: {pipeline.out(settings)} (times beside the estimates: {times})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
