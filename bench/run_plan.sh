#!/usr/bin/env bash
# bench/run_plan.sh [STEPS]: `cetus plan`'s predicted step time against measured runs on
# this machine. Calibrates (mpirun -np 2: GEMM rates by shape, memory copy, disk, the link
# between two ranks), then for each layout trains STEPS steps (default 8) of a 6-layer
# d 384 model (T 256, 4 sequences per step) and prints the predicted seconds per step, the
# median measured after the first two steps, their ratio, and rank 0's compute-tier peak
# predicted against measured. Ranks share the two cores (one thread each at 2 ranks).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-8}
source bench/mpi_lib.sh
"${MPIRUN[@]}" -np 2 ./build/cetus plan --calibrate --out "$out/hw.json" >"$out/calibrate.log"
grep -E "matmul|memory copy|disk|link" "$out/calibrate.log"
base="model.n_layer=6 model.d_model=384 model.n_head=6 model.seq_len=256 model.vocab_size=50304
      train.batch_size=4 train.steps=$STEPS train.eval_interval=0 train.final_eval=0 train.sample_interval=0 train.ckpt_interval=0
      runtime.pin=false"
layouts=(
    "dense 1"
    "data2 2 parallel.data=2"
    "zero1 2 parallel.data=2 parallel.zero=1"
    "zero3 2 parallel.data=2 parallel.zero=3"
    "tensor2 2 parallel.tensor=2"
    "pipe2 2 parallel.pipeline=2 parallel.micro_batches=4"
    "moe 1 model.moe_every=2 moe.n_experts=8 moe.d_hidden=768"
    "expert2 2 model.moe_every=2 moe.n_experts=8 moe.d_hidden=768 parallel.data=2 parallel.expert=2"
    "host 1 offload.params=host offload.grads=host offload.optimizer=host"
    "disk 1 offload.optimizer=disk"
    "recompute 1 memory.recompute=all"
    "shared 1 model.share_layers=1"
)
printf '%-10s %10s %10s %7s %12s %12s\n' layout "plan s" "measured s" ratio "plan MiB" "run MiB"
for spec in "${layouts[@]}"; do
    read -r name np extra <<<"$spec"
    # shellcheck disable=SC2086
    "${MPIRUN[@]}" -np "$np" ./build/cetus train $base $extra run.dir="$out/$name" >"$out/$name.log" 2>&1 ||
        { tail -n 5 "$out/$name.log"; exit 1; }
    # shellcheck disable=SC2086
    ./build/cetus plan $base $extra --world "$np" --hardware "$out/hw.json" --json >"$out/$name.plan"
    /usr/bin/python3 - "$out/$name/metrics.jsonl" "$out/$name.plan" "$name" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r["step_s"] for r in rows if "step_s" in r][2:]
mem = [r for r in rows if r.get("event") == "memory"][-1]["ranks"][0]
plan = json.load(open(sys.argv[2]))
measured = statistics.median(steps)
print("%-10s %10.4f %10.4f %7.2f %12.1f %12.1f" % (sys.argv[3], plan["step_s"], measured,
      plan["step_s"] / measured, plan["ranks"][0]["compute_peak_mb"], mem["compute_peak_mb"]))
PY
done
