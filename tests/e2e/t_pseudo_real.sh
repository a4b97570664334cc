# t_pseudo_real.sh: cross-layer sharing and Pseudo-to-Real end to end.
#  - A model whose blocks share weights (model.share_layers) trains the same on data 2,
#    tensor 2, pipeline 2 (the shared weights live on both stages; their gradients are summed
#    over the stages), pipeline 2 x data 2 with ZeRO 2, groups straddling a stage boundary,
#    and MoE with experts over 2 ranks, as on one process; its checkpoint is smaller.
#  - `cetus delink` keeps the function (same validation loss through `cetus eval`); training
#    on from it, and the in-process switch (delink.step), give bit-identical losses; the
#    switch resumes bit-identically from a stop in either phase and runs under pipeline 2 and
#    at ZeRO 3 on 2 data ranks.
#  - Bad input: a checkpoint without sharing, fewer layers than groups, an existing OUT, a
#    corrupted input, a real checkpoint resumed with the pseudo settings, bad delink keys:
#    each a clear message; the input checkpoint is never modified.
source tests/e2e/lib.sh

make_corpus "$SCRATCH"
LOSS_TOL=2e-4
W_TOL=2e-4
args="$TINY data.dir=$SCRATCH/data model.n_layer=4 model.n_head=4 model.vocab_size=50304 train.steps=10
      train.eval_interval=0 train.sample_interval=0 train.ckpt_interval=0 runtime.threads=1"
share="model.share_layers=all"

run 1 single $share
grep -q "4 blocks share 1 set of weights" "$SCRATCH/single.log" || fail "no sharing banner"
for layout in "2 d2" "2 t2 parallel.tensor=2" "2 p2 parallel.pipeline=2" "4 p2d2 parallel.pipeline=2 parallel.zero=2"; do
    read -r np name extra <<<"$layout"
    run "$np" "$name" $share $extra
    close "$SCRATCH/single" "$SCRATCH/$name" $LOSS_TOL
    weights_close "$SCRATCH/single" "$SCRATCH/$name"
done
run 1 groups model.share_layers=2
run 2 groups-p2 model.share_layers=2 parallel.pipeline=2 parallel.stages=3,1 # weights h.2 on both stages
close "$SCRATCH/groups" "$SCRATCH/groups-p2" $LOSS_TOL
weights_close "$SCRATCH/groups" "$SCRATCH/groups-p2"
moe="model.moe_every=2 moe.n_experts=4 moe.top_k=2 moe.d_hidden=64 moe.dropless=true moe.aux_coef=0 moe.router_noise=0"
run 1 moe $moe $share
run 2 moe-e2 $moe $share parallel.expert=2
close "$SCRATCH/moe" "$SCRATCH/moe-e2" $LOSS_TOL
weights_close "$SCRATCH/moe" "$SCRATCH/moe-e2"
run 1 plain
size() { stat -c %s "$1/ckpt/$(cat "$1/ckpt/latest")/model.safetensors"; }
echo "checkpoint weights: shared $(size "$SCRATCH/single") bytes, independent $(size "$SCRATCH/plain") bytes"
[ "$(size "$SCRATCH/single")" -lt "$(size "$SCRATCH/plain")" ] || fail "sharing did not shrink the checkpoint"

# the CLI: delink keeps the function, the input stays as it was
run 1 pseudo $share run.stop_at_step=5
IN="$SCRATCH/pseudo/ckpt/step_00000005"
before=$(cd "$SCRATCH/pseudo" && find ckpt -type f | sort | xargs sha256sum)
"$CETUS" delink "$SCRATCH/pseudo" "$SCRATCH/real" >"$SCRATCH/delink.log" || fail "delink: $(cat "$SCRATCH/delink.log")"
grep -q "4 independent blocks, AdamW state reset" "$SCRATCH/delink.log" || fail "no delink report"
pseudo_loss=$("$CETUS" eval --ckpt "$IN" --batches 2 | sed 's/.*val loss \([0-9.]*\).*/\1/')
real_loss=$("$CETUS" eval --ckpt "$SCRATCH/real" --batches 2 | sed 's/.*val loss \([0-9.]*\).*/\1/')
echo "pseudo val loss $pseudo_loss, delinked val loss $real_loss"
[ "$pseudo_loss" = "$real_loss" ] || fail "the delinked model computes another function"
run 1 real model.share_layers=none
grep -q "resumed from .*step_00000005 at step 5" "$SCRATCH/real.log" || fail "the real model did not resume"

