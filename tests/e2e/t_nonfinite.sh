# t_nonfinite.sh: a step whose loss is not finite or explodes stops the run with a message
# naming the step, the value and the key, or (train.on_nonfinite=skip) drops that step's
# update and goes on; either way the step and its batch's position go to anomalies.jsonl.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
D="data.dir=$SCRATCH/data train.sample_interval=0 train.eval_interval=0"

# (a) an exploding loss (train.lr=10) stops instead of finishing with a loss in the thousands
rc=0
"$CETUS" train $TINY $D run.dir="$SCRATCH/lr" train.steps=30 train.lr=10 >/dev/null 2>"$SCRATCH/lr.err" || rc=$?
[ "$rc" -ne 0 ] || fail "train.lr=10 exited 0"
grep -q "is over train.loss_spike = 3 times its recent mean" "$SCRATCH/lr.err" || fail "no spike message: $(cat "$SCRATCH/lr.err")"
grep -q '"action": "stop", .*"data": {"split": "train", "epoch": "0", "index": "[0-9]*", "windows": 4}' \
    "$SCRATCH/lr/anomalies.jsonl" || fail "the stopped step is not recorded: $(cat "$SCRATCH/lr/anomalies.jsonl")"
echo "ok: train.lr=10 -> $(grep -o 'step [0-9]*: the text loss [0-9.e+]*' "$SCRATCH/lr.err")"

# (b) a NaN loss at step 3 (injected) stops before the update, naming the batch (steps 1-2
# read windows 0-7 of 4-row batches, so step 3's batch starts at window 8)
expect_error "step 3: the training loss is nan" env CETUS_INJECT_NONFINITE=3 "$CETUS" train $TINY $D \
    run.dir="$SCRATCH/stop" train.steps=6
grep -q '"step": 3, "action": "stop", "loss": nan' "$SCRATCH/stop/anomalies.jsonl" &&
    fail "NaN written into JSON"
grep -q '"step": 3, "action": "stop", .*"index": "8"' "$SCRATCH/stop/anomalies.jsonl" ||
    fail "step 3 not recorded at window 8: $(cat "$SCRATCH/stop/anomalies.jsonl")"

# (c) skip: the run goes on, step 3's update is dropped (the weights after step 3 are those
# after step 2, bit for bit), the metrics stay valid JSON
CETUS_INJECT_NONFINITE=3 "$CETUS" train $TINY $D run.dir="$SCRATCH/skip" train.steps=6 train.on_nonfinite=skip \
    train.ckpt_interval=1 train.ckpt_keep=10 >/dev/null 2>"$SCRATCH/skip.err" || fail "skip run failed: $(tail -n 3 "$SCRATCH/skip.err")"
grep -q "warning: step 3: the training loss is nan .*its update is skipped" "$SCRATCH/skip.err" ||
    fail "no skip warning: $(cat "$SCRATCH/skip.err")"
/usr/bin/python3 - "$SCRATCH/skip" <<'PY' || fail "skip run checks failed"
import json, sys
run = sys.argv[1]
lines = [json.loads(l) for l in open(run + "/metrics.jsonl")]
steps = [l for l in lines if "loss" in l]
assert [l["step"] for l in steps] == [1, 2, 3, 4, 5, 6], steps
assert steps[2].get("skipped") is True and steps[2]["loss"] is None, steps[2]
assert all("skipped" not in l for l in steps if l["step"] != 3)
rec = [json.loads(l) for l in open(run + "/anomalies.jsonl")]
assert len(rec) == 1 and rec[0]["step"] == 3 and rec[0]["action"] == "skip" and rec[0]["data"]["index"] == "8", rec
print("ok: metrics valid JSON, step 3 skipped and recorded")
PY
/usr/bin/python3 tests/tools/weights_diff.py "$SCRATCH/skip/ckpt/step_00000002/model.safetensors" \
    "$SCRATCH/skip/ckpt/step_00000003/model.safetensors" 0 || fail "the skipped step changed the weights"
/usr/bin/python3 tests/tools/weights_diff.py "$SCRATCH/skip/ckpt/step_00000003/model.safetensors" \
    "$SCRATCH/skip/ckpt/step_00000004/model.safetensors" 0 && fail "step 4 did not update the weights"
expect_error 'train.on_nonfinite = "maybe"' "$CETUS" train $TINY $D train.on_nonfinite=maybe
echo "non-finite and exploding steps handled"
