#!/usr/bin/env bash
# Runs the coverage-guided fuzz targets of fuzz/ (cargo fuzz, libFuzzer) for a given time each.
#
#   scripts/fuzz.sh [--jobs N] [--sanitizer address|none] [--update-corpus] SECONDS [TARGET...]
#
# SECONDS: how long each target runs. TARGET: the targets to run (default: all of
# fuzz/fuzz_targets/). --jobs: targets run at once (default 1; give at most one per core).
# --sanitizer: cargo fuzz's sanitizer (default address; none builds faster and runs about twice
# as fast, which CI's smoke run uses). --update-corpus: afterwards, minimise the committed corpus
# and what the run found into a new fuzz/corpus/TARGET (see the end of this script), as after a
# long campaign; without it the committed corpus is only read.
#
# Each target starts from its committed corpus fuzz/corpus/TARGET and the HTTP dictionary
# fuzz/dicts/http.dict; what it finds goes to fuzz/target/run-corpus/TARGET, its output to
# fuzz/target/logs/TARGET.log. A failing input is saved under fuzz/artifacts/TARGET/ (replay:
# cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...).
# Prints each target's executions, rate and coverage. Exit status: 0 when no target failed, 1
# when one did, 2 when cargo-fuzz or the nightly toolchain is missing or the arguments are wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '4,5p' "$0" | sed 's/^# *//' >&2
  exit 2
}

# --help: the whole header above, on stdout.
help() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 0
}

jobs=1
sanitizer=address
update_corpus=0
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs="${2:?--jobs needs a number}"; shift 2 ;;
    --sanitizer) sanitizer="${2:?--sanitizer needs address or none}"; shift 2 ;;
    --update-corpus) update_corpus=1; shift ;;
    -h|--help) help ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
seconds="$1"
shift
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac
case "$jobs" in ''|*[!0-9]*|0) echo "fuzz.sh: --jobs must be a positive number, not '$jobs'" >&2; exit 2 ;; esac
case "$sanitizer" in address|none) ;; *) echo "fuzz.sh: --sanitizer must be address or none" >&2; exit 2 ;; esac

missing=0
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is missing; install it with: rustup toolchain install nightly" >&2
  missing=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing; install it with: cargo install --locked cargo-fuzz" >&2
  missing=1
fi
[ "$missing" = 0 ] || exit 2

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for file in fuzz/fuzz_targets/*.rs; do
    name="$(basename "$file" .rs)"
    targets+=("$name")
  done
fi
for target in "${targets[@]}"; do
  if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
    echo "fuzz.sh: no target '$target' (fuzz/fuzz_targets/$target.rs)" >&2
    exit 2
  fi
done

# cargo fuzz runs from fuzz/ (its manifest); paths below are relative to it.
cd fuzz
mkdir -p target/logs
for target in "${targets[@]}"; do
  echo "building $target (nightly, sanitizer $sanitizer)"
  if ! cargo +nightly fuzz build --sanitizer "$sanitizer" "$target" >"target/logs/$target.build.log" 2>&1; then
    tail -n 40 "target/logs/$target.build.log" >&2
    exit 1
  fi
done

# One target: a fresh corpus directory for what it finds (libFuzzer writes new inputs to the
# first directory it is given) and the committed one, read only.
run_target() {
  local target="$1"
  local found="target/run-corpus/$target"
  rm -rf "$found"
  mkdir -p "$found" "corpus/$target"
  # The timeout is a backstop; libFuzzer stops itself after SECONDS.
  timeout --signal=TERM --kill-after=30 "$((seconds + 120))" \
    cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "$found" "corpus/$target" -- \
    -max_total_time="$seconds" -dict=dicts/http.dict -timeout=10 -print_final_stats=1 \
    >"target/logs/$target.log" 2>&1
}

declare -A pids=()
failed=0
report() {
  local target="$1" status="$2" log="target/logs/$1.log"
  if [ "$status" = 0 ]; then
    # libFuzzer's last status line, "#647022 DONE cov: 682 ft: 2818 corp: 935/84Kb ...", and
    # its final stats, "stat::average_exec_per_sec: 30810".
    local done_line rate
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
    rate="$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log" | tail -n 1)"
    echo "$done_line" | awk -v t="$target" -v rate="$rate" '{
      sub(/^#/, "", $1)
      printf "%s: ok: %s executions, %s exec/s, coverage (cov) %s, features (ft) %s, corpus %s\n",
        t, $1, rate, $4, $6, $8 }'
  else
    failed=1
    echo "$target: FAILED (exit $status); the end of fuzz/target/logs/$target.log:" >&2
    grep -v -E '^#[0-9]+' "$log" | tail -n 40 >&2
  fi
}

for target in "${targets[@]}"; do
  while [ "${#pids[@]}" -ge "$jobs" ]; do
    for running in "${!pids[@]}"; do
      if ! kill -0 "${pids[$running]}" 2>/dev/null; then
        status=0
        wait "${pids[$running]}" || status=$?
        unset "pids[$running]"
        report "$running" "$status"
      fi
    done
    [ "${#pids[@]}" -ge "$jobs" ] && sleep 1
  done
  echo "running $target for ${seconds}s"
  run_target "$target" &
  pids[$target]=$!
done
for running in "${!pids[@]}"; do
  status=0
  wait "${pids[$running]}" || status=$?
  report "$running" "$status"
done

# The committed corpus and this run's finds, minimised together into a fresh directory that
# then replaces the committed one: the fewest inputs that reach every edge either reached
# (-use_counters=0: an edge counts once, not once per hit count, which keeps the corpus small).
if [ "$update_corpus" = 1 ] && [ "$failed" = 0 ]; then
  for target in "${targets[@]}"; do
    merged="target/merged-corpus/$target"
    rm -rf "$merged"
    mkdir -p "$merged"
    before="$(find "corpus/$target" -type f | wc -l)"
    if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "$merged" "corpus/$target" \
      "target/run-corpus/$target" -- -merge=1 -use_counters=0 \
      >"target/logs/$target.merge.log" 2>&1; then
      echo "$target: merging the corpus failed; see fuzz/target/logs/$target.merge.log" >&2
      exit 1
    fi
    rm -rf "corpus/$target"
    mv "$merged" "corpus/$target"
    echo "$target: corpus $before -> $(find "corpus/$target" -type f | wc -l) inputs," \
      "$(cat "corpus/$target"/* | wc -c) bytes"
  done
fi
exit "$failed"
