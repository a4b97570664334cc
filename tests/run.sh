#!/usr/bin/env bash
# tests/run.sh: runs the whole suite: every Criterion binary build/tests/test_* and every
# script tests/e2e/t_*.sh (one test each: it passes when it exits 0). Prints one closing line
# "N passed, N failed" and exits non-zero if anything failed.
# Usage: tests/run.sh [NAME...]   (runs only the tests so named; a NAME may be a glob: '*offload*')
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
filters=("$@")
# skip NAME: there are filters and NAME matches none of them
skip() {
    [ ${#filters[@]} -eq 0 ] && return 1
    local f
    for f in "${filters[@]}"; do [[ "$1" == $f ]] && return 1; done
    return 0
}
passed=0; failed=0; failed_names=()
logdir=$BUILD/test-logs
mkdir -p "$logdir"

for bin in "$BUILD"/tests/test_*; do
    [ -x "$bin" ] || continue
    case "$bin" in *.o|*.d) continue;; esac
    name=$(basename "$bin")
    skip "$name" && continue
    start=$(date +%s)
    "$bin" --jobs 1 >"$logdir/$name.log" 2>&1
    rc=$?
    line=$(grep -a 'Synthesis:' "$logdir/$name.log" | tail -n 1)
    t=$(echo "$line" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
    p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    t=${t:-0}; p=${p:-0}
    if [ "$rc" -ne 0 ] && [ "$t" -eq "$p" ]; then t=$((t + 1)); fi  # crashed outside a test
    passed=$((passed + p)); failed=$((failed + t - p))
    printf '%-34s %3d/%-3d %4ss\n' "$name" "$p" "$t" "$(( $(date +%s) - start ))"
    if [ "$p" -ne "$t" ]; then failed_names+=("$name"); grep -a -E 'FAIL|CRASH|Assertion|ERROR|error' "$logdir/$name.log" | head -n 20; fi
done

for script in tests/e2e/t_*.sh; do
    [ -f "$script" ] || continue
    name=$(basename "$script" .sh)
    skip "$name" && continue
    start=$(date +%s)
    if bash "$script" >"$logdir/$name.log" 2>&1; then
        passed=$((passed + 1)); status=ok
    else
        failed=$((failed + 1)); status=FAILED; failed_names+=("$name")
    fi
    printf '%-34s %7s %4ss\n' "$name" "$status" "$(( $(date +%s) - start ))"
    [ "$status" = ok ] || tail -n 25 "$logdir/$name.log"
done

[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]} (logs in $logdir)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
