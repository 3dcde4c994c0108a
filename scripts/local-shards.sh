#!/usr/bin/env bash
# local-shards.sh: one sharded run on this machine: `loadgen serve` plus N `loadgen run --shard I/N`
# processes, each in a network namespace of its own, then `loadgen merge` of the parts.
#
# Why: one process holds at most about 20,000 sockets here (open files, soft = hard) and its
# generator is one event loop; N generator processes, each with its own addresses, ports and
# TIME_WAITs, drive more connections than one could, the way N hosts would.
#
# The network, all inside namespaces named ab-<this script's PID>-*, so parallel runs never meet
# and nothing is added to the host's own namespace:
#   ab-PID-hub   every other namespace is made from it, and it asks for a TCP hash table of
#                their own (tcp_child_ehash_entries), so sock_diag dumps in one run do not walk
#                every socket on the machine; with --bridge it also holds the bridge
#   ab-PID-srv   the server side, 198.19.32.1 (`loadgen serve --listen 198.19.32.1:PORT`)
#   ab-PID-gI    generator shard I, 198.19.32.(10+I) (`loadgen run --shard I/N --target ...`),
#                joined to the server's namespace by a veth pair of its own, as the loadgen's
#                own split namespaces are (--bridge: all joined by a bridge in the hub instead,
#                a hop more per packet: measured 62-64 us of server CPU per request of
#                quick.toml against 52-55 us over the pairs and 44-49 us over loopback)
# 198.19.32.0/24 is in the benchmarking range (RFC 2544) and clear of the loadgen's own split
# namespaces (198.18.0.0/16) and the Slurm test's 198.19.16.0/24. Each namespace is entered with
# `nsenter --net=/run/netns/NAME` (`ip netns exec` would remount /sys for every process).
#
# In every namespace: ports 1024-65535 for outgoing connections, 4,000,000 TIME_WAIT buckets,
# somaxconn and tcp_max_syn_backlog 65535, IPv6 off; tcp_tw_reuse as --tcp-tw-reuse says (else
# the kernel's default for a new namespace, 2: loopback only, which here means off). The sysctls
# set are listed in RUN/namespaces.txt.
#
# CPUs: the server side runs under `taskset -c 1`, every generator under `taskset -c 0`
# (--server-cpus, --generator-cpus, --no-pin), as a plain `loadgen run` splits them.
#
# Usage: scripts/local-shards.sh [OPTIONS] SCENARIO [LOADGEN OVERRIDES]
#   --shards N            generator processes (default 3)
#   --loadgen PATH        the loadgen binary (default target/release/loadgen)
#   --out DIR             results: DIR/<scenario name>/<start>/{server,shard-I-of-N}/ (default runs)
#   --port P              the server's port (default 8080)
#   --lead S              seconds from now to --start-at (default 10 + 2 per shard): the server
#                         side starts first (and writes the file set), the generators once it
#                         listens; all must be ready before it
#   --bridge              join the namespaces by a bridge (br0 in the hub) instead of a veth pair
#                         from each generator to the server
#   --mtu BYTES           MTU of the bridge and every veth (default 1500, Ethernet's; 65535 comes
#                         near loopback's 65536, which a plain `loadgen run` without slow lines
#                         uses: its replies go in one segment, where 1500 takes one per 1448 B)
#   --tcp-tw-reuse V      net.ipv4.tcp_tw_reuse in every namespace (0 off, 1 on, 2 loopback only)
#   --server-cpus LIST    taskset list for the server side (default 1)
#   --generator-cpus LIST taskset list for every generator (default 0)
#   --no-pin              no taskset at all
#   --no-merge            keep the parts; do not run `loadgen merge`
#   overrides, given to every part: --duration D --warmup D --rate R --clients N
#     --modem-clients N --rtt MODE --seed N --workers N --sample-interval D --quiet
# e.g. scripts/local-shards.sh --shards 3 scenarios/quick.toml --duration 15s
#      scripts/local-shards.sh --shards 4 scenarios/modem50k.toml
#
# Each part's own output (summary, errors) is RUN/<part>/loadgen.log. Every part stops by
# itself after its last load point; a part still running a minute after that is stopped.
# Exit: 0 when every part and the merge succeeded; the merge's status when it did not run to a
# merged result (2 refused, 4 not written: the parts are kept and listed); else 3 when a part was
# invalid or failed. Needs root (namespaces), iproute2, nsenter and taskset (util-linux), sysctl
# (procps).
# AFTERBURNER (for a scenario that starts afterburner itself, modem50k.toml) defaults to the
# afterburner built beside the loadgen. Without root it says so and exits 0 having done nothing.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/having done nothing/p' "$0" | sed 's/^# \{0,1\}//'; }
fail() { echo "local-shards.sh: $*" >&2; exit 2; }

