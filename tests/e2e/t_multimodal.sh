# t_multimodal.sh: image + text training end to end on real scenes (MNIST digits and
# Fashion-MNIST clothes from `cetus prepare --scenes`), mixed with text batches:
#  - both losses are reported per step, and the validation caption loss, token accuracy and
#    exact-match rate at the end, also from `cetus eval` on the checkpoint;
#  - data 2 (also at ZeRO 3), tensor 2, and MoE with experts over 2 ranks follow the one-process run (captions
#    differ in length: each rank weighs in by its share of the batch's caption targets; the
#    MoE balancing and z losses are each rank's own, so they are off here);
#  - stopping and resuming gives the same losses bit for bit;
#  - bad settings are refused with a message: scenes without an image tower, pipeline
#    stages, a canvas that does not match, captions longer than the sequence.
source tests/e2e/lib.sh

make_corpus "$SCRATCH"
"$CETUS" prepare --scenes --out "$SCRATCH/scenes" --train-scenes 200 --val-scenes 16 2>/dev/null ||
    fail "prepare --scenes failed"
LOSS_TOL=2e-4
args="$TINY data.dir=$SCRATCH/data data.scenes=$SCRATCH/scenes image.patch=8 model.seq_len=128 train.seq_len=32
      model.n_head=4 model.vocab_size=50304 train.steps=10 train.grad_accum=2 data.text_ratio=0.25
      train.eval_interval=0 train.eval_batches=1 train.eval_captions=4 train.sample_interval=0 train.ckpt_interval=0
      runtime.threads=1"
run 1 single
grep -q '"caption_loss": [0-9]' "$SCRATCH/single/metrics.jsonl" || fail "no caption loss in the metrics"
grep -q '"text_loss": [0-9]' "$SCRATCH/single/metrics.jsonl" || fail "no text loss in the metrics"
grep -q '"val_exact_match"' "$SCRATCH/single/metrics.jsonl" || fail "no exact-match rate"
grep "val caption loss" "$SCRATCH/single.log"
out=$("$CETUS" eval --ckpt "$SCRATCH/single" --batches 1 --captions 4) || fail "eval: $out"
grep -q "captions (.*, validation): loss [0-9.]*, token accuracy [0-9.]*, exact match [0-9.]* ([0-9]* of 4 scenes)" <<<"$out" ||
    fail "eval reports no caption metrics: $out"
run 2 d2 parallel.data=2
close "$SCRATCH/single" "$SCRATCH/d2" $LOSS_TOL
run 2 d2-z3 parallel.data=2 parallel.zero=3 # the image tower is part of the embeddings unit
close "$SCRATCH/single" "$SCRATCH/d2-z3" $LOSS_TOL
run 2 t2 parallel.tensor=2
close "$SCRATCH/single" "$SCRATCH/t2" $LOSS_TOL
moe="model.moe_every=2 moe.n_experts=4 moe.top_k=2 moe.d_hidden=64 moe.dropless=true moe.aux_coef=0 moe.z_coef=0 moe.router_noise=0"
run 1 moe $moe
run 2 moe-e2 $moe parallel.expert=2
close "$SCRATCH/moe" "$SCRATCH/moe-e2" $LOSS_TOL
run 1 half run.stop_at_step=5
run 1 half
grep -q "resumed from" "$SCRATCH/half.log" || fail "did not resume"
diff <(losses "$SCRATCH/single") <(losses "$SCRATCH/half") || fail "resume is not bit-identical"

expect_error "needs a model with image input" "$CETUS" train $args image.patch=0 run.dir="$SCRATCH/x1"
expect_error "not supported yet" "$CETUS" train $args parallel.pipeline=2 run.dir="$SCRATCH/x2"
expect_error "scenes_train.bin holds 64x64 images but the model's canvas" "$CETUS" train $args image.height=32 run.dir="$SCRATCH/x3"
expect_error "more than model.seq_len = 80" "$CETUS" train $args model.seq_len=80 run.dir="$SCRATCH/x4"
echo "captions and text train together on every layout and resume bit-identically"
