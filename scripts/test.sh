#!/usr/bin/env bash
# scripts/test.sh: the test command. Installs what is missing, builds with -Werror, runs the
# whole suite, then the whole suite again built with AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -j"$(nproc)" all >/dev/null
make --no-print-directory test
make --no-print-directory -j"$(nproc)" san
