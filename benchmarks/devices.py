"""One GPU per process: a machine-wide lease, so that parallel cells (the joblib launcher's workers, or
any processes started side by side) each run on their own device.

``run.device=cuda:free`` asks for the lowest-numbered GPU this process sees that no other process of
this machine holds.  A lease is an exclusive ``flock`` on ``<folder>/<gpu>.lock`` (``CLUSCAM_GPU_LOCKS``,
default ``<tmp>/cluscam-gpus-<uid>``), the GPU named by what it is (its UUID), not by its index: processes
that Ray or SLURM each show other GPUs (``CUDA_VISIBLE_DEVICES``, every one of them ``cuda:0``) do not
wait for each other.  A lease lasts as long as the process and ends with it, even when the process is
killed, so none is ever left behind.  When every GPU it sees is held, the process waits for one.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Sequence

import torch

FREE = "cuda:free"
_held: dict[str, tuple[int, IO]] = {}  # lock folder -> (index, open lock file) of this process


def lock_folder() -> Path:
    """Where the leases live: ``CLUSCAM_GPU_LOCKS``, else a folder per user in the temporary directory."""
    folder = os.environ.get("CLUSCAM_GPU_LOCKS") or Path(tempfile.gettempdir()) / f"cluscam-gpus-{os.getuid()}"
    return Path(folder)


def visible_gpus() -> list[str]:
    """A machine-wide name for each CUDA device this process sees (``cuda:0``, ``cuda:1``, ...): ``gpu-<UUID>``,
    else ``gpu<index>`` with the index on the machine (``CUDA_VISIBLE_DEVICES``' entry where it is set)."""
    return [f"gpu-{uuid}" if (uuid := getattr(torch.cuda.get_device_properties(i), "uuid", None)) else
            f"gpu{_machine_index(i)}" for i in range(torch.cuda.device_count())]


def _machine_index(i: int) -> str:
    shown = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return shown[i] if i < len(shown) else str(i)


def try_lease(folder: Path, gpus: Sequence[str]) -> tuple[int, IO] | None:
    """An exclusive lock on the first of ``gpus`` (machine-wide names) under ``folder`` that no one holds: its
    index among ``gpus`` and the open lock file; None when all are held."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, gpu in enumerate(gpus):
        handle = open(folder / f"{gpu}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return index, handle
    return None


def lease(gpus: Sequence[str], folder: Path | None = None, poll_s: float = 5.0, timeout_s: float | None = None) -> int:
    """This process's GPU among ``gpus`` (:func:`visible_gpus`), as an index among them: the one it already
    holds, else the first free one, waiting for one to free (``timeout_s``: give up with an error naming the
    lock folder)."""
    if not gpus:
        raise ValueError(f"{FREE} asked for, but this machine has no CUDA device; use cpu or auto")
    folder = Path(folder or lock_folder())
    if str(folder) in _held:
        return _held[str(folder)][0]
    start = time.monotonic()
    while (got := try_lease(folder, gpus)) is None:
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"all {len(gpus)} GPUs are leased by other processes (locks in {folder}); run fewer "
                               f"jobs at once or name a device (run.device=cuda:<index>)")
        time.sleep(poll_s)
    _held[str(folder)] = got
    return got[0]
