# t_cli_upcycle.sh: `cetus upcycle` turns a dense checkpoint into an MoE one whose experts
# copy the MLP: with dropless top-2 routing (gates sum to 1) it computes the dense model's
# function, so validation losses agree; the MoE run then trains on; bad requests are refused
# and the input is never modified.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
D="data.dir=$SCRATCH/data train.sample_interval=0"
"$CETUS" train $TINY $D run.dir="$SCRATCH/dense" train.steps=4 >/dev/null
before=$(cd "$SCRATCH/dense" && find ckpt -type f | sort | xargs sha256sum)
moe="model.moe_every=2 moe.n_experts=4 moe.routing=top2 moe.top_k=2 moe.dropless=true moe.d_hidden=256"
"$CETUS" upcycle "$SCRATCH/dense" "$SCRATCH/moe" $moe
dense_loss=$("$CETUS" eval --ckpt "$SCRATCH/dense" --batches 2 | sed 's/.*val loss \([0-9.]*\).*/\1/')
moe_loss=$("$CETUS" eval --ckpt "$SCRATCH/moe" --batches 2 | sed 's/.*val loss \([0-9.]*\).*/\1/')
echo "dense val loss $dense_loss, upcycled MoE val loss $moe_loss"
[ "$dense_loss" = "$moe_loss" ] || fail "upcycled model computes another function"
"$CETUS" train $TINY $D $moe run.dir="$SCRATCH/moe" train.steps=3 >"$SCRATCH/moe.log"
grep -q "from step 0" "$SCRATCH/moe.log" || fail "MoE run did not start from the upcycled checkpoint"
grep -q '"moe": \[{"layer": 1' "$SCRATCH/moe/metrics.jsonl" || fail "MoE run has no MoE statistics"
expect_error "moe.d_hidden = 100" "$CETUS" upcycle "$SCRATCH/dense" "$SCRATCH/x" $moe moe.d_hidden=100
expect_error "already has MoE blocks" "$CETUS" upcycle "$SCRATCH/moe" "$SCRATCH/y" $moe
expect_error "model.moe_every = 0" "$CETUS" upcycle "$SCRATCH/dense" "$SCRATCH/z"
expect_error "not a checkpoint" "$CETUS" upcycle "$SCRATCH/nothing" "$SCRATCH/w" $moe
after=$(cd "$SCRATCH/dense" && find ckpt -type f | sort | xargs sha256sum)
[ "$before" = "$after" ] || fail "the input checkpoint changed"
echo "upcycling keeps the function and leaves the input intact"