shards=3
loadgen=target/release/loadgen
out=runs
port=8080
lead=
topology=pairs
mtu=1500
tw_reuse=
server_cpus=1
generator_cpus=0
pin=1
merge=1
scenario=
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) shards=${2:?--shards needs N}; shift 2 ;;
    --loadgen) loadgen=${2:?--loadgen needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --lead) lead=${2:?--lead needs seconds}; shift 2 ;;
    --bridge) topology=bridge; shift ;;
    --mtu) mtu=${2:?--mtu needs bytes}; shift 2 ;;
    --tcp-tw-reuse) tw_reuse=${2:?--tcp-tw-reuse needs 0, 1 or 2}; shift 2 ;;
    --server-cpus) server_cpus=${2:?--server-cpus needs a CPU list}; shift 2 ;;
    --generator-cpus) generator_cpus=${2:?--generator-cpus needs a CPU list}; shift 2 ;;
    --no-pin) pin=0; shift ;;
    --no-merge) merge=0; shift ;;
    --duration|--warmup|--rate|--clients|--modem-clients|--rtt|--seed|--workers|--sample-interval)
      [ $# -ge 2 ] || fail "$1 needs a value"
      overrides+=("$1" "$2"); shift 2 ;;
    --duration=*|--warmup=*|--rate=*|--clients=*|--modem-clients=*|--rtt=*|--seed=*|--workers=*|--sample-interval=*|--quiet|-q)
      overrides+=("$1"); shift ;;
    -h|--help) usage; exit 0 ;;
    -*) fail "unknown option $1 (--help lists them)" ;;
    *) [ -z "$scenario" ] || fail "one scenario only ($scenario, then $1)"; scenario=$1; shift ;;
  esac
done
[ -n "$scenario" ] || { usage >&2; exit 2; }
case "$shards" in ''|*[!0-9]*|0) fail "--shards takes a whole number >= 1, not '$shards'" ;; esac
[ "$shards" -le 200 ] || fail "--shards $shards: at most 200 (one address each in a /24)"
case "$port" in ''|*[!0-9]*) fail "--port takes a number, not '$port'" ;; esac
[ -z "$lead" ] && lead=$(( 10 + 2 * shards ))
case "$lead" in ''|*[!0-9]*) fail "--lead takes whole seconds, not '$lead'" ;; esac
case "$mtu" in ''|*[!0-9]*) fail "--mtu takes bytes, not '$mtu'" ;; esac
[ "$mtu" -ge 576 ] && [ "$mtu" -le 65535 ] || fail "--mtu $mtu: give 576 to 65535"
case "$tw_reuse" in ''|0|1|2) ;; *) fail "--tcp-tw-reuse takes 0, 1 or 2, not '$tw_reuse'" ;; esac

if [ "$(id -u)" != 0 ]; then
  echo "local-shards.sh: skipped: network namespaces need root (run it as root, or run the parts by hand as deploy/README.md shows)" >&2
  exit 0
fi
for tool in ip ss nsenter sysctl; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install iproute2 util-linux procps)"
done
if [ "$pin" = 1 ]; then
  command -v taskset >/dev/null || fail "taskset is missing (apt-get install util-linux), or give --no-pin"
  if [ "$(nproc --all)" -lt 2 ]; then
    echo "local-shards.sh: one CPU: nothing pinned" >&2
    pin=0
  fi
fi
[ -x "$loadgen" ] || fail "$loadgen is not an executable (cargo build --release -p loadgen, or --loadgen PATH)"
[ -f "$scenario" ] || fail "$scenario: no such scenario file"
loadgen=$(cd "$(dirname "$loadgen")" && pwd)/$(basename "$loadgen")
# A scenario whose server is a command of several afterburner processes (modem50k.toml) finds
# the binary in AFTERBURNER: the one built beside this loadgen, unless set.
if [ -z "${AFTERBURNER:-}" ] && [ -x "$(dirname "$loadgen")/afterburner" ]; then
  export AFTERBURNER=$(dirname "$loadgen")/afterburner
fi

# The scenario is checked (and its load points and slot read) before anything is set up.
plan=$("$loadgen" plan "$scenario" --shard "0/$shards" "${overrides[@]}" 2>&1) \
  || { echo "$plan" >&2; fail "loadgen plan refused $scenario"; }
