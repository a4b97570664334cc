# t_bpe_train.sh: a vocabulary trained by `cetus prepare --vocab-size` used downstream. The
# run trains on its ids with model.vocab_size = the trained size, prints samples decoded by
# it, and its checkpoints carry the tokenizer (tokenizer.json byte for byte, its record in
# trainer.json); `cetus generate` decodes with it and `cetus eval` scores it. A checkpoint is
# refused, naming both tokenizers, on shards of another tokenizer: by `cetus eval --data`
# and by a resumed `cetus train`.
source tests/e2e/lib.sh
make_corpus "$SCRATCH" # GPT-2 ids in $SCRATCH/data
"$CETUS" prepare --input "$SCRATCH/text" --out "$SCRATCH/bpe" --val-fraction 0.1 --vocab-size 512 2>/dev/null ||
    fail "prepare --vocab-size 512"
args=$TINY
run 1 small data.dir="$SCRATCH/bpe" model.vocab_size=512 train.steps=3 train.ckpt_interval=3 \
    train.sample_tokens=16
ck=$SCRATCH/small/ckpt/step_00000003
cmp "$SCRATCH/bpe/tokenizer.json" "$ck/tokenizer.json" || fail "the checkpoint's tokenizer.json differs from the data's"
[ ! -e "$ck/vocab.json" ] || fail "GPT-2's vocab.json beside a trained tokenizer"
/usr/bin/python3 - "$SCRATCH/bpe/meta.json" "$ck/trainer.json" <<'PY' || fail "trainer.json's tokenizer record"
import json, sys
meta, state = (json.load(open(p)) for p in sys.argv[1:])
want = meta["tokenizer"]
got = state["trainer"]["tokenizer"]
assert got["name"] == want["name"] == "bpe-512" and got["hash"] == want["hash"], (got, want)
PY
# the sample is text decoded by the trained tokenizer, not ids
sed -n '/--- sample at step 3 ---/,/^---$/p' "$SCRATCH/small.log" | sed '1d;$d' >"$SCRATCH/sample.txt"
[ -s "$SCRATCH/sample.txt" ] && ! grep -qE '^\[?[0-9]+( [0-9]+)+' "$SCRATCH/sample.txt" || fail "sample: $(cat "$SCRATCH/sample.txt")"
out=$("$CETUS" generate --ckpt "$SCRATCH/small" --prompt "The list" --tokens 8 --seed 1) || fail "generate: $out"
[[ "$out" == "The list"* ]] || fail "generate did not continue the prompt: $out"
"$CETUS" eval --ckpt "$SCRATCH/small" --batches 1 | grep -q "val loss" || fail "eval on its own shards"
echo "ok: trained vocabulary through training, samples, checkpoint, generate and eval"

expect_error "was trained on ids of the tokenizer bpe-512 (hash" "$CETUS" eval --ckpt "$SCRATCH/small" --data "$SCRATCH/data"
grep -q "holds ids of gpt2" <<<"$("$CETUS" eval --ckpt "$SCRATCH/small" --data "$SCRATCH/data" 2>&1)" ||
    fail "eval's refusal does not name the data's tokenizer"
# a GPT-2 run resumed on the trained tokenizer's shards (whose ids all fit its vocabulary)
run 1 gpt data.dir="$SCRATCH/data" train.steps=2 train.ckpt_interval=2 train.sample_interval=0
expect_error "holds ids of bpe-512" "$CETUS" train $TINY data.dir="$SCRATCH/bpe" run.dir="$SCRATCH/gpt" train.steps=3
