# t_mpi_dp.sh: data parallelism under mpirun (oversubscribed, as CI runs it). For a fixed
# global batch and seed, data=2 and data=4 with ZeRO 0, 1 and 2 (and with reductions driven
# by a progress thread or by polls) follow the one-process loss trajectory over 10 steps
# within LOSS_TOL and end with the same weights within W_TOL (float32 sums in another order); a checkpoint saved at data=2 with ZeRO 1 resumes at data=4 with
# ZeRO 2 and on one process with the same losses; resume on the same layout is bit-identical;
# a batch that does not split over the ranks is refused; a killed rank ends the run promptly
# and the last checkpoint resumes.
source tests/e2e/lib.sh
LOSS_TOL=2e-4
W_TOL=2e-4
make_corpus "$SCRATCH"
args="$TINY data.dir=$SCRATCH/data train.steps=10 train.eval_interval=0 train.sample_interval=0
      train.ckpt_interval=0 runtime.threads=1"
run 1 single
for np in 2 4; do
    for zero in 0 1 2; do
        run $np "d$np-z$zero" parallel.zero=$zero
        close "$SCRATCH/single" "$SCRATCH/d$np-z$zero" $LOSS_TOL
        weights_close "$SCRATCH/single" "$SCRATCH/d$np-z$zero"
    done
done
grep -q "parallel: 4 ranks, data 4 x tensor 1 x pipeline 1 (experts over 1), ZeRO stage 2" "$SCRATCH/d4-z2.log" || fail "no parallel banner"
# both ways of moving reductions during backward: a progress thread, and polls
run 2 d2-z0-thread parallel.zero=0 parallel.overlap=thread
run 2 d2-z2-poll parallel.zero=2 parallel.overlap=poll
for name in d2-z0-thread d2-z2-poll; do
    close "$SCRATCH/single" "$SCRATCH/$name" $LOSS_TOL
    weights_close "$SCRATCH/single" "$SCRATCH/$name"
done

# layout-free checkpoints: saved at data=2 ZeRO 1, resumed at data=4 ZeRO 2 and on 1 process
run 2 half parallel.zero=1 run.stop_at_step=5
cp -r "$SCRATCH/half" "$SCRATCH/half1"
run 4 half parallel.zero=2
close "$SCRATCH/single" "$SCRATCH/half" $LOSS_TOL
run 1 half1
close "$SCRATCH/single" "$SCRATCH/half1" $LOSS_TOL

# same layout: bit-identical
run 2 same parallel.zero=1 run.stop_at_step=5
run 2 same parallel.zero=1
diff <(losses "$SCRATCH/d2-z1") <(losses "$SCRATCH/same") || fail "resume at data=2 is not bit-identical"

out=$("${mpi_env[@]}" "${MPIRUN[@]}" -np 3 "$CETUS" train $args run.dir="$SCRATCH/x" 2>&1) && fail "batch 4 on 3 ranks ran"
grep -q "train.batch_size = 4 is not divisible by the 3 data-parallel ranks" <<<"$out" || fail "no batch message: $out"

# a killed rank: mpirun returns promptly, the last checkpoint resumes
(rc=0; "${mpi_env[@]}" "${MPIRUN[@]}" -np 2 "$CETUS" train $args run.dir="$SCRATCH/killed" train.steps=400 \
    train.ckpt_interval=2 >"$SCRATCH/killed.log" 2>&1 || rc=$?; echo $rc >"$SCRATCH/killed.rc") &
for _ in $(seq 100); do [ -f "$SCRATCH/killed/ckpt/latest" ] && break; sleep 0.2; done
[ -f "$SCRATCH/killed/ckpt/latest" ] || fail "no checkpoint before the kill"
victim=$(pgrep -f "run.dir=$SCRATCH/killed" | while read -r p; do
    [ "$(ps -o comm= -p "$p")" = cetus ] && echo "$p"; done | tail -n 1)
t0=$(date +%s)
kill -9 "$victim"
wait
[ "$(cat "$SCRATCH/killed.rc")" -ne 0 ] || fail "mpirun exited 0 after a rank was killed"
[ $(( $(date +%s) - t0 )) -le 15 ] || fail "mpirun took more than 15 s to end"
echo "killed rank: mpirun exited $(cat "$SCRATCH/killed.rc") after $(( $(date +%s) - t0 )) s"
run 1 killed train.steps=400 run.stop_at_step=12
grep -q "resumed from" "$SCRATCH/killed.log" || fail "the killed run did not resume"
echo "data parallelism matches one process; checkpoints move between layouts"
