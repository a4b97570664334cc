# t_cli_resume.sh: `cetus train` for 2N steps straight and N + resume + N give the same loss
# at every step, bit for bit, for a dense model and for an MoE model with router noise;
# generate and eval work on the result.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
args="$TINY data.dir=$SCRATCH/data train.steps=12 train.eval_interval=6 train.sample_interval=0"
moe="model.moe_every=2 moe.n_experts=4 moe.d_hidden=96 moe.capacity_factor=1.0 moe.router_noise=0.5"
losses() { grep -o '"step": [0-9]*, "\(val_\)\?loss": [^,}]*' "$1/metrics.jsonl"; }
check_resume() { # name extra-args...
    local name=$1; shift
    "$CETUS" train $args "$@" run.dir="$SCRATCH/$name-straight" train.ckpt_interval=0 >/dev/null
    "$CETUS" train $args "$@" run.dir="$SCRATCH/$name" train.ckpt_interval=0 run.stop_at_step=6 >/dev/null
    "$CETUS" train $args "$@" run.dir="$SCRATCH/$name" train.ckpt_interval=0 >"$SCRATCH/resume.log"
    grep -q "from step 6" "$SCRATCH/resume.log" || fail "$name: second run did not resume at step 6"
    diff <(losses "$SCRATCH/$name-straight") <(losses "$SCRATCH/$name") || fail "$name: resumed losses differ"
}
check_resume moe $moe
grep -q '"moe": \[{"layer": 1' "$SCRATCH/moe/metrics.jsonl" || fail "no MoE statistics in the metrics"
check_resume resumed
mv "$SCRATCH/resumed-straight" "$SCRATCH/straight"
n=$(losses "$SCRATCH/straight" | wc -l)
[ "$n" -eq 14 ] || fail "expected 12 step losses + 2 validation losses, got $n"
first=$(losses "$SCRATCH/straight" | head -n 1 | sed 's/.*: //')
last=$(grep -o '"val_loss": [^}]*' "$SCRATCH/straight/metrics.jsonl" | tail -n 1 | sed 's/.*: //')
echo "first train loss $first, final val loss $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "loss did not fall"
# generate and eval read the checkpoint alone
out=$("$CETUS" generate --ckpt "$SCRATCH/resumed" --prompt "The module" --tokens 5 --seed 3)
[[ "$out" == "The module"* ]] || fail "generate did not continue the prompt: $out"
again=$("$CETUS" generate --ckpt "$SCRATCH/resumed" --prompt "The module" --tokens 5 --seed 3)
[ "$out" = "$again" ] || fail "generate with one seed is not deterministic"
"$CETUS" eval --ckpt "$SCRATCH/resumed" | grep -q "val loss" || fail "eval printed no loss"
echo "resume is bit-identical over $n losses"
