#!/usr/bin/env bash
# ROUNDS=3 bash bench/run_pp.sh [STEPS]: pipeline parallelism on this machine.
#
# Part 1, the bubble. A model whose blocks outweigh its head, so two stages can balance
# (12 blocks of d_model 512, 8 heads, T 64, vocabulary padded to 50304; the compute-balanced
# split puts 10 blocks on stage 0 and 2 blocks plus the head on stage 1), train.batch_size=8,
# STEPS steps (default 20), first 3 skipped: one process with both cores (2 threads) and with
# one (the work of one core), then under mpirun with 2 ranks of 1 thread each: pipeline=2
# with the gpipe and the 1f1b schedule at parallel.micro_batches M = 1, 2, 4 and 8, and
# 1f1b at M=8 with the stages given as 11 and 1 blocks, and data=2 (ZeRO 0) for comparison; ROUNDS rounds (default 1), layouts alternating. Per layout,
# medians over steps and rounds of: tokens/s and the ratio to one process (2 threads), the
# step time, the measured bubble against the ideal (p-1)/(M+p-1): the share of the
# schedule's span (pipe_s, stage 0's, which starts first and ends last) that the busiest
# stage spends not computing, 1 - max over stages of pipe_busy_s / pipe_s; the imbalance
# 1 - min / max of the stages' busy times; and rank 0's peak resident memory (1F1B keeps at
# most p micro-batches' activations on stage 0, GPipe all M).
#
# Part 2, the other layouts of the parallel engine on a small MoE model (configs/moe.json
# shapes at T 64: 4 blocks, 8 experts of 512 in 2 of them, top-2, dropless), oversubscribed where they
# need more ranks than the 2 cores (so tokens/s there shows that they run, not a speed-up):
# one process, pipeline=4 (1f1b, M=8), expert=2, expert=4, and the 8-rank 4D layout
# pipeline 2 x data 2 x tensor 2 with experts over 2; with the all-to-all bytes per MoE
# layer per step.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
ROUNDS=${ROUNDS:-1}
source bench/mpi_lib.sh
common="train.steps=$STEPS train.grad_accum=1 train.eval_interval=0 train.final_eval=0 train.eval_batches=1 train.sample_tokens=0
        train.ckpt_interval=0 train.warmup_steps=5 model.vocab_size=50304"
deep="model.n_layer=12 model.d_model=512 model.n_head=8 model.seq_len=64 train.batch_size=8"
moe="model.n_layer=4 model.d_model=256 model.n_head=4 model.moe_every=2 moe.n_experts=8 moe.top_k=2 moe.d_hidden=512
     moe.dropless=true train.batch_size=8 model.seq_len=64"
