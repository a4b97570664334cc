#!/usr/bin/env bash
# bench/run_speed.sh: the speed targets, both frameworks and both precisions in one run. For
# each config, each round runs in turn: cetus fp32, cetus bf16 (train.precision = bf16),
# PyTorch fp32 and PyTorch bf16 autocast (bench/torch_train.py, its fastest settings here; no
# PyTorch model of the MoE config: bench/run_moe.sh compares the MoE layer alone); pools the
# timed steps of all rounds and prints median tokens/s, the ratios the targets are about, MFU
# (fp32 against the measured fp32 peak, bf16 against the measured bf16 peak: the faster of
# AVX512_BF16 and AMX) and the peak resident memory. First it prints the machine, the peaks
# and the product library chosen for each shape class.
#
# Usage: bench/run_speed.sh [--config small|gpt2|gpt2_1k|moe|all] [--rounds R] [--steps N]
#                           [--warmup N] [--wait-quiet PERCENT] [--no-torch]
#   defaults: all configs, 2 rounds; steps: small and moe 6 timed + 2 warmup, gpt2 3 + 1,
#   gpt2_1k 2 + 1 (a full run takes about 15 minutes on 2 cores).
# Environment: BUILD (default build), PYTHON (default /usr/bin/python3, which has torch),
# LOG_DIR (keeps each run's output; default a temporary directory).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
configs=all rounds=2 steps="" warmup="" quiet="" torch=1
while [ $# -gt 0 ]; do
    case "$1" in
        --config) configs=$2; shift 2;;
        --rounds) rounds=$2; shift 2;;
        --steps) steps=$2; shift 2;;
        --warmup) warmup=$2; shift 2;;
        --wait-quiet) quiet=$2; shift 2;;
        --no-torch) torch=0; shift;;
        -h|--help) sed -n '2,17p' "$0"; exit 0;;
        *) echo "run_speed.sh: unknown argument $1" >&2; exit 2;;
    esac
done
[ "$configs" = all ] && configs="small moe gpt2 gpt2_1k"
bin=$BUILD/bench/bench_train
make -s BUILD="$BUILD" "$bin" "$BUILD/cetus" || { echo "run_speed.sh: could not build $bin" >&2; exit 1; }
[ "$torch" = 0 ] || "$PY" -c 'import torch' 2>/dev/null || { echo "run_speed.sh: $PY has no torch" >&2; exit 1; }
logs=${LOG_DIR:-$(mktemp -d)}
mkdir -p "$logs"
source "$(dirname "$0")/lib.sh"

fp32=$("$BUILD/cetus" peak --gflops)
bf16=$("$BUILD/cetus" peak | awk '/^bf16 / {print $2}')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), family" \
     "$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model" \
     "$(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), $ncores cores"
"$BUILD/cetus" peak --gemm | sed 's/^/  /'
field() { awk -v k="$1" '/^RESULT/ {for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' "${@:2}"; }
step_ms() { grep -a '^timed  step' "$@" | sed 's/.*: *\([0-9.]*\) ms.*/\1/' | median; }

rows=()
for cfg in $configs; do
    case "$cfg" in
        small|moe) s=${steps:-6}; w=${warmup:-2};;
        gpt2) s=${steps:-3}; w=${warmup:-1};;
        gpt2_1k) s=${steps:-2}; w=${warmup:-1};;
        *) echo "run_speed.sh: unknown config $cfg" >&2; exit 2;;
    esac
    for r in $(seq 1 "$rounds"); do
        for p in fp32 bf16; do
            wait_quiet
            echo "== $cfg round $r/$rounds: cetus $p (others used ${cpu}% of the cores)"
            "$bin" --config "$cfg" --steps "$s" --warmup "$w" --precision "$p" >"$logs/cetus-$p-$cfg-$r.log" 2>&1 \
                || { tail -n 20 "$logs/cetus-$p-$cfg-$r.log"; exit 1; }
            grep -a '^median' "$logs/cetus-$p-$cfg-$r.log"
        done
        [ "$torch" = 1 ] && [ "$cfg" != moe ] || continue
        for p in fp32 bf16; do
            flag=""; [ "$p" = bf16 ] && flag=--bf16
            wait_quiet
            echo "== $cfg round $r/$rounds: pytorch $p (others used ${cpu}% of the cores)"
            "${torch_env[@]}" "$PY" bench/torch_train.py --config "$cfg" --steps "$s" --warmup "$w" \
                --threads "$ncores" $flag >"$logs/torch-$p-$cfg-$r.log" 2>&1 \
                || { tail -n 20 "$logs/torch-$p-$cfg-$r.log"; exit 1; }
            grep -a '^median' "$logs/torch-$p-$cfg-$r.log"
        done
    done
    tokens=$(grep -a -m1 -o 'batch [0-9]* x [0-9]*' "$logs/cetus-fp32-$cfg-1.log" | awk '{print $2 * $4}')
    flops=$(grep -a -m1 -o '[0-9.]* GFLOP/token' "$logs/cetus-fp32-$cfg-1.log" | cut -d' ' -f1)
    ms() { local f=("$logs"/"$1"-"$cfg"-*.log); [ -e "${f[0]}" ] && step_ms "${f[@]}" || echo nan; }
    rss() { local f=("$logs"/"$1"-"$cfg"-*.log); [ -e "${f[0]}" ] && field peak_rss_mb "${f[@]}" | sort -g | tail -n1 || echo nan; }
    rows+=("$(awk -v c="$cfg" -v n="$tokens" -v f="$flops" -v pf="$fp32" -v pb="$bf16" \
        -v cf="$(ms cetus-fp32)" -v cb="$(ms cetus-bf16)" -v tf="$(ms torch-fp32)" -v tb="$(ms torch-bf16)" \
        -v rf="$(rss cetus-fp32)" -v rb="$(rss cetus-bf16)" -v rt="$(rss torch-fp32)" 'BEGIN {
        t_cf = n / (cf / 1e3); t_cb = n / (cb / 1e3); t_tf = n / (tf / 1e3); t_tb = n / (tb / 1e3);
        printf "%-8s %8.0f %8.0f %8.0f %8.0f %9.2f %9.2f %9.2f %7.1f%% %7.1f%% %6.0f %6.0f %6s\n", c, t_cf, t_cb,
               t_tf, t_tb, t_cf / t_tf, t_cb / t_cf, t_cb / t_tb, 100 * f * t_cf / pf, 100 * f * t_cb / pb,
               rf, rb, rt }')")
done
echo
echo "medians over all timed steps of all rounds, tokens/s (logs in $logs); peaks fp32 $fp32, bf16 $bf16 GFLOP/s"
printf '%-8s %8s %8s %8s %8s %9s %9s %9s %8s %8s %6s %6s %6s\n' config "c fp32" "c bf16" "t fp32" "t bf16" \
    "cf/tf" "cb/cf" "cb/tb" "MFU c32" "MFU c16" "MiB32" "MiB16" "MiBt32"
for line in "${rows[@]}"; do echo "$line"; done
echo "c: cetus, t: PyTorch; MiB: peak resident memory of the process (largest over the rounds)"
