#!/usr/bin/env bash
# ROUNDS=1 bash bench/run_attention.sh [STEPS]: the fused attention against the kernels it
# replaced (commit 8feb186, which kept the probabilities [B, H, T, T] of every block and a
# [threads, T, T] scratch), in the same run: GPT-2 124M (configs/gpt2_124m.json: 12 layers,
# d_model 768, 12 heads, vocabulary 50257), batch 4, T 1024 and T 2048 (model.seq_len raised
# to T), STEPS training steps of `cetus train` (default 4; the first, which touches every
# page, is left out of the medians) on one process with every core. Settings: old (8feb186),
# new (this tree), new + memory.recompute=all (what remains once the blocks' activations are
# recomputed too). Prints per T and setting, medians over ROUNDS rounds (default 1): tokens/s,
# the activation buffers (acts_mb), the compute-tier peak and peak RSS the run reports (the
# metrics file's closing memory line), /usr/bin/time -v's maximum RSS, the first step's loss,
# and the peak against old. PROFILE=1 also prints the attention op's milliseconds per step
# (forward, backward; 12 layers) from bench_train --profile of each build at each T.
# The old build goes to BASE_DIR (default /tmp/cetus-base-8feb186: `git archive` of the
# commit, built there on first use). T 2048 old needs about 18 GiB of memory.
# Environment: BUILD (default build), BASE_DIR, TS (default "1024 2048"), ROUNDS, PROFILE.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-4}
ROUNDS=${ROUNDS:-1}
BUILD=${BUILD:-build}
TS=${TS:-1024 2048}
BASE=8feb186
BASE_DIR=${BASE_DIR:-/tmp/cetus-base-$BASE}
[ "$STEPS" -ge 2 ] || { echo "run_attention.sh: STEPS must be at least 2" >&2; exit 2; }

make -s BUILD="$BUILD" "$BUILD/cetus" "$BUILD/bench/bench_train"
if [ ! -x "$BASE_DIR/build/cetus" ] || [ ! -x "$BASE_DIR/build/bench/bench_train" ]; then
    mkdir -p "$BASE_DIR"
    git archive "$BASE" | tar -x -C "$BASE_DIR"
    make -s -C "$BASE_DIR" -j"$(nproc)" build/cetus build/bench/bench_train
fi
[ -f data/pydocs/meta.json ] || "./$BUILD/cetus" prepare >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores;" \
     "memory $(free -g | awk '/^Mem:/ {print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$out/results"
for round in $(seq "$ROUNDS"); do
    for T in $TS; do
        for setting in old new new+recompute; do
            echo "round $round of $ROUNDS: T $T, $setting" >&2
            bin=./$BUILD/cetus extra=""
            [ "$setting" = old ] && bin=$BASE_DIR/build/cetus
            [ "$setting" = new+recompute ] && extra="memory.recompute=all"
            rm -rf "$out/run"
            /usr/bin/time -v -o "$out/time" "$bin" train -c configs/gpt2_124m.json model.seq_len="$T" \
                train.seq_len="$T" train.batch_size=4 train.grad_accum=1 train.steps="$STEPS" \
                train.warmup_steps=10 train.eval_interval=0 train.final_eval=0 train.eval_batches=1 train.sample_tokens=0 \
                train.ckpt_interval=0 data.dir="$PWD/data/pydocs" run.dir="$out/run" $extra >"$out/log" 2>&1 ||
                { tail -n 5 "$out/log" >&2; echo "run_attention.sh: T $T $setting failed" >&2; exit 1; }
            /usr/bin/python3 - "$out/run/metrics.jsonl" "$out/time" "$T" "$setting" >>"$out/results" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in rows if "step_s" in r]
mem = [r for r in rows if r.get("event") == "memory"][-1]["ranks"]
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[2]).read()).group(1))
print(json.dumps({"T": int(sys.argv[3]), "setting": sys.argv[4], "loss1": steps[0]["loss"],
                  "tok_s": statistics.median(r["tokens_per_s"] for r in steps[1:]),
                  "step_s": statistics.median(r["step_s"] for r in steps[1:]), "acts": steps[-1]["acts_mb"],
                  "compute": max(m["compute_peak_mb"] for m in mem), "rss": max(m["peak_rss_mb"] for m in mem),
                  "time_rss": rss_kb / 1024}))
PY
        done
    done
done

/usr/bin/python3 - "$out/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda rs, f: statistics.median(r[f] for r in rs)
print("| T | kernels | tokens/s | step s | activations MiB | compute peak MiB | peak RSS MiB | time -v max RSS MiB | peak vs old | step 1 loss |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for T in dict.fromkeys(r["T"] for r in rows):
    by = {s: [r for r in rows if r["T"] == T and r["setting"] == s] for s in ("old", "new", "new+recompute")}
    old = med(by["old"], "compute")
    for s, rs in by.items():
        print(f"| {T} | {s} | {med(rs, 'tok_s'):.0f} | {med(rs, 'step_s'):.2f} | {med(rs, 'acts'):.0f} | "
              f"{med(rs, 'compute'):.0f} | {med(rs, 'rss'):.0f} | {med(rs, 'time_rss'):.0f} | "
              f"{med(rs, 'compute') / old:.2f} | {rs[0]['loss1']:.6f} |")
PY

if [ "${PROFILE:-0}" = 1 ]; then
    echo "attention op, ms per training step (12 layers), bench_train --profile, median of 2 steps:"
    for T in $TS; do
        for setting in old new; do
            bin=./$BUILD/bench/bench_train
            [ "$setting" = old ] && bin=$BASE_DIR/build/bench/bench_train
            "$bin" --config gpt2 --seq "$T" --batch 4 --steps 2 --warmup 0 --profile >"$out/prof" 2>&1 ||
                { tail -n 5 "$out/prof" >&2; exit 1; }
            fwd=$(grep -a 'attention fwd' "$out/prof" | awk '{print $3}')
            bwd=$(grep -a 'attention bwd' "$out/prof" | awk '{print $3}')
            echo "  T $T $setting: forward $fwd, backward $bwd"
        done
    done
fi
