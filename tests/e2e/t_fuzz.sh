#!/usr/bin/env bash
# t_fuzz.sh: the short fuzzing pass. Builds the libFuzzer harnesses (make fuzz-build, into
# build-fuzz/ whatever BUILD is, so the suite's second pass reuses them), then fuzz/run.sh
# replays every input of fuzz/corpus and fuzz/regress (the crashes found so far) and fuzzes
# each reader for FUZZ_SECONDS (default 3) s; any crash, leak, timeout or broken invariant
# fails. Each reader must also have run a real number of inputs, and the runner must fail
# on a reader it cannot run.
source "$(dirname "$0")/lib.sh"

make --no-print-directory -s -j2 fuzz-build >"$SCRATCH/build.log" 2>&1 || { cat "$SCRATCH/build.log"; fail "make fuzz-build"; }

# the harnesses are sanitized builds whatever BUILD is: the sanitizer pass of the suite
# (BUILD=build-san) replays the corpora and fuzzes 1 s each, not the same 3 s again
seconds=${FUZZ_SECONDS:-3}
[ "$BUILD" = build-san ] && seconds=${FUZZ_SECONDS:-1}
out=$(FUZZ_OUT="$SCRATCH/run" bash fuzz/run.sh "$seconds" 2>&1) || fail "fuzzing failed: $out"
echo "$out"
n=0
for h in fuzz/fuzz_*.c; do
    r=$(basename "$h" .c | sed 's/^fuzz_//')
    row=$(awk -v r="$r" '$1 == r' <<<"$out")
    execs=$(awk '{print $2}' <<<"$row")
    [ -n "$row" ] && [ "${row##* }" = ok ] || fail "$r: no passing row: $out"
    [ "$execs" -ge 200 ] 2>/dev/null || fail "$r ran only '${execs}' inputs: $row"
    n=$((n + 1))
done
[ "$n" -ge 8 ] || fail "expected at least 8 harnesses, found $n"

bad=$(FUZZ_OUT="$SCRATCH/none" bash fuzz/run.sh 1 no_such_reader 2>&1) && fail "a missing harness passed: $bad"
grep -q 'no_such_reader.*missing' <<<"$bad" || fail "message: $bad"
echo "fuzz: ok"
