# t_peak.sh: the measured FLOP peak and the MFU reported against it.
#  - `cetus peak` measures every core (fp32 at the widest width, bf16 where the processor has
#    it), caches it under XDG_CACHE_HOME, and --gflops prints the number alone.
#  - A training run prints the peak it uses and writes it to metrics.jsonl's start line, and
#    every step's MFU is tokens/s x FLOPs per token over that peak.
#  - An unknown option is refused.
source tests/e2e/lib.sh
export XDG_CACHE_HOME="$SCRATCH/cache"
out=$("$CETUS" peak) || fail "cetus peak: $out"
grep -q "^fp32 [0-9.]* GFLOP/s on [0-9]* CPUs" <<<"$out" || fail "no fp32 line: $out"
[ -s "$XDG_CACHE_HOME/cetus/peak" ] || fail "the peak was not cached"
g=$("$CETUS" peak --gflops) || fail "cetus peak --gflops: $g"
awk -v g="$g" 'BEGIN { exit !(g > 1) }' || fail "--gflops printed '$g'"
echo "ok: $(head -n 1 <<<"$out")"

make_corpus "$SCRATCH"
args="$TINY data.dir=$SCRATCH/data train.steps=3 train.eval_interval=0 train.sample_interval=0 train.ckpt_interval=0"
run 1 one
grep -q "^peak: [0-9]* GFLOP/s fp32 measured .* MFU is against [0-9]* GFLOP/s" "$SCRATCH/one.log" ||
    fail "no peak line: $(head -n 5 "$SCRATCH/one.log")"
/usr/bin/python3 - "$SCRATCH/one/metrics.jsonl" <<'PY' || fail "MFU is not against the measured peak"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
start = next(r for r in rows if r.get("event") == "start")
assert start["peak_flops"] > 1e9 and start["machine_fp32_flops"] >= start["peak_flops"] * 0.999, start
for r in rows:
    if "mfu" in r:
        want = r["tokens_per_s"] * start["flops_per_token"] / start["peak_flops"]
        assert abs(r["mfu"] - want) <= 1e-3 * max(want, 1e-3) + 1e-4, (r["mfu"], want)
print("ok: MFU against %.1f GFLOP/s" % (start["peak_flops"] / 1e9))
PY
expect_error "unknown option" "$CETUS" peak --bogus
echo "the peak is measured, cached and used for MFU"
