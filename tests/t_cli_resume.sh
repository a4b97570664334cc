# t_cli_resume.sh: `cetus train` for 2N steps straight and N + resume + N give the same loss
# at every step, bit for bit; generate and eval work on the result.
source tests/lib.sh
make_corpus "$SCRATCH"
args="$TINY data.dir=$SCRATCH/data train.steps=12 train.eval_interval=6 train.sample_interval=0"
"$CETUS" train $args run.dir="$SCRATCH/straight" train.ckpt_interval=0 >/dev/null
"$CETUS" train $args run.dir="$SCRATCH/resumed" train.ckpt_interval=0 run.stop_at_step=6 >/dev/null
"$CETUS" train $args run.dir="$SCRATCH/resumed" train.ckpt_interval=0 >"$SCRATCH/resume.log"
grep -q "from step 6" "$SCRATCH/resume.log" || fail "second run did not resume at step 6"
losses() { grep -o '"step": [0-9]*, "\(val_\)\?loss": [^,}]*' "$1/metrics.jsonl"; }
diff <(losses "$SCRATCH/straight") <(losses "$SCRATCH/resumed") || fail "resumed losses differ"
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
