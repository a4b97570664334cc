#!/usr/bin/env bash
# t_safetensors_python.sh: cetus's safetensors files are readable by the format's
# specification alone. The layout checked here (8-byte little-endian header length, JSON
# header padded to 8 bytes, F32 data contiguous in header order) is the one Hugging Face's
# `safetensors` library reads; that package is not installed here, so
# tests/tools/safetensors_check.py reads the files with json + numpy and loads them into torch.
# It also writes files the way other writers do and checks that cetus reads them.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
work=$(mktemp -d /tmp/cetus_st_py_XXXXXX)
trap 'rm -rf "$work"' EXIT

# the library's own compile and link flags, from the Makefile (defaults, no sanitizers)
vars=$(env -u MAKEFLAGS -u MAKELEVEL make -s --no-print-directory -f Makefile -f - _st_vars <<'MK'
_st_vars: ; @echo "$(CC)"; echo "$(CFLAGS)"; echo "$(LDLIBS)"
MK
)
cc=$(sed -n 1p <<<"$vars")
cflags=$(sed -n 2p <<<"$vars" | sed 's/-MMD//; s/-MP//')
ldlibs=$(sed -n 3p <<<"$vars")
# shellcheck disable=SC2086
$cc $cflags -o "$work/st_write_sample" tests/tools/st_write_sample.c src/train/safetensors.c \
    src/train/checkpoint.c src/core/*.c $ldlibs

"$work/st_write_sample" write "$work"
$PY tests/tools/safetensors_check.py check "$work"

$PY tests/tools/safetensors_check.py foreign "$work"
for f in "$work"/foreign_*.safetensors; do
    "$work/st_write_sample" dump "$f" >"$f.got"
    diff -u "$f.expected" "$f.got"
done

# a file the reader must refuse is refused by the dump too (the test can fail)
head -c 100 "$work/sample.safetensors" >"$work/cut.safetensors"
if "$work/st_write_sample" dump "$work/cut.safetensors" 2>"$work/err"; then
    echo "a truncated file was accepted"; exit 1
fi
grep -q "cut.safetensors" "$work/err"
echo "t_safetensors_python: ok"
