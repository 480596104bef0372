"""One GPU per process: a machine-wide lease, so that parallel cells (the joblib launcher's workers, or
any processes started side by side) each run on their own device.

``run.device=cuda:free`` asks for the lowest-numbered GPU no other process of this machine holds.
A lease is an exclusive ``flock`` on ``<folder>/gpu<i>.lock`` (``CLUSCAM_GPU_LOCKS``, default
``<tmp>/cluscam-gpus-<uid>``): it lasts as long as the process and ends with it, even when the process
is killed, so no lease is ever left behind.  When every GPU is held, the process waits for one.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import IO

FREE = "cuda:free"
_held: dict[str, tuple[int, IO]] = {}  # lock folder -> (index, open lock file) of this process


def lock_folder() -> Path:
    """Where the leases live: ``CLUSCAM_GPU_LOCKS``, else a folder per user in the temporary directory."""
    folder = os.environ.get("CLUSCAM_GPU_LOCKS") or Path(tempfile.gettempdir()) / f"cluscam-gpus-{os.getuid()}"
    return Path(folder)


def try_lease(folder: Path, count: int) -> tuple[int, IO] | None:
    """An exclusive lock on the first of ``count`` GPU slots under ``folder`` that no one holds, or None."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        handle = open(folder / f"gpu{index}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return index, handle
    return None


def lease(count: int, folder: Path | None = None, poll_s: float = 5.0, timeout_s: float | None = None) -> int:
    """This process's GPU among ``count``: the one it already holds, else the first free one, waiting
    for one to free (``timeout_s``: give up with an error naming the lock folder)."""
    if count < 1:
        raise ValueError(f"{FREE} asked for, but this machine has no CUDA device; use cpu or auto")
    folder = Path(folder or lock_folder())
    if str(folder) in _held:
        return _held[str(folder)][0]
    start = time.monotonic()
    while (got := try_lease(folder, count)) is None:
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"all {count} GPUs are leased by other processes (locks in {folder}); run fewer "
                               f"jobs at once or name a device (run.device=cuda:<index>)")
        time.sleep(poll_s)
    _held[str(folder)] = got
    return got[0]
