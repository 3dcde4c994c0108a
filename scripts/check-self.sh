#!/usr/bin/env bash
# Shows on this machine that `loadgen check` stays green when nothing changed and fails a slower
# server: builds afterburner twice, as it is (A) and with the test-only `extra-cost` feature (B,
# a fixed extra amount of work per request, about 10 % of a keep-alive request's server CPU;
# set AFTERBURNER_EXTRA_COST to change it), then
#   1. the wall-clock check of scenarios/check.toml, A against A: must exit 0;
#   2. the same, A against B: must exit 1 (regression);
#   3. instruction counts (callgrind) of both builds' benches, A against A: must exit 0, and
#      A against B: must exit 1 (skipped with a message when valgrind or gungraun-runner is
#      missing, unless AFTERBURNER_REQUIRE_CALLGRIND=1).
# Usage: scripts/check-self.sh [OUT_DIR]   (default target/check-self; results of each check
# in OUT_DIR/check-check/<time>/ and OUT_DIR/instructions-check/<time>/). Exits 1 when a check
# gives another exit status than expected. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-target/check-self}")
mkdir -p "$out"

echo "== building A (as it is) and B (--features extra-cost)"
cargo build --release --quiet -p loadgen -p afterburner
# Its own target directory, so B never replaces A's binary.
cargo build --release --quiet -p afterburner --features extra-cost --target-dir target/extra-cost
loadgen=target/release/loadgen
a=target/release/afterburner
b=target/extra-cost/release/afterburner

# expect STATUS WHAT COMMAND...: runs COMMAND and fails unless it exits with STATUS.
expect() {
  local want=$1 what=$2
  shift 2
  local started=$SECONDS got=0
  "$@" || got=$?
  echo "-- $what: exit $got (expected $want) in $((SECONDS - started)) s"
  if [ "$got" != "$want" ]; then
    echo "FAILED: $what: $*" >&2
    exit 1
  fi
}

echo "== wall clock, A against A"
expect 0 "A against A" "$loadgen" check scenarios/check.toml --baseline "$a" --candidate "$a" --out "$out" --quiet
echo "== wall clock, A against B"
expect 1 "A against B" "$loadgen" check scenarios/check.toml --baseline "$a" --candidate "$b" --out "$out" --quiet

echo "== instruction counts"
if ! command -v valgrind >/dev/null || ! command -v gungraun-runner >/dev/null; then
  message="valgrind or gungraun-runner missing: apt-get install valgrind; cargo install --locked gungraun-runner --version 0.20.0"
  if [ "${AFTERBURNER_REQUIRE_CALLGRIND:-0}" = 1 ]; then
    echo "FAILED: $message" >&2
    exit 1
  fi
  echo "SKIPPED: $message"
  exit 0
fi
scripts/instructions.sh "$out/instructions-a"
scripts/instructions.sh "$out/instructions-a2"
# In B's own target directory: the feature build must not replace target/release's binaries.
CARGO_TARGET_DIR=target/extra-cost scripts/instructions.sh "$out/instructions-b" --features afterburner/extra-cost
expect 0 "instructions, A against A" "$loadgen" check --instructions "$out/instructions-a" "$out/instructions-a2" --out "$out"
expect 1 "instructions, A against B" "$loadgen" check --instructions "$out/instructions-a" "$out/instructions-b" --out "$out"
echo "== check-self: every verdict as expected"
