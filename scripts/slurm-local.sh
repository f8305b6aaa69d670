#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for testing workflow/profiles/slurm without a real
# cluster. Everything (munge key and socket, slurm.conf, state, spool, logs, pid files) lives
# under one folder, so nothing in /etc or /run is touched and `stop` leaves no daemon behind.
#
#   scripts/slurm-local.sh start DIR   # install slurm-wlm + munge if missing, start the daemons,
#                                      # wait until the node is idle; prints `export SLURM_CONF=...`
#   scripts/slurm-local.sh stop DIR    # stop the daemons started by `start DIR`
#   scripts/slurm-local.sh status DIR  # sinfo and squeue against that cluster
#
# Needs root (slurmd runs jobs as their users; munged and slurm run as root here) and Debian's
# slurm-wlm and munge (installed by `start` when missing). No systemd: the daemons are started
# directly. The node advertises its real CPUs and memory (`slurmd -C`) and one count-only GPU
# GRES (GENEX_SLURM_FAKE_GPUS=1, the default), so jobs that ask `--gpus=1` are scheduled on a
# machine without a GPU (they then run on CPU; `device: auto`). GENEX_SLURM_FAKE_GPUS=0 leaves
# GRES out; then override GPU requests instead (see docs/slurm.md).
# Snakemake's SLURM job step strips SLURM_* variables (SLURM_CONF too) before its inner
# `srun`, so the config must also be where SLURM looks by default: `start` links
# /etc/slurm/slurm.conf to DIR/etc/slurm.conf (refusing to replace a real one) and `stop`
# removes that link.
# Ports: GENEX_SLURMCTLD_PORT (6817) and GENEX_SLURMD_PORT (6818).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$dir/etc/slurm.conf
socket=$dir/munge/munge.socket.2
ctld_port=${GENEX_SLURMCTLD_PORT:-6817}
slurmd_port=${GENEX_SLURMD_PORT:-6818}
fake_gpus=${GENEX_SLURM_FAKE_GPUS:-1}
system_conf=/etc/slurm/slurm.conf
export SLURM_CONF=$conf

die() { echo "slurm-local: error: $*" >&2; exit 1; }

install_packages() {
  local missing=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get (not Debian/Ubuntu)"
  echo "slurm-local: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
  mkdir -p "$dir/munge"
  chmod 0700 "$dir/munge"
  [ -f "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key" --force
  chmod 0600 "$dir/munge/munge.key"
  # --force: munged refuses root and a world-writable /tmp ancestor without it
  munged --force --socket="$socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  munge --socket="$socket" -n </dev/null | unmunge --socket="$socket" >/dev/null \
    || die "munged does not answer on $socket (see $dir/log/munged.log)"
}

# NodeName=... CPUs=... RealMemory=... as slurmd measures this machine (without UpTime)
node_line() {
  slurmd -C | head -n1 | sed -E 's/ *UpTime=.*//'
}

write_config() {
  local host node gres_node=""
  host=$(hostname -s)
  node=$(node_line | sed -E "s/^NodeName=[^ ]+/NodeName=$host/")
  mkdir -p "$dir/etc" "$dir/state" "$dir/spool" "$dir/log"
  if [ "$fake_gpus" = 1 ]; then
    gres_node=" Gres=gpu:1"
    # count-only GRES: lets `--gpus=1` be scheduled; no device is bound
    echo "NodeName=$host Name=gpu File=/dev/null" >"$dir/etc/gres.conf"
  else
    : >"$dir/etc/gres.conf"
  fi
  cat >"$conf" <<EOF
# written by scripts/slurm-local.sh: a one-node test cluster, not for production
ClusterName=genex-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/etc/plugstack.conf
# no cgroups (containers rarely allow them): track processes by parent id
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# keep finished jobs visible to squeue for snakemake's status checks, and to the test that counts
# them after the run (an hour: the tiny DAG took 18 min on 2 busy cores, and 10 min lost jobs)
MinJobAge=3600
GresTypes=gpu
$node$gres_node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$dir/etc/plugstack.conf"
}

link_system_conf() {
  if [ -e "$system_conf" ] || [ -L "$system_conf" ]; then
    case $(readlink "$system_conf" || true) in
      */etc/slurm.conf) ;;  # a link left by an earlier test cluster: replace it
      *) die "$system_conf exists and is not ours; not replacing a real cluster's config" ;;
    esac
  fi
  mkdir -p "$(dirname "$system_conf")"
  ln -sfn "$conf" "$system_conf"
}

wait_idle() {
  local i state
  for i in $(seq 1 60); do
    state=$(sinfo --noheader --format=%T 2>/dev/null | head -n1 || true)
    [ "$state" = idle ] && return 0
    sleep 1
  done
  die "node not idle after 60 s (state: '${state:-none}'); see $dir/log/slurmctld.log, slurmd.log"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and munged need it)"
  [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null \
    && die "a cluster already runs from $dir; stop it first"
  install_packages
  mkdir -p "$dir/log"
  start_munge
  write_config
  link_system_conf
  slurmctld -f "$conf" || die "slurmctld did not start (see $dir/log/slurmctld.log)"
  slurmd -f "$conf" || die "slurmd did not start (see $dir/log/slurmd.log)"
  wait_idle
  sinfo >&2
  echo "export SLURM_CONF=$conf"
}

stop_pidfile() {
  local pidfile=$1 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
}

stop() {
  # cancel what is still queued or running, so slurmd leaves no job processes behind
  [ -f "$conf" ] && scancel --full --quiet --user=root 2>/dev/null || true
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge/munged.pid"
  [ "$(readlink "$system_conf" 2>/dev/null || true)" = "$conf" ] && rm -f "$system_conf"
  return 0
}

case $action in
  start) start ;;
  stop) stop ;;
  status) sinfo; squeue ;;
  *) usage ;;
esac
