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
grep -qE '^step 3: val loss [0-9.]+ \(perplexity [0-9.]+\) over 256 tokens \([0-9.]+% of the split\)' "$SCRATCH/run.log" ||
    fail "spread evaluation line: $(grep 'val loss' "$SCRATCH/run.log")"
grep -qE '^step 3: val loss [0-9.]+ .* over [0-9]+ tokens \(the whole split\)' "$SCRATCH/run.log" ||
    fail "whole-split line: $(grep 'val loss' "$SCRATCH/run.log")"
read -r part part_tokens split_tokens < <(/usr/bin/python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "val_loss" in r: print(r["val_loss"], r["val_tokens"], r["val_split_tokens"])' "$m")
read -r full full_tokens < <(/usr/bin/python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "val_loss_full" in r: print(r["val_loss_full"], r["val_tokens"])' "$m")
[ "$part_tokens" = 256 ] || fail "spread evaluation covered $part_tokens tokens, expected 256"
# the whole split: every complete batch of 4 windows of 32 tokens
[ "$full_tokens" = $(( split_tokens / 128 * 128 )) ] || fail "whole split covered $full_tokens of $split_tokens tokens"
echo "ok: in-run val $part over $part_tokens tokens; whole split $full over $full_tokens of $split_tokens"

# cetus eval on the final checkpoint: the same whole-split figure, and the same spread windows
out=$("$CETUS" eval --ckpt "$SCRATCH/run" 2>/dev/null) || fail "cetus eval: $out"
got=$(sed -n 's/.*val loss \([0-9.]*\),.* over \([0-9]*\) tokens.*/\1 \2/p' <<<"$out")
awk -v a="$full" -v g="${got% *}" 'BEGIN { d = a - g; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "cetus eval $got differs from the run's whole-split $full"
[ "${got#* }" = "$full_tokens" ] || fail "cetus eval scored ${got#* } tokens, the run $full_tokens"
out=$("$CETUS" eval --ckpt "$SCRATCH/run" --batches 2 2>/dev/null) || fail "cetus eval --batches 2: $out"
got=$(sed -n 's/.*val loss \([0-9.]*\),.*/\1/p' <<<"$out")
awk -v a="$part" -v g="$got" 'BEGIN { d = a - g; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "cetus eval --batches 2 gives $got, the run's evaluation $part"
echo "ok: cetus eval agrees: whole split $full, 2 spread batches $part"
