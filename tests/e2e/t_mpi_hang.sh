# t_mpi_hang.sh: a rank that stops answering (SIGSTOP) does not freeze the job: past
# parallel.timeout the watchdog aborts every rank with a line naming the stopped rank and
# the collective the others wait in. (a) `cetus train` on 2 ranks, rank 1 stopped mid-run;
# (b) 3 ranks of the comm tool waiting in ct_comm_wait, rank 2 stopped; (c) the same with a
# progress thread driving the requests and rank 0 (the one that gathers the reports)
# stopped: the others name it. A bad parallel.timeout is refused naming the key.
source tests/e2e/lib.sh
TOOL="$BUILD/tests/tool_comm_check"
[ -x "$TOOL" ] || fail "$TOOL is not built"
MPIRUN[3]=40 # a watchdog that never fires fails in 40 s
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

expect_error "parallel.timeout = -1 is out of range" "$CETUS" train parallel.timeout=-1

elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
# rank_pid RANK PATTERN: the pid of MPI rank RANK among the processes whose command line
# has PATTERN (mpirun itself has no OMPI_COMM_WORLD_RANK in its environment)
rank_pid() {
    local p
    for p in $(pgrep -f -- "$2" || true); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$p"; return; }
    done
}
# stop_and_wait PID MPIRUN_PID BOUND LOG NAME: SIGSTOP PID, wait for mpirun, check its exit and
# that it came within BOUND seconds; prints the time to abort
stop_and_wait() {
    local victim=$1 mp=$2 bound=$3 log=$4 name=$5 t0 rc=0 t
    t0=$(date +%s.%N)
    kill -STOP "$victim"
    wait "$mp" || rc=$?
    t=$(elapsed_since "$t0")
    kill -KILL "$victim" 2>/dev/null || true # whatever the outcome, nothing stays stopped
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "$name: mpirun exit $rc: $(tail -n 5 "$log")"
    awk -v t="$t" -v b="$bound" 'BEGIN { exit !(t < b) }' || fail "$name: the abort took $t s (bound $bound s)"
    echo "$name: mpirun exit $rc, $t s after SIGSTOP"
}

# (a) training, 2 ranks, timeout 3 s (grace 1.5 s): stop rank 1 once a few steps are done
make_corpus "$SCRATCH"
run_dir="$SCRATCH/train"
"${MPIRUN[@]}" -np 2 "$CETUS" train $TINY data.dir="$SCRATCH/data" run.dir="$run_dir" train.steps=100000 \
    train.eval_interval=0 train.sample_interval=0 train.ckpt_interval=0 parallel.timeout=3 \
    parallel.overlap=thread runtime.threads=1 >"$SCRATCH/train.log" 2>&1 &
mp=$!
for _ in $(seq 300); do
    n=$(grep -c '"loss"' "$run_dir/metrics.jsonl" 2>/dev/null) || n=0
    [ "$n" -ge 3 ] && break
    sleep 0.1
done
victim=$(rank_pid 1 "run.dir=$run_dir")
[ -n "$victim" ] || { kill "$mp"; fail "training: no rank 1 found: $(tail -n 5 "$SCRATCH/train.log")"; }
stop_and_wait "$victim" "$mp" 12 "$SCRATCH/train.log" "training, rank 1 stopped"
line=$(grep -o "cetus: rank.*parallel.timeout.*" "$SCRATCH/train.log" || true)
grep -qE "cetus: rank 0 of 2 .*: [a-z-]+ (on|from|to) .* waited [0-9.]+ s \(parallel.timeout\): rank 1 did not reach it; aborting" <<<"$line" ||
    fail "training: no line naming rank 1 and the collective: $(tail -n 8 "$SCRATCH/train.log")"
echo "  $line"

# (b), (c): the comm tool on 3 ranks, timeout 2 s (grace 1 s)
stall() { # NAME VICTIM [thread]
    local name=$1 victim=$2 dir="$SCRATCH/$1"
    mkdir -p "$dir"
    "${MPIRUN[@]}" -np 3 "$TOOL" stall "$dir" 2 ${3:-} >"$dir.log" 2>&1 &
    local mp=$!
    for _ in $(seq 100); do [ -s "$dir/pid.$victim" ] && [ "$(ls "$dir" | wc -l)" -eq 3 ] && break; sleep 0.1; done
    [ -s "$dir/pid.$victim" ] || { kill "$mp"; fail "$name: the ranks did not start: $(cat "$dir.log")"; }
    sleep 0.5 # a few hundred all-reduces in
    stop_and_wait "$(cat "$dir/pid.$victim")" "$mp" 10 "$dir.log" "$name"
}
stall "comm tool, rank 2 stopped" 2
grep -q "stall: requests drained by ct_comm_wait" "$SCRATCH/comm tool, rank 2 stopped.log" ||
    fail "comm tool: the requests were not waited for by ct_comm_wait"
grep -qE "cetus: rank 0 of 3 .*: all-reduce on the world axis \(#[0-9]+\) waited [0-9.]+ s \(parallel.timeout\): rank 2 did not reach it; aborting" \
    "$SCRATCH/comm tool, rank 2 stopped.log" || fail "comm tool: rank 2 not named: $(cat "$SCRATCH/comm tool, rank 2 stopped.log")"
echo "  $(grep -m1 'parallel.timeout' "$SCRATCH/comm tool, rank 2 stopped.log")"
stall "progress thread, rank 0 stopped" 0 thread
grep -q "stall: requests drained from a progress thread" "$SCRATCH/progress thread, rank 0 stopped.log" ||
    fail "progress thread: the requests were not drained from a progress thread"
grep -qE "cetus: rank [12] of 3 .*: all-reduce on the world axis \(#[0-9]+\) waited [0-9.]+ s \(parallel.timeout\); rank 0, which gathers the reports, did not end the job within [0-9.]+ s: rank 0 is late; aborting" \
    "$SCRATCH/progress thread, rank 0 stopped.log" ||
    fail "progress thread: rank 0 not named: $(cat "$SCRATCH/progress thread, rank 0 stopped.log")"
echo "  $(grep -m1 'parallel.timeout' "$SCRATCH/progress thread, rank 0 stopped.log")"
