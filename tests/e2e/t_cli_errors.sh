# t_cli_errors.sh: every kind of bad input gets a clear message that names the file, key or
# value, and a non-zero exit; a full disk during a save keeps the previous checkpoint.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
D="data.dir=$SCRATCH/data"

for cmd in train generate eval prepare tokenize verify; do
    help=$("$CETUS" "$cmd" --help) || fail "$cmd --help exited non-zero" # (grep -q in a pipe
    grep -q "usage: cetus $cmd" <<<"$help" || fail "$cmd --help"       # could cut the writer off)
done

# configuration
expect_error "$SCRATCH/none.json" "$CETUS" train -c "$SCRATCH/none.json"
printf '{"model": {"n_layer": 2,}' >"$SCRATCH/bad.json"
expect_error "malformed JSON" "$CETUS" train -c "$SCRATCH/bad.json"
printf '{"model": {"n_layers": 2}}' >"$SCRATCH/unknown.json"
expect_error "unknown key 'model.n_layers'" "$CETUS" train -c "$SCRATCH/unknown.json"
expect_error "unknown key 'train.learning_rate'" "$CETUS" train train.learning_rate=1
printf '{"train": {"lr": "fast"}}' >"$SCRATCH/type.json"
expect_error "train.lr must be a number" "$CETUS" train -c "$SCRATCH/type.json"
expect_error "train.lr = -1 is out of range" "$CETUS" train train.lr=-1
expect_error "expected key=value" "$CETUS" train lr
expect_error "not divisible by model.n_head" "$CETUS" train model.d_model=65 model.n_head=2
expect_error "exceeds model.seq_len = 32" "$CETUS" train $TINY train.seq_len=64
expect_error "moe.top_k=0: must be >= 1" "$CETUS" train model.moe_every=2 moe.top_k=0
expect_error "moe.n_experts=8 is smaller than moe.top_k=9" "$CETUS" train model.moe_every=2 moe.top_k=9
expect_error "moe.capacity_factor=0" "$CETUS" train model.moe_every=2 moe.capacity_factor=0
expect_error "prototypes do not divide moe.n_experts=8" "$CETUS" train model.moe_every=2 moe.routing=prototype moe.top_k=3
expect_error "moe.aux_coef=-1" "$CETUS" train model.moe_every=2 moe.aux_coef=-1
expect_error "moe.z_coef=-0.5" "$CETUS" train model.moe_every=2 moe.z_coef=-0.5
expect_error "runtime.threads = 4096: at most 8 threads per core" "$CETUS" train runtime.threads=4096
expect_error "the config: model.n_layer = 1000, model.d_model = 65536, model.vocab_size = 50257 make 5.15e+13 parameters" "$CETUS" train model.n_layer=1000 model.d_model=65536
expect_error 'moe.routing="top5"' "$CETUS" train moe.routing=top5
expect_error "model.moe_every = 9" "$CETUS" train model.moe_every=9
expect_error 'runtime.backend: unknown backend "gpu"; registered: cpu' "$CETUS" train runtime.backend=gpu

# data
expect_error "$SCRATCH/nodata" "$CETUS" train $TINY data.dir="$SCRATCH/nodata"
mkdir -p "$SCRATCH/empty"
expect_error "$SCRATCH/empty" "$CETUS" prepare --input "$SCRATCH/empty" --out "$SCRATCH/out"
cp -r "$SCRATCH/data" "$SCRATCH/cut"
truncate -s -4 "$SCRATCH/cut/train_000.bin"
expect_error "$SCRATCH/cut/train_000.bin" "$CETUS" train $TINY data.dir="$SCRATCH/cut"
cp "$SCRATCH/data/train_000.bin" "$SCRATCH/cut/train_000.bin"
printf '\xff' | dd of="$SCRATCH/cut/val_000.bin" bs=1 seek=25 conv=notrunc status=none # vocab field
expect_error "$SCRATCH/cut/val_000.bin is corrupt: header and token checksum" "$CETUS" train $TINY data.dir="$SCRATCH/cut"

