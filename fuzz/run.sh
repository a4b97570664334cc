#!/usr/bin/env bash
# fuzz/run.sh: runs the libFuzzer harnesses that `make fuzz-build` puts in build-fuzz/. Per
# reader: first every committed input once (fuzz/corpus/<reader>, fuzz/regress/<reader>),
# then SECONDS of fuzzing from the corpus; new inputs go to $FUZZ_OUT/scratch/<reader>
# (never into the repository), crashing ones to $FUZZ_OUT/artifacts/. Any crash, leak,
# timeout (-timeout, 10 s per input) or broken invariant fails the reader. Prints a table:
# reader, executions, exec/s, coverage (libFuzzer's cov: edges and ft: features), corpus
# size (inputs/bytes), status.
# Usage: fuzz/run.sh SECONDS [READER...]   (default: every fuzz/fuzz_*.c); FUZZ_OUT defaults
# to build-fuzz/run. Exits 1 if any reader failed.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: fuzz/run.sh SECONDS [READER...]}
shift
readers=("$@")
if [ ${#readers[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do readers+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
fi
out=${FUZZ_OUT:-build-fuzz/run}
mkdir -p "$out/artifacts"
# the harnesses' scratch files (fuzz/fuzz.h), on tmpfs where there is one; removed at the end
shm=/dev/shm
[ -w "$shm" ] || shm=/tmp
FUZZ_TMP=$(mktemp -d "$shm/cetus-fuzz.XXXXXX") || exit 1
export FUZZ_TMP
trap 'rm -rf "$FUZZ_TMP"' EXIT
opts=(-timeout=10 -rss_limit_mb=2048)
failed=()

# field NAME LINE: the value after "NAME: " in libFuzzer's status line
field() { echo "$2" | sed -n "s/.* $1: *\([^ ]*\).*/\1/p"; }

printf '%-13s %12s %9s %7s %7s %14s  %s\n' reader executions exec/s cov ft corpus status
for r in "${readers[@]}"; do
    bin=build-fuzz/fuzz_$r
    log=$out/$r.log
    status=ok
    mapfile -t inputs < <(find "fuzz/corpus/$r" "fuzz/regress/$r" -type f 2>/dev/null | sort)
    if [ ! -x "$bin" ] || [ ${#inputs[@]} -eq 0 ]; then
        status="missing (binary or corpus)"
    elif ! "$bin" "${opts[@]}" -artifact_prefix="$out/artifacts/$r-replay-" "${inputs[@]}" >"$out/$r.replay.log" 2>&1; then
        status="FAILED replaying fuzz/corpus or fuzz/regress (see $out/$r.replay.log)"
    else
        mkdir -p "$out/scratch/$r"
        "$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/artifacts/$r-" \
            "$out/scratch/$r" "fuzz/corpus/$r" >"$log" 2>&1 || status="FAILED (see $log)"
    fi
    [ "$status" = ok ] || failed+=("$r")
    last=$(grep -a -E '^#[0-9]+' "$log" 2>/dev/null | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" 2>/dev/null)
    printf '%-13s %12s %9s %7s %7s %14s  %s\n' "$r" "${execs:--}" "${rate:--}" "$(field cov "$last")" \
        "$(field ft "$last")" "$(field corp "$last")" "$status"
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}"; exit 1; }
