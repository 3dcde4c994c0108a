#!/usr/bin/env bash
# slurm-cluster.sh: a real Slurm cluster on this one machine, for trying deploy/slurm/ and for CI.
#
# `up` starts munged (unless one already answers), slurmctld on the host and one slurmd per node,
# n1 to n4, each in a network namespace of its own on a bridge, so that each node is a "host" with
# its own address, ports and TIME_WAITs:
#   br-slurm 198.19.16.1/24 (host, slurmctld)   n1 198.19.16.11 ... n4 198.19.16.14
# Four nodes: deploy/slurm/afterburner.sbatch puts its server alone on one node and its three
# generator shards on three others. (With three nodes the server would have to share a node
# with a shard, and Slurm's backfill scheduler, the only one that starts heterogeneous jobs, plans
# whole nodes per component: such a job waits until its first component's time limit is over.)
# AFTERBURNER_SLURM_NODES sets another count (2 to 9). Each node has 2 CPUs (the machine's two,
# claimed by every node). Jobs run as root, in the namespace of the slurmd that starts them.
# The daemons are entered with `nsenter --net=`, not `ip netns exec`: the latter also remounts
# /sys, which hides the cgroup tree slurmd looks at.
# Installs slurmctld, slurmd, slurm-client and munge with apt-get when they are missing.
#
# Usage: scripts/slurm-cluster.sh up [STATE_DIR]    (default: a new directory under /tmp)
#        scripts/slurm-cluster.sh status [STATE_DIR]
#        scripts/slurm-cluster.sh down [--keep] [STATE_DIR]
# STATE_DIR holds slurm.conf, the daemons' logs, spool and PIDs; `up` prints it and the line
#   export SLURM_CONF=STATE_DIR/slurm.conf
# that points sbatch, squeue and sinfo at this cluster. The state directory of the cluster that is
# up is also in /run/afterburner-slurm.dir, which `status` and `down` read when none is given.
# `down` cancels the cluster's jobs, stops only the daemons `up` started (by PID), deletes the
# namespaces, veths and bridge, restores what it changed, and deletes STATE_DIR unless --keep.
#
# Needs root. Exits 0 done, 1 a step failed (the message says which; run `down` to clean up),
# 2 usage or not root, 4 apt-get could not install Slurm or munge.
set -euo pipefail

bridge=br-slurm
node_count=${AFTERBURNER_SLURM_NODES:-4}
case $node_count in
  [2-9]) ;;
  *) echo "slurm-cluster.sh: AFTERBURNER_SLURM_NODES must be 2 to 9, not $node_count" >&2; exit 2 ;;
esac
nodes=()
for ((i = 1; i <= node_count; i++)); do nodes+=("n$i"); done
host_address=198.19.16.1
pointer=/run/afterburner-slurm.dir

node_address() { # NODE -> 198.19.16.1X
  echo "198.19.16.1${1#n}"
}

fail() {
  echo "slurm-cluster.sh: $*" >&2
  exit 1
}

state_dir_given_or_current() { # [DIR]
  if [ -n "${1:-}" ]; then
    realpath -m "$1"
  elif [ -s "$pointer" ]; then
    cat "$pointer"
  else
    echo "slurm-cluster.sh: no cluster is up ($pointer is missing) and no STATE_DIR given" >&2
    exit 2
  fi
}

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing ${missing[*]} (apt-get)"
  command -v apt-get >/dev/null || {
    echo "slurm-cluster.sh: ${missing[*]} missing and no apt-get to install them" >&2
    exit 4
  }
  # The packages start their services as they install (munged, and slurmd/slurmctld failing for
  # want of a configuration); this script starts its own, so keep theirs from starting, as
  # .ci/run does, unless the machine already has a policy.
  local made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null; } || status=$?
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ "$status" != 0 ]; then
    echo "slurm-cluster.sh: apt-get install ${missing[*]} failed (exit $status)" >&2
    exit 4
  fi
}

