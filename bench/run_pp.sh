#!/usr/bin/env bash
# ROUNDS=3 bash bench/run_pp.sh [STEPS]: pipeline parallelism on this machine: the default
# model (vocabulary padded to 50304, as in run_dp.sh) at train.batch_size=8, no gradient
# accumulation, trained for STEPS steps (default 20): one process with both cores (2
# threads) as the baseline, then under mpirun with 2 ranks of 1 thread each: pipeline=2 with
# the gpipe and the 1f1b schedule at parallel.micro_batches M = 1, 2, 4 and 8, and data=2
# with ZeRO 0 for comparison; ROUNDS rounds (default 1) with the layouts alternating. The
# first 3 steps of every run are warm-up and skipped. Prints a markdown table of each
# layout's median over the rounds of: tokens/s, its ratio to one process, the step time,
# the measured bubble (the median over steps of pipe_wait_s / step_s, pipe_wait_s being the
# mean over stages of the time a stage waited for pipeline messages in the step) against
# the ideal bubble (p-1)/(M+p-1) with p = 2 stages, and rank 0's peak resident memory
# during training (metrics.jsonl); then the trainer's stage split line ("pipeline: ...").
# A layout the trainer refuses or fails on is reported with the end of its log and marked
# "failed" in the table.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
ROUNDS=${ROUNDS:-1}
source bench/mpi_lib.sh
common="train.steps=$STEPS train.batch_size=8 train.grad_accum=1 train.eval_interval=0 train.eval_batches=1
        train.sample_tokens=0 train.ckpt_interval=0 train.warmup_steps=5 model.vocab_size=50304"
: >"$out/results"
run() { # LABEL SCHEDULE M NP [KEY=VALUE...]: one run, its summary appended to $out/results
    local label=$1 schedule=$2 micro=$3 np=$4 dir="$out/run" rc=0
    shift 4
    rm -rf "$dir"
    if [ "$np" = 1 ]; then
        ./build/cetus train $common runtime.threads=2 "$@" run.dir="$dir" >"$dir.log" 2>&1 || rc=$?
    else
        "${MPIRUN[@]}" -np "$np" ./build/cetus train $common runtime.threads=1 "$@" run.dir="$dir" \
            >"$dir.log" 2>&1 || rc=$?
    fi
    if [ "$rc" != 0 ] || [ ! -s "$dir/metrics.jsonl" ]; then
        echo "$label, $schedule, M=$micro: the trainer failed (exit $rc); the end of its output:" >&2
        tail -n 15 "$dir.log" >&2
        printf '{"label": "%s", "schedule": "%s", "micro": "%s", "failed": true}\n' \
            "$label" "$schedule" "$micro" >>"$out/results"
        return 0
    fi
    [ -s "$out/stages" ] || grep -m1 "pipeline:" "$dir.log" >"$out/stages" || true
    /usr/bin/python3 - "$dir" "$label" "$schedule" "$micro" >>"$out/results" <<'PY'
import json, statistics, sys
run, label, schedule, micro = sys.argv[1:5]
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
steps = [r for r in rows if "step_s" in r][3:]  # skip warm-up steps
if not steps:
    sys.exit(f"{run}/metrics.jsonl: no training steps after the 3 warm-up steps; run more steps")
print(json.dumps({"label": label, "schedule": schedule, "micro": micro,
                  "tps": statistics.median(r["tokens_per_s"] for r in steps),
                  "step_s": statistics.median(r["step_s"] for r in steps),
                  "bubble": statistics.median(r["pipe_wait_s"] / r["step_s"] for r in steps),
                  "rss": max(r["peak_rss_mb"] for r in steps)}))  # rank 0, before the final checkpoint
PY
}
for round in $(seq "$ROUNDS"); do # alternate the layouts so slow spells of the machine hit all
    echo "round $round of $ROUNDS" >&2
    run "1 process, 2 threads" - 1 1
    for micro in 1 2 4 8; do
        for schedule in gpipe 1f1b; do
            run "pipeline=2" $schedule $micro 2 parallel.pipeline=2 parallel.schedule=$schedule \
                parallel.micro_batches=$micro
        done
    done
    run "data=2, ZeRO 0" - 1 2 parallel.data=2 parallel.zero=0
done
/usr/bin/python3 - "$out/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
key = lambda r: (r["label"], r["schedule"], r["micro"])
keys = list(dict.fromkeys(key(r) for r in rows))
by = {k: [r for r in rows if key(r) == k and not r.get("failed")] for k in keys}
base = by[keys[0]]
base_tps = statistics.median(r["tps"] for r in base) if base else None
p = 2
print("| layout | schedule | micro-batches M | tokens/s | vs 1 process | step s | measured bubble | ideal bubble | rank 0 peak RSS MiB |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for k in keys:
    label, schedule, micro = k
    rs = by[k]
    pipe = label.startswith("pipeline")
    ideal = f"{(p - 1) / (int(micro) + p - 1):.3f}" if pipe else "-"
    if not rs:
        print(f"| {label} | {schedule} | {micro if pipe else '-'} | failed | | | | {ideal} | |")
        continue
    med = lambda f: statistics.median(r[f] for r in rs)
    tps = med("tps")
    vs = f"{tps / base_tps:.2f}" if base_tps else "-"
    bubble = f"{med('bubble'):.3f}" if pipe else "-"
    print(f"| {label} | {schedule} | {micro if pipe else '-'} | {tps:.0f} | {vs} | {med('step_s'):.4f} | "
          f"{bubble} | {ideal} | {med('rss'):.1f} |")
PY
if [ -s "$out/stages" ]; then echo; echo "stage split (first pipeline run): $(cat "$out/stages")"; fi
