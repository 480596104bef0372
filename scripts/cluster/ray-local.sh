#!/usr/bin/env bash
# A Ray cluster on this machine for the opt-in cluster tests: a head node and one worker node, each its own
# raylet with CPU_PER_NODE CPUs (Ray advertises this machine's own address; nothing leaves the machine).  Usage: ray-local.sh start | stop | status
# (RAY: the `ray` command of the environment with the [sweep] extra; default: the one on PATH).
set -euo pipefail
RAY=${RAY:-ray}
PORT=${RAY_PORT:-6390}
DASHBOARD_PORT=${RAY_DASHBOARD_PORT:-8275}
CPU_PER_NODE=${CPU_PER_NODE:-1}
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}  # a one-machine test cluster: no token to share
case "${1:-}" in
  start)
    "$RAY" start --head --port="$PORT" --num-cpus="$CPU_PER_NODE" \
      --resources='{"head_node": 1}' --dashboard-host=127.0.0.1 --dashboard-port="$DASHBOARD_PORT" --disable-usage-stats
    "$RAY" start --address="127.0.0.1:$PORT" --num-cpus="$CPU_PER_NODE" \
      --resources='{"worker_node": 1}' --disable-usage-stats
    for _ in $(seq 60); do  # both nodes registered
      [ "$("$RAY" status --address="127.0.0.1:$PORT" 2>/dev/null | grep -c ' node_')" -ge 2 ] && exit 0
      sleep 1
    done
    echo "ray-local.sh: the worker node did not join the head at 127.0.0.1:$PORT" >&2; exit 1 ;;
  stop) "$RAY" stop --force ;;
  status) "$RAY" status --address="127.0.0.1:$PORT" ;;
  *) echo "usage: $0 start | stop | status" >&2; exit 2 ;;
esac
