# t_tensorboard.sh: `cetus train`'s TensorBoard event file, read by an independent reader
# (tests/tools/tb_read.js: its own CRC-32C over the TFRecord framing, protobufjs decoding
# TensorBoard's Event message) and compared with metrics.jsonl value for value:
#  - a tiny MoE run stopped at step 3, rolled back to its step-2 checkpoint and resumed to
#    step 4 (so step 3 runs twice) logs every (tag, step) of metrics.jsonl exactly once;
#  - a file with a flipped byte does not stop the resumed run: a warning, the file left as
#    it is, and a new file continuing after the damaged file's valid records.
# (A record cut short by a kill, an unreadable file and the byte layout: test_tb_events.)
source tests/e2e/lib.sh
command -v node >/dev/null || fail "node not found (run scripts/setup.sh)"
[ -f data/npm/protobufjs/package.json ] && [ -f data/npm/long/package.json ] ||
    fail "data/npm/protobufjs or data/npm/long missing (run scripts/setup.sh)"
make_corpus "$SCRATCH"
args="$TINY data.dir=$SCRATCH/data train.steps=4 train.eval_interval=3 train.sample_tokens=0
      train.ckpt_interval=2 model.moe_every=2 moe.n_experts=4 moe.d_hidden=96"
dir="$SCRATCH/tb"
read_events() { NODE_PATH=data/npm node tests/tools/tb_read.js "$@"; }
compare() { /usr/bin/python3 tests/tools/tb_metrics.py "$dir/metrics.jsonl" "$SCRATCH/events.txt" "$@"; }
events() { ls "$dir"/events.out.tfevents.*; }

run 1 tb run.stop_at_step=3
rm -r "$dir/ckpt/step_00000003"
echo step_00000002 >"$dir/ckpt/latest"
run 1 tb
grep -q "from step 2" "$SCRATCH/tb.log" || fail "the second run did not resume at step 2"
[ "$(events | wc -l)" -eq 1 ] || fail "a resumed run should continue its event file: $(events)"
read_events $(events) >"$SCRATCH/events.txt" || fail "the event file does not read back"
compare || fail "the events disagree with metrics.jsonl"
grep -q '^3 val/loss ' "$SCRATCH/events.txt" || fail "no validation loss at step 3"
grep -q '^3 val/bpb ' "$SCRATCH/events.txt" || fail "no bits per byte at step 3"
grep -q '^4 moe/layer1/load/3 ' "$SCRATCH/events.txt" || fail "no MoE load at step 4"
grep -q '^4 memory/rank0/peak_rss_mb ' "$SCRATCH/events.txt" || fail "no memory peaks at step 4"
echo "a resumed run repeats no (tag, step)"

# a flipped byte in the middle: the run goes on in a new file
file=$(events)
size=$(stat -c %s "$file")
printf '\xff' | dd of="$file" bs=1 seek=$((size / 2)) conv=notrunc status=none
cp "$file" "$SCRATCH/damaged"
run 1 tb train.steps=5
grep -q "warning: .*tfevents.* is damaged" "$SCRATCH/tb.log" || fail "no warning of the damaged file"
cmp -s "$file" "$SCRATCH/damaged" || fail "the damaged file was changed"
[ "$(events | wc -l)" -eq 2 ] || fail "expected a new event file beside the damaged one: $(events)"
[ "$(events | tail -n 1)" != "$file" ] || fail "the new file does not sort after the damaged one"
out=$(read_events "$file" 2>&1 >/dev/null) && fail "the reader accepted the damaged file"
grep -q "checksum" <<<"$out" || fail "the reader did not see the damage: $out"
read_events --prefix $(events) >"$SCRATCH/events.txt" 2>/dev/null || fail "the event files do not read back"
compare --subset || fail "the events after the damage disagree with metrics.jsonl"
grep -q '^5 train/loss ' "$SCRATCH/events.txt" || fail "no step 5 in the new file"
echo "t_tensorboard: a damaged file is left alone and a new one continues"
