# t_mpi_ep.sh: expert parallelism under mpirun (oversubscribed, as CI runs it).
#  - tests/tool_ep_check: as one process and with expert groups of 2 and 4 ranks, every
#    routing mode (dropless) of the layer matches the one-process layer (outputs, input
#    gradients, each rank's experts' gradients, the router's summed over the ranks), and a
#    router that sends every token to one expert (other experts and ranks get no rows)
#    runs without a hang, with and without capacity.
#  - Training an MoE model (dropless; aux_coef 0, as the load-balancing loss is computed
#    from each rank's own tokens) with experts over 2 and 4 ranks, over 2 of 4 data ranks,
#    and data=2 x tensor=2 x expert=2 follows the one-process losses over 10 steps within
#    LOSS_TOL and ends with the same weights within W_TOL.
#  - Four MoE blocks, all recomputed, with experts over 2 ranks (their expert-parallel sides
#    share one buffer) follow the one-process run.
#  - A checkpoint saved with experts over 2 ranks resumes with experts over 4 and on one
#    process with the same losses; bit-identically on the same layout.
#  - With ZeRO 1 (optimizer state sharded over the ranks that hold the same experts) too, and
#    its checkpoint resumes on one process; ZeRO 2 with experts and experts that do not split
#    are refused.
source tests/e2e/lib.sh
check_tool ep 1e-5

make_corpus "$SCRATCH"
LOSS_TOL=2e-4
W_TOL=2e-4
args="$TINY data.dir=$SCRATCH/data train.steps=10 train.eval_interval=0 train.sample_interval=0
      train.ckpt_interval=0 runtime.threads=1 model.n_head=4 model.vocab_size=50304 model.moe_every=2
      moe.n_experts=4 moe.top_k=2 moe.d_hidden=64 moe.dropless=true moe.aux_coef=0 moe.router_noise=0"
run 1 single
for layout in "2 2 1 0" "4 4 1 0" "4 2 1 0" "4 2 2 0" "4 2 1 1"; do
    read -r np expert tensor zero <<<"$layout"
    name="n$np-e$expert-t$tensor-z$zero"
    run "$np" "$name" parallel.expert=$expert parallel.tensor=$tensor parallel.zero=$zero
    close "$SCRATCH/single" "$SCRATCH/$name" $LOSS_TOL
    weights_close "$SCRATCH/single" "$SCRATCH/$name"
done
grep -q "data 2 x tensor 2 x pipeline 1 (experts over 2)" "$SCRATCH/n4-e2-t2-z0.log" || fail "no hybrid banner"

# recomputed MoE blocks share one expert-parallel side (their exchange runs again in backward)
run 1 rec-single model.n_layer=4 model.moe_every=1
run 2 rec-e2 model.n_layer=4 model.moe_every=1 parallel.expert=2 memory.recompute=all
close "$SCRATCH/rec-single" "$SCRATCH/rec-e2" $LOSS_TOL
weights_close "$SCRATCH/rec-single" "$SCRATCH/rec-e2"

run 2 half parallel.expert=2 run.stop_at_step=5
for d in e4 one same; do cp -r "$SCRATCH/half" "$SCRATCH/half-$d"; done
run 4 half-e4 parallel.expert=4
run 1 half-one
for d in e4 one; do
    grep -q "resumed from" "$SCRATCH/half-$d.log" || fail "half-$d did not resume"
    close "$SCRATCH/single" "$SCRATCH/half-$d" $LOSS_TOL
done
run 2 half-same parallel.expert=2
diff <(losses "$SCRATCH/n2-e2-t1-z0") <(losses "$SCRATCH/half-same") || fail "resume with experts over 2 is not bit-identical"

# ZeRO 1 with experts: the optimizer state sharded over the ranks holding the same experts;
# saved at data=4 x expert=2, resumed on one process
run 4 zhalf parallel.expert=2 parallel.zero=1 run.stop_at_step=5
run 1 zhalf
close "$SCRATCH/single" "$SCRATCH/zhalf" $LOSS_TOL

out=$("$CETUS" train $args parallel.expert=2 parallel.zero=2 run.dir="$SCRATCH/r" 2>&1) && fail "ZeRO 2 with experts ran"
grep -q "parallel.zero = 2 with parallel.expert = 2: not supported yet" <<<"$out" || fail "no ZeRO message: $out"
out=$("$CETUS" train $args parallel.expert=3 run.dir="$SCRATCH/r" 2>&1) && fail "4 experts over 3 ranks ran"
grep -q "moe.n_experts = 4 is not divisible by the 3 expert-parallel ranks" <<<"$out" || fail "no split message: $out"
echo "expert parallelism matches one process; checkpoints move between expert layouts"
