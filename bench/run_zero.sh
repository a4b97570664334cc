#!/usr/bin/env bash
# bench/run_zero.sh [STEPS]: per-rank memory, traffic and speed of the ZeRO stages on a
# model whose blocks carry most of its parameters: GPT-2 124M (configs/gpt2_124m.json) at
# data 2 and 4 (oversubscribed ranks are fine for memory), one row of 256 tokens per rank,
# no gradient accumulation, STEPS steps (default 4), each stage with its default overlap.
# For each run it prints rank 0's compute-tier peak (what memory.compute_budget holds) and
# peak resident memory during training (metrics.jsonl), with the model-state formula the
# stage should follow (N parameters, D data ranks, bytes):
#   stage 0: 16 N            (parameters, gradients, AdamW m and v)
#   stage 1: 8 N + 8 N / D   (the moments sharded)
#   stage 2: 4 N + 12 N / D  (the gradients too, after each bucket's reduction)
#   stage 3: 16 N / D + the units gathered at once (the head's use holds the tied wte)
# and the bytes rank 0 sent in the last step against the ring formulas (f = (D - 1) / D):
#   stage 0: 2 f 4N (all-reduce); 1: 3 f 4N (all-reduce + gather); 2: 2 f 4N (reduce-scatter
#   + gather); 3: f 4N (reduce-scatter) + what the gathers moved (forward: every unit, the
#   tied wte twice; backward: every unit but the kept head), about 3 f 4N.
# Then tokens/s of stage 3 against stage 1 on the same ranks (median step time) and how
# much of the gathers' time (start to completion) the passes waited for, the rest hidden
# behind compute.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-4}
source bench/mpi_lib.sh
for D in 2 4; do
    for zero in 0 1 2 3; do
        "${MPIRUN[@]}" -np $D ./build/cetus train -c configs/gpt2_124m.json train.grad_accum=1 \
            train.batch_size=$D train.steps="$STEPS" train.eval_interval=0 train.final_eval=0 train.sample_tokens=0 \
            train.ckpt_interval=0 train.eval_batches=1 parallel.zero=$zero run.dir="$out/d$D-z$zero" \
            >/dev/null 2>"$out/d$D-z$zero.err" || { tail -n 5 "$out/d$D-z$zero.err"; exit 1; }
    done
    /usr/bin/python3 - "$out" "$D" <<'PY'
import json, statistics, sys
out, D = sys.argv[1], int(sys.argv[2])
f = (D - 1) / D
def rows(z):
    return [json.loads(l) for l in open(f"{out}/d{D}-z{z}/metrics.jsonl")]
speed = {}
for z in range(4):
    r = rows(z)
    n = next(x["params"] for x in r if x.get("event") == "start")
    steps = [x for x in r if "loss" in x and "step" in x]
    last = steps[-1]
    state = {0: 16 * n, 1: 8 * n + 8 * n / D, 2: 4 * n + 12 * n / D, 3: 16 * n / D}[z] / 2**20
    ring = {0: 2 * f * 4 * n, 1: 3 * f * 4 * n, 2: 2 * f * 4 * n, 3: 3 * f * 4 * n}[z] / 2**20
    speed[z] = statistics.median(x["step_s"] for x in steps[1:] or steps)
    extra = ""
    if z == 3:
        per_step = last["gathered_mb"] / len(steps)
        hidden = 1 - last["gather_wait_s"] / last["gather_s"] if last["gather_s"] > 0 else 0
        extra = (f" | gathered {per_step:.0f} MiB/step, {last['gathers'] // len(steps)} gathers, "
                 f"{last['gather_s'] / len(steps):.3f} s/step of gathers, waited {last['gather_wait_s'] / len(steps):.3f}"
                 f" ({100 * hidden:.0f}% hidden)")
    print(f"data={D} ZeRO {z}: compute peak {last['compute_peak_mb']:7.1f} MiB (state formula {state:6.1f}"
          f" + activations {last['acts_mb']:.0f}), peak RSS {last['peak_rss_mb']:7.1f} MiB | sent "
          f"{last['comm_bytes'] / 2**20:6.1f} MiB/step (ring {ring:6.1f}) | step {speed[z]:.2f} s{extra}")
print(f"data={D}: stage 3 runs at {speed[1] / speed[3]:.2f}x the tokens/s of stage 1 (median step time)")
PY
done
