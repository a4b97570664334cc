#!/usr/bin/env bash
# bench/run_zero.sh [STEPS]: per-rank memory of the ZeRO stages on a model whose blocks
# dominate its parameters: GPT-2 124M (configs/gpt2_124m.json) at data=2, micro-batch 2 x 256,
# no gradient accumulation, STEPS steps (default 4), each stage with its default overlap.
# Prints rank 0's peak resident memory during training (metrics.jsonl, before the final
# checkpoint) and the largest rank's including the final save (/usr/bin/time), with the
# sizes that explain them: parameters, gradients and AdamW moments in MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-4}
source bench/mpi_lib.sh
for zero in 0 1 2; do
    "${MPIRUN[@]}" -np 2 /usr/bin/time -v ./build/cetus train -c configs/gpt2_124m.json train.grad_accum=1 \
        train.batch_size=2 train.steps="$STEPS" train.eval_interval=0 train.sample_tokens=0 train.ckpt_interval=0 \
        train.eval_batches=1 parallel.zero=$zero run.dir="$out/z$zero" >/dev/null 2>"$out/z$zero.time"
    /usr/bin/python3 - "$out/z$zero" "$out/z$zero.time" "$zero" <<'PY'
import json, sys
run, timefile, zero = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
n = next(r["params"] for r in rows if r.get("event") == "start")
rss = max(r["peak_rss_mb"] for r in rows if "peak_rss_mb" in r)
end = max(int(l.split()[-1]) for l in open(timefile) if "Maximum resident" in l) / 1024
mib = 4 * n / 2**20
grads = mib if zero < 2 else mib / 2
moments = 2 * mib if zero == 0 else mib
print(f"data=2, ZeRO {zero}: rank 0 peak RSS training {rss:7.1f} MiB, with the final save {end:7.1f} MiB"
      f"   (parameters {mib:.0f}, gradients {grads:.0f} after the step, moments {moments:.0f} MiB)")
PY
done
