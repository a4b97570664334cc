#!/usr/bin/env bash
# bash bench/run_p2r.sh [STEPS] [S ...]: Pseudo-to-Real against training the real model from
# scratch on the default corpus (data/pydocs), same data order, same number of steps:
#   scratch      the real model (REAL_LAYERS blocks, default 8; d_model 128, 4 heads, T 64,
#                batch 8) from its initialisation for STEPS steps (default 600)
#   p2r-S        the pseudo model (every block shares one set of weights: model.share_layers
#                = all) for S steps, delinked in the run (delink.step = S, AdamW state
#                carried), then the real model to STEPS; one run per S (default STEPS/24,
#                STEPS/8, STEPS/4, STEPS/2)
#   p2r-S-reset  the best S again with delink.optimizer = reset, to choose the default
# Validation loss every STEPS/24 steps on 16 fixed batches. Compute is counted as model
# FLOPs (6N + attention per token, what MFU uses) times tokens; wall clock as the summed
# step times (evaluations left out; the switch's own seconds reported apart). Prints, per
# run, the compute and wall clock to reach the scratch run's final validation loss and
# their ratios to scratch, and writes bench/out/p2r.png (both curves against compute) and
# bench/out/p2r.json. Then memory: a 24-block d_model 512 model for 2 steps, independent and
# shared: parameters, checkpoint bytes, compute-tier and resident peaks
# (bench/out/p2r_memory.json).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-600}
shift || true
S_LIST=${*:-"$((STEPS / 24)) $((STEPS / 8)) $((STEPS / 4)) $((STEPS / 2))"}
REAL_LAYERS=${REAL_LAYERS:-8}
source bench/mpi_lib.sh
mkdir -p bench/out
common="data.dir=data/pydocs model.n_layer=$REAL_LAYERS model.d_model=128 model.n_head=4 model.seq_len=64
        train.batch_size=8 train.steps=$STEPS train.warmup_steps=$((STEPS / 30)) train.lr=2e-3
        train.eval_interval=$((STEPS / 24)) train.eval_batches=16 train.sample_interval=0 train.sample_tokens=0
        train.ckpt_interval=0 train.log_interval=$((STEPS / 6)) runtime.pin=false"
train() { # NAME extra-args...
    local name=$1; shift
    echo "== $name ($*)" >&2
    ./build/cetus train $common run.dir="$out/$name" "$@" >"$out/$name.log" 2>&1 || { tail -n 5 "$out/$name.log" >&2; exit 1; }
    grep -E "^step +[0-9]+/|delink:" "$out/$name.log" | tail -n 2 >&2
}
train scratch
for S in $S_LIST; do train "p2r-$S" model.share_layers=all delink.step="$S" delink.optimizer=carry; done
best=$(/usr/bin/python3 bench/p2r_report.py --best "$out" scratch $(for S in $S_LIST; do echo "p2r-$S"; done))
S=${best#p2r-}
train "p2r-$S-reset" model.share_layers=all delink.step="$S" delink.optimizer=reset
/usr/bin/python3 bench/p2r_report.py --plot bench/out/p2r.png --json bench/out/p2r.json "$out" scratch \
    $(for S in $S_LIST; do echo "p2r-$S"; done) "p2r-$S-reset"

mem="model.n_layer=24 model.d_model=512 model.n_head=8 model.vocab_size=50304 train.steps=2 train.warmup_steps=1
     train.eval_interval=0 train.eval_batches=1 train.final_eval=0"
train mem-real $mem
train mem-pseudo $mem model.share_layers=all
/usr/bin/python3 bench/p2r_report.py --memory --json bench/out/p2r_memory.json "$out" mem-real mem-pseudo
