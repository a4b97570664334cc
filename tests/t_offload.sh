# t_offload.sh: the memory tiers and optimizer-state offload (offload.optimizer).
#  - The AdamW moments in host memory, on disk, or split per unit (blocks, embeddings,
#    head) give bit-identical losses and final weights to keeping them on the compute tier;
#    with data=2 and ZeRO 1 each rank offloads its own shard.
#  - A run with the moments on disk saves and resumes bit-identically (the checkpoint holds
#    them whole under the usual names) and resumes without offload too.
#  - memory.compute_budget: a model whose state does not fit is refused with a message naming
#    the budget; with its moments on disk it trains within the same budget.
#  - Bad placements and budgets are refused before any work.
source tests/lib.sh
make_corpus "$SCRATCH"
W_TOL=0
args="$TINY data.dir=$SCRATCH/data model.n_layer=4 model.vocab_size=50304 train.steps=8 train.eval_interval=0
      train.sample_interval=0 train.ckpt_interval=0 runtime.threads=1"
same() { # A B: bit-identical losses and weights
    diff <(losses "$1") <(losses "$2") >/dev/null || fail "losses of $2 differ from $1"
    weights_close "$1" "$2"
}
run 1 keep
for placement in host disk "all:host,0-1:disk,head:compute"; do
    name=opt-${placement//[:,]/_}
    run 1 "$name" offload.optimizer="$placement"
    same "$SCRATCH/keep" "$SCRATCH/$name"
done
grep -q "offload: AdamW moments .* on disk in $SCRATCH/opt-disk/offload/rank_0.bin" "$SCRATCH/opt-disk.log" ||
    fail "no offload banner"
[ ! -e "$SCRATCH/opt-disk/offload/rank_0.bin" ] || fail "the disk tier's file outlived the run"
run 2 z1-keep parallel.zero=1
run 2 z1-disk parallel.zero=1 offload.optimizer=disk
same "$SCRATCH/z1-keep" "$SCRATCH/z1-disk"

run 1 half offload.optimizer=disk run.stop_at_step=4
cp -r "$SCRATCH/half" "$SCRATCH/half-plain"
run 1 half offload.optimizer=disk
run 1 half-plain
grep -q "resumed from" "$SCRATCH/half.log" || fail "no resume"
diff <(losses "$SCRATCH/opt-disk") <(losses "$SCRATCH/half") || fail "resume with moments on disk is not bit-identical"
diff <(losses "$SCRATCH/opt-disk") <(losses "$SCRATCH/half-plain") || fail "resume without offload differs"

# 3.4M parameters: weights 13 MiB, gradients 13, moments 26, activations 27 (logits of 50304)
expect_error "memory.compute_budget = 72.0 MiB: allocating" \
    "$CETUS" train $args run.dir="$SCRATCH/tight" memory.compute_budget=72M
run 1 tight memory.compute_budget=72M offload.optimizer=disk
grep -q "compute budget: 72.0 MiB" "$SCRATCH/tight.log" || fail "no budget line"
same "$SCRATCH/keep" "$SCRATCH/tight"
peak=$(grep -o '"compute_peak_mb": [0-9.]*' "$SCRATCH/tight/metrics.jsonl" | tail -n 1 | sed 's/.*: //')
awk -v p="$peak" 'BEGIN { exit !(p > 0 && p <= 72) }' || fail "compute peak $peak MiB past the budget"

expect_error 'offload.optimizer = "0-9:disk": expected none, host, disk, or entries UNITS:TIER' \
    "$CETUS" train $args run.dir="$SCRATCH/bad" offload.optimizer=0-9:disk
expect_error 'memory.compute_budget = "lots"' "$CETUS" train $args run.dir="$SCRATCH/bad" memory.compute_budget=lots
echo "offloaded optimizer state is bit-identical, resumable and fits a budget the model alone does not"
