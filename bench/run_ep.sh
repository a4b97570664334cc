#!/usr/bin/env bash
# ROUNDS=3 bench/run_ep.sh [STEPS]: expert parallelism on this machine: configs/moe.json (8
# experts of 512, top-2, capacity 1.25, MoE in blocks 2 and 4; vocabulary padded to 50304)
# for STEPS steps (default 30): one process with both cores, then under mpirun with 2 ranks:
# data=2 with every expert on both ranks, and data=2 with the experts spread over both
# (parallel.expert=2); ROUNDS alternating rounds (default 3). Prints the median tokens/s, the
# ratio to one process, rank 0's peak memory, the bytes sent per step, and the all-to-all
# bytes per MoE layer per step against what uniform routing would send: each of the four
# exchanges per layer (rows out and outputs back in forward, output gradients out and input
# gradients back in backward) carries the (P-1)/P of a rank's N x k rows routed to the other
# member, C floats each, plus the count tables; tokens dropped by capacity are not sent, so
# the last column scales it by the kept fraction (mean over the measured steps and layers).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
ROUNDS=${ROUNDS:-3}
source bench/mpi_lib.sh
common="-c configs/moe.json train.steps=$STEPS train.eval_interval=0 train.final_eval=0 train.sample_tokens=0 train.ckpt_interval=0
        train.warmup_steps=5 model.vocab_size=50304"
run() { # LABEL NP EXPERT
    local dir="$out/run"
    rm -rf "$dir"
    if [ "$2" = 1 ]; then
        /usr/bin/time -v ./build/cetus train $common run.dir="$dir" >/dev/null 2>"$dir.time"
    else
        "${MPIRUN[@]}" -np "$2" /usr/bin/time -v ./build/cetus train $common parallel.expert="$3" \
            run.dir="$dir" >/dev/null 2>"$dir.time"
    fi
    /usr/bin/python3 - "$dir" "$1" "$2" "$3" >>"$out/results" <<'PY'
import json, statistics, sys
run, label, p, e = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
steps = [r for r in rows if "step_s" in r][3:]
print(json.dumps({"label": label, "tps": statistics.median(r["tokens_per_s"] for r in steps),
                  "rss": max(r["peak_rss_mb"] for r in steps),
                  "sent": statistics.median(r["comm_bytes"] for r in steps),
                  "a2a": statistics.median(r.get("expert_bytes", 0) for r in steps), "p": p, "e": e,
                  "dropped": statistics.mean(m["dropped"] for r in steps for m in r.get("moe", []))}))
PY
}
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    run "1 process, 2 threads" 1 1
    run "data=2, experts on both" 2 1
    run "data=2, experts over 2" 2 2
done
/usr/bin/python3 - "$out/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r["label"] for r in rows))
base = statistics.median(r["tps"] for r in rows if r["label"] == labels[0])
C, k, moe_layers, N = 256, 2, 2, 8 * 128  # configs/moe.json; N tokens per step over all ranks
print(f"{'layout':<26} {'tok/s':>7} {'vs 1':>5}  {'peak RSS':>10}  {'sent/step':>10}  {'a2a/layer/step':>14}  "
      f"{'uniform':>9}  {'dropped':>7}  {'uniform x kept':>14}")
for l in labels:
    rs = [r for r in rows if r["label"] == l]
    tps = statistics.median(r["tps"] for r in rs)
    last = rs[-1]
    e = last["e"]
    per_rank = N // last["p"]
    uniform = 4 * per_rank * k * (e - 1) / e * C * 4 if e > 1 else 0
    a2a = last["a2a"] / moe_layers
    kept = 1 - last["dropped"]
    print(f"{l:<26} {tps:7.0f} {tps / base:5.2f}  {last['rss']:6.1f} MiB  {last['sent'] / 1e6:7.2f} MB  "
          f"{a2a / 1e6:11.3f} MB  {uniform / 1e6:6.3f} MB  {100 * last['dropped']:6.1f}%  {uniform * kept / 1e6:11.3f} MB")
PY
