#!/usr/bin/env bash
# bench/run_dp.sh [STEPS]: data-parallel scaling on this machine: the default model trained
# for STEPS steps (default 30) on one process with all cores, then under mpirun with 2 data
# ranks (cores shared out) for ZeRO 0, 1 and 2. Prints median tokens/s, the scaling
# efficiency against one process, per-rank peak resident memory, and the bytes each rank
# sent per step against the ring formula: all-reduce 2(p-1)/p x 4N bytes (ZeRO 0),
# all-reduce + all-gather 3(p-1)/p x 4N (ZeRO 1), reduce-scatter + all-gather 2(p-1)/p x 4N
# (ZeRO 2), N = parameters. Peak memory is rank 0's during training (metrics.jsonl) and the
# largest rank's including the final checkpoint save (/usr/bin/time), which gathers ZeRO's
# moment shards into full buffers.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
make -s build/cetus
[ -f data/pydocs/meta.json ] || ./build/cetus prepare
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common="train.steps=$STEPS train.eval_interval=0 train.sample_interval=0 train.ckpt_interval=0 train.warmup_steps=5"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca pml ob1 --mca btl self,vader
        --mca btl_vader_single_copy_mechanism none)
summary() { # RUN_DIR TIME_FILE LABEL RANKS ZERO
    /usr/bin/python3 - "$@" <<'PY'
import json, statistics, sys
run, timefile, label, ranks, zero = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
params = next(r["params"] for r in rows if r.get("event") == "start")
steps = [r for r in rows if "step_s" in r][3:]  # skip warm-up steps
tps = statistics.median(r["tokens_per_s"] for r in steps)
sent = statistics.median(r["comm_bytes"] for r in steps)
p = ranks
factor = {0: 2, 1: 3, 2: 2}[zero] * (p - 1) / p if p > 1 else 0
rss_end = max(int(l.split()[-1]) for l in open(timefile) if "Maximum resident" in l) / 1024
rss = max(r["peak_rss_mb"] for r in steps)  # rank 0, before the final checkpoint
print(f"{label:<22} {tps:8.0f} tok/s   peak RSS training {rss:6.1f} MiB (with the final save {rss_end:6.1f})"
      f"   sent/step {sent/1e6:6.2f} MB"
      f"   ring formula {factor*4*params/1e6:7.2f} MB")
print(f"TPS {tps}")
PY
}
/usr/bin/time -v ./build/cetus train $common run.dir="$out/one" >/dev/null 2>"$out/one.time"
base=$(summary "$out/one" "$out/one.time" "1 process, 2 threads" 1 0 | tee /dev/stderr | sed -n 's/^TPS //p')
for zero in 0 1 2; do
    "${MPIRUN[@]}" -np 2 /usr/bin/time -v ./build/cetus train $common parallel.zero=$zero \
        run.dir="$out/dp$zero" >/dev/null 2>"$out/dp$zero.time"
    tps=$(summary "$out/dp$zero" "$out/dp$zero.time" "data=2, ZeRO $zero" 2 $zero | tee /dev/stderr | sed -n 's/^TPS //p')
    awk -v a="$tps" -v b="$base" 'BEGIN { printf "  scaling efficiency against one process: %.2f\n", a / b }'
done 2>&1 | grep -v '^TPS'
