# t_mpi_zero3.sh: ZeRO stage 3 under mpirun (oversubscribed, as CI runs it). For a fixed
# global batch and seed, stage 3 follows the one-process loss trajectory over 10 steps
# within LOSS_TOL and ends with the same weights within W_TOL: at data 2 and 4, data x
# tensor 2 x 2, data x pipeline 2 x 2 (blocks sharing weights across the stages), with
# recomputation, gradient accumulation and no kept units, with blocks' weights and
# gradients on the host and disk tiers and AdamW moments on disk, and with the automatic
# offload policy under a budget; MoE at data 2, with experts local and spread over 2 ranks,
# equals stage 1 on the same layout (capacity and the balancing losses are per rank), and
# dropless without those losses, experts spread, equals one process.
# Checkpoints saved at stage 3 on 4 ranks resume at stage 1 on 2 ranks, on one process and
# at stage 3 on 2; resume on the same layout is bit-identical. A compute budget that stage 1
# cannot meet trains at stage 3 (it counts only the slices and the units in use); one that
# even stage 3 with offload cannot meet, and bad keys, are refused before any work.
source tests/e2e/lib.sh
LOSS_TOL=2e-4
W_TOL=2e-4
make_corpus "$SCRATCH"
args="$TINY data.dir=$SCRATCH/data train.steps=10 train.eval_interval=0 train.sample_interval=0
      train.ckpt_interval=0 runtime.threads=1"
same() { close "$1" "$2" $LOSS_TOL; weights_close "$1" "$2"; }

run 1 single
for np in 2 4; do
    run $np "d$np" parallel.zero=3
    same "$SCRATCH/single" "$SCRATCH/d$np"
done
grep -q "ZeRO stage 3" "$SCRATCH/d4.log" || fail "no ZeRO 3 banner"
grep -q '"gathers": [1-9]' "$SCRATCH/d2/metrics.jsonl" || fail "no gathers in the metrics"

# data x tensor (the vocabulary padded to split over 2 tensor ranks)
run 1 single-v model.vocab_size=50258
run 4 d2t2 model.vocab_size=50258 parallel.tensor=2 parallel.zero=3
same "$SCRATCH/single-v" "$SCRATCH/d2t2"

# recomputation, 2 micro-batches a step, every unit gathered again in backward; block 0's
# weights on the host tier and block 1's gradients on disk
run 1 accum train.grad_accum=2
run 2 d2-accum train.grad_accum=2 parallel.zero=3 memory.recompute=all parallel.zero_keep=0 \
    offload.params=0:host offload.grads=1:disk
same "$SCRATCH/accum" "$SCRATCH/d2-accum"

# every block's weights, gradients and moments on disk: the gather reads the slices from there
run 2 d2-disk parallel.zero=3 offload.params=0-1:disk offload.grads=0-1:disk offload.optimizer=all:disk
same "$SCRATCH/single" "$SCRATCH/d2-disk"
[ -z "$(ls -A "$SCRATCH/d2-disk/offload" 2>/dev/null)" ] || fail "offload files left behind"

# 4 blocks sharing 2 sets of weights (each set gathered at each use): on 2 data ranks with
# moments on disk, and on 2 x 2 pipeline stages (each stage's copy of a set)
shared="model.n_layer=4 model.share_layers=2"
run 1 shared $shared
run 2 d2-shared $shared parallel.zero=3 offload.optimizer=all:disk parallel.zero_keep=3
same "$SCRATCH/shared" "$SCRATCH/d2-shared"
run 4 d2p2-shared $shared parallel.zero=3 parallel.pipeline=2 parallel.schedule=gpipe
same "$SCRATCH/shared" "$SCRATCH/d2p2-shared"
run 4 d2p2 parallel.zero=3 parallel.pipeline=2
same "$SCRATCH/single" "$SCRATCH/d2p2"

