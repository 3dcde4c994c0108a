#!/usr/bin/env bash
# vs-wrk.sh: the loadgen against `wrk -t1 -c50` on the same afterburner, side by side in one run.
#
# One 1 KiB file, 50 connections, keep-alive and then one connection per request (HTTP/1.0 for
# the loadgen, `Connection: close` for wrk: the server closes first either way). Each round runs
# wrk, then every loadgen given, in turn, so drift on a shared machine hits all of them alike.
# The server is pinned to CPU 1 and every client to CPU 0, inside a network namespace of the
# script's own (loopback only, tcp_max_tw_buckets raised), deleted at the end.
#
# Needs root (the namespace), wrk, taskset and python3 (apt-get install wrk util-linux python3).
#
# Usage: scripts/vs-wrk.sh [ROUNDS] [SECONDS] [AFTERBURNER] [LOADGEN...]
#   defaults: 3 rounds of 10 s, target/release/afterburner, target/release/loadgen
#   e.g. to compare two builds: scripts/vs-wrk.sh 5 10 target/release/afterburner old/loadgen target/release/loadgen
# Prints one line per round: requests/s of wrk and of each loadgen, and each loadgen's ratio to wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-10}
server=${3:-target/release/afterburner}
shift $(( $# < 3 ? $# : 3 ))
loadgens=("$@")
[ ${#loadgens[@]} -eq 0 ] && loadgens=(target/release/loadgen)
for tool in wrk taskset python3 ip; do
  command -v "$tool" >/dev/null || { echo "vs-wrk.sh: $tool is missing (apt-get install wrk util-linux python3 iproute2)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "vs-wrk.sh: needs root for its network namespace" >&2; exit 2; }
for binary in "$server" "${loadgens[@]}"; do
  [ -x "$binary" ] || { echo "vs-wrk.sh: $binary is not an executable (cargo build --release first)" >&2; exit 2; }
done

ns=vswrk$$
work=$(mktemp -d)
spid=
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/site"
head -c 1024 /dev/urandom > "$work/site/1k.bin"
echo "1 /1k.bin" > "$work/urls"
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" sysctl -qw net.ipv4.tcp_max_tw_buckets=4000000
port=8099
ip netns exec "$ns" taskset -c 1 "$server" --root "$work/site" --listen "127.0.0.1:$port" \
  --keepalive-timeout 60s > "$work/server.out" 2>&1 &
spid=$!
sleep 1

scenario() { # NAME REQUESTS_PER_CONNECTION
  cat > "$work/$1.toml" <<EOF
name = "$1"
seed = 1
warmup = "1s"
duration = "${secs}s"
workers = 1
verify_content = false
[server]
kind = "url"
url = "http://127.0.0.1:$port/"
[site]
kind = "directory"
root = "site"
urls = "urls"
[[clients]]
name = "c"
kind = "closed"
clients = 50
requests_per_connection = $2
EOF
}
scenario keepalive 1000000000
scenario close 1

run_wrk() { # [HEADER]
  local args=(-t1 -c50 -d"${secs}s")
  [ -n "$1" ] && args+=(-H "$1")
  ip netns exec "$ns" taskset -c 0 wrk "${args[@]}" "http://127.0.0.1:$port/1k.bin" |
    awk '/Requests\/sec/ {printf "%.0f", $2}'
}
run_loadgen() { # BINARY SCENARIO
  rm -rf "$work/out"
  # Exit status 3 (the generator's core saturated) is the point of this comparison.
  ip netns exec "$ns" taskset -c 0 "$1" run "$work/$2.toml" --out "$work/out" --quiet \
    > "$work/loadgen.out" 2>&1 || true
  python3 - "$work/out/$2" <<'EOF'
import glob, json, sys
paths = glob.glob(sys.argv[1] + "/*/result.json")
print("%.0f" % json.load(open(paths[0]))["load_points"][0]["totals"]["ops_per_s"] if paths else "failed")
EOF
}
for mode in keepalive close; do
  header=""
  [ "$mode" = close ] && header="Connection: close"
  for round in $(seq 1 "$rounds"); do
    wrk_rate=$(run_wrk "$header")
    line="$mode round $round: wrk $wrk_rate"
    for i in "${!loadgens[@]}"; do
      rate=$(run_loadgen "${loadgens[$i]}" "$mode")
      ratio=$(python3 -c "print('%.2f' % ($rate / $wrk_rate))" 2>/dev/null || echo "-")
      line="$line  loadgen[$i] $rate (x$ratio)"
    done
    echo "$line"
  done
done
