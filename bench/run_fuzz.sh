#!/usr/bin/env bash
# bench/run_fuzz.sh: the long fuzzing run: builds the libFuzzer harnesses (make fuzz-build,
# clang, into build-fuzz/), runs each for SECONDS from its seed corpus with a fresh scratch
# corpus, and prints fuzz/run.sh's table: reader, executions, exec/s, coverage (libFuzzer's
# cov: edges and ft: features at the end) and the corpus it grew (inputs/bytes), plus the
# machine's core count and the date. The figures in docs/benchmarks.md ("Fuzzing") come
# from this script.
# Usage: bench/run_fuzz.sh [SECONDS] [READER...]   (default 60 seconds each, every reader)
# Environment: FUZZ_OUT (logs, scratch corpora and artifacts; default a temporary directory).
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
make --no-print-directory -s -j"$(nproc)" fuzz-build || exit 1
out=${FUZZ_OUT:-$(mktemp -d)}
echo "fuzzing ${secs} s per reader on $(nproc) cores, $(date -u +%Y-%m-%d); logs in $out"
FUZZ_OUT=$out bash fuzz/run.sh "$secs" "$@"
