# t_verify.sh: `cetus verify` on a good run (exit 0, one ok line per checkpoint, the latest
# marked), on copies damaged one way each (a flipped byte, a truncated file, a NaN behind
# valid checksums, a missing trainer.json, a renamed tensor: exit 1, the damaged checkpoint
# and file named, the other still ok), on token and scene data directories good and
# damaged, and on usage errors (exit 2).
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
RESEAL="$PWD/$BUILD/tests/tool_ckpt_reseal"
"$CETUS" train $TINY data.dir="$SCRATCH/data" run.dir="$SCRATCH/run" train.steps=4 train.ckpt_interval=2 \
    train.sample_interval=0 >/dev/null 2>&1 || fail "training the run to verify"
ck=$SCRATCH/run/ckpt

# verify_expect RC PATTERN DIR...: exit status RC and an output line matching PATTERN
verify_expect() {
    local want=$1 pat=$2 rc=0 out; shift 2
    out=$("$CETUS" verify "$@" 2>&1) || rc=$?
    [ "$rc" -eq "$want" ] || fail "verify $*: exit $rc, expected $want: $out"
    grep -qE -- "$pat" <<<"$out" || fail "verify $*: no line matching '$pat': $out"
    echo "ok: verify ${*#"$SCRATCH"/} -> $(grep -E -- "$pat" <<<"$out" | head -n 1)"
    printf '%s\n' "$out" >"$SCRATCH/last.out"
}

verify_expect 0 "^ok    $ck/step_00000004  \(28 tensors, 3\.3M params, optimizer state, trainer.json step 4\)  <- latest$" \
    "$SCRATCH/run"
grep -qE "^ok    $ck/step_00000002  \(.*step 2\)$" "$SCRATCH/last.out" || fail "no ok line for step 2"
[ "$(grep -c '^ok ' "$SCRATCH/last.out")" -eq 2 ] || fail "expected two ok lines: $(cat "$SCRATCH/last.out")"
grep -qx "2 checked: 2 ok, 0 bad" "$SCRATCH/last.out" || fail "summary: $(cat "$SCRATCH/last.out")"
verify_expect 0 "^ok    $ck/step_00000002 " "$ck/step_00000002"
verify_expect 0 "<- latest" "$ck/"

# damaged copies: each names the checkpoint and the file, the other checkpoint stays ok
damage() { # NAME: a copy of the run in $SCRATCH/NAME; prints its step-2 checkpoint
    rm -rf "${SCRATCH:?}/$1" && cp -r "$SCRATCH/run" "$SCRATCH/$1" && echo "$SCRATCH/$1/ckpt/step_00000002"
}
d=$(damage flip)
printf '\x55' | dd of="$d/model.safetensors" bs=1 seek=5000 conv=notrunc status=none
verify_expect 1 "^BAD   $d  model.safetensors: data checksum mismatch" "$SCRATCH/flip"
grep -q "^ok    .*step_00000004 .*<- latest" "$SCRATCH/last.out" || fail "the good checkpoint is not ok"
grep -qx "2 checked: 1 ok, 1 bad" "$SCRATCH/last.out" || fail "summary: $(cat "$SCRATCH/last.out")"
d=$(damage trunc)
truncate -s -100 "$d/optimizer.safetensors"
verify_expect 1 "^BAD   $d  optimizer.safetensors: .*truncated" "$SCRATCH/trunc"
d=$(damage nan)
"$RESEAL" "$d" model.safetensors h.1.attn.c_proj.weight 42 nan
verify_expect 1 "^BAD   $d  model.safetensors: tensor h.1.attn.c_proj.weight holds a non-finite value \(NaN\) at flat index 42" \
    "$SCRATCH/nan"
d=$(damage moments)
"$RESEAL" "$d" optimizer.safetensors ln_f.weight.exp_avg_sq 3 inf
verify_expect 1 "^BAD   $d  optimizer.safetensors: tensor ln_f.weight.exp_avg_sq holds a non-finite value \(\+Inf\)" \
    "$SCRATCH/moments"
d=$(damage notrainer)
rm "$d/trainer.json"
verify_expect 1 "^BAD   $d  trainer.json is missing" "$SCRATCH/notrainer"
d=$(damage rename)
sed -i 's/"h\.1\.ln_2\.bias"/"h.1.ln_2.bxas"/' "$d/model.safetensors" && "$RESEAL" "$d"
verify_expect 1 "^BAD   $d  model.safetensors: tensor h.1.ln_2.bias is missing" "$SCRATCH/rename"
d=$(damage latest)
echo step_00000009 >"$SCRATCH/latest/ckpt/latest"
verify_expect 1 "^BAD   $SCRATCH/latest/ckpt/latest  names step_00000009: .* does not exist" "$SCRATCH/latest"

# data directories: token shards, scene shards
verify_expect 0 "^ok    $SCRATCH/data/train_000.bin  \([0-9]+ tokens, vocab 50257, version 2\)$" "$SCRATCH/data"
cp -r "$SCRATCH/data" "$SCRATCH/baddata"
printf '\x52' | dd of="$SCRATCH/baddata/val_000.bin" bs=1 seek=24 conv=notrunc status=none # vocab 50258
verify_expect 1 "^BAD   $SCRATCH/baddata/val_000.bin  is corrupt: header and token checksum" "$SCRATCH/baddata"
grep -q "^ok    $SCRATCH/baddata/train_000.bin" "$SCRATCH/last.out" || fail "the good shard is not ok"
cp -r "$SCRATCH/data" "$SCRATCH/unfinished" && touch "$SCRATCH/unfinished/prepare.unfinished"
verify_expect 1 "^BAD   $SCRATCH/unfinished/prepare.unfinished  $SCRATCH/unfinished: the shards are incomplete" \
    "$SCRATCH/unfinished"
"$CETUS" prepare --scenes --out "$SCRATCH/scenes" --train-scenes 20 --val-scenes 5 2>/dev/null \
    || fail "prepare --scenes"
verify_expect 0 "^ok    $SCRATCH/scenes/scenes_val.bin  \(5 scenes, captions of up to 48 tokens, vocab 50257, version 2\)$" \
    "$SCRATCH/scenes"
printf '\x52' | dd of="$SCRATCH/scenes/scenes_train.bin" bs=1 seek=24 conv=notrunc status=none # vocab 50258
verify_expect 1 "^BAD   $SCRATCH/scenes/scenes_train.bin  is corrupt: header and record checksum" "$SCRATCH/scenes"

# usage errors
verify_expect 2 "is not a directory" "$SCRATCH/nowhere"
verify_expect 2 "is not a checkpoint, a run directory" "$SCRATCH/text"
verify_expect 2 "which directory" 
verify_expect 2 "unknown option --fast" --fast "$SCRATCH/run"
"$CETUS" verify --help | grep -q "usage: cetus verify" || fail "verify --help"
echo "t_verify: ok"