: >"$out/results"
run() { # PART LABEL SCHEDULE M NP THREADS [KEY=VALUE...]: one run, its summary to $out/results
    local part=$1 label=$2 schedule=$3 micro=$4 np=$5 threads=$6 dir="$out/run" rc=0
    shift 6
    rm -rf "$dir"
    if [ "$np" = 1 ]; then
        ./build/cetus train $common runtime.threads="$threads" "$@" run.dir="$dir" >"$dir.log" 2>&1 || rc=$?
    else
        "${MPIRUN[@]}" -np "$np" ./build/cetus train $common runtime.threads="$threads" "$@" run.dir="$dir" \
            >"$dir.log" 2>&1 || rc=$?
    fi
    if [ "$rc" != 0 ] || [ ! -s "$dir/metrics.jsonl" ]; then
        echo "$label, $schedule, M=$micro: the trainer failed (exit $rc); the end of its output:" >&2
        tail -n 15 "$dir.log" >&2
        printf '{"part": %s, "label": "%s", "schedule": "%s", "micro": "%s", "failed": true}\n' \
            "$part" "$label" "$schedule" "$micro" >>"$out/results"
        return 0
    fi
    grep -m1 "^pipeline:" "$dir.log" >>"$out/stages" || true
    /usr/bin/python3 - "$dir" "$part" "$label" "$schedule" "$micro" >>"$out/results" <<'PY'
import json, statistics, sys
run, part, label, schedule, micro = sys.argv[1:6]
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
steps = [r for r in rows if "step_s" in r][3:]  # skip warm-up steps
if not steps:
    sys.exit(f"{run}/metrics.jsonl: no training steps after the 3 warm-up steps; run more steps")
med = lambda f: statistics.median(f(r) for r in steps)
piped = "pipe_busy_s" in steps[0]
moe_layers = max(len(r.get("moe", [])) for r in steps)
print(json.dumps({"part": int(part), "label": label, "schedule": schedule, "micro": micro,
                  "tps": med(lambda r: r["tokens_per_s"]), "step_s": med(lambda r: r["step_s"]),
                  "bubble": med(lambda r: 1 - max(r["pipe_busy_s"]) / r["pipe_s"]) if piped else None,
                  "imbalance": med(lambda r: 1 - min(r["pipe_busy_s"]) / max(r["pipe_busy_s"])) if piped else None,
                  "a2a": med(lambda r: r.get("expert_bytes", 0)), "moe_layers": moe_layers,
                  "rss": max(r["peak_rss_mb"] for r in steps)}))  # rank 0
PY
}
for round in $(seq "$ROUNDS"); do # alternate the layouts so slow spells of the machine hit all
    echo "round $round of $ROUNDS" >&2
    run 1 "1 process, 2 threads" - - 1 2 $deep
    run 1 "1 process, 1 thread" - - 1 1 $deep
    for micro in 1 2 4 8; do
        for schedule in gpipe 1f1b; do
            run 1 "pipeline=2" $schedule $micro 2 1 $deep parallel.pipeline=2 parallel.schedule=$schedule \
                parallel.micro_batches=$micro
        done
    done
    run 1 "pipeline=2, stages 11,1" 1f1b 8 2 1 $deep parallel.pipeline=2 parallel.micro_batches=8 parallel.stages=11,1
    run 1 "data=2, ZeRO 0" - - 2 1 $deep parallel.data=2
    run 2 "1 process, 2 threads" - - 1 2 $moe
    run 2 "pipeline=4 (4 ranks)" 1f1b 8 4 1 $moe parallel.pipeline=4 parallel.micro_batches=8
    run 2 "expert=2 (2 ranks)" - - 2 1 $moe parallel.expert=2
    run 2 "expert=4 (4 ranks)" - - 4 1 $moe parallel.expert=4
    run 2 "pipeline 2 x data 2 x tensor 2, expert=2 (8 ranks)" 1f1b 2 8 1 $moe parallel.pipeline=2 \
        parallel.tensor=2 parallel.expert=2 parallel.micro_batches=2
done
/usr/bin/python3 - "$out/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
key = lambda r: (r["part"], r["label"], r["schedule"], r["micro"])
for part in (1, 2):
    keys = list(dict.fromkeys(key(r) for r in rows if r["part"] == part))
    by = {k: [r for r in rows if key(r) == k and not r.get("failed")] for k in keys}
    base = by[keys[0]]
    base_tps = statistics.median(r["tps"] for r in base) if base else None
    print()
    if part == 1:
        print("| layout | schedule | M | tokens/s | vs 1 process | step s | bubble | ideal (p-1)/(M+p-1) | imbalance | rank 0 peak RSS MiB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        print("| layout (MoE model) | schedule | M | tokens/s | vs 1 process | step s | all-to-all MB per MoE layer per step | rank 0 peak RSS MiB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        _, label, schedule, micro = k
        rs = by[k]
        if not rs:
            print(f"| {label} | {schedule} | {micro} | failed | | | | |")
            continue
        med = lambda f: statistics.median(f(r) for r in rs)
        tps = med(lambda r: r["tps"])
        vs = f"{tps / base_tps:.2f}" if base_tps else "-"
        cells = [label, schedule, micro, f"{tps:.0f}", vs, f"{med(lambda r: r['step_s']):.3f}"]
        if part == 1:
            piped = rs[0]["bubble"] is not None
            ideal = f"{1 / (int(micro) + 1):.3f}" if piped else "-"
            cells += [f"{med(lambda r: r['bubble']):.3f}" if piped else "-", ideal,
                      f"{med(lambda r: r['imbalance']):.3f}" if piped else "-"]
        else:
            a2a = med(lambda r: r["a2a"] / r["moe_layers"] if r["moe_layers"] else 0) / 1e6
            cells += [f"{a2a:.3f}" if a2a else "-"]
        cells += [f"{med(lambda r: r['rss']):.1f}"]
        print("| " + " | ".join(cells) + " |")
PY
echo
echo "stage splits:"
sort -u "$out/stages"