seconds_of() { # humantime text ("1m 5s", "35s 500ms") -> whole seconds, rounded up
  local total_ms=0 word value
  for word in $1; do
    value=${word%%[a-z]*}
    case "$word" in
      *ms) total_ms=$(( total_ms + value )) ;;
      *h) total_ms=$(( total_ms + value * 3600000 )) ;;
      *m) total_ms=$(( total_ms + value * 60000 )) ;;
      *s) total_ms=$(( total_ms + value * 1000 )) ;;
      *us|*ns) ;;
    esac
  done
  echo $(( (total_ms + 999) / 1000 ))
}
points=$(sed -n 's/^load points: \([0-9]*\) (each a slot of \([^:]*\):.*/\1/p' <<<"$plan")
slot=$(seconds_of "$(sed -n 's/^load points: [0-9]* (each a slot of \([^:]*\):.*/\1/p' <<<"$plan")")
[ -n "$points" ] && [ "$slot" -gt 0 ] || { echo "$plan" >&2; fail "could not read the load points from loadgen plan"; }
name=$(sed -n 's/^scenario \([^:]*\): shard.*/\1/p' <<<"$plan")
[ -n "$name" ] || name=$(basename "$scenario" .toml)

prefix=ab-$$
hub=$prefix-hub
server_ns=$prefix-srv
subnet=198.19.32
server_ip=$subnet.1
namespaces=()          # made by this run, leaves first when deleted
pids=()                # the parts, by PID
labels=()
cleaned=0
cleanup() {
  [ "$cleaned" = 1 ] && return
  cleaned=1
  local pid ns left
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 150); do  # a stopped part writes what it measured: up to 15 s
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  # Whatever still runs in this run's namespaces (a server whose loadgen was killed) was started
  # by this script: nothing else can enter them.
  for ns in "${namespaces[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for (( i = ${#namespaces[@]} - 1; i >= 0; i-- )); do
    ip netns del "${namespaces[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
set_sysctl() { # NS NAME VALUE: set it and note it
  if in_ns "$1" sysctl -qw "$2=$3" 2>/dev/null; then
    echo "$1: $2=$3" >>"$record"
  else
    echo "$1: $2 not set" >>"$record"
  fi
}

start_at=$(( $(date +%s) + lead ))
stamp=$(date -u -d "@$start_at" +%Y-%m-%dT%H-%M-%SZ)
run_dir=$(mkdir -p "$out" && cd "$out" && pwd)/$name/$stamp
mkdir -p "$run_dir/server"
record=$run_dir/namespaces.txt
: >"$record"

ip netns add "$hub"
namespaces+=("$hub")
in_ns "$hub" ip link set lo up
if [ -e /proc/sys/net/ipv4/tcp_child_ehash_entries ]; then
  set_sysctl "$hub" net.ipv4.tcp_child_ehash_entries 131072
fi
if [ "$topology" = bridge ]; then
  in_ns "$hub" ip link add br0 mtu "$mtu" type bridge forward_delay 0
  in_ns "$hub" ip link set br0 up
  echo "$hub: bridge br0, mtu $mtu" >>"$record"
fi

namespace() { # NS: made from the hub (so with a TCP hash table of its own), sysctls set
  local ns=$1
  in_ns "$hub" ip netns add "$ns"
  namespaces+=("$ns")
  set_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
  set_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
  in_ns "$ns" ip link set lo up
  set_sysctl "$ns" net.ipv4.ip_local_port_range "1024 65535"
  set_sysctl "$ns" net.ipv4.tcp_max_tw_buckets 4000000
  set_sysctl "$ns" net.core.somaxconn 65535
  set_sysctl "$ns" net.ipv4.tcp_max_syn_backlog 65535
  [ -n "$tw_reuse" ] && set_sysctl "$ns" net.ipv4.tcp_tw_reuse "$tw_reuse"
  return 0
}
namespace "$server_ns"
if [ "$topology" = bridge ]; then
  in_ns "$hub" ip link add s mtu "$mtu" type veth peer name eth0 mtu "$mtu" netns "$server_ns"
  in_ns "$hub" ip link set s master br0 up
  in_ns "$server_ns" ip addr add "$server_ip/24" dev eth0
  in_ns "$server_ns" ip link set eth0 up
