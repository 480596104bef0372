"""Where a result came from: commit, device, library versions, date; and the device to run on."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from benchmarks.devices import FREE, lease, visible_gpus

REPO_ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "torchvision", "timm", "scikit-learn", "numpy", "grad-cam")


def git_commit() -> str:
    """The commit named by ``$CLUSCAM_COMMIT`` when set (a copy of the tree on another machine, whose
    git metadata may be absent or stale), else the checkout's commit with ``+dirty`` when tracked
    files outside ``results/`` differ from it, else "unknown"."""
    if os.environ.get("CLUSCAM_COMMIT"):
        return os.environ["CLUSCAM_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        # results/ holds outputs (rows, rendered tables), not what produces them
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def resolve_device(name: str, key: str = "run.device") -> torch.device:
    """The device called ``name`` (``auto``: CUDA when available, else the CPU; ``cuda:free``: a GPU no
    other process of this machine holds, :mod:`benchmarks.devices`), checked to exist here; errors name
    the setting ``key``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == FREE:  # one GPU per process on a machine with several (benchmarks.devices)
        if not torch.cuda.is_available():
            raise ValueError(f"{key}={name!r} asked for, but CUDA is not available here; use cpu or auto")
        return torch.device("cuda", lease(visible_gpus()))
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"{key}={name!r} is not a device this suite runs on; use auto, cpu, cuda, cuda:<index> or "
                         f"{FREE} (a GPU no other process holds)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{key}={name!r} asked for, but CUDA is not available here; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{key}={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    return device


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(device: torch.device | str) -> dict:
    return {
        "commit": git_commit(),
        "device": device_name(device),
        "versions": versions(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
