#!/usr/bin/env bash
# bench/run_vocab.sh [VOCAB]: what a vocabulary trained on the corpus buys, against GPT-2's,
# on the default model and corpus (STEPS=600 in the environment: the default run's steps). Prepares data/pydocs<VOCAB> (default 8192) with
# `cetus prepare --vocab-size`, times both models' steps (40 steps each, twice, alternating;
# the median step time), then trains GPT-2's default run (600 steps) and the trained
# vocabulary's for the same steps and for the steps that fit GPT-2's wall clock (600 x the
# ratio of median step times), and reports each run's whole-split validation loss in nats
# and in bits per byte (the loss over the text the targets decode to: the only fair
# comparison across tokenizers). Runs go to bench/out/vocab/. Loss figures do not depend on
# the machine's load; the step-time ratio does: run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
V=${1:-8192}
STEPS=${STEPS:-600} # the default run's steps
OUT=bench/out/vocab
DATA=data/pydocs$((V / 1024))k
rm -rf "$OUT" && mkdir -p "$OUT"
[ -f "$DATA/meta.json" ] || "$BUILD/cetus" prepare --vocab-size "$V" --out "$DATA" 2>&1 | grep -E "trained|wrote"
gpt2="data.dir=data/pydocs"
mine="data.dir=$DATA model.vocab_size=$V"
quiet="train.eval_interval=0 train.final_eval=0 train.sample_interval=0 train.ckpt_interval=0 run.tensorboard=false"
for r in 1 2; do
    "$BUILD/cetus" train $gpt2 run.dir="$OUT/time-gpt2-$r" train.steps=40 $quiet >/dev/null
    "$BUILD/cetus" train $mine run.dir="$OUT/time-mine-$r" train.steps=40 $quiet >/dev/null
done
read -r t_gpt2 t_mine < <(/usr/bin/python3 - "$OUT" <<'PY'
import json, statistics, sys
def median(kind):
    ts = [json.loads(l) for r in (1, 2) for l in open(f"{sys.argv[1]}/time-{kind}-{r}/metrics.jsonl")]
    return statistics.median(m["step_s"] for m in ts if "step_s" in m and m["step"] > 5)
print(median("gpt2"), median("mine"))
PY
)
equal=$(/usr/bin/python3 -c "print(round($STEPS * $t_gpt2 / $t_mine))")
echo "median step time: GPT-2 vocabulary ${t_gpt2}s, $V-token vocabulary ${t_mine}s; equal wall clock: $equal steps"
"$BUILD/cetus" train $gpt2 run.dir="$OUT/gpt2" train.steps="$STEPS" >"$OUT/gpt2.log" 2>&1
"$BUILD/cetus" train $mine run.dir="$OUT/mine-same" train.steps="$STEPS" >"$OUT/mine-same.log" 2>&1
"$BUILD/cetus" train $mine run.dir="$OUT/mine-time" train.steps="$equal" >"$OUT/mine-time.log" 2>&1
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
print("%-34s %8s %10s %13s" % ("run", "steps", "val nats", "bits per byte"))
for name in ("gpt2", "mine-same", "mine-time"):
    last = [json.loads(l) for l in open(f"{sys.argv[1]}/{name}/metrics.jsonl") if "val_loss_full" in l][-1]
    print("%-34s %8d %10.4f %13.4f" % (name, last["step"], last["val_loss_full"], last["val_bpb"]))
PY
