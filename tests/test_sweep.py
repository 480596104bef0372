"""Parallel sweeps through Hydra's launchers (the ``[sweep]`` extra): the same cells and rows as a sequential
sweep, and one cell's shards (``run.shard=i/n``) the rows of one run.

joblib and a Ray instance started by the sweep run wherever the extra is installed.  The cluster launchers
are opt-in, skipped when their cluster is absent: a Ray cluster reachable at ``address=auto`` with a worker
node beside its head (``scripts/cluster/ray-local.sh start``) and a SLURM partition (``CLUSCAM_SLURM_PARTITION``,
default ``local``: ``scripts/cluster/slurm-local.sh start``).  ``make cluster-tests`` starts both, runs these
tests and writes their logs to ``results/cluster/``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE = ["model=tiny_cnn", "dataset=synthetic", "run.batch_size=2", "run.workers=0", "run.device=cpu"]
SWEEP = [*BASE, "method=gradcam,reciprocam", "dataset.options.n=4", "run.seed=0,1"]
SHARDED = [*BASE, "method=cluscam", "dataset.options.n=10", "run.chunk_size=16"]
STABLE = ["id", "status", "label", "pred", "p", "p_masked", "ad", "ic", "ag", "ep", "le", "forward", "partial",
          "backward"]
PARTITION = os.environ.get("CLUSCAM_SLURM_PARTITION", "local")


def ray_cluster() -> str | None:
    """Why no Ray cluster with a worker node is reachable at ``address=auto``, or None when one is."""
    probe = "import ray; ray.init(address='auto', logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "no answer from a Ray cluster at address=auto"
    if done.returncode:
        return "no Ray cluster at address=auto (scripts/cluster/ray-local.sh start)"
    nodes = int(done.stdout.split()[-1])
    return None if nodes >= 2 else f"the Ray cluster has {nodes} node; the test needs a worker node beside the head"


def slurm_cluster() -> str | None:
    """Why no SLURM partition ``PARTITION`` is up, or None when it is."""
    try:
        done = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "no SLURM here (scripts/cluster/slurm-local.sh install && scripts/cluster/slurm-local.sh start)"
    up = {"idle", "mixed", "allocated", "completing"} & set(done.stdout.split())
    return None if done.returncode == 0 and up else f"no SLURM partition {PARTITION!r} up (scripts/cluster/slurm-local.sh start)"


LAUNCHERS = {  # name: (plugin, overrides, what must be there besides the plugin)
    "joblib": ("hydra_plugins.hydra_joblib_launcher", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], None),
    "ray": ("hydra_plugins.hydra_ray_launcher", ["hydra/launcher=ray", "+hydra.launcher.ray.init.address=local",
                                                 "+hydra.launcher.ray.init.num_cpus=2"], None),
    # The launcher sets object_store_memory, which ray.init refuses when it joins a running cluster: null it.
    "ray_cluster": ("hydra_plugins.hydra_ray_launcher",
                    ["hydra/launcher=ray", "+hydra.launcher.ray.init.address=auto",
                     "+hydra.launcher.ray.init.object_store_memory=null", "+hydra.launcher.ray.remote.num_cpus=1"],
                    ray_cluster),
    "slurm": ("hydra_plugins.hydra_submitit_launcher",
              ["hydra/launcher=submitit_slurm", f"hydra.launcher.partition={PARTITION}", "hydra.launcher.cpus_per_task=1",
               "hydra.launcher.mem_gb=4", "hydra.launcher.timeout_min=30"], slurm_cluster),
}


def sweep(out: Path, overrides: list[str], *launcher: str) -> dict[str, pd.DataFrame]:
    """Run the sweep ``overrides`` (with ``launcher`` overrides) into ``out``; each cell's rows by its folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the launchers' worker processes import this checkout
    cmd = [sys.executable, "-m", "benchmarks.run", "-m", *overrides, f"run.out_dir={out}", *launcher]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return {str(p.parent.relative_to(out)): pd.read_csv(p).sort_values("id", ignore_index=True)
            for p in sorted(out.glob("synthetic/*/*/*/rows.csv"))}


def launcher(request, name: str) -> list[str]:
    """The launcher's overrides, skipping the test when its plugin or cluster is absent."""
    plugin, overrides, cluster = LAUNCHERS[name]
    pytest.importorskip(plugin)
    why = cluster() if cluster else None
    if why:
        pytest.skip(why)
    return overrides


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return sweep(tmp_path_factory.mktemp("sequential"), SWEEP)


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory) -> pd.DataFrame:
    (rows,) = sweep(tmp_path_factory.mktemp("unsharded"), SHARDED).values()
    return rows


def ray_nodes_since(start_ms: int) -> set[str]:
    """The Ray nodes that ran the sweep's jobs (Hydra's ``_run_job`` tasks started after ``start_ms``)."""
    from ray.util.state import list_tasks

    tasks = list_tasks(filters=[("name", "=", "_run_job")], detail=True, limit=10_000)
    return {t.node_id for t in tasks if (t.start_time_ms or 0) >= start_ms}


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_sweep_writes_the_sequential_rows(tmp_path, request, name):
    overrides = launcher(request, name)
    sequential = request.getfixturevalue("sequential")
    start_ms = int(time.time() * 1000)
    parallel = sweep(tmp_path, SWEEP, *overrides)
    assert len(sequential) == 4 and sorted(parallel) == sorted(sequential)  # four distinct cells, no extra ones
    for cell, rows in sequential.items():
        assert list(parallel[cell]["id"]) == [f"synthetic_{i:06d}" for i in range(4)], cell  # one row per image
        pd.testing.assert_frame_equal(parallel[cell][STABLE], rows[STABLE], check_exact=False)
    if name == "ray_cluster":  # the jobs ran on the head and on the worker node
        assert len(ray_nodes_since(start_ms)) >= 2


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_shards_fill_one_cell_with_the_rows_of_one_run(tmp_path, request, name):
    overrides = launcher(request, name)
    unsharded = request.getfixturevalue("unsharded")
    cells = sweep(tmp_path, [*SHARDED, "run.shard=0/2,1/2"], *overrides)
    assert len(cells) == 1  # two jobs, one cell
    (rows,) = cells.values()
    assert list(rows["id"]) == [f"synthetic_{i:06d}" for i in range(10)]
    pd.testing.assert_frame_equal(rows[STABLE], unsharded[STABLE], check_exact=False)
