#!/usr/bin/env bash
# ROUNDS=3 bench/run_dp.sh [STEPS]: parallel scaling on this machine: the default model (vocabulary
# padded to 50304 so it splits) trained for STEPS steps (default 30) on one process with
# all cores, then under mpirun with 2 ranks (cores shared out): data=2 with ZeRO 0, 1 and 2,
# and tensor=2 (reductions overlapped the default way: by polls within one node), and data=2
# with ZeRO 0 driven by a progress thread (parallel.overlap=thread); ROUNDS rounds (default
# 3) with the layouts alternating. Prints each layout's median tokens/s over the rounds, its
# ratio to one process (and the range of the per-round ratios), rank 0's
# peak resident memory, and the bytes each rank sent per step against the ring formulas:
#   data (N = parameters a rank holds, p data ranks): all-reduce 2(p-1)/p x 4N bytes
#   (ZeRO 0), all-reduce + all-gather 3(p-1)/p x 4N (ZeRO 1), reduce-scatter + all-gather
#   2(p-1)/p x 4N (ZeRO 2);
#   tensor (q ranks, M = B x T tokens of a micro-batch, C channels, L blocks): per
#   micro-batch 4L + 2 all-reduces of M x C floats (two per block each way, the embedding
#   and the head's input gradient) at 2(q-1)/q x 4 bytes a float, plus the cross-entropy's
#   all-gather of M row maxima ((q-1) x 4M) and all-reduce of 2M sums.
# Peak memory is rank 0's during training (metrics.jsonl) and the largest rank's including
# the final checkpoint save (/usr/bin/time), which streams one whole tensor at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
ROUNDS=${ROUNDS:-3}
source bench/mpi_lib.sh
common="train.steps=$STEPS train.eval_interval=0 train.final_eval=0 train.sample_interval=0 train.ckpt_interval=0 train.warmup_steps=5
        model.vocab_size=50304"
summary() { # RUN_DIR TIME_FILE LABEL DATA TENSOR ZERO
    /usr/bin/python3 - "$@" <<'PY'
import json, statistics, sys
run, timefile, label = sys.argv[1], sys.argv[2], sys.argv[3]
p, q, zero = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
steps = [r for r in rows if "step_s" in r][3:]  # skip warm-up steps
tps = statistics.median(r["tokens_per_s"] for r in steps)
sent = statistics.median(r["comm_bytes"] for r in steps)
ckpt = open(f"{run}/ckpt/latest").read().strip()
cfg = json.load(open(f"{run}/ckpt/{ckpt}/trainer.json"))["trainer"]["config"]
m, t = cfg["model"], cfg["train"]
C, L, V, S = m["d_model"], m["n_layer"], m["vocab_size"], m["seq_len"]
params = 12 * L * C * C + 13 * L * C + V * C + S * C + 2 * C  # dense GPT-2
split = 12 * L * C * C + 7 * L * C + V * C  # of those, the ones tensor ranks split
held = params - split + split // q
data_bytes = ({0: 2, 1: 3, 2: 2}[zero] * (p - 1) / p * 4 * held) if p > 1 else 0
M = t["batch_size"] // p * (t["seq_len"] or S)
tensor_bytes = t["grad_accum"] * (2 * (q - 1) / q * 4 * ((4 * L + 2) * M * C + 2 * M) + (q - 1) * 4 * M) if q > 1 else 0
factor = data_bytes + tensor_bytes
rss_end = max(int(l.split()[-1]) for l in open(timefile) if "Maximum resident" in l) / 1024
rss = max(r["peak_rss_mb"] for r in steps)  # rank 0, before the final checkpoint
print(json.dumps({"label": label, "tps": tps, "rss": rss, "rss_end": rss_end, "sent": sent, "formula": factor}))
PY
}
run() { # LABEL DATA TENSOR ZERO OVERLAP: one run, its summary appended to $out/results
    local label=$1 data=$2 tensor=$3 zero=$4 overlap=$5 dir="$out/run"
    rm -rf "$dir"
    if [ "$data$tensor" = 11 ]; then
        /usr/bin/time -v ./build/cetus train $common run.dir="$dir" >/dev/null 2>"$dir.time"
    else
        "${MPIRUN[@]}" -np $((data * tensor)) /usr/bin/time -v ./build/cetus train $common parallel.data=$data \
            parallel.tensor=$tensor parallel.zero=$zero parallel.overlap=$overlap run.dir="$dir" \
            >/dev/null 2>"$dir.time"
    fi
    summary "$dir" "$dir.time" "$label" $data $tensor $zero >>"$out/results"
}
for round in $(seq "$ROUNDS"); do # alternate the layouts so slow spells of the machine hit all
    echo "round $round of $ROUNDS" >&2
    run "1 process, 2 threads" 1 1 0 auto
    run "data=2, ZeRO 0" 2 1 0 auto
    run "data=2, ZeRO 1" 2 1 1 auto
    run "data=2, ZeRO 2" 2 1 2 auto
    run "data=2, ZeRO 0, thread" 2 1 0 thread
    run "tensor=2" 1 2 0 auto
done
/usr/bin/python3 - "$out/results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r["label"] for r in rows))
by = {l: [r for r in rows if r["label"] == l] for l in labels}
base = [r["tps"] for r in by[labels[0]]]
print(f"{'layout':<24} {'tok/s':>7} {'vs 1 proc':>9} {'per round':>11}  {'peak RSS':>9} {'w/ save':>8}  {'sent/step':>10} {'formula':>10}")
for l in labels:
    rs = by[l]
    tps = statistics.median(r["tps"] for r in rs)
    ratios = [r["tps"] / b for r, b in zip(rs, base)]
    last = rs[-1]
    print(f"{l:<24} {tps:7.0f} {tps / statistics.median(base):9.2f} {min(ratios):5.2f}-{max(ratios):4.2f}  "
          f"{last['rss']:6.1f} MiB {last['rss_end']:5.0f} MiB  {last['sent'] / 1e6:7.2f} MB {last['formula'] / 1e6:7.2f} MB")
PY
