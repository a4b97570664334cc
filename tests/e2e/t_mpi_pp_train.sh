# t_mpi_pp_train.sh: pipeline-parallel training under mpirun (oversubscribed, as CI runs it).
#  - 2 and 4 stages, both schedules (1F1B and GPipe), with the default micro-batches and
#    explicit ones, with stages given by parallel.stages: the losses of 10 steps (and the
#    final validation loss) follow the one-process run within LOSS_TOL and the final
#    weights agree within W_TOL.
#  - Hybrids: pipeline 2 x data 2 (ZeRO 2), pipeline 2 x tensor 2 (ZeRO 1, gradient
#    accumulation), and the 8-rank 4D layout pipeline 2 x data 2 x tensor 2 with MoE blocks
#    whose experts are spread over 2 ranks (dropless; aux_coef 0 as the balancing loss is
#    each rank's own).
#  - Checkpoints: saved at pipeline 2, resumed at pipeline 4, at data 2 x tensor 2 and on one
#    process with the same losses, bit-identically at pipeline 2; saved at tensor 2, resumed
#    at pipeline 2 x tensor 2; the 4D run's checkpoint resumes on one process.
#  - Refusals before any work: more stages than blocks, micro-batches that do not divide a
#    rank's rows, a bad parallel.stages or parallel.schedule.
source tests/e2e/lib.sh

make_corpus "$SCRATCH"
LOSS_TOL=2e-4
W_TOL=2e-4
args="$TINY data.dir=$SCRATCH/data model.n_layer=4 model.n_head=4 model.vocab_size=50304 train.steps=10
      train.eval_interval=0 train.sample_interval=0 train.ckpt_interval=0 runtime.threads=1"
run 1 single
for layout in "2 1f1b 0 auto" "2 gpipe 2 auto" "4 1f1b 4 auto" "4 gpipe 0 auto" "2 1f1b 4 1,3"; do
    read -r np schedule micro stages <<<"$layout"
    name="p$np-$schedule-m$micro-s${stages/,/_}"
    run "$np" "$name" parallel.pipeline=$np parallel.schedule=$schedule parallel.micro_batches=$micro \
        parallel.stages=$stages
    close "$SCRATCH/single" "$SCRATCH/$name" $LOSS_TOL
    weights_close "$SCRATCH/single" "$SCRATCH/$name"
done
grep -q "pipeline: gpipe schedule, 2 micro-batches of 2 rows, up to 2 in flight on stage 0" \
    "$SCRATCH/p2-gpipe-m2-sauto.log" || fail "no GPipe banner"
grep -q "blocks per stage: 1 3$" "$SCRATCH/p2-1f1b-m4-s1_3.log" || fail "parallel.stages not followed"
grep -q "(balanced by compute)" "$SCRATCH/p4-1f1b-m4-sauto.log" || fail "no balanced banner"
grep -q '"pipe_busy_s"' "$SCRATCH/p2-1f1b-m0-sauto/metrics.jsonl" || fail "no bubble metric"

run 4 d2p2 parallel.pipeline=2 parallel.zero=2
close "$SCRATCH/single" "$SCRATCH/d2p2" $LOSS_TOL
weights_close "$SCRATCH/single" "$SCRATCH/d2p2"
run 1 single-acc train.batch_size=2 train.grad_accum=2
run 4 t2p2-acc parallel.pipeline=2 parallel.tensor=2 parallel.zero=1 train.batch_size=2 train.grad_accum=2
close "$SCRATCH/single-acc" "$SCRATCH/t2p2-acc" $LOSS_TOL

# the 4D layout: 8 ranks as pipeline 2 x data 2 x tensor 2, experts over 2 data ranks
moe="model.moe_every=2 moe.n_experts=4 moe.top_k=2 moe.d_hidden=64 moe.dropless=true moe.aux_coef=0
     moe.router_noise=0"
run 1 moe-single $moe
run 8 moe-4d $moe parallel.pipeline=2 parallel.tensor=2 parallel.expert=2 parallel.micro_batches=2
close "$SCRATCH/moe-single" "$SCRATCH/moe-4d" $LOSS_TOL
weights_close "$SCRATCH/moe-single" "$SCRATCH/moe-4d"
grep -q "data 2 x tensor 2 x pipeline 2 (experts over 2)" "$SCRATCH/moe-4d.log" || fail "no 4D banner"
run 8 moe-4d-half $moe parallel.pipeline=2 parallel.tensor=2 parallel.expert=2 run.stop_at_step=5
run 1 moe-4d-half $moe
grep -q "resumed from" "$SCRATCH/moe-4d-half.log" || fail "the 4D checkpoint did not resume"
close "$SCRATCH/moe-single" "$SCRATCH/moe-4d-half" $LOSS_TOL

# checkpoints between pipeline layouts
run 2 half parallel.pipeline=2 run.stop_at_step=5
for d in p4 dt one same; do cp -r "$SCRATCH/half" "$SCRATCH/half-$d"; done
run 4 half-p4 parallel.pipeline=4
run 4 half-dt parallel.tensor=2 parallel.zero=1
run 1 half-one
for d in p4 dt one; do
    grep -q "resumed from" "$SCRATCH/half-$d.log" || fail "half-$d did not resume"
    close "$SCRATCH/single" "$SCRATCH/half-$d" $LOSS_TOL
done
run 2 half-same parallel.pipeline=2
diff <(losses "$SCRATCH/p2-1f1b-m0-sauto") <(losses "$SCRATCH/half-same") || fail "resume at pipeline 2 is not bit-identical"
run 2 thalf parallel.tensor=2 run.stop_at_step=5
run 4 thalf parallel.pipeline=2 parallel.tensor=2
close "$SCRATCH/single" "$SCRATCH/thalf" $LOSS_TOL

# impossible layouts are refused before any work, saying what fits
refuse() { # NP EXPECTED args...
    local np=$1 want=$2 out; shift 2
    out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np "$np" "$CETUS" train $args run.dir="$SCRATCH/refused" "$@" 2>&1) &&
        fail "ran: $*"
    grep -qF -- "$want" <<<"$out" || fail "no message '$want' for $*: $out"
    [ ! -e "$SCRATCH/refused/metrics.jsonl" ] || fail "work started before refusing $*"
}
refuse 8 "parallel.pipeline = 8 stages for model.n_layer = 4 blocks: every stage needs a block; use at most 4" \
    parallel.pipeline=8
refuse 2 "parallel.micro_batches = 3 does not divide the 4 rows each data rank takes of train.batch_size = 4; micro-batch counts that fit: 1, 2, 4" \
    parallel.pipeline=2 parallel.micro_batches=3
refuse 2 'parallel.stages = "2,3": 2 stages holding 5 blocks, but parallel.pipeline = 2 and model.n_layer = 4' \
    parallel.pipeline=2 parallel.stages=2,3
refuse 2 'parallel.schedule = "zb": allowed "1f1b" or "gpipe"' parallel.pipeline=2 parallel.schedule=zb
echo "pipeline training matches one process in every schedule and layout; checkpoints move between them"
