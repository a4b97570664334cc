#!/usr/bin/env bash
# t_moe_reference.sh: the MoE layer (src/model/moe.c) against the independent PyTorch layer in
# tests/tools/torch_moe.py: output, gates, aux and z losses, routing, capacity drops, load and every
# gradient, for each routing (top1, top2, top3, prototype with 2 groups) with a capacity that
# drops tokens and dropless, and router noise in two of the dropless runs. Then proves the
# check can fail: a dump with one router gradient entry off by 1e-3 must be rejected.
# Needs PyTorch for /usr/bin/python3 (Debian's python3-torch); PYTHON overrides. The tool is
# built by `make test` (or `make build/tests/tool_moe_dump`).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
tool=$BUILD/tests/tool_moe_dump
[ -x "$tool" ] || { echo "FAIL: $tool is not built (make $tool)"; exit 1; }
"$PY" -c 'import torch, numpy' || { echo "FAIL: $PY has no torch/numpy (install python3-torch)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
rc=0
cases=("top1 1 0.75" "top2 2 0.75" "topk 3 0.75" "prototype 2 0.75"
       "top1 1 dropless" "top2 2 dropless noise" "topk 3 dropless" "prototype 2 dropless noise")
for c in "${cases[@]}"; do
    # shellcheck disable=SC2086
    line=$("$tool" "$dir/moe.bin" $c) || { echo "FAIL: $tool $c"; exit 1; }
    "$PY" tests/tools/torch_moe.py "$dir/moe.bin" || { echo "FAIL: $c"; rc=1; }
    if [[ "$c" != *dropless* && "$line" == *"dropped 0.000"* ]]; then
        echo "FAIL: $c dropped no token, so it does not test capacity: $line"; rc=1
    fi
done
echo "== perturbed gradient (must be rejected)"
"$tool" "$dir/bad.bin" top2 2 0.75 perturb >/dev/null || { echo "FAIL: $tool perturb"; exit 1; }
if "$PY" tests/tools/torch_moe.py "$dir/bad.bin" >"$dir/bad.log" 2>&1; then
    cat "$dir/bad.log"
    echo "FAIL: the reference check accepted a perturbed gradient"
    rc=1
else
    grep -E '^FAIL' "$dir/bad.log" | head -n 3
    grep -q 'FAIL grad.router_w' "$dir/bad.log" || { echo "FAIL: perturbation not reported"; rc=1; }
    echo "rejected, as it should be"
fi
exit $rc