# in one run, switching at step 5: the same losses as the commands above, bit for bit
run 1 switch $share delink.step=5
grep -q "delink: 4 blocks sharing 1 set of weights became 4 independent blocks" "$SCRATCH/switch.log" || fail "no switch line"
[ -d "$SCRATCH/switch/ckpt/pseudo_step_00000005" ] || fail "the pseudo checkpoint was not kept"
diff <(losses "$SCRATCH/switch") <(cat <(losses "$SCRATCH/pseudo") <(losses "$SCRATCH/real")) ||
    fail "the in-process switch differs from delinking by hand"
run 1 resumed $share delink.step=5 run.stop_at_step=3  # stops in the pseudo phase
run 1 resumed $share delink.step=5 run.stop_at_step=8  # crosses the switch
run 1 resumed $share delink.step=5                     # resumes in the real phase
diff <(losses "$SCRATCH/switch") <(losses "$SCRATCH/resumed") || fail "resuming around the switch is not bit-identical"
run 2 switch-p2 $share delink.step=5 parallel.pipeline=2
close "$SCRATCH/switch" "$SCRATCH/switch-p2" $LOSS_TOL
run 2 switch-z3 $share delink.step=5 parallel.zero=3 # the shared set gathered at each use, then each block
close "$SCRATCH/switch" "$SCRATCH/switch-z3" $LOSS_TOL
grep -q '"adam_steps":[[:space:]]*"0"' "$SCRATCH/switch/ckpt/step_00000005/trainer.json" || fail "the step count was not reset"
run 1 carry $share delink.step=5 delink.optimizer=carry delink.layers=6
grep -q "became 6 independent blocks (AdamW state carried)" "$SCRATCH/carry.log" || fail "no carry switch"
grep -q '"adam_steps":[[:space:]]*"5"' "$SCRATCH/carry/ckpt/step_00000005/trainer.json" || fail "the step count was not carried"
grep -q "model: 6 layers" "$SCRATCH/carry.log" || fail "the real model is not 6 blocks deep"

# bad input
expect_error "nothing to delink" "$CETUS" delink "$SCRATCH/plain" "$SCRATCH/x1"
"$CETUS" train $args $share model.share_layers=2 run.dir="$SCRATCH/g" train.steps=2 >/dev/null
expect_error "2 groups of shared weights" "$CETUS" delink "$SCRATCH/g" "$SCRATCH/x2" --layers 1
expect_error "exists" "$CETUS" delink "$SCRATCH/pseudo" "$SCRATCH/real"
expect_error 'optimizer "keep": allowed "carry" or "reset"' "$CETUS" delink "$SCRATCH/pseudo" "$SCRATCH/x3" --optimizer keep
cp -r "$SCRATCH/pseudo" "$SCRATCH/broken"
printf 'X' | dd of="$SCRATCH/broken/ckpt/step_00000005/model.safetensors" bs=1 seek=5000 conv=notrunc status=none
expect_error "model.safetensors" "$CETUS" delink "$SCRATCH/broken" "$SCRATCH/x4"
[ ! -e "$SCRATCH/x4/ckpt/step_00000005" ] || fail "a corrupted input left an output"
expect_error "model.share_layers" "$CETUS" train $args $share run.dir="$SCRATCH/real"
expect_error "delink.step = 5 without model.share_layers" "$CETUS" train $args delink.step=5 run.dir="$SCRATCH/x5"
expect_error "must come before train.steps" "$CETUS" train $args $share delink.step=10 run.dir="$SCRATCH/x6"
expect_error "offload the optimizer state instead" "$CETUS" train $args $share offload.params=host run.dir="$SCRATCH/x7"
after=$(cd "$SCRATCH/pseudo" && find ckpt -type f | sort | xargs sha256sum)
[ "$before" = "$after" ] || fail "the input checkpoint changed"
echo "sharing composes with every layout; delinking keeps the function and never touches its input"
