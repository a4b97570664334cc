# t_mpi_tp.sh: tensor parallelism under mpirun (oversubscribed, as CI runs it).
#  - tests/tool_tp_check: at 2 and 4 tensor ranks each rank's parameters are its exact part
#    of the one-process model's; loss, whole-vocabulary logits rows and every gradient part
#    match (dense, prefix-LM, MoE).
#  - For a fixed global batch and seed, tensor=2, tensor=4 and data=2 x tensor=2, each with
#    ZeRO 0, 1 and 2, follow the one-process loss trajectory over 10 steps within LOSS_TOL
#    and end with the same weights within W_TOL; an MoE model at tensor=2 too.
#  - A checkpoint saved at data=2 x tensor=2 resumes at data=4, at tensor=4 and on one
#    process with the same losses; on the same layout, bit-identically.
#  - Layouts the model cannot split are refused before any work, naming what fits.
source tests/e2e/lib.sh
LOSS_TOL=2e-4
W_TOL=2e-4
check_tool tp 2e-5

make_corpus "$SCRATCH"
# 4 heads and the vocabulary padded to a multiple of 4, so both split over 2 and 4 ranks
args="$TINY data.dir=$SCRATCH/data train.steps=10 train.eval_interval=0 train.sample_interval=0
      train.ckpt_interval=0 runtime.threads=1 model.n_head=4 model.vocab_size=50304"
run 1 single
for layout in "2 1" "4 1" "4 2"; do
    read -r np tdata <<<"$layout"
    tensor=$((np / tdata))
    for zero in 0 1 2; do
        name="d$tdata-t$tensor-z$zero"
        run $np "$name" parallel.data=$tdata parallel.tensor=$tensor parallel.zero=$zero
        close "$SCRATCH/single" "$SCRATCH/$name" $LOSS_TOL
        weights_close "$SCRATCH/single" "$SCRATCH/$name"
    done
done
grep -q "parallel: 4 ranks, data 2 x tensor 2 x pipeline 1 (experts over 1), ZeRO stage 2" "$SCRATCH/d2-t2-z2.log" || fail "no parallel banner"
grep -q -- "--- sample at step 10 ---" "$SCRATCH/d2-t2-z2.log" || fail "no sample from the tensor-parallel run"

moe="model.moe_every=2 moe.n_experts=4 moe.top_k=2 moe.d_hidden=64"
run 1 moe1 $moe
run 2 moe-t2 $moe parallel.tensor=2
close "$SCRATCH/moe1" "$SCRATCH/moe-t2" $LOSS_TOL
weights_close "$SCRATCH/moe1" "$SCRATCH/moe-t2"

# layout-free checkpoints: saved at data=2 x tensor=2 (ZeRO 1), resumed at data=4 (ZeRO 2),
# at tensor=4 and on one process
run 4 half parallel.data=2 parallel.tensor=2 parallel.zero=1 run.stop_at_step=5
for d in d4 t4 one same; do cp -r "$SCRATCH/half" "$SCRATCH/half-$d"; done
run 4 half-d4 parallel.data=4 parallel.zero=2
run 4 half-t4 parallel.data=1 parallel.tensor=4
run 1 half-one
for d in d4 t4 one; do
    grep -q "resumed from" "$SCRATCH/half-$d.log" || fail "half-$d did not resume"
    close "$SCRATCH/single" "$SCRATCH/half-$d" $LOSS_TOL
done
run 4 half-same parallel.data=2 parallel.tensor=2 parallel.zero=1
diff <(losses "$SCRATCH/d2-t2-z1") <(losses "$SCRATCH/half-same") || fail "resume at data=2 x tensor=2 is not bit-identical"

# layouts the model cannot split
refused() { # WANT NP extra-args...
    local want=$1 np=$2; shift 2
    local out
    out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np "$np" "$CETUS" train $args run.dir="$SCRATCH/refused" "$@" 2>&1) &&
        fail "ran: $*"
    grep -qF -- "$want" <<<"$out" || fail "refusal of $* lacks '$want': $out"
    echo "refused: $* -> $(grep -F -- "$want" <<<"$out" | head -n 1)"
}
refused "parallel.tensor = 4 does not divide model.vocab_size = 50257" 4 parallel.tensor=4 model.vocab_size=50257
refused "model.vocab_size = 50260" 4 parallel.tensor=4 model.vocab_size=50257
refused "parallel.tensor = 4 does not divide model.n_head = 2" 4 parallel.tensor=4 model.n_head=2
refused "tensor sizes that fit this model: 1, 2" 4 parallel.tensor=4 model.n_head=2
[ ! -e "$SCRATCH/refused/metrics.jsonl" ] || fail "a refused layout started training"
echo "tensor parallelism matches one process; checkpoints move between layouts"
