#!/usr/bin/env bash
# t_layers.sh: the folders under src/ depend only downwards (scripts/check_layers.sh, the
# order of docs/architecture.md), and the check itself catches an upward include and an
# upward call.
source "$(dirname "$0")/lib.sh"

bash scripts/check_layers.sh "$PWD" "$PWD/$BUILD" || fail "the layer check failed on the tree"

# A copy of the tree with core/ including a model header must fail, naming the line.
mkdir -p "$SCRATCH/tree"
cp -r src include "$SCRATCH/tree/"
printf '#include "model/moe.h"\n' >> "$SCRATCH/tree/src/core/rng.c"
out=$(bash scripts/check_layers.sh "$SCRATCH/tree" "$SCRATCH/none" 2>&1) && fail "an upward include passed: $out"
grep -q 'src/core/rng.c:.*includes "model/moe.h": core/ may not use model/' <<<"$out" || fail "message: $out"

# Beside is not below: data/ may not include model/.
cp src/core/rng.c "$SCRATCH/tree/src/core/rng.c"
printf '#include "model/sample.h"\n' >> "$SCRATCH/tree/src/data/shard.c"
out=$(bash scripts/check_layers.sh "$SCRATCH/tree" "$SCRATCH/none" 2>&1) && fail "data/ using model/ passed: $out"
grep -q 'data/ may not use model/' <<<"$out" || fail "message: $out"
cp src/data/shard.c "$SCRATCH/tree/src/data/shard.c"

# An upward call through the public header, seen in the objects: ops/ calling the model.
mkdir -p "$SCRATCH/build/src/ops" "$SCRATCH/build/src/model"
printf '#include "cetus.h"\nvoid ct_probe(void) { ct_model_free(0); }\n' > "$SCRATCH/tree/src/ops/probe.c"
cc -Iinclude -c -o "$SCRATCH/build/src/ops/probe.o" "$SCRATCH/tree/src/ops/probe.c"
cp "$BUILD/src/model/gpt.o" "$SCRATCH/build/src/model/gpt.o"
out=$(bash scripts/check_layers.sh "$SCRATCH/tree" "$SCRATCH/build" 2>&1) && fail "an upward call passed: $out"
grep -q 'src/ops/probe.c uses ct_model_free, defined in model/' <<<"$out" || fail "message: $out"

# A cycle inside a folder, seen in the objects: the model's table calling back into gpt.c.
rm "$SCRATCH/tree/src/ops/probe.c" "$SCRATCH/build/src/ops/probe.o"
cp "$BUILD/src/model/gpt.o" "$BUILD/src/model/gpt_table.o" "$SCRATCH/build/src/model/"
printf '#include "cetus.h"\nvoid ct_probe2(void) { ct_model_free(0); }\n' > "$SCRATCH/tree/src/model/gpt_table2.c"
cc -Iinclude -c -o "$SCRATCH/build/src/model/gpt_table2.o" "$SCRATCH/tree/src/model/gpt_table2.c"
out=$(bash scripts/check_layers.sh "$SCRATCH/tree" "$SCRATCH/build" 2>&1) || true
grep -q 'src/model/: its files call each other in a cycle' <<<"$out" && fail "no cycle expected yet: $out"
ld -r -o "$SCRATCH/build/src/model/gpt_table.o.new" "$BUILD/src/model/gpt_table.o" "$SCRATCH/build/src/model/gpt_table2.o"
mv "$SCRATCH/build/src/model/gpt_table.o.new" "$SCRATCH/build/src/model/gpt_table.o"
rm "$SCRATCH/tree/src/model/gpt_table2.c" "$SCRATCH/build/src/model/gpt_table2.o"
out=$(bash scripts/check_layers.sh "$SCRATCH/tree" "$SCRATCH/build" 2>&1) && fail "a cycle inside model/ passed: $out"
grep -q 'src/model/: its files call each other in a cycle: .*gpt .*gpt_table\|src/model/: its files call each other in a cycle: .*gpt_table .*gpt ' <<<"$out" || fail "message: $out"
rm -r "$SCRATCH/build/src/model"

# A folder outside the order is refused until it is given a place.
mkdir -p "$SCRATCH/tree/src/misc"
out=$(bash scripts/check_layers.sh "$SCRATCH/tree" "$SCRATCH/none" 2>&1) && fail "an unplaced folder passed: $out"
grep -q 'src/misc/ has no place in the layer order' <<<"$out" || fail "message: $out"
echo "layers: ok"
