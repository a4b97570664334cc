# tests/e2e/lib.sh: shared helpers for the script tests (sourced). Each test gets a scratch
# directory removed on exit, and a small real corpus tokenized from the Python docs.
set -euo pipefail
BUILD=${BUILD:-build}
CETUS="$PWD/$BUILD/cetus"
SCRATCH=$(mktemp -d /tmp/cetus-test.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# A tiny model that trains in seconds; extra key=value arguments override.
TINY="model.n_layer=2 model.d_model=64 model.n_head=2 model.seq_len=32 train.batch_size=4
      train.warmup_steps=2 train.lr=3e-3 train.eval_batches=2 train.sample_tokens=8
      runtime.threads=2 runtime.pin=false train.final_eval=0"

# make_corpus DIR: ~40 documents of the Python docs, tokenized into DIR/data
make_corpus() {
    local src=/usr/share/doc/python3.11/html/_sources/library
    mkdir -p "$1/text"
    find "$src" -name '*.rst.txt' | sort | sed -n '1,40p' | xargs -I{} cp {} "$1/text/"
    "$CETUS" prepare --input "$1/text" --out "$1/data" --val-fraction 0.1 2>/dev/null
}

# expect_error EXPECTED_TEXT CMD...: CMD must exit non-zero and print EXPECTED_TEXT on stderr
expect_error() {
    local want=$1; shift
    local out rc=0
    out=$("$@" 2>&1 >/dev/null) || rc=$?
    [ "$rc" -ne 0 ] || fail "expected failure of: $*"
    grep -qF -- "$want" <<<"$out" || fail "message of '$*' lacks '$want': $out"
    echo "ok: $* -> $(head -n 1 <<<"$out")"
}

# mpirun as root on one box: shared memory only (no network in a container), ob1 over vader
# without the cross-memory-attach copy (it needs ptrace rights that containers often drop).
MPIRUN=(timeout -k 5 120 mpirun --allow-run-as-root --oversubscribe --bind-to none
        --mca pml ob1 --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
# Open MPI's own allocations at MPI_Init are not ours to free: no leak check in MPI runs.
mpi_env=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")

# Training runs for the parallel tests; the caller sets $args (the shared key=value list).
run() { # NP NAME extra-args...: a training run in $SCRATCH/NAME
    local np=$1 name=$2; shift 2
    if [ "$np" = 1 ]; then
        "$CETUS" train $args run.dir="$SCRATCH/$name" "$@" >"$SCRATCH/$name.log" 2>&1 || fail "$name: $(tail -n 3 "$SCRATCH/$name.log")"
    else
        "${mpi_env[@]}" "${MPIRUN[@]}" -np "$np" "$CETUS" train $args run.dir="$SCRATCH/$name" "$@" \
            >"$SCRATCH/$name.log" 2>&1 || fail "$name: $(tail -n 5 "$SCRATCH/$name.log")"
    fi
}
losses() { grep -o '"step": [0-9]*, "\(val_\)\?loss": [^,}]*' "$1/metrics.jsonl" | sed 's/.*: //'; }
close() { # A B TOL: the two loss lists agree within TOL
    paste <(losses "$1") <(losses "$2") | awk -v tol="$3" -v a="$1" -v b="$2" '
        { d = $1 - $2; if (d < 0) d = -d; if (d > worst) worst = d; n++ }
        END { printf "%s vs %s: %d losses, worst difference %.2g\n", a, b, n, worst;
              exit !(n >= 11 && worst <= tol) }' || fail "$2 strays from $1"
}
weights_close() { # A B: final model weights agree within W_TOL
    /usr/bin/python3 tests/tools/weights_diff.py "$1/ckpt/$(cat "$1/ckpt/latest")/model.safetensors" \
        "$2/ckpt/$(cat "$2/ckpt/latest")/model.safetensors" "$W_TOL" || fail "weights of $2 differ"
}

# check_tool NAME TOL: tests/tool_NAME_check as one process and under mpirun with 2 and 4
# ranks; each run must end with "NAME check ok"
check_tool() {
    local name=$1 tol=$2 tool="$BUILD/tests/tool_$1_check" out np
    [ -x "$tool" ] || fail "$tool is not built"
    for np in 1 2 4; do
        if [ "$np" = 1 ]; then out=$(timeout 60 "$tool" "$tol" 2>&1) || fail "$name check, one process: $out"
        else out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np $np "$tool" "$tol" 2>&1) || fail "$name check, $np ranks: $out"; fi
        grep "$name check ok" <<<"$out" || fail "$name check, $np ranks: no success line: $out"
    done
}
