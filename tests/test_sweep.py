"""Parallel sweeps through Hydra's launchers (the ``[sweep]`` extra): the same cells and rows as a sequential sweep."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["model=tiny_cnn", "method=gradcam,reciprocam", "dataset=synthetic", "dataset.options.n=4", "run.seed=0,1",
         "run.batch_size=2", "run.workers=0", "run.device=cpu"]
STABLE = ["id", "status", "label", "pred", "p", "p_masked", "ad", "ic", "ag", "ep", "le", "forward", "partial",
          "backward"]
LAUNCHERS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]),
    "ray": ("hydra_plugins.hydra_ray_launcher", ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2"]),
}


def sweep(out: Path, *launcher: str) -> dict[str, pd.DataFrame]:
    """Run the 2 x 2 sweep (with ``launcher`` overrides) into ``out``; each cell's rows by its folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the launchers' worker processes import this checkout
    cmd = [sys.executable, "-m", "benchmarks.run", "-m", *SWEEP, f"run.out_dir={out}", *launcher]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {str(p.parent.relative_to(out)): pd.read_csv(p).sort_values("id", ignore_index=True)
            for p in sorted(out.glob("synthetic/*/*/*/rows.csv"))}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return sweep(tmp_path_factory.mktemp("sequential"))


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_sweep_writes_the_sequential_rows(tmp_path, request, name):
    plugin, overrides = LAUNCHERS[name]
    pytest.importorskip(plugin)
    sequential = request.getfixturevalue("sequential")
    parallel = sweep(tmp_path, *overrides)
    assert len(sequential) == 4 and sorted(parallel) == sorted(sequential)  # four distinct cells, no extra ones
    for cell, rows in sequential.items():
        assert list(parallel[cell]["id"]) == [f"synthetic_{i:06d}" for i in range(4)], cell  # one row per image
        pd.testing.assert_frame_equal(parallel[cell][STABLE], rows[STABLE], check_exact=False)
