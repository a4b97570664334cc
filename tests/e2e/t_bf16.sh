#!/usr/bin/env bash
# t_bf16.sh: training with train.precision = bf16 (matrix products from bf16 inputs, fp32
# accumulation; weights, gradients, AdamW state and checkpoints fp32).
#  - The loss curve follows fp32's, one process and every parallel mode (data with ZeRO 1,
#    tensor, pipeline, MoE with experts spread), with offload to the host and shared weights.
#  - It stays deterministic: a run resumed from its checkpoint, and one recomputing every
#    block, match the straight run bit for bit.
#  - The run says so: the start line's precision, the products line, MFU against the bf16 peak.
#  - Bad input: a precision other than fp32 or bf16, an unknown product library, and (on a
#    processor without bf16 instructions) bf16 itself are refused with a message.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
W_TOL=0
args="$TINY data.dir=$SCRATCH/data model.n_layer=4 train.steps=12 train.eval_interval=4 train.sample_interval=0
      train.ckpt_interval=6 runtime.threads=1"
expect_error 'train.precision = "fp16": allowed fp32 or bf16' "$CETUS" train $args run.dir="$SCRATCH/bad" train.precision=fp16
expect_error 'runtime.gemm = "mkl": allowed auto' "$CETUS" train $args run.dir="$SCRATCH/bad" runtime.gemm=mkl
if ! grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
    expect_error 'has no bf16 instructions' "$CETUS" train $args run.dir="$SCRATCH/bad" train.precision=bf16
    echo "no bf16 instructions here: bf16 refused, as it should be"
    exit 0
fi
moe="model.moe_every=2 moe.n_experts=4 moe.top_k=2 moe.d_hidden=64"
TOL=0.02 # a fifth of 1% of the losses here (6.5 to 11); measured: under 1e-3
pair() { # NP NAME extra-args...: NAME-fp32 and NAME-bf16, whose losses must agree within TOL
    local np=$1 name=$2; shift 2
    run "$np" "$name-fp32" "$@"
    run "$np" "$name-bf16" "$@" train.precision=bf16
    close "$SCRATCH/$name-fp32" "$SCRATCH/$name-bf16" "$TOL"
    ! diff <(losses "$SCRATCH/$name-fp32") <(losses "$SCRATCH/$name-bf16") >/dev/null ||
        fail "$name: bf16 losses are fp32's bit for bit: the products did not run in bf16"
}
pair 1 one
grep -q '"precision": "bf16"' "$SCRATCH/one-bf16/metrics.jsonl" || fail "the start line lacks the precision"
grep -q '^products: .*products in bf16' "$SCRATCH/one-bf16.log" || fail "no products line: $(head "$SCRATCH/one-bf16.log")"
grep -q 'in bf16$' "$SCRATCH/one-bf16.log" || fail "MFU not against the bf16 peak: $(grep peak: "$SCRATCH/one-bf16.log")"
pair 1 offload offload.params=host offload.optimizer=host
pair 1 shared model.share_layers=2
pair 2 data parallel.data=2 parallel.zero=1
pair 2 tensor parallel.tensor=2 model.vocab_size=50258
pair 2 pipe parallel.pipeline=2
pair 2 experts $moe parallel.expert=2
# deterministic: resumed and recomputed runs are the straight run, bit for bit
run 1 half train.precision=bf16 run.stop_at_step=6
run 1 half train.precision=bf16 run.resume=true
diff <(losses "$SCRATCH/one-bf16") <(losses "$SCRATCH/half") >/dev/null || fail "resumed bf16 losses differ"
weights_close "$SCRATCH/one-bf16" "$SCRATCH/half"
run 1 recompute train.precision=bf16 memory.recompute=all
diff <(losses "$SCRATCH/one-bf16") <(losses "$SCRATCH/recompute") >/dev/null || fail "recomputed bf16 losses differ"
weights_close "$SCRATCH/one-bf16" "$SCRATCH/recompute"
echo "bf16 follows fp32 in every mode and stays deterministic"
