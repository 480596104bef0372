#!/usr/bin/env bash
# A single-node SLURM cluster on this machine for the opt-in cluster tests: munge, slurmctld and slurmd
# from Debian's packages on localhost, one partition `local` with this machine's CPUs, jobs sharing the
# node by CPU.  Run as root.  Usage: slurm-local.sh install | start | stop | status
#   install: apt-get install slurmctld slurmd slurm-client munge (once per machine)
#   start:   write /etc/slurm/slurm.conf (an existing one is kept as slurm.conf.orig), start the daemons
set -euo pipefail
CONF=/etc/slurm/slurm.conf
STATE=${SLURM_LOCAL_STATE:-/var/lib/slurm-local}
case "${1:-}" in
  install)
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge ;;
  start)
    command -v slurmctld >/dev/null || { echo "slurm-local.sh: slurmctld is missing; run: $0 install" >&2; exit 1; }
    [ -f /etc/munge/munge.key ] || { mungekey --create; chown munge:munge /etc/munge/munge.key; }
    mkdir -p /run/munge && chown munge:munge /run/munge
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    mkdir -p "$STATE/ctld" "$STATE/d" /var/log/slurm
    [ -f "$CONF" ] && [ ! -f "$CONF.orig" ] && ! grep -q "slurm-local.sh" "$CONF" && cp "$CONF" "$CONF.orig"
    read -r CPUS MEM < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
    cat > "$CONF" <<CONF
# written by scripts/cluster/slurm-local.sh: one node, localhost
ClusterName=cluscam-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
NodeName=localhost CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
      sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && { sinfo; exit 0; }
      sleep 1
    done
    echo "slurm-local.sh: the node did not come up; see /var/log/slurm/" >&2; exit 1 ;;
  stop)
    pkill -x slurmd || true; pkill -x slurmctld || true
    [ -f "$CONF.orig" ] && mv "$CONF.orig" "$CONF" || true ;;
  status) sinfo && squeue ;;
  *) echo "usage: $0 install | start | stop | status" >&2; exit 2 ;;
esac
