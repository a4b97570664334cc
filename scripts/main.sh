#!/usr/bin/env bash
# scripts/main.sh: the main job. Installs what is missing, builds, tokenizes the bundled
# corpus (the Python documentation sources from Debian's python3.11-doc) and trains the
# default model on it (about 10 minutes on 2 cores), printing samples as it learns.
# Extra arguments go to `cetus train` (e.g. train.steps=100).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -j"$(nproc)" build/cetus >/dev/null
[ -f data/pydocs/meta.json ] || ./build/cetus prepare
./build/cetus train "$@"
./build/cetus eval --ckpt runs/default
