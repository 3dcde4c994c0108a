#!/usr/bin/env bash
# Instruction counts under callgrind: runs the `instructions` benches (gungraun) of afterburner and
# loadgen, writing each benchmark's callgrind files and summary.json under OUT_DIR (created), which
# `loadgen::check::instructions::read_instruction_counts` reads back.
#
#   scripts/instructions.sh OUT_DIR [cargo flags, e.g. --features afterburner/extra-cost]
#
# Exits 2 when valgrind or gungraun-runner (the version of the gungraun dependency) is missing.
set -euo pipefail

GUNGRAUN_VERSION=0.20.0 # the gungraun of Cargo.lock; the runner must be the same version

if [[ $# -lt 1 || $1 == -* ]]; then
    echo "usage: $0 OUT_DIR [cargo flags, e.g. --features afterburner/extra-cost]" >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift

missing=0
if ! command -v valgrind >/dev/null; then
    echo "$0: valgrind is not on PATH; install it with: apt-get install valgrind" >&2
    missing=1
fi
runner=$(gungraun-runner --version 2>/dev/null || true)
if [[ $runner != "gungraun-runner $GUNGRAUN_VERSION" ]]; then
    echo "$0: gungraun-runner $GUNGRAUN_VERSION is not on PATH (found: ${runner:-none}); install it with:" >&2
    echo "    cargo install --locked gungraun-runner --version $GUNGRAUN_VERSION" >&2
    missing=1
fi
[[ $missing == 0 ]] || exit 2

cd "$(dirname "$0")/.."
# Only this run's summaries: gungraun would otherwise keep removed benches' and compare with them.
rm -rf "$out/afterburner/instructions" "$out/loadgen/instructions"
export GUNGRAUN_HOME=$out GUNGRAUN_SAVE_SUMMARY=json
cargo bench -p afterburner --bench instructions "$@"
cargo bench -p loadgen --bench instructions "$@"
echo "instruction counts: $out/{afterburner,loadgen}/instructions/<group>/<function>.<id>/summary.json"