write_conf() { # DIR
  local dir=$1 controller
  # slurmctld refuses to run unless this name is the host's own short name.
  controller=$(hostname -s)
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-cluster.sh: one machine, three nodes in network namespaces.
ClusterName=afterburner
SlurmctldHost=$controller($host_address)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
# No cgroups: the nodes share one kernel and one cgroup tree, which a slurmd would claim.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Heterogeneous jobs are scheduled only by the backfill scheduler, every bf_interval seconds
# (30 by default).
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Every node claims the machine's CPUs; without this a slurmd whose hardware disagrees with its
# line is drained.
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=0
KillOnBadExit=1
SlurmdTimeout=60
KillWait=10
# sbatch --wait polls every 2 s only while that is under half of MinJobAge (else it backs off to
# 8 and 32 s, which adds up to half a minute to a short job); completed jobs are kept this long.
MinJobAge=4
EOF
  local node
  for node in "${nodes[@]}"; do
    echo "NodeName=$node NodeAddr=$(node_address "$node") CPUs=2 State=UNKNOWN" >>"$dir/slurm.conf"
  done
  echo "PartitionName=ci Nodes=n[1-$node_count] Default=YES MaxTime=15 State=UP" >>"$dir/slurm.conf"
}

make_network() { # DIR
  local dir=$1 node
  ip link add "$bridge" type bridge
  echo "link $bridge" >>"$dir/made"
  ip addr add "$host_address/24" dev "$bridge"
  ip link set "$bridge" up
  # With br_netfilter loaded, bridged frames go through iptables, whose rules are the machine's.
  local bridge_nf=/proc/sys/net/bridge/bridge-nf-call-iptables
  if [ -e "$bridge_nf" ] && [ "$(cat "$bridge_nf")" != 0 ]; then
    echo "sysctl net.bridge.bridge-nf-call-iptables $(cat "$bridge_nf")" >>"$dir/made"
    echo 0 >"$bridge_nf"
  fi
  for node in "${nodes[@]}"; do
    ip netns add "$node"
    echo "netns $node" >>"$dir/made"
    # Deleting the namespace deletes eth0 and with it its host end, veth-$node.
    ip link add "veth-$node" type veth peer name eth0 netns "$node"
    ip link set "veth-$node" master "$bridge" up
    nsenter --net="/run/netns/$node" sh -e -c "
      ip link set lo up
      ip addr add $(node_address "$node")/24 dev eth0
      ip link set eth0 up
      ip route add default via $host_address"
  done
}

# start DIR NAME COMMAND...: starts a daemon in the foreground of a session of its own, records
# "PID NAME" in DIR/pids; `down` stops exactly these.
start() {
  local dir=$1 name=$2
  shift 2
  # setsid execs the command itself (the background job is not a group leader), so $! is the
  # daemon's PID; nsenter without --fork execs too.
  setsid "$@" </dev/null >>"$dir/$name.out" 2>&1 &
  echo "$! $name" >>"$dir/pids"
}

start_munge() { # DIR
  local dir=$1
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    echo "munged: one is running already; using it"
    return 0
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  [ -s /etc/munge/munge.key ] || setpriv --reuid=munge --regid=munge --init-groups mungekey --create
  # munged insists on running as the owner of its key.
  start "$dir" munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "munged did not answer within 5 s (see $dir/munged.out)"
}

wait_idle() { # DIR
  local dir=$1 states
  for _ in $(seq 120); do
    states=$(sinfo -h -N -o '%N %T' 2>/dev/null || true)
    if [ "$(grep -c ' idle$' <<<"$states")" = "${#nodes[@]}" ]; then
      return 0
    fi
    sleep 0.5
  done
  echo "$states" >&2
  fail "the nodes were not all idle within 60 s (logs in $dir)"
}

up() {
  [ -e "$pointer" ] && {
    echo "slurm-cluster.sh: a cluster is up already (state in $(cat "$pointer")); run down first" >&2
    exit 2
  }
  ip link show "$bridge" >/dev/null 2>&1 && fail "$bridge exists already (not made by this script?)"
  local node
  for node in "${nodes[@]}"; do
    [ -e "/run/netns/$node" ] && fail "network namespace $node exists already (not made by this script?)"
  done
  install_packages
  local dir
  if [ -n "${1:-}" ]; then
    dir=$(realpath -m "$1")
    mkdir -p "$dir"
  else
    dir=$(mktemp -d /tmp/afterburner-slurm.XXXXXX)
  fi
  chmod 755 "$dir"
  mkdir -p "$dir/ctld"
  : >"$dir/pids"
  : >"$dir/made"
  echo "$dir" >"$pointer"
  write_conf "$dir"
  export SLURM_CONF=$dir/slurm.conf
  make_network "$dir"
  start_munge "$dir"
  # -c: no state from an earlier cluster; -D: foreground, so the PID recorded is the daemon's.
  start "$dir" slurmctld slurmctld -D -c -f "$SLURM_CONF"
  for node in "${nodes[@]}"; do
    start "$dir" "slurmd-$node" nsenter --net="/run/netns/$node" slurmd -D -N "$node" -f "$SLURM_CONF"
  done
  wait_idle "$dir"
  echo "cluster up: slurmctld on $host_address, slurmd ${nodes[*]} on $(node_address n1)-1$node_count (state in $dir)"
  echo "export SLURM_CONF=$SLURM_CONF"
}

