# t_kill.sh: SIGKILL at random instants never loses a run. Each scenario trains a reference
# run, then the same run killed with SIGKILL at random instants (uniform over the reference's
# wall time: start-up, steps, saves and their fsyncs, pruning, disk offload writes, the
# Pseudo-to-Real switch) and restarted with the same command until it finishes. The finished
# run must match the reference bit for bit (every step's loss, the final weights and AdamW
# moments) and leave nothing behind (no temporary, moved-aside or offload files). Then
# `cetus prepare` killed at random instants and rerun gives the same shards; and a disk that
# fills at the first save, or at a later one, loses nothing: the run resumes on a larger disk
# and matches the reference.
# KILLS=N (default 4; KILLS_SAN, default 2, in the sanitizer pass) kills per scenario; KILL_SEED
# picks the instants (printed).
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
KILLS=${KILLS:-4}
[ "$BUILD" = build-san ] && KILLS=${KILLS_SAN:-2} # the sanitizer pass: a shorter round, same checks
KILL_SEED=${KILL_SEED:-$(date +%s)}
echo "kill instants seeded with KILL_SEED=$KILL_SEED"
RANDOM=$KILL_SEED
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" # a killed process leaks by definition
base="$TINY data.dir=$SCRATCH/data runtime.threads=1 train.steps=8 train.ckpt_interval=2 train.ckpt_keep=2
      train.eval_interval=4 train.sample_interval=0"
total_kills=0

# delay_up_to SECONDS: a random instant in [0, SECONDS) with millisecond resolution
delay_up_to() { awk -v r="$RANDOM$RANDOM" -v t="$1" 'BEGIN { srand(r); printf "%.3f", rand() * t }'; }

