#!/usr/bin/env bash
# deploy/kubernetes/check.sh: the Kubernetes manifests checked without a cluster or root.
#
#   deploy/kubernetes/check.sh target/release/loadgen
#
# 1. Validates every manifest against the Kubernetes 1.33 schemas, strictly (unknown fields
#    refused), with kubernetes-validate 1.33.1 from PyPI in a venv under $TMPDIR, and makes sure
#    the validator bites: a copy with a misspelt field and one with an unknown apiVersion must
#    both be refused.
# 2. invariants.py: the cross-field rules no schema expresses (Indexed needs completions,
#    parallelism = completions = --shards, one scenario, START_AT and TARGET for every part, ...),
#    then the same rules broken one at a time, each of which must be caught.
# 3. Runs what the Jobs would run, as local processes: the server Job's `loadgen serve` on
#    127.0.0.1 and the generator Job's command line once per index, with JOB_COMPLETION_INDEX,
#    LOADGEN_START_AT and LOADGEN_TARGET in a clean environment and the volumes as directories
#    (invariants.py `local` says exactly what is substituted). Every process must exit 0 and
#    write its part; then the merge Job's command must merge them (reported untested while
#    `loadgen merge` is not built).
#
# Exit 0 when all passed or the check was skipped for want of python3-venv (it says so; with
# AFTERBURNER_REQUIRE_KUBERNETES_CHECK=1 that is a failure); 1 when something failed; 2 for a
# bad command line. Environment: TMPDIR (venv and scratch files),
# CHECK_LEAD (seconds from now to START_AT, default 15), CHECK_TIMEOUT (seconds a process may
# run, default 300), CHECK_KEEP=1 keeps the scratch directory.
set -euo pipefail

