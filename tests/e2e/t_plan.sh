# t_plan.sh: `cetus plan` against what runs here, and its refusals.
#  - `cetus plan --calibrate` under mpirun measures this machine into a hardware file.
#  - For 15 layouts that train here (dense, MoE, each ZeRO stage, tensor, pipeline, expert,
#    offload of weights, gradients and moments to host and to disk, the automatic policy
#    under a budget, recomputation, shared weights, image + text), every rank's predicted
#    compute-tier peak is within 10% of the one the run reports (metrics.jsonl's memory
#    line), and so is its peak resident memory (not under sanitizers, whose shadow memory
#    the plan does not model).
#  - --search on this machine ranks layouts that fit; the published configs plan at full
#    scale on their hardware files (M6-10T on 512 V100s with disk offload, GPT-3 on 1024
#    A100s); bad hardware files, layouts that fit no world, memory no layout fits, and a
#    missing calibration are refused with messages that say what to do.
source tests/e2e/lib.sh
make_corpus "$SCRATCH"
"$CETUS" prepare --scenes --out "$SCRATCH/scenes" --train-scenes 40 --val-scenes 4 >/dev/null 2>&1 ||
    fail "prepare --scenes failed"

HW="$SCRATCH/hw.json"
"${mpi_env[@]}" "${MPIRUN[@]}" -np 2 "$CETUS" plan --calibrate --out "$HW" >"$SCRATCH/calibrate.log" 2>&1 ||
    fail "calibrate: $(tail -n 3 "$SCRATCH/calibrate.log")"
grep -q "link ranks 0 <-> 1" "$SCRATCH/calibrate.log" || fail "calibrate did not time the link"

rss=1
case "$BUILD" in *san*) rss=0 ;; esac
args="model.n_layer=4 model.d_model=192 model.n_head=4 model.seq_len=64 train.batch_size=4 train.steps=2
      data.dir=$SCRATCH/data train.eval_interval=0 train.sample_interval=0 train.ckpt_interval=0
      runtime.threads=1 runtime.pin=false"

# check NP NAME extra-args: trains, plans the same settings, compares every rank's peaks
check() {
    local np=$1 name=$2; shift 2
    run "$np" "$name" "$@"
    "$CETUS" plan $args "$@" --world "$np" --hardware "$HW" --json >"$SCRATCH/$name.plan" 2>"$SCRATCH/$name.err" ||
        fail "$name: plan: $(cat "$SCRATCH/$name.err")"
    /usr/bin/python3 - "$SCRATCH/$name/metrics.jsonl" "$SCRATCH/$name.plan" "$name" "$rss" <<'EOF' || fail "$name: prediction off"
import json, sys
metrics, plan, name, rss = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
mem = [json.loads(l) for l in open(metrics) if '"memory"' in l][-1]["ranks"]
predicted = json.load(open(plan))["ranks"]
assert len(mem) == len(predicted), (len(mem), len(predicted))
bad = 0
for m in mem:
    p = predicted[m["rank"]]
    c = p["compute_peak_mb"] / m["compute_peak_mb"]
    r = p["resident_peak_mb"] / m["peak_rss_mb"]
    print("%-9s rank %d  compute %7.1f / %7.1f MiB (%.3f)  resident %7.1f / %7.1f MiB (%.3f)" % (
        name, m["rank"], p["compute_peak_mb"], m["compute_peak_mb"], c, p["resident_peak_mb"], m["peak_rss_mb"], r))
    bad += not (0.9 <= c <= 1.1) or (rss and not (0.9 <= r <= 1.1))
sys.exit(bad > 0)
EOF
}

