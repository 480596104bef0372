"""One cell in shards (``run.shard=i/n``): disjoint whole batches, one lock per shard, concurrent shards
write the rows of one sequential run, and a killed shard resumes alone."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.api import compose, run_cell
from benchmarks.shards import Shard, parse_shard
from benchmarks.store import CellLocked, CellStore, read_sessions

ROOT = Path(__file__).resolve().parents[1]
CELL = ["model=tiny_cnn", "method=cluscam", "dataset=synthetic", "dataset.options.n=10", "run.batch_size=2",
        "run.workers=0", "run.device=cpu", "run.chunk_size=16"]
STABLE = ["id", "status", "label", "pred", "p", "p_masked", "ad", "ic", "ag", "ep", "le", "n_boxes", "forward",
          "partial", "backward"]


@pytest.mark.parametrize("n,batch,count", [(10, 2, 2), (10, 3, 4), (7, 2, 5), (3, 4, 2), (50, 8, 3), (1, 1, 1)])
def test_shards_partition_the_range_into_whole_batches(n, batch, count):
    ranges = [Shard(i, count).positions(n, batch) for i in range(count)]
    assert [p for r in ranges for p in r] == list(range(n))  # every image once, in order
    sizes = [len(r) // batch + (len(r) % batch > 0) for r in ranges]
    assert max(sizes) - min(sizes) <= 1  # batches spread as evenly as they go
    assert all(r.start % batch == 0 for r in ranges if len(r))  # a sequential run's batch boundaries
    assert all(len(r) % batch == 0 for r in ranges[:-1] if r.stop < n)


def test_known_shards():
    assert Shard(0, 2).positions(10, 3) == range(0, 6) and Shard(1, 2).positions(10, 3) == range(6, 10)
    assert Shard(2, 3).positions(4, 2) == range(4, 4)  # more shards than batches: an empty one


@pytest.mark.parametrize("value", ["2/2", "1/0", "-1/2", "a/b", "1", "0/2/3"])
def test_a_bad_shard_is_refused_naming_the_key(value):
    with pytest.raises(ValueError, match=r"run\.shard=.* must be i/n with 0 <= i < n"):
        parse_shard(value)
    assert parse_shard(None) is None and parse_shard(" 1 / 3 ") == Shard(1, 3)


def test_shard_locks_let_only_the_shards_of_one_count_in(tmp_path):
    folder, identity = tmp_path / "synthetic" / "tiny_cnn" / "cluscam", {"cell": 1}
    store, other = CellStore(folder, identity), CellStore(folder, identity)
    with store.locked(Shard(0, 2)):
        with other.locked(Shard(1, 2)):  # the other shard of the same count runs beside it
            pass
        with pytest.raises(CellLocked, match=r"is being written in shards \(shards 0/2 pid \d+"):
            with other.locked():
                pass
        with pytest.raises(CellLocked, match="by another process running the same shard"):
            with other.locked(Shard(0, 2)):
                pass
        with pytest.raises(CellLocked, match=r"written in 2 shards .*run\.shard=1/3 would overlap them: use "
                                             r"run\.shard=<i>/2"):
            with other.locked(Shard(1, 3)):
                pass
    with store.locked():
        with pytest.raises(CellLocked, match=r"by another process \(pid \d+"):
            with other.locked(Shard(0, 2)):
                pass
    assert not (tmp_path / "synthetic").exists()  # every lock file removed, no empty folder left


def _rows(out: Path) -> pd.DataFrame:
    (rows,) = out.glob("synthetic/tiny_cnn/cluscam/*/rows.csv")
    return pd.read_csv(rows, dtype={"id": str})


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_concurrent_shards_write_the_rows_of_one_sequential_run(tmp_path):
    sequential = run_cell(compose([*CELL, f"run.out_dir={tmp_path / 'one'}"]), progress=False)
    out, barrier = tmp_path / "shards", tmp_path / "barrier"
    barrier.mkdir()
    # Each shard waits, before its first batch (its lock held), until both shards got that far: they overlap.
    body = f"""
        import runpy, sys, time
        from pathlib import Path
        from benchmarks import api
        real, me = api._explain, sys.argv[1]
        def meet(*args, **kwargs):
            Path({str(barrier)!r}, me.replace("/", "-")).touch()
            start = time.monotonic()
            while len(list(Path({str(barrier)!r}).iterdir())) < 2 and time.monotonic() - start < 120:
                time.sleep(0.05)
            return real(*args, **kwargs)
        api._explain = meet
        sys.argv = ["benchmarks.run", *{CELL!r}, "run.out_dir={out}", "run.shard=" + me]
        runpy.run_module("benchmarks.run", run_name="__main__")  # python -m benchmarks.run, the patch in place
    """
    procs = [subprocess.Popen([*_script(body), shard], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for shard in ("0/2", "1/2")]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sorted(p.name for p in barrier.iterdir()) == ["0-2", "1-2"]
    assert "tiny_cnn / cluscam / synthetic: 6 images" in outputs[0][0]  # 5 batches: shard 0 takes 3, shard 1 two
    assert "tiny_cnn / cluscam / synthetic: 4 images" in outputs[1][0]
    rows = _rows(out)
    assert list(rows["id"]) == [f"synthetic_{i:06d}" for i in range(10)]  # every row once
    pd.testing.assert_frame_equal(rows[STABLE], sequential[STABLE])
    (cell,) = out.glob("synthetic/tiny_cnn/cluscam/*/")
    assert sorted(s["shard"] for s in read_sessions(cell)) == ["0/2", "1/2"]
    assert not list(cell.parent.glob(".*.lock"))


def test_a_killed_shard_resumes_alone(tmp_path):
    sequential = run_cell(compose([*CELL, f"run.out_dir={tmp_path / 'one'}"]), progress=False)
    out = tmp_path / "shards"
    shard0 = [*CELL, f"run.out_dir={out}", "run.shard=0/2"]
    # Shard 0 (3 batches) is killed with SIGKILL as it starts writing its second batch.
    body = f"""
        import os, signal
        from benchmarks import api
        from benchmarks.store import CellStore
        real, written = CellStore.write_part, []
        def write_part(self, *args, **kwargs):
            if written:
                os.kill(os.getpid(), signal.SIGKILL)
            written.append(1)
            return real(self, *args, **kwargs)
        CellStore.write_part = write_part
        api.run_cell(api.compose({shard0!r}), progress=False)
    """
    killed = subprocess.run(_script(body), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_cell(compose([*CELL, f"run.out_dir={out}", "run.shard=1/2"]), progress=False)  # the other shard, meanwhile
    (cell,) = out.glob("synthetic/tiny_cnn/cluscam/*/")
    first = sorted((cell / "parts").glob("*.csv"))
    assert len(first) == 3  # shard 0's first batch and shard 1's two
    stamps = {p: p.stat().st_mtime_ns for p in first}
    resumed = run_cell(compose(shard0), progress=False)
    assert list(resumed["id"]) == [f"synthetic_{i:06d}" for i in range(6)]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing done before was redone
    assert len(list((cell / "parts").glob("*.csv"))) == 5
    pd.testing.assert_frame_equal(_rows(out)[STABLE], sequential[STABLE])
