#!/usr/bin/env bash
# ROUNDS=3 bash bench/run_recompute.sh [STEPS]: activation recomputation (memory.recompute)
# on this machine: a 12-block model (d_model 512, 8 heads, T 64, batch 8, vocabulary padded
# to 50304; ~64M parameters) trained for STEPS steps (default 10, the first 3 skipped) on
# one process with both cores, keeping every activation, recomputing blocks 0-5, and
# recomputing all 12; ROUNDS alternating rounds (default 1). Prints per setting the medians
# of: the activation buffers (acts_mb), the peak resident memory, the step time, and the
# saving and time cost against keeping everything. The losses must agree bit for bit.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
ROUNDS=${ROUNDS:-1}
source bench/mpi_lib.sh
common="model.n_layer=12 model.d_model=512 model.n_head=8 model.seq_len=64 model.vocab_size=50304
        train.batch_size=8 train.steps=$STEPS train.eval_interval=0 train.final_eval=0 train.eval_batches=1 train.sample_tokens=0
        train.ckpt_interval=0 train.warmup_steps=5 runtime.threads=2"
: >"$out/results"
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    for setting in none 0-5 all; do
        rm -rf "$out/run"
        ./build/cetus train $common memory.recompute=$setting run.dir="$out/run" >"$out/log" 2>&1 ||
            { tail -n 5 "$out/log" >&2; exit 1; }
        /usr/bin/python3 - "$out/run" "$setting" >>"$out/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
steps = [r for r in rows if "step_s" in r]
print(json.dumps({"setting": sys.argv[2], "losses": [r["loss"] for r in steps],
                  "step_s": statistics.median(r["step_s"] for r in steps[3:]),
                  "acts": steps[-1]["acts_mb"], "rss": max(r["peak_rss_mb"] for r in steps)}))
PY
    done
done
/usr/bin/python3 - "$out/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = list(dict.fromkeys(r["setting"] for r in rows))
by = {n: [r for r in rows if r["setting"] == n] for n in names}
base = by["none"]
for n in names[1:]:
    for r in by[n]:
        if r["losses"] != base[0]["losses"]:
            sys.exit(f"memory.recompute={n}: the losses differ from keeping every activation")
med = lambda rs, f: statistics.median(r[f] for r in rs)
print("| memory.recompute | activations MiB | saved | peak RSS MiB | step s | step time vs none |")
print("|---|---:|---:|---:|---:|---:|")
for n in names:
    rs = by[n]
    print(f"| {n} | {med(rs, 'acts'):.1f} | {med(base, 'acts') - med(rs, 'acts'):.1f} | {med(rs, 'rss'):.1f} | "
          f"{med(rs, 'step_s'):.3f} | {med(rs, 'step_s') / med(base, 'step_s'):.2f} |")
print("losses: bit-identical in every setting")
PY