check 1 dense
check 2 zero0 parallel.data=2
check 2 zero1 parallel.data=2 parallel.zero=1
check 2 zero2 parallel.data=2 parallel.zero=2
check 4 zero3 parallel.data=4 parallel.zero=3 offload.optimizer=host
check 2 tensor parallel.tensor=2 model.vocab_size=50304
check 4 pipe-tensor parallel.pipeline=2 parallel.tensor=2 model.vocab_size=50304 memory.recompute=all
check 1 moe model.moe_every=2 moe.n_experts=8 moe.d_hidden=384
check 2 expert model.moe_every=2 moe.n_experts=8 moe.d_hidden=384 parallel.data=2 parallel.expert=2
check 1 host offload.params=host offload.grads=host offload.optimizer=host
check 1 disk offload.params=disk offload.grads=disk offload.optimizer=disk
check 2 auto parallel.data=2 parallel.zero=1 offload.policy=auto memory.compute_budget=150M
check 1 recompute memory.recompute=all
check 1 shared model.n_layer=8 model.share_layers=1
check 1 image data.scenes=$SCRATCH/scenes image.patch=8 model.seq_len=128 train.seq_len=96

# the search on this machine: layouts that fit, the best first
out=$("$CETUS" plan $args --world 2 --hardware "$HW" --search --top 3) || fail "search: $out"
grep -q "^#1 .* tokens/s .*parallel.data=" <<<"$out" || fail "search printed no ranked layout: $out"
echo "ok: search: $(grep '^#1' <<<"$out")"

# full scale, on paper
out=$("$CETUS" plan -c configs/gpt3_175b.json --hardware hardware/a100_1024.json --precision bf16 --tokens 300e9) ||
    fail "GPT-3 plan: $out"
grep -q "^fits 1024 x A100" <<<"$out" || fail "GPT-3 does not fit its 1024 A100s: $out"
grep -q "^3e+11 tokens: .* days" <<<"$out" || fail "no training time for GPT-3: $out"
m6="configs/m6_10t.json --hardware hardware/v100_512.json --precision bf16"
out=$("$CETUS" plan -c $m6 --json) || fail "M6-10T plan: $out"
/usr/bin/python3 -c '
import json, sys
p = json.loads(sys.stdin.read())
assert p["fits"], p.get("why")
assert p["params"] > 1e13, p["params"]
assert p["stages"][0]["memory_mb"]["disk"]["params"] > 0
print("ok: M6-10T fits 512 V100s: %.3g parameters, %.0f MiB per GPU, %.0f s per step" %
      (p["params"], p["ranks"][0]["compute_peak_mb"], p["step_s"]))' <<<"$out" || fail "M6-10T plan: $out"

# refusals
sed 's/"memory_gib": 32,//' hardware/v100_512.json >"$SCRATCH/bad_hw.json"
expect_error 'memory_gib' "$CETUS" plan $args --world 1 --hardware "$SCRATCH/bad_hw.json"
sed 's/"count": 512/"count": -4/' hardware/v100_512.json >"$SCRATCH/neg_hw.json"
expect_error 'count' "$CETUS" plan $args --world 1 --hardware "$SCRATCH/neg_hw.json"
expect_error 'layouts that fit 3 ranks' "$CETUS" plan $args --world 3 parallel.tensor=2 model.vocab_size=50304 \
    --hardware "$HW"
expect_error 'has 512 devices but the world is 1024 ranks' "$CETUS" plan -c configs/m6_10t.json --world 1024 \
    --hardware hardware/v100_512.json
expect_error 'the least device memory any layout needed' "$CETUS" plan $args --world 2 --hardware "$HW" --search \
    --memory 64M
if grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo; then # the calibration measured the bf16 rate
    grep -q '"matmul_tflops_bf16"' "$HW" || fail "the calibration did not measure the bf16 product rate"
    "$CETUS" plan $args --world 1 --hardware "$HW" --precision bf16 >/dev/null || fail "plan --precision bf16"
    sed -i '/"matmul_tflops_bf16"/d' "$HW"
fi
expect_error 'gives no matmul_tflops_bf16' "$CETUS" plan $args --world 1 --hardware "$HW" --precision bf16
mkdir -p "$SCRATCH/empty"
(cd "$SCRATCH/empty" && expect_error 'run `cetus plan --calibrate` first' "$CETUS" plan --world 1) || exit 1
echo "plan predicts every rank's memory within 10%; refusals name what to do"