# each step's last logged loss (a killed run logs some steps twice), and the validation losses
step_losses() { grep -o '"step": [0-9]*, "\(val_\)\?loss": [^,}]*' "$1/metrics.jsonl" | awk -F'[:,]' '
    { key = $2 ($3 ~ /val/ ? "v" : ""); v[key] = $4; if (!(key in seen)) { seen[key] = 1; order[n++] = key } }
    END { for (i = 0; i < n; i++) print order[i], v[order[i]] }'; }

# same_run REF RUN: identical losses, weights and moments; nothing left behind
same_run() {
    diff <(step_losses "$1") <(step_losses "$2") >/dev/null || fail "$2: losses differ from $1:
$(diff <(step_losses "$1") <(step_losses "$2") | head)"
    local a b
    a="$1/ckpt/$(cat "$1/ckpt/latest")"
    b="$2/ckpt/$(cat "$2/ckpt/latest")"
    [ "$(basename "$a")" = "$(basename "$b")" ] || fail "$2 ends at $b, the reference at $a"
    for f in model optimizer; do
        /usr/bin/python3 tests/tools/weights_diff.py "$a/$f.safetensors" "$b/$f.safetensors" 0 >/dev/null ||
            fail "$2: $f.safetensors differs from the reference"
    done
    local left
    left=$(find "$2" -name '.*' -o -name '*.tmp' -o -name '*.tmp-*' -o -name '*.old-*' -o -name '*.del-*' -o -name 'rank_*.bin')
    [ -z "$left" ] || fail "$2: left behind: $left"
}

# kill_until_done NAME REF ARGS...: trains the run REF was made with, killed at random instants
# of at most $wall seconds after each start and restarted with the same command until it
# finishes; each finished run ($SCRATCH/NAME.1, .2, ...) must match REF. Rounds go on until
# $KILLS kills have landed.
kill_until_done() {
    local name=$1 ref=$2 kills=0 round=0 rc cleared=0; shift 2
    while [ "$kills" -lt "$KILLS" ]; do
        round=$((round + 1))
        local dir="$SCRATCH/$name.$round"
        while :; do
            "$CETUS" train "$@" run.dir="$dir" >>"$dir.log" 2>&1 &
            local pid=$!
            [ "$kills" -lt "$KILLS" ] && sleep "$(delay_up_to "$wall")" && kill -KILL "$pid" 2>/dev/null  || true
            rc=0
            wait "$pid" || rc=$?
            [ "$rc" -eq 137 ] && kills=$((kills + 1)) && continue
            [ "$rc" -eq 0 ] || fail "$name: exit $rc after $kills kills: $(tail -n 3 "$dir.log")"
            break
        done
        same_run "$ref" "$dir"
        cleared=$((cleared + $( (grep -o 'removed [0-9]* ' "$dir.log" || true) | awk '{ s += $2 } END { print s + 0 }')))
        rm -rf "$dir"
    done
    total_kills=$((total_kills + kills))
    echo "ok: $name: $kills kills over $round runs, $cleared leftovers of killed saves cleared, each run bit-identical to the reference"
}

reference() { # NAME ARGS...: the uninterrupted run; sets $wall to its wall time
    local name=$1 t0; shift
    t0=$(date +%s.%N)
    "$CETUS" train "$@" run.dir="$SCRATCH/$name" >"$SCRATCH/$name.log" 2>&1 || fail "$name: $(tail -n 3 "$SCRATCH/$name.log")"
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
}

# (a) dense, every block's weights, gradients and moments on the disk tier
disk="offload.params=disk offload.grads=disk offload.optimizer=disk"
reference ref-disk $base $disk
kill_until_done kill-disk "$SCRATCH/ref-disk" $base $disk

# (b) Pseudo-to-Real: 4 blocks sharing one set of weights, delinked at step 4
p2r="model.n_layer=4 model.share_layers=all delink.step=4"
reference ref-p2r $base $p2r
kill_until_done kill-p2r "$SCRATCH/ref-p2r" $base $p2r

# (c) prepare killed at random instants, then run again: the same shards and metadata
mkdir -p "$SCRATCH/big"
for i in 1 2 3 4; do cp -r "$SCRATCH/text" "$SCRATCH/big/part$i"; done
t0=$(date +%s.%N)
"$CETUS" prepare --input "$SCRATCH/big" --out "$SCRATCH/prep-ref" --val-fraction 0.1 --shard-tokens 50000 >/dev/null 2>&1 ||
    fail "prepare failed"
wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
for i in $(seq "$KILLS"); do
    "$CETUS" prepare --input "$SCRATCH/big" --out "$SCRATCH/prep" --val-fraction 0.1 --shard-tokens 50000 >/dev/null 2>&1 &
    pid=$!
    sleep "$(delay_up_to "$wall")"
    kill -KILL "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" || rc=$?
    if [ "$rc" -eq 137 ] && [ -f "$SCRATCH/prep/prepare.unfinished" ]; then # killed part way: refused
        expect_error "did not finish (prepare.unfinished is there)" "$CETUS" train $TINY data.dir="$SCRATCH/prep" \
            run.dir="$SCRATCH/never" train.steps=1 >/dev/null
        refused=$((${refused:-0} + 1))
    fi
done
"$CETUS" prepare --input "$SCRATCH/big" --out "$SCRATCH/prep" --val-fraction 0.1 --shard-tokens 50000 >/dev/null 2>&1 ||
    fail "prepare after kills failed"
diff -r "$SCRATCH/prep-ref" "$SCRATCH/prep" >/dev/null || fail "prepare after kills differs: $(diff -rq "$SCRATCH/prep-ref" "$SCRATCH/prep")"
total_kills=$((total_kills + KILLS))
echo "ok: prepare killed $KILLS times (${refused:-0} times part way: the shards refused), then complete and identical ($(ls "$SCRATCH/prep" | wc -l) files)"
cp -r "$SCRATCH/prep-ref" "$SCRATCH/prep-marked" && touch "$SCRATCH/prep-marked/prepare.unfinished"
expect_error "$SCRATCH/prep-marked: the token shards are incomplete" "$CETUS" eval --ckpt "$SCRATCH/ref-disk" \
    --data "$SCRATCH/prep-marked"

# (d) a disk that fills at the first save, and one that fills at a later save (room for one
# checkpoint, not for the next beside it): the run fails with the message, loses nothing, and
# resumes on a larger disk to the reference's result
one=$(du -sb "$SCRATCH/ref-disk/ckpt/$(cat "$SCRATCH/ref-disk/ckpt/latest")" | cut -f1)
plain="$base"
reference ref-plain $plain
for where in first later; do
    if [ "$where" = first ]; then size=$((one / 2)); else size=$((one * 3 / 2)); fi
    unshare -m bash -c '
        mkdir -p "$0/full" && mount -t tmpfs -o size="$4" tmpfs "$0/full" || exit 99
        rc=0
        "$1" train $2 run.dir="$0/full/run" >"$0/full.out" 2>"$0/full.err" || rc=$?
        cp -r "$0/full/run" "$0/$3"
        exit $rc
    ' "$SCRATCH" "$CETUS" "$plain" "full-$where" "$size" && fail "a disk full at the $where save: exit 0"
    grep -q "No space left on device" "$SCRATCH/full.err" || fail "$where: no disk-full message: $(cat "$SCRATCH/full.err")"
    if [ "$where" = later ]; then
        [ -f "$SCRATCH/full-later/ckpt/latest" ] || fail "later: the first checkpoint is missing"
    fi
    "$CETUS" train $plain run.dir="$SCRATCH/full-$where" >>"$SCRATCH/full-$where.log" 2>&1 ||
        fail "$where: resume on a larger disk failed: $(tail -n 3 "$SCRATCH/full-$where.log")"
    same_run "$SCRATCH/ref-plain" "$SCRATCH/full-$where"
    echo "ok: disk full at the $where save ($size bytes of tmpfs): $(tail -n 1 "$SCRATCH/full.err" | cut -c1-120)...; resumed bit-identically"
done
echo "$total_kills kills survived"
