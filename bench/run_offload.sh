#!/usr/bin/env bash
# bash bench/run_offload.sh [STEPS]: offload on this machine. A 12-block model (d_model 512,
# 8 heads, T 64, batch 8, vocabulary padded to 50304; ~64M parameters) for STEPS steps
# (default 8, the first 3 skipped), one process with both cores:
#  1. step time with nothing offloaded, with every block's weights and gradients and all
#     optimizer state in host memory, and on disk (offload.dir under the run directory), with
#     the compute tier's peak, the resident peak and the overlap efficiency: the share of
#     the I/O thread's transfer time the training did not wait for (1 - wait / busy);
#  2. the automatic policy (offload.policy=auto) at three budgets, 80%, 65% and 50% of the
#     compute peak without offload: what it chose, its predicted compute peak and the
#     measured one. The losses of every run must agree bit for bit.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-8}
source bench/mpi_lib.sh
common="model.n_layer=12 model.d_model=512 model.n_head=8 model.seq_len=64 model.vocab_size=50304
        train.batch_size=8 train.steps=$STEPS train.eval_interval=0 train.final_eval=0 train.eval_batches=1 train.sample_tokens=0
        train.ckpt_interval=0 train.warmup_steps=5 runtime.threads=2"
: >"$out/results"
run() { # LABEL KEY=VALUE...: one run, its summary to $out/results
    local label=$1
    shift
    rm -rf "$out/run"
    ./build/cetus train $common "$@" run.dir="$out/run" >"$out/log" 2>&1 || { tail -n 5 "$out/log" >&2; exit 1; }
    /usr/bin/python3 - "$out/run" "$out/log" "$label" >>"$out/results" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
steps = [r for r in rows if "step_s" in r]
log = open(sys.argv[2]).read()
plan = re.search(r"offload \(auto\): (.*); predicted compute peak ([0-9.]+) (MiB|GiB)", log)
busy = steps[-1]["offload_io_s"] - steps[2]["offload_io_s"]
wait = steps[-1]["offload_wait_s"] - steps[2]["offload_wait_s"]
print(json.dumps({"label": sys.argv[3], "losses": [r["loss"] for r in steps],
                  "step_s": statistics.median(r["step_s"] for r in steps[3:]),
                  "compute": max(r["compute_peak_mb"] for r in steps), "rss": max(r["peak_rss_mb"] for r in steps),
                  "hidden": 1 - wait / busy if busy > 0 else None, "io_s": busy / max(1, len(steps) - 3),
                  "plan": plan.group(1) if plan else None,
                  "predicted": float(plan.group(2)) * (1024 if plan.group(3) == "GiB" else 1) if plan else None}))
PY
}
all="offload.params=%s offload.grads=%s offload.optimizer=%s"
run "nothing offloaded"
run "host: weights, gradients, moments" $(printf "$all" host host host)
run "disk: weights, gradients, moments" $(printf "$all" disk disk disk)
peak=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["compute"])' "$out/results")
for share in 80 65 50; do
    budget=$(/usr/bin/python3 -c "print(int($peak * $share / 100))")
    run "auto at ${share}% (${budget} MiB)" memory.compute_budget=${budget}M offload.policy=auto
done
/usr/bin/python3 - "$out/results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows[1:]:
    if r["losses"] != rows[0]["losses"]:
        sys.exit(f"{r['label']}: the losses differ from the run without offload")
base = rows[0]["step_s"]
print("| placement | step s | vs none | compute peak MiB | resident peak MiB | transfer s/step | hidden |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows[:3]:
    hidden = f"{100 * r['hidden']:.0f}%" if r["hidden"] is not None else "-"
    io = f"{r['io_s']:.3f}" if r["hidden"] is not None else "-"
    print(f"| {r['label']} | {r['step_s']:.3f} | {r['step_s'] / base:.2f} | {r['compute']:.1f} | {r['rss']:.1f} | {io} | {hidden} |")
print()
print("| budget | automatic choice | predicted peak MiB | measured peak MiB | step s |")
print("|---|---|---:|---:|---:|")
for r in rows[3:]:
    print(f"| {r['label'][8:]} | {r['plan']} | {r['predicted']:.1f} | {r['compute']:.1f} | {r['step_s']:.3f} |")
print("losses: bit-identical in every run")
PY