usage="usage: deploy/kubernetes/check.sh LOADGEN_BINARY (e.g. target/release/loadgen)"
[[ $# -eq 1 ]] || { echo "$usage" >&2; exit 2; }
[[ -x $1 && -f $1 ]] || { echo "check.sh: $1 is not an executable file; $usage" >&2; exit 2; }
loadgen=$(realpath "$1")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
validator_version=1.33.1
kubernetes_version=1.33.0
lead=${CHECK_LEAD:-15}
limit=${CHECK_TIMEOUT:-300}

# A skip, or a failure where AFTERBURNER_REQUIRE_KUBERNETES_CHECK=1 (CI).
skip() {
    if [[ ${AFTERBURNER_REQUIRE_KUBERNETES_CHECK:-0} == 1 ]]; then
        echo "check.sh: FAILED: $*"
        exit 1
    fi
    echo "check.sh: SKIPPED: $*"
    exit 0
}
command -v python3 >/dev/null || skip "no python3 (Debian: apt-get install python3 python3-venv)"
python3 -c 'import venv, ensurepip' 2>/dev/null \
    || skip "python3 has no venv/pip (Debian: apt-get install python3-venv)"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/afterburner-k8s-check.XXXXXX")
started=()
cleanup() {
    local pid
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [[ ${CHECK_KEEP:-0} == 1 ]]; then
        echo "check.sh: kept $scratch"
    else
        rm -rf "$scratch"
    fi
}
trap cleanup EXIT

failures=0
fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}

# --- 1. Schemas ------------------------------------------------------------------------------
venv="${TMPDIR:-/tmp}/afterburner-kubernetes-validate-$validator_version"
(
    # One installer at a time; a complete venv is reused.
    flock 9
    if [[ $("$venv/bin/python" -m kubernetes_validate --version 2>/dev/null) != "$validator_version" ]]; then
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kubernetes-validate==$validator_version"
    fi
) 9>"$venv.lock"
python="$venv/bin/python"

# kubernetes-validate exits 0 after only a WARN for a kind or apiVersion it has no schema for,
# so any WARN, ERROR or FATAL line counts as a refusal here.
validate() {
    local output status=0
    output=$("$python" -m kubernetes_validate -k "$kubernetes_version" --strict --quiet "$@" 2>&1) || status=$?
    [[ -n $output ]] && printf '%s\n' "$output"
    [[ $status -eq 0 ]] && ! grep -qE '^(WARN|ERROR|FATAL)' <<<"$output"
}

manifests=("$here"/*.yaml)
if validate "${manifests[@]}" >"$scratch/validate.log"; then
    echo "ok   schemas: ${#manifests[@]} files valid against Kubernetes $kubernetes_version (strict, kubernetes-validate $validator_version)"
else
    fail "schemas:"; cat "$scratch/validate.log"
fi
sed 's/backoffLimitPerIndex:/backoffLimitPerIndx:/' "$here/generators.yaml" >"$scratch/misspelt.yaml"
if validate "$scratch/misspelt.yaml" >"$scratch/misspelt.log"; then
    fail "a misspelt field (backoffLimitPerIndx) passed the validator"
elif grep -q 'backoffLimitPerIndx' "$scratch/misspelt.log"; then
    echo "ok   schemas bite: a misspelt field is refused: $(grep -m1 -o 'Additional properties.*' "$scratch/misspelt.log")"
else
    fail "the misspelt copy was refused for another reason:"; cat "$scratch/misspelt.log"
fi
sed 's|^apiVersion: batch/v1$|apiVersion: batch/v9|' "$here/merge.yaml" >"$scratch/unknown.yaml"
if validate "$scratch/unknown.yaml" >"$scratch/unknown.log"; then
    fail "an unknown apiVersion (batch/v9) passed the validator"
else
    echo "ok   schemas bite: an unknown apiVersion is refused: $(head -c 120 "$scratch/unknown.log")"
fi

# --- 2. Cross-field rules --------------------------------------------------------------------
if "$python" "$here/invariants.py" check "$here" --repo "$repo" >"$scratch/rules.log"; then
    echo "ok   rules: $(cat "$scratch/rules.log")"
else
    fail "rules:"; cat "$scratch/rules.log"
fi
if "$python" "$here/invariants.py" self-test "$here" --repo "$repo" >"$scratch/selftest.log"; then
    echo "ok   rules bite: $(grep -c '^caught' "$scratch/selftest.log") rules broken one at a time, each caught"
else
    fail "rules self-test:"; cat "$scratch/selftest.log"
fi

# --- 3. The Jobs' command lines as local processes --------------------------------------------
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_at=$(($(date +%s) + lead))
"$python" "$here/invariants.py" local "$here" --loadgen "$loadgen" --root "$scratch/local" \
    --start-at "$start_at" --port "$port" >"$scratch/processes.tsv"
declare -A pid_of result_of
parts=()
merge_command="" merge_result=""
while IFS=$'\t' read -r role pod result command; do
    if [[ $role == merge ]]; then
        merge_command=$command merge_result=$result
        continue
    fi
    timeout --kill-after=10 "$limit" bash -c "$command" >"$scratch/$pod.log" 2>&1 &
    started+=($!)
    pid_of[$pod]=$!
    result_of[$pod]=$result
    parts+=("$pod")
done <"$scratch/processes.tsv"
echo "...  local run: ${#parts[@]} processes (${parts[*]}), START_AT now+${lead}s, server on 127.0.0.1:$port"

for pod in "${parts[@]}"; do
    status=0
    wait "${pid_of[$pod]}" || status=$?
    if [[ $status -ne 0 ]]; then
        fail "$pod exited $status:"; tail -5 "$scratch/$pod.log"
    elif [[ ! -s ${result_of[$pod]} ]]; then
        fail "$pod exited 0 but wrote no ${result_of[$pod]}"
    fi
done
started=()
# Each part says which it is; the server's count of requests against the shards' sum.
if "$python" - "${parts[@]}" <<EOF
import json, sys
results = dict(line.split("\t")[1:3] for line in open("$scratch/processes.tsv"))
sent, served, bad = 0, None, []
for pod in sys.argv[1:]:
    try:
        result = json.load(open(results[pod]))
    except OSError:
        continue
    shard = result.get("shard") or {}
    if pod.endswith("server"):
        expected = ("server", 0)
        served = sum((p.get("server_stats") or {}).get("requests_total", 0) for p in result["load_points"])
    else:
        index = int(pod.rsplit("-", 1)[1])
        expected = ("generator", index)
        sent += sum(q["requests_sent"] for p in result["load_points"] for q in p["populations"])
    if (shard.get("role"), shard.get("index")) != expected:
        bad.append(f"{pod}: its part says {shard.get('role')} {shard.get('index')}")
print(f"     parts: generators sent {sent} requests, the server counted {served}")
for line in bad:
    print(f"FAIL {line}")
sys.exit(1 if bad else 0)
EOF
then
    [[ $failures -eq 0 ]] && echo "ok   local run: every process exited 0 and wrote its part"
else
    failures=$((failures + 1))
fi

status=0
timeout --kill-after=10 "$limit" bash -c "$merge_command" >"$scratch/merge.log" 2>&1 || status=$?
if [[ $status -eq 2 ]] && grep -q 'not built yet' "$scratch/merge.log"; then
    echo "UNTESTED merge: \`loadgen merge\` is not built yet ($(grep -m1 'not built yet' "$scratch/merge.log"))"
elif [[ $status -eq 0 && -s $merge_result ]]; then
    echo "ok   merge: the merge Job's command wrote ${merge_result#"$scratch/local/"}"
else
    fail "merge exited $status:"; tail -5 "$scratch/merge.log"
fi

if [[ $failures -ne 0 ]]; then
    echo "check.sh: $failures check(s) failed"
    exit 1
fi
echo "check.sh: all passed"