# checkpoints: corrupt or truncated ones are refused, naming the file
"$CETUS" train $TINY $D run.dir="$SCRATCH/run" train.steps=3 train.sample_interval=0 >/dev/null
ckpt="$SCRATCH/run/ckpt/step_00000003"
cp -r "$ckpt" "$SCRATCH/good"
printf '\x55' | dd of="$ckpt/model.safetensors" bs=1 seek=5000 conv=notrunc status=none
expect_error "$ckpt/model.safetensors" "$CETUS" train $TINY $D run.dir="$SCRATCH/run" train.steps=4
expect_error "model.safetensors" "$CETUS" generate --ckpt "$SCRATCH/run"
rm -rf "$ckpt" && cp -r "$SCRATCH/good" "$ckpt"
truncate -s -100 "$ckpt/optimizer.safetensors"
expect_error "$ckpt/optimizer.safetensors" "$CETUS" train $TINY $D run.dir="$SCRATCH/run" train.steps=4
rm -rf "$ckpt" && cp -r "$SCRATCH/good" "$ckpt"
# a NaN behind valid checksums (resealed) is refused by every load, naming file and tensor
RESEAL="$PWD/$BUILD/tests/tool_ckpt_reseal"
"$RESEAL" "$ckpt" model.safetensors h.1.mlp.c_fc.weight 17 nan
expect_error "$ckpt/model.safetensors: tensor h.1.mlp.c_fc.weight holds a non-finite value (NaN) at flat index 17" \
    "$CETUS" eval --ckpt "$SCRATCH/run" --batches 1
expect_error "tensor h.1.mlp.c_fc.weight holds a non-finite value" \
    "$CETUS" train $TINY $D run.dir="$SCRATCH/run" train.steps=4
rm -rf "$ckpt" && cp -r "$SCRATCH/good" "$ckpt"
"$RESEAL" "$ckpt" optimizer.safetensors wpe.weight.exp_avg 0 -inf
expect_error "$ckpt/optimizer.safetensors: tensor wpe.weight.exp_avg holds a non-finite value (-Inf) at flat index 0" \
    "$CETUS" train $TINY $D run.dir="$SCRATCH/run" train.steps=4
"$CETUS" eval --ckpt "$SCRATCH/run" --batches 1 | grep -q "val loss" || fail "eval needs no optimizer state"
rm -rf "$ckpt" && cp -r "$SCRATCH/good" "$ckpt"
"$RESEAL" "$ckpt"
"$CETUS" eval --ckpt "$SCRATCH/run" --batches 1 | grep -q "val loss" || fail "a plain reseal broke the checkpoint"
expect_error "holds a model with model.n_layer = 2, but the config asks for 3" "$CETUS" train $TINY $D run.dir="$SCRATCH/run" model.n_layer=3
expect_error "not a checkpoint" "$CETUS" eval --ckpt "$SCRATCH/nowhere"

# a full disk during a save: the earlier checkpoint and metrics survive
unshare -m bash -c '
    set -e
    mkdir -p "$0/full" && mount -t tmpfs -o size=48m tmpfs "$0/full"
    rc=0
    "$1" train $2 $3 run.dir="$0/full/run" train.steps=4 train.ckpt_interval=2 train.sample_interval=0 \
        >"$0/full.out" 2>"$0/full.err" || rc=$?
    cp -r "$0/full/run" "$0/after"
    echo "$rc" >"$0/full.rc"
' "$SCRATCH" "$CETUS" "$TINY" "$D"
[ "$(cat "$SCRATCH/full.rc")" -ne 0 ] || fail "training on a full disk exited 0"
grep -q "No space left on device" "$SCRATCH/full.err" || fail "no disk-full message: $(cat "$SCRATCH/full.err")"
echo "ok: full disk -> $(tail -n 1 "$SCRATCH/full.err")"
[ "$(cat "$SCRATCH/after/ckpt/latest")" = step_00000002 ] || fail "latest does not point at step 2"
"$CETUS" eval --ckpt "$SCRATCH/after" --batches 1 | grep -q "val loss" || fail "step-2 checkpoint unreadable"
grep -q '"step": 4, "loss"' "$SCRATCH/after/metrics.jsonl" || fail "metrics lost"
ls "$SCRATCH/after/ckpt" | grep -q tmp && fail "temporary checkpoint left behind"
echo "all bad inputs refused"
