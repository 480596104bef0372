#!/usr/bin/env bash
# The opt-in cluster tests (tests/test_sweep.py) on a Ray cluster and a SLURM cluster started on this machine,
# each test's log with the versions it ran written to OUT (results/cluster): ray.log, slurm.log.
# Usage: test-clusters.sh [PYTHON] (the interpreter of an environment with the [dev,sweep] extras); run as root
# (SLURM's daemons).  Both clusters are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-.venv/bin/python}
OUT=${OUT:-results/cluster}
HERE=scripts/cluster
mkdir -p "$OUT"
trap 'RAY="$(dirname "$PY")/ray" bash $HERE/ray-local.sh stop >/dev/null 2>&1 || true; bash $HERE/slurm-local.sh stop || true' EXIT

header() {  # what ran: commit, date, machine, versions
  echo "# $1"
  echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!results' || echo ' (with uncommitted changes)')"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) CPUs"
  "$PY" - <<'PY'
import importlib.metadata as md, sys
print("python:", sys.version.split()[0])
for name in ("torch", "hydra-core", "ray", "hydra-ray-launcher", "submitit", "hydra-submitit-launcher", "hydra-joblib-launcher"):
    try:
        print(f"{name}: {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name}: not installed")
PY
}

RAY="$(dirname "$PY")/ray" bash $HERE/ray-local.sh start >/dev/null
{ header "Ray cluster: scripts/cluster/ray-local.sh start (a head and a worker node), then pytest"
  RAY="$(dirname "$PY")/ray" bash $HERE/ray-local.sh status
  "$PY" -m pytest -v -p no:cacheprovider tests/test_sweep.py -k ray_cluster
  echo "# where the sweeps' jobs ran (Hydra's _run_job tasks per node)"
  "$PY" - <<'PY'
from collections import Counter
from ray.util.state import list_nodes, list_tasks
kind = {n.node_id: "head" if n.is_head_node else "worker" for n in list_nodes()}
jobs = Counter((kind.get(t.node_id, t.node_id), t.state) for t in list_tasks(filters=[("name", "=", "_run_job")], limit=10_000))
for (node, state), n in sorted(jobs.items()):
    print(f"{node} node: {n} jobs {state}")
PY
} 2>&1 | tee "$OUT/ray.log"
RAY="$(dirname "$PY")/ray" bash $HERE/ray-local.sh stop >/dev/null

bash $HERE/slurm-local.sh start >/dev/null
{ header "SLURM cluster: scripts/cluster/slurm-local.sh start (slurmctld, slurmd, munge on localhost), then pytest"
  echo "slurm: $(sinfo --version)"; echo "munge: $(munged --version 2>&1 | head -1)"
  sinfo
  last=$(scontrol -o show jobs 2>/dev/null | grep -o '^JobId=[0-9]*' | cut -d= -f2 | sort -n | tail -1)
  "$PY" -m pytest -v -p no:cacheprovider tests/test_sweep.py -k slurm
  echo "# the SLURM jobs the sweeps ran"
  scontrol -o show jobs | awk -v last="${last:-0}" '{split($1, id, "="); if (id[2] > last) {
    for (i = 1; i <= NF; i++) if ($i ~ /^(JobId|ArrayJobId|JobState|ExitCode|RunTime|NodeList)=/) printf "%s ", $i; print ""}}' | sort -V
} 2>&1 | tee "$OUT/slurm.log"
