"""One GPU per process (benchmarks.devices): leases tested on the CPU with the device count simulated."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import devices, provenance
from benchmarks.provenance import resolve_device

HOLD = """
import sys, time
from pathlib import Path
from benchmarks.devices import lease
print(lease(sys.argv[2].split(","), Path(sys.argv[1]), poll_s=0.05), flush=True)
time.sleep(float(sys.argv[3]))
"""


def gpus(count: int) -> list[str]:
    return [f"gpu{i}" for i in range(count)]


def holder(folder: Path, count: int | list[str], seconds: float) -> subprocess.Popen:
    """A process that leases a GPU among ``count`` (or the GPUs it is shown), prints its index and keeps it
    ``seconds``."""
    shown = gpus(count) if isinstance(count, int) else count
    return subprocess.Popen([sys.executable, "-c", HOLD, str(folder), ",".join(shown), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])


def test_processes_side_by_side_get_different_gpus_and_a_third_waits(tmp_path):
    first, second = holder(tmp_path, 2, 3.0), holder(tmp_path, 2, 3.0)
    got = {int(first.stdout.readline()), int(second.stdout.readline())}
    assert got == {0, 1}
    start = time.monotonic()
    third = holder(tmp_path, 2, 0.0)
    index = int(third.stdout.readline())  # only once the first two have ended
    assert index in (0, 1) and time.monotonic() - start > 1.0
    for p in (first, second, third):
        p.wait(timeout=30)


def test_a_killed_process_leaves_no_lease_behind(tmp_path):
    p = holder(tmp_path, 1, 60.0)
    assert p.stdout.readline().strip() == "0"
    assert devices.try_lease(tmp_path, gpus(1)) is None  # held by the other process
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    got = devices.try_lease(tmp_path, gpus(1))
    assert got is not None and got[0] == 0
    got[1].close()


def test_a_process_keeps_its_gpu_and_waits_no_longer_than_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "_held", {})
    assert devices.lease(gpus(2), tmp_path) == devices.lease(gpus(2), tmp_path) == 0  # the same lease, asked twice
    other = devices.try_lease(tmp_path, gpus(2))  # another open file: as another process would
    assert other is not None and other[0] == 1
    with pytest.raises(TimeoutError, match="all 2 GPUs are leased"):
        monkeypatch.setattr(devices, "_held", {})
        devices.lease(gpus(2), tmp_path, poll_s=0.01, timeout_s=0.05)
    other[1].close()


def test_run_device_cuda_free(tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSCAM_GPU_LOCKS", str(tmp_path))
    monkeypatch.setattr(devices, "_held", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="run.device='cuda:free' asked for, but CUDA is not available here"):
        resolve_device("cuda:free")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(provenance, "visible_gpus", lambda: gpus(4))
    held = [devices.try_lease(tmp_path, gpus(4)) for _ in range(2)]  # GPUs 0 and 1 held elsewhere
    assert resolve_device("cuda:free") == torch.device("cuda", 2)
    for _, handle in held:
        handle.close()
    assert os.path.exists(tmp_path / "gpu2.lock")


def test_processes_shown_other_gpus_do_not_wait_for_each_other(tmp_path):
    # Ray and SLURM show each job its own GPU as cuda:0; the leases name GPUs by what they are.
    jobs = [holder(tmp_path, [name], 20.0) for name in ("gpu-uuid-a", "gpu-uuid-b")]
    assert [int(j.stdout.readline()) for j in jobs] == [0, 0]
    assert all(j.poll() is None for j in jobs)  # both leased while the other held its own
    same = holder(tmp_path, ["gpu-uuid-a"], 0.0)  # shown a GPU that a job holds: it waits for that job
    time.sleep(5.0)
    assert same.poll() is None and not select.select([same.stdout], [], [], 0)[0]  # still waiting, nothing said
    jobs[0].kill()
    assert int(same.stdout.readline()) == 0
    jobs[1].kill()
    for p in (*jobs, same):
        p.wait(timeout=30)


def test_visible_gpus_are_named_by_uuid_else_by_their_index_on_the_machine(monkeypatch):
    class Props:
        def __init__(self, uuid):
            self.uuid = uuid

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props(["a1", "b2"][i]))
    assert devices.visible_gpus() == ["gpu-a1", "gpu-b2"]
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props(None))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 1")
    assert devices.visible_gpus() == ["gpu3", "gpu1"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert devices.visible_gpus() == ["gpu0", "gpu1"]
