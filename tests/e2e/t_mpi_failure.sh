# t_mpi_failure.sh: a failing rank never leaves the others hanging. (a) One rank hits a fatal
# error (ct_world_abort): mpirun exits non-zero within seconds and shows that rank's
# message; without mpirun the process exits with the code. (b) One rank is killed with
# SIGKILL while the others wait in a yielding barrier: mpirun exits non-zero within seconds.
source tests/e2e/lib.sh
TOOL="$BUILD/tests/tool_comm_check"
[ -x "$TOOL" ] || fail "$TOOL is not built"
MPIRUN[3]=30 # a hang fails in 30 s
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
LIMIT=10 # seconds: "within a few seconds", with room for a loaded CI machine

elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
within() { awk -v t="$1" -v l="$LIMIT" 'BEGIN { exit !(t < l) }'; }

# (a) fatal error on rank 1 of data=2 x tensor=2
t0=$(date +%s.%N); rc=0
out=$("${MPIRUN[@]}" -np 4 "$TOOL" fatal 1 2 2 2>&1) || rc=$?
t=$(elapsed_since "$t0")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "fatal: mpirun exit $rc: $out"
grep -qF "cetus: rank 1 of 4 (data 0, tensor 1): injected fatal error (comm check)" <<<"$out" ||
    fail "fatal: the rank's message is missing: $out"
within "$t" || fail "fatal: mpirun took $t s"
echo "ok: fatal error on rank 1 -> mpirun exit $rc after $t s"

rc=0
out=$(timeout 10 "$TOOL" fatal 0 2>&1) || rc=$?
[ "$rc" -eq 3 ] || fail "single process fatal: exit $rc, expected 3"
grep -qF "cetus: rank 0 of 1 (data 0, tensor 0): injected fatal error" <<<"$out" ||
    fail "single process fatal: $out"
echo "ok: single process fatal error -> exit 3"

# (b) SIGKILL of rank 2 while every rank waits
"${MPIRUN[@]}" -np 4 "$TOOL" hang "$SCRATCH" >"$SCRATCH/hang.log" 2>&1 &
mpirun_pid=$!
for _ in $(seq 100); do
    n=$(ls "$SCRATCH" | grep -c '^pid\.' || true)
    [ "$n" -eq 4 ] && break
    sleep 0.1
done
[ "$n" -eq 4 ] || { kill "$mpirun_pid" 2>/dev/null; fail "the ranks did not start: $(cat "$SCRATCH/hang.log")"; }
sleep 0.5 # into the wait loop
victim=$(cat "$SCRATCH/pid.2")
t0=$(date +%s.%N)
kill -KILL "$victim"
rc=0
wait "$mpirun_pid" || rc=$?
t=$(elapsed_since "$t0")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "kill: mpirun exit $rc: $(cat "$SCRATCH/hang.log")"
within "$t" || fail "kill: mpirun took $t s after the kill"
alive() { # pids of ranks still running (zombies count as gone)
    for f in "$SCRATCH"/pid.*; do
        local st
        st=$(ps -o stat= -p "$(cat "$f")" 2>/dev/null || true)
        [ -n "$st" ] && [ "${st:0:1}" != Z ] && echo "$(cat "$f") ($st)"
    done
    true
}
for _ in $(seq 20); do [ -z "$(alive)" ] && break; sleep 0.1; done
[ -z "$(alive)" ] || fail "ranks still run after mpirun exited: $(alive)"
echo "ok: SIGKILL of rank 2 -> mpirun exit $rc after $t s"
