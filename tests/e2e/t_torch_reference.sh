#!/usr/bin/env bash
# t_torch_reference.sh: a tiny GPT-2's logits, loss, every parameter gradient and two AdamW
# steps, from cetus (tests/tools/tool_gpt_dump.c), checked against the independent float64
# PyTorch model in tests/tools/torch_gpt.py by tests/tools/torch_reference.py (tolerances documented
# there), for a causal and a prefix-LM mask, and with an image prefix (patch projection and
# 2-D positions before the text). The same three with the matrix products in bf16
# (train.precision = bf16), against the float64 model within a bound of PyTorch's own bf16
# autocast error (on a processor without bf16 instructions the tool must refuse, naming
# them). Then proves the check can fail: a dump with one gradient entry off by 1e-4 must be
# rejected.
# Needs PyTorch for /usr/bin/python3 (Debian's python3-torch); PYTHON overrides.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
tool=$BUILD/tests/tool_gpt_dump
[ -x "$tool" ] || { echo "FAIL: $tool is not built (make test builds it)"; exit 1; }
"$PY" -c 'import torch, numpy' || { echo "FAIL: $PY has no torch/numpy (install python3-torch)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
rc=0
for mode in causal prefix image; do
    echo "== $mode"
    "$tool" "$dir/$mode.bin" "$mode" || { echo "FAIL: $tool $mode"; exit 1; }
    "$PY" tests/tools/torch_reference.py "$dir/$mode.bin" || rc=1
done
if grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
    for mode in causal prefix image; do
        echo "== $mode, bf16 products"
        "$tool" "$dir/$mode-bf16.bin" "$mode" bf16 || { echo "FAIL: $tool $mode bf16"; exit 1; }
        "$PY" tests/tools/torch_reference.py "$dir/$mode-bf16.bin" || rc=1
    done
else
    echo "== bf16 on a processor without bf16 instructions (must be refused)"
    if "$tool" "$dir/no.bin" causal bf16 >"$dir/no.log" 2>&1; then echo "FAIL: bf16 accepted"; rc=1; fi
    grep -q "no bf16 instructions" "$dir/no.log" || { cat "$dir/no.log"; echo "FAIL: no message"; rc=1; }
fi
echo "== perturbed gradient (must be rejected)"
"$tool" "$dir/bad.bin" causal perturb || { echo "FAIL: $tool perturb"; exit 1; }
if "$PY" tests/tools/torch_reference.py "$dir/bad.bin" >"$dir/bad.log" 2>&1; then
    cat "$dir/bad.log"
    echo "FAIL: the reference check accepted a perturbed gradient"
    rc=1
else
    grep -E '^FAIL' "$dir/bad.log" | head -n 3
    grep -q 'FAIL grad.h.1.attn.c_attn.weight' "$dir/bad.log" || { echo "FAIL: perturbation not reported"; rc=1; }
    echo "rejected, as it should be"
fi
exit $rc
