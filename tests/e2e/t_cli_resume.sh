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
last=$(grep -o '"val_loss": [^,}]*' "$SCRATCH/straight/metrics.jsonl" | tail -n 1 | sed 's/.*: //')
echo "first train loss $first, final val loss $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "loss did not fall"
# generate and eval read the checkpoint alone
out=$("$CETUS" generate --ckpt "$SCRATCH/resumed" --prompt "The module" --tokens 5 --seed 3)
[[ "$out" == "The module"* ]] || fail "generate did not continue the prompt: $out"
again=$("$CETUS" generate --ckpt "$SCRATCH/resumed" --prompt "The module" --tokens 5 --seed 3)
[ "$out" = "$again" ] || fail "generate with one seed is not deterministic"
"$CETUS" eval --ckpt "$SCRATCH/resumed" | grep -q "val loss" || fail "eval printed no loss"
echo "resume is bit-identical over $n losses"

# A first save that never finished (an empty ckpt directory) starts the run fresh, saying so.
mkdir -p "$SCRATCH/fresh/ckpt"
"$CETUS" train $args run.dir="$SCRATCH/fresh" train.steps=2 train.eval_interval=0 train.ckpt_interval=0 \
    >"$SCRATCH/fresh.log" 2>&1 || fail "an empty ckpt directory stops the run: $(tail -n 3 "$SCRATCH/fresh.log")"
grep -q "holds no complete checkpoint" "$SCRATCH/fresh.log" || fail "no word of starting fresh"
# A save that finished its directory but died before writing 'latest', and the half-written
# save of a process that no longer runs: the run resumes from the newest complete checkpoint,
# bit-identical to the straight run, and the leftover is gone.
"$CETUS" train $args run.dir="$SCRATCH/nolatest" train.ckpt_interval=0 run.stop_at_step=6 >/dev/null
rm "$SCRATCH/nolatest/ckpt/latest"
sh -c 'exit 0' & dead=$!
wait "$dead"
mkdir "$SCRATCH/nolatest/ckpt/step_00000006.tmp-$dead"
: >"$SCRATCH/nolatest/ckpt/step_00000006.tmp-$dead/model.safetensors"
"$CETUS" train $args run.dir="$SCRATCH/nolatest" train.ckpt_interval=0 >"$SCRATCH/nolatest.log" 2>&1 ||
    fail "no resume without 'latest': $(tail -n 3 "$SCRATCH/nolatest.log")"
grep -q "no 'latest' pointer" "$SCRATCH/nolatest.log" || fail "no word of the missing pointer"
grep -q "removed 1 directories left by interrupted saves" "$SCRATCH/nolatest.log" || fail "leftover not reported"
grep -q "from step 6" "$SCRATCH/nolatest.log" || fail "did not resume at step 6"
[ ! -e "$SCRATCH/nolatest/ckpt/step_00000006.tmp-$dead" ] || fail "the dead save's directory is still there"
diff <(losses "$SCRATCH/straight") <(losses "$SCRATCH/nolatest") || fail "losses after a lost pointer differ"
echo "an unfinished first save starts fresh; a lost pointer resumes from the newest checkpoint"
