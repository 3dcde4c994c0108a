#!/usr/bin/env bash
# slurm-test.sh: deploy/slurm/afterburner.sbatch on a real Slurm cluster on this machine
# (scripts/slurm-cluster.sh: slurmctld and four slurmd, each node in its own network namespace),
# checked from the files the job writes. Builds nothing.
#
# Job 1: server on one node, three generator shards on three others (deploy/slurm/ci.toml,
#   5 s of load). Every part must be there and valid; the server's own request count must equal
#   the requests the three shards sent, exactly; each shard's host must hold its own clients'
#   TIME_WAITs and no others; the server-side probes must come from the server's part only. If
#   `loadgen merge` is built: the merged run must be valid, with every part in `shards`, the
#   shards' requests and client-side TIME_WAITs summed and the server's probes once.
# Job 2: the same with shard 2 frozen from 2 s before the common start to 2 s after it
#   (AFTERBURNER_STALL_SHARD=2): the job must fail, shard 2's part must say it was not ready on
#   time, and `loadgen merge` must exit 3 (merged, invalid) naming shard 2.
#
# Usage: scripts/slurm-test.sh [LOADGEN]   (default target/release/loadgen; build it first)
# Needs root; prints "skipped: ..." and exits 0 when not root or when apt-get cannot install
# Slurm. Exits 1 when a check fails (the cluster's logs and the results are then kept, and their
# directory printed), 2 on bad usage. The cluster is taken down on every exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
loadgen=$(realpath -m "${1:-target/release/loadgen}")
if [ "$(id -u)" != 0 ]; then
  echo "skipped: needs root (network namespaces, the Slurm daemons)"
  exit 0
fi
[ -x "$loadgen" ] || { echo "slurm-test.sh: $loadgen is not an executable (cargo build --release -p loadgen)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "slurm-test.sh: python3 is missing (apt-get install python3)" >&2; exit 2; }

state=$(mktemp -d /tmp/afterburner-slurm-test.XXXXXX)
passed=
cleanup() {
  # Only the cluster this test brought up.
  if [ "$(cat /run/afterburner-slurm.dir 2>/dev/null)" = "$state" ]; then
    if [ -n "$passed" ]; then
      bash "$repo/scripts/slurm-cluster.sh" down "$state"
    else
      bash "$repo/scripts/slurm-cluster.sh" down --keep "$state"
      echo "slurm-test.sh: logs, job output and results kept in $state"
    fi
  elif [ -n "$passed" ]; then
    rm -rf "$state"
  fi
}
trap cleanup EXIT

started=$SECONDS
echo "== cluster up (scripts/slurm-cluster.sh up $state)"
up=0
bash scripts/slurm-cluster.sh up "$state" || up=$?
case $up in
  0) ;;
  4) echo "skipped: apt-get cannot install slurm"; passed=1; exit 0 ;;
  *) echo "slurm-test.sh: the cluster did not come up (exit $up)" >&2; exit 1 ;;
esac
export SLURM_CONF=$state/slurm.conf
echo "-- up in $((SECONDS - started)) s"

# submit NAME PORT [VAR=VALUE...]: sbatch --wait the batch script from $state; sets job and
# job_status.
submit() {
  local name=$1 port=$2 began=$SECONDS
  shift 2
  job_status=0
  echo "== $name: sbatch --wait deploy/slurm/afterburner.sbatch (port $port${*:+, $*})"
  job=$(cd "$state" && env LOADGEN="$loadgen" AFTERBURNER_SCENARIO="$repo/deploy/slurm/ci.toml" \
    AFTERBURNER_RESULTS="$state/results" AFTERBURNER_SCRATCH="$state/scratch" \
    AFTERBURNER_LEAD=10 AFTERBURNER_PORT="$port" "$@" \
    timeout 120 sbatch --parsable --wait "$repo/deploy/slurm/afterburner.sbatch") || job_status=$?
  job=${job%%;*}
  echo "-- job $job exited $job_status in $((SECONDS - began)) s; its output:"
  sed 's/^/   | /' "$state/afterburner-$job.out" | grep -v '^   | *$' | grep -E 'job |shard [0-9]: (INVALID|result)|server: (server counted|result)|srun|generators=|Error|error' || true
}

# merge_state JOB: "built" when the job's merge ran, "stub" when this loadgen's merge is the
# placeholder that refuses every run.
merge_state() {
  if grep -q 'not built yet' "$state/afterburner-$1.out"; then echo stub; else echo built; fi
}

submit "job 1: server + 3 shards" 8080
[ "$job_status" = 0 ] || { echo "FAILED: job 1 exited $job_status, expected 0" >&2; exit 1; }
merge1=$(merge_state "$job")
python3 - "$state/results/$job" 3 "$merge1" <<'EOF'
import json, sys

run, shards, merge = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def load(part):
    with open(f"{run}/{part}/result.json") as f:
        return json.load(f)

def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")
    print(f"ok: {message}")

server = load("server")
parts = [load(f"shard-{i}-of-{shards}") for i in range(shards)]
check(server["shard"]["role"] == "server", "the server's part is there, role server")
for i, part in enumerate(parts):
    info = part["shard"]
    check((info["role"], info["index"], info["count"]) == ("generator", i, shards),
          f"shard {i}'s part is there, generator {i} of {shards}")
starts = {p["shard"]["start_at_unix_ms"] for p in parts + [server]}
check(len(starts) == 1, f"every part has the one start time ({starts})")
for name, part in [("server", server)] + [(f"shard {i}", p) for i, p in enumerate(parts)]:
    check(part["valid"], f"{name}'s part is valid {part['invalid_reasons']}")