status() { # [DIR]
  local dir pid name code=0
  dir=$(state_dir_given_or_current "${1:-}")
  export SLURM_CONF=$dir/slurm.conf
  echo "state: $dir"
  while read -r pid name; do
    if [ -d "/proc/$pid" ]; then
      echo "$name: running (pid $pid)"
    else
      echo "$name: NOT running (pid $pid)"
      code=1
    fi
  done <"$dir/pids"
  sinfo -N -o '%N %T %C %o' || code=1
  squeue || code=1
  return $code
}

# stop_daemons DIR: SIGTERM to every daemon in DIR/pids that still runs the program started
# (a PID reused by something else since is left alone), all at once since each takes about 2 s
# to exit; SIGKILL to any still there 10 s later.
stop_daemons() {
  local dir=$1 pid name live=() running
  [ -f "$dir/pids" ] || return 0
  while read -r pid name; do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${name%%-*}" ] || continue
    kill -TERM "$pid" 2>/dev/null && live+=("$pid")
  done <"$dir/pids"
  for _ in $(seq 100); do
    running=0
    for pid in "${live[@]}"; do
      [ -d "/proc/$pid" ] && running=1
    done
    [ "$running" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "${live[@]}"; do
    if [ -d "/proc/$pid" ]; then
      echo "pid $pid still runs 10 s after SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

down() { # [--keep] [DIR]
  local keep=
  if [ "${1:-}" = --keep ]; then
    keep=1
    shift
  fi
  local dir
  dir=$(state_dir_given_or_current "${1:-}")
  [ -d "$dir" ] || { rm -f "$pointer"; fail "$dir is not a directory"; }
  export SLURM_CONF=$dir/slurm.conf
  # The cluster's own jobs first, while slurmctld and slurmd can still end them.
  local controller
  controller=$(awk '$2 == "slurmctld" { print $1 }' "$dir/pids" 2>/dev/null)
  if [ -n "$controller" ] && [ "$(cat "/proc/$controller/comm" 2>/dev/null)" = slurmctld ] &&
    squeue -h -o %A >/dev/null 2>&1; then
    local jobs
    # A heterogeneous job is cancelled whole, by its leader's id (7 for 7+0 and 7+1).
    jobs=$(squeue -h -o %i | sed 's/+.*//' | sort -u)
    if [ -n "$jobs" ]; then
      echo "cancelling jobs: ${jobs//$'\n'/ }"
      # shellcheck disable=SC2086 # one job id per word
      scancel $jobs || true
      for _ in $(seq 30); do
        [ -z "$(squeue -h -o %A)" ] && break
        sleep 0.5
      done
    fi
  fi
  stop_daemons "$dir"
  local kind what value
  if [ -f "$dir/made" ]; then
    while read -r kind what value; do
      case $kind in
        netns) ip netns del "$what" 2>/dev/null || true ;;
        link) ip link del "$what" 2>/dev/null || true ;;
        sysctl) sysctl -qw "$what=$value" || true ;;
      esac
    done < <(tac "$dir/made")
  fi
  rm -f "$pointer"
  if [ -n "$keep" ]; then
    echo "cluster down; state kept in $dir"
  else
    rm -rf "$dir"
    echo "cluster down"
  fi
}

[ "$(id -u)" = 0 ] || { echo "slurm-cluster.sh: needs root (namespaces, daemons)" >&2; exit 2; }
for tool in ip nsenter setsid setpriv; do
  command -v "$tool" >/dev/null || { echo "slurm-cluster.sh: $tool is missing (apt-get install iproute2 util-linux)" >&2; exit 2; }
done
case "${1:-}" in
  up) shift; up "$@" ;;
  status) shift; status "$@" ;;
  down) shift; down "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