# MoE: stage 3 against stage 1 on the same ranks, experts local and spread over 2 ranks;
# and dropless, without the per-rank balancing losses, against one process
moe="model.moe_every=2 moe.n_experts=4"
for e in 1 2; do
    run 2 "moe-e$e-z1" $moe parallel.zero=1 parallel.expert=$e
    run 2 "moe-e$e-z3" $moe parallel.zero=3 parallel.expert=$e
    same "$SCRATCH/moe-e$e-z1" "$SCRATCH/moe-e$e-z3"
done
exact="$moe moe.dropless=true moe.aux_coef=0 moe.z_coef=0 moe.router_noise=0"
run 1 moe-exact $exact
run 2 moe-exact-e2 $exact parallel.zero=3 parallel.expert=2
same "$SCRATCH/moe-exact" "$SCRATCH/moe-exact-e2"

# the automatic policy knows stage 3: it keeps the slices and offloads moments to fit
run 2 d2-auto parallel.zero=3 offload.policy=auto memory.compute_budget=50M
same "$SCRATCH/single" "$SCRATCH/d2-auto"
grep -q "offload (auto): moments of" "$SCRATCH/d2-auto.log" || fail "the policy offloaded nothing"
out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np 2 "$CETUS" train $args parallel.zero=3 offload.policy=auto \
    memory.compute_budget=30M run.dir="$SCRATCH/d2-small" 2>&1) && fail "stage 3 ran within 30M"
grep -q "at parallel.zero = 3, even with all optimizer state offloaded the compute tier needs" <<<"$out" ||
    fail "no stage 3 budget message: $out"

# layout-free checkpoints: saved at stage 3 on 4 ranks, resumed at stage 1 on 2, on one
# process, and at stage 3 on 2; the same layout resumes bit for bit
run 4 half parallel.zero=3 run.stop_at_step=5
cp -r "$SCRATCH/half" "$SCRATCH/half1"
cp -r "$SCRATCH/half" "$SCRATCH/half3"
run 2 half parallel.zero=1
run 1 half1
run 2 half3 parallel.zero=3
for name in half half1 half3; do close "$SCRATCH/single" "$SCRATCH/$name" $LOSS_TOL; done
run 2 again parallel.zero=3 run.stop_at_step=5
run 2 again parallel.zero=3
diff <(losses "$SCRATCH/d2") <(losses "$SCRATCH/again") || fail "resume at stage 3 is not bit-identical"

# a compute budget between what stages 3 and 1 need: stage 1 is refused, stage 3 trains
wide="model.n_layer=8 model.d_model=128 train.steps=2"
run 4 peak-z1 $wide parallel.zero=1
run 4 peak-z3 $wide parallel.zero=3
peak() { grep -o '"compute_peak_mb": [0-9.]*' "$1/metrics.jsonl" | sed 's/.*: //' | sort -n | tail -n 1; }
budget=$(awk -v a="$(peak "$SCRATCH/peak-z1")" -v b="$(peak "$SCRATCH/peak-z3")" \
    'BEGIN { if (b >= a) exit 1; printf "%dK", (a + b) / 2 * 1024 }') ||
    fail "stage 3 holds no less than stage 1: $(peak "$SCRATCH/peak-z3") vs $(peak "$SCRATCH/peak-z1") MiB"
echo "compute peak: stage 1 $(peak "$SCRATCH/peak-z1") MiB, stage 3 $(peak "$SCRATCH/peak-z3") MiB; budget $budget"
out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np 4 "$CETUS" train $args $wide parallel.zero=1 memory.compute_budget=$budget \
    run.dir="$SCRATCH/tight1" 2>&1) && fail "stage 1 ran within $budget"
grep -q "memory.compute_budget = .*would bring the compute tier to" <<<"$out" || fail "no budget message: $out"
run 4 tight3 $wide parallel.zero=3 memory.compute_budget=$budget

# bad keys, refused before any work
expect_error "parallel.zero_keep = 4: allowed 0 to 3" "$CETUS" train $args run.dir="$SCRATCH/bad" parallel.zero=3 \
    parallel.zero_keep=4
expect_error "parallel.zero = 4 is out of range: allowed 0 to 3" "$CETUS" train $args run.dir="$SCRATCH/bad" \
    parallel.zero=4
echo "ZeRO 3 matches one process; checkpoints move between stages and layouts"