sent = [sum(pop["requests_sent"] for pop in p["load_points"][0]["populations"]) for p in parts]
counted = server["load_points"][0]["server_stats"]["requests_total"]
check(all(s > 0 for s in sent), f"every shard sent requests: {sent}")
check(counted == sum(sent), f"the server counted {counted} requests = {' + '.join(map(str, sent))} sent by the shards")

def summary(part):
    return part["load_points"][0]["kernel"]["summary"]

time_wait = [summary(p)["peak_time_wait_client_side"] for p in parts]
established = [sum(pop["connections_established"] for pop in p["load_points"][0]["populations"]) for p in parts]
for i in range(shards):
    # Its own connections' TIME_WAITs, and a few of its own before the point (its check that
    # the server answers); never the other shards' (their hosts are other namespaces).
    check(0 < time_wait[i] <= established[i] + 10,
          f"shard {i}'s host holds its own clients' TIME_WAITs only: {time_wait[i]} for {established[i]} connections")
check(summary(server)["peak_time_wait_client_side"] == 0,
      "no client-side TIME_WAIT on the server's host (no generator there)")

server_fields = [k for k in server["load_points"][0]["kernel"]["samples"][0] if k.startswith("server_") and k != "server_ctx_switches_main_only"]
for i, part in enumerate(parts):
    leaked = {k for s in part["load_points"][0]["kernel"]["samples"] for k in server_fields if s[k] is not None}
    check(not leaked, f"shard {i} took no server-side probe ({sorted(leaked)})")
check(any(s["server_rss_bytes"] for s in server["load_points"][0]["kernel"]["samples"]),
      "the server's part took the server-side probes")
server_rss = summary(server)["server_peak_rss_bytes"]

if merge == "stub":
    print("UNTESTED: the merged run (this loadgen's `merge` is the placeholder that refuses every run)")
    sys.exit(0)
with open(f"{run}/merged/result.json") as f:
    merged = json.load(f)
check(merged["valid"] and not merged["invalid_reasons"], f"the merged run is valid {merged['invalid_reasons']}")
listed = sorted((s["role"], s["index"], s["valid"]) for s in merged["shards"])
expected = sorted([("server", 0, True)] + [("generator", i, True) for i in range(shards)])
check(listed == expected, f"the merged shards section lists every part once, valid: {listed}")
merged_sent = sum(pop["requests_sent"] for pop in merged["load_points"][0]["populations"])
check(merged_sent == counted, f"merged requests sent {merged_sent} = the server's count {counted}")
merged_time_wait = summary(merged)["peak_time_wait_client_side"]
check(merged_time_wait == sum(time_wait),
      f"merged client-side TIME_WAIT {merged_time_wait} = {' + '.join(map(str, time_wait))} over the shards' hosts")
for s in merged["shards"]:
    if s["role"] == "generator":
        check(s["peak_time_wait_client_side"] == time_wait[s["index"]],
              f"merged shards section: shard {s['index']}'s TIME_WAIT is its part's")
check(summary(merged)["server_peak_rss_bytes"] == server_rss,
      f"merged server peak RSS {summary(merged)['server_peak_rss_bytes']} = the server part's {server_rss} (probes once)")
EOF
grep -q '^generators=0 server=0 merge=' "$state/results/$job/statuses" ||
  { echo "FAILED: job 1's statuses: $(cat "$state/results/$job/statuses")" >&2; exit 1; }
if [ "$merge1" = built ]; then
  grep -q 'merge=0$' "$state/results/$job/statuses" ||
    { echo "FAILED: job 1's merge: $(cat "$state/results/$job/statuses"), expected merge=0" >&2; exit 1; }
fi

submit "job 2: shard 2 late" 8081 AFTERBURNER_STALL_SHARD=2 AFTERBURNER_STALL_SECONDS=2
[ "$job_status" != 0 ] || { echo "FAILED: job 2 exited 0 with a late shard" >&2; exit 1; }
merge2=$(merge_state "$job")
python3 - "$state/results/$job" 3 "$merge2" <<'EOF'
import json, sys

run, shards, merge = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")
    print(f"ok: {message}")

with open(f"{run}/shard-2-of-{shards}/result.json") as f:
    late = json.load(f)
reasons = " ".join(late["invalid_reasons"])
check(not late["valid"] and "not ready" in reasons and "on time" in reasons,
      f"shard 2's part says it was not ready on time: {late['invalid_reasons']}")
for i in range(shards):
    with open(f"{run}/shard-{i}-of-{shards}/result.json") as f:
        check(json.load(f)["shard"]["index"] == i, f"shard {i}'s part was written")

if merge == "stub":
    print("UNTESTED: merging the run with the late shard (this loadgen's `merge` is the placeholder)")
    sys.exit(0)
with open(f"{run}/statuses") as f:
    statuses = f.read().split()
check("merge=3" in statuses, f"loadgen merge exited 3, merged but invalid ({statuses})")
with open(f"{run}/merged/result.json") as f:
    merged = json.load(f)
check(not merged["valid"], "the merged run is invalid")
check(any("shard 2" in r for r in merged["invalid_reasons"]),
      f"the merged run's reasons name shard 2: {merged['invalid_reasons']}")
entry = [s for s in merged["shards"] if s["role"] == "generator" and s["index"] == 2]
check(len(entry) == 1 and not entry[0]["valid"], "the merged shards section marks shard 2 invalid")
EOF

passed=1
echo "== slurm-test.sh: passed in $((SECONDS - started)) s (merge: job 1 $merge1, job 2 $merge2)"
