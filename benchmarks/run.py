"""The benchmark runner: one (model, method, dataset) cell per call, resumable, one CSV row per image.

    python -m benchmarks.run model=resnet50 method=cluscam dataset=ilsvrc dataset.root=/data/ilsvrc
    python -m benchmarks.run -m model=resnet18,vit_b_16 method=cluscam,scorecam dataset.root=...

A user's mistake (a bad setting, a missing file or root, a locked cell, an unwritable folder) prints one
line, ``error: ...``, and exits 2; in a ``-m`` sweep the failing job's line is printed when it fails, the
other jobs go on, and the sweep ends with every failed job's line.  A bug keeps its traceback (exit 1).
:func:`benchmarks.api.run_cell` does the same from a config without Hydra (see :mod:`benchmarks.api`).
"""
from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from benchmarks.api import one_line_errors, run_cell, user_error
from benchmarks.metrics import summarize
from benchmarks.store import unwritable

_FAILED: list[str] = []  # the lines of the jobs that failed in this process (the basic launcher's sweep)
_SWEEP = False  # whether they ran in a -m sweep
_FULL_ERROR = False  # HYDRA_FULL_ERROR=1: every error with its traceback
_CLI_PID: int | None = None  # the process of cli(): jobs run elsewhere (joblib, Ray, SLURM) raise instead


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        rows = run_cell(cfg)
    except Exception as err:
        line = user_error(err)
        if line is None or _FULL_ERROR or os.getpid() != _CLI_PID:
            raise
        global _SWEEP
        _SWEEP = HydraConfig.get().mode == RunMode.MULTIRUN
        if _SWEEP:  # said now, listed again when the sweep ends
            line = f"{cfg.model.name} / {cfg.method.name} / {cfg.dataset.name}: {line}"
            print(f"error: {line}", file=sys.stderr, flush=True)
        _FAILED.append(line)
        return
    ok = rows[rows["status"] == "ok"] if len(rows) else rows
    summary = summarize(ok) if len(ok) else {}
    n_skipped = len(rows) - len(ok)
    print(f"{cfg.model.name} / {cfg.method.name} / {cfg.dataset.name}: {len(ok)} images"
          + (f", {n_skipped} unreadable (see status column)" if n_skipped else "")
          + "".join(f", {k.upper()} {summary[k]:.2f}" for k in ("ad", "ic", "ag", "ep", "le") if k in summary)
          + (f", {ok['seconds'].mean():.4f} s/image" if len(ok) else ""))


def _out_dir(argv: list[str]) -> str | None:
    """The ``run.out_dir=`` override of the command line (Hydra makes its log folder there first)."""
    return next((a.split("=", 1)[1] for a in argv if a.startswith("run.out_dir=") and "," not in a), None)


def _check_writable(folder: str) -> None:
    """Refuse an output folder that cannot be created or written, naming run.out_dir."""
    reason = unwritable(folder)
    if reason is not None:
        raise ValueError(f"run.out_dir={folder!r} cannot be written ({reason}); choose a folder you can write")


def cli() -> None:
    """Run :func:`main` under Hydra with one-line errors for the user's mistakes (HYDRA_FULL_ERROR=1:
    Hydra's own reporting)."""
    global _CLI_PID, _FULL_ERROR
    _CLI_PID = os.getpid()
    _FULL_ERROR = os.environ.get("HYDRA_FULL_ERROR") == "1"
    out = _out_dir(sys.argv[1:])
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let the error reach this function instead of Hydra's printer
    with one_line_errors(full=_FULL_ERROR):
        if out is not None:
            _check_writable(out)
        main()
    if _FAILED:
        lines = _FAILED if not _SWEEP else [f"{len(_FAILED)} job(s) failed:", *(f"  {line}" for line in _FAILED)]
        print("error: " + "\n".join(lines), file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    cli()
