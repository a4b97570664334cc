# t_example.sh: examples/moe_4d (the few-calls C API) trains its MoE model on 8 ranks as
# data 2 x tensor 2 x pipeline 2 (1F1B, 8 micro-batches) with experts over 2: it announces
# that layout, the loss falls, the validation loss is finite, and its checkpoint loads as a
# one-process model (cetus eval).
source tests/e2e/lib.sh
EXAMPLE="$PWD/$BUILD/examples/moe_4d"
[ -x "$EXAMPLE" ] || fail "$EXAMPLE is not built"
make_corpus "$SCRATCH"
"${mpi_env[@]}" "${MPIRUN[@]}" -np 8 "$EXAMPLE" data.dir="$SCRATCH/data" run.dir="$SCRATCH/run" \
    train.steps=16 train.eval_interval=8 train.sample_tokens=4 runtime.threads=1 \
    >"$SCRATCH/log" 2>&1 || fail "moe_4d failed: $(tail -n 5 "$SCRATCH/log")"
grep -q "parallel: 8 ranks, data 2 x tensor 2 x pipeline 2 (experts over 2)" "$SCRATCH/log" || fail "no layout line"
grep -q "pipeline: 1f1b schedule, 8 micro-batches of 1 row" "$SCRATCH/log" || fail "no schedule line"
first=$(grep -o '"step": 1, "loss": [0-9.]*' "$SCRATCH/run/metrics.jsonl" | sed 's/.*: //')
last=$(grep -o '"step": 16, "loss": [0-9.]*' "$SCRATCH/run/metrics.jsonl" | sed 's/.*: //')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "loss did not fall: $first -> $last"
grep -q '"step": 16, "val_loss": [0-9]' "$SCRATCH/run/metrics.jsonl" || fail "no validation loss"
"$CETUS" eval --ckpt "$SCRATCH/run" --data "$SCRATCH/data" \
    >"$SCRATCH/eval" 2>&1 || fail "eval of the example's checkpoint: $(tail -n 3 "$SCRATCH/eval")"
echo "moe_4d: loss $first -> $last; $(tail -n 1 "$SCRATCH/eval")"
