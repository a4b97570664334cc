# t_recompute.sh: activation recomputation (memory.recompute) in training.
#  - Recomputing every block, or a range of them, gives bit-identical losses and final
#    weights to keeping every activation, for a dense and an MoE model (router noise on),
#    and with pipeline stages; the activation buffers (acts_mb) shrink.
#  - A bad block list is refused before any work.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
W_TOL=0
args="$TINY data.dir=$SCRATCH/data model.n_layer=4 train.steps=6 train.eval_interval=0 train.sample_interval=0
      train.ckpt_interval=0 runtime.threads=1"
acts() { grep -o '"acts_mb": [0-9.]*' "$1/metrics.jsonl" | tail -n 1 | sed 's/.*: //'; }
same() { # A B: bit-identical losses and weights
    diff <(losses "$1") <(losses "$2") >/dev/null || fail "losses of $2 differ from $1"
    weights_close "$1" "$2"
}
moe="model.moe_every=2 moe.n_experts=4 moe.top_k=2 moe.d_hidden=64 moe.router_noise=1"
for model in dense moe; do
    extra=""; [ "$model" = moe ] && extra=$moe
    run 1 $model-keep $extra
    run 1 $model-all $extra memory.recompute=all
    run 1 $model-some $extra memory.recompute=1-2
    same "$SCRATCH/$model-keep" "$SCRATCH/$model-all"
    same "$SCRATCH/$model-keep" "$SCRATCH/$model-some"
    awk -v a="$(acts "$SCRATCH/$model-keep")" -v b="$(acts "$SCRATCH/$model-all")" -v c="$(acts "$SCRATCH/$model-some")" \
        'BEGIN { printf "activations: %.2f MiB kept, %.2f recomputing all, %.2f recomputing 1-2\n", a, b, c;
                 exit !(b < c && c < a) }' || fail "$model: recomputation did not shrink the activations"
done
run 2 pp-keep parallel.pipeline=2
run 2 pp-all parallel.pipeline=2 memory.recompute=all
same "$SCRATCH/pp-keep" "$SCRATCH/pp-all"
expect_error 'memory.recompute = "2-9": expected none, all, or block ranges within 0-3' \
    "$CETUS" train $args run.dir="$SCRATCH/bad" memory.recompute=2-9
echo "recomputation is bit-identical and saves activation memory"