fi
for (( i = 0; i < shards; i++ )); do
  ns=$prefix-g$i
  address=$subnet.$(( 10 + i ))
  namespace "$ns"
  if [ "$topology" = bridge ]; then
    in_ns "$hub" ip link add "g$i" mtu "$mtu" type veth peer name eth0 mtu "$mtu" netns "$ns"
    in_ns "$hub" ip link set "g$i" master br0 up
    in_ns "$ns" ip addr add "$address/24" dev eth0
  else
    # One veth pair straight into the server's namespace, as the loadgen's own split
    # namespaces are joined: the server's address on every pair, each with its one peer.
    in_ns "$server_ns" ip link add "g$i" mtu "$mtu" type veth peer name eth0 mtu "$mtu" netns "$ns"
    in_ns "$server_ns" ip addr add "$server_ip/32" peer "$address/32" dev "g$i"
    in_ns "$server_ns" ip link set "g$i" up
    in_ns "$ns" ip addr add "$address/32" peer "$server_ip/32" dev eth0
  fi
  in_ns "$ns" ip link set eth0 up
done
[ "$topology" = pairs ] && echo "$server_ns: a veth pair to each generator, mtu $mtu" >>"$record"

taskset_for() { # CPU-LIST: the taskset words that pin a part there (none with --no-pin)
  taskset_words=()
  [ "$pin" = 1 ] && taskset_words=(taskset -c "$1")
  return 0
}
start_part() { # LABEL NS DIR COMMAND...
  local label=$1 ns=$2 dir=$3; shift 3
  mkdir -p "$dir"
  # A simple command (not a function, which would run in a subshell of its own): nsenter and
  # taskset exec the rest, so the PID kept is the loadgen's own.
  nsenter --net="/run/netns/$ns" "$@" >"$dir/loadgen.log" 2>&1 &
  pids+=("$!")
  labels+=("$label")
}

target=http://$server_ip:$port/
echo "local-shards.sh: $name: server + $shards shards, --start-at $start_at ($stamp, in ${lead}s), $points load point(s) of ${slot}s; parts in $run_dir"
taskset_for "$server_cpus"
start_part server "$server_ns" "$run_dir/server" \
  "${taskset_words[@]}" "$loadgen" serve "$scenario" --listen "$server_ip:$port" \
  --start-at "$start_at" --out "$out" --run-dir "$run_dir/server" "${overrides[@]}"
# The generators start once the server listens: the server side has then written the file set,
# which a generator only checks (parts writing a new one at once would read each other's
# half-written files).
ready_by=$(( start_at - 2 ))
until [ -n "$(in_ns "$server_ns" ss -Hltn "sport = :$port" 2>/dev/null)" ]; do
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    echo "local-shards.sh: the server side ended before it listened:" >&2
    tail -n 8 "$run_dir/server/loadgen.log" >&2
    exit 2
  fi
  if [ "$(date +%s)" -ge "$ready_by" ]; then
    echo "local-shards.sh: the server side does not listen yet, 2 s before --start-at: generators started anyway (give a longer --lead)" >&2
    break
  fi
  sleep 0.2
done
taskset_for "$generator_cpus"
for (( i = 0; i < shards; i++ )); do
  part=shard-$i-of-$shards
  start_part "shard $i/$shards" "$prefix-g$i" "$run_dir/$part" \
    "${taskset_words[@]}" "$loadgen" run "$scenario" --shard "$i/$shards" \
    --start-at "$start_at" --target "$target" --out "$out" --run-dir "$run_dir/$part" \
    "${overrides[@]}"
done

deadline=$(( start_at + points * slot + 60 ))
statuses=()
worst=0
for (( k = 0; k < ${#pids[@]}; k++ )); do
  while kill -0 "${pids[k]}" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
  if kill -0 "${pids[k]}" 2>/dev/null; then
    echo "local-shards.sh: ${labels[k]} still running a minute after its last slot: stopping it" >&2
    kill -TERM "${pids[k]}" 2>/dev/null || true
  fi
  status=0
  wait "${pids[k]}" || status=$?
  statuses+=("$status")
  [ "$status" -ne 0 ] && worst=3
done
pids=()
for (( k = 0; k < ${#labels[@]}; k++ )); do
  echo "  ${labels[k]}: exit ${statuses[k]}"
done

if [ "$merge" = 0 ]; then
  echo "local-shards.sh: parts kept in $run_dir (--no-merge)"
  exit "$worst"
fi
merge_status=0
"$loadgen" merge "$run_dir" || merge_status=$?
case "$merge_status" in
  0|3) [ "$merge_status" = 3 ] && worst=3 ;;
  *)
    echo "local-shards.sh: loadgen merge did not merge (exit $merge_status); the parts are kept:" >&2
    for dir in "$run_dir"/server "$run_dir"/shard-*-of-"$shards"; do
      if [ -f "$dir/result.json" ]; then echo "  $dir/result.json" >&2; else echo "  $dir: no result.json (see $dir/loadgen.log)" >&2; fi
    done
    exit "$merge_status" ;;
esac
exit "$worst"
