#!/usr/bin/env bash
# bench/run.sh: cetus vs PyTorch training throughput on the same machine in the same run.
# For each config, runs bench/bench_train (cetus) and bench/torch_train.py (PyTorch float32,
# its fastest settings here) alternately for a few rounds, pools the timed steps of all
# rounds, and prints the median step time, tokens/s, the ratio cetus/PyTorch and the MFU.
#
# Usage: bench/run.sh [--config small|gpt2|all] [--rounds R] [--steps N] [--warmup N]
#                     [--peak GFLOPS] [--wait-quiet PERCENT]
#   defaults: all configs, 3 rounds; small: 8 timed steps + 2 warmup per run,
#   gpt2: 3 timed steps + 1 warmup per run (a full run takes about 5 minutes here).
#   --wait-quiet PERCENT: for shared machines: before each run, wait (up to 5 minutes) until
#   other processes use less than PERCENT of the cores over 2 seconds. The CPU use of others
#   just before each run is printed either way.
# Environment: BUILD (build dir, default build), PYTHON (default /usr/bin/python3, which has
# torch), LOG_DIR (keeps each run's full output; default a temporary directory).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
configs=all rounds=3 steps="" warmup="" peak="" quiet=
while [ $# -gt 0 ]; do
    case "$1" in
        --config) configs=$2; shift 2;;
        --rounds) rounds=$2; shift 2;;
        --steps) steps=$2; shift 2;;
        --warmup) warmup=$2; shift 2;;
        --peak) peak=$2; shift 2;;
        --wait-quiet) quiet=$2; shift 2;;
        -h|--help) sed -n '2,15p' "$0"; exit 0;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2;;
    esac
done
[ "$configs" = all ] && configs="small gpt2"

bin=$BUILD/bench/bench_train
make -s BUILD="$BUILD" "$bin" "$BUILD/cetus" || { echo "run.sh: could not build $bin" >&2; exit 1; }
[ -n "$peak" ] || peak=$("$BUILD/cetus" peak --gflops) # the machine's measured fp32 peak, all cores
"$PY" -c 'import torch' 2>/dev/null || { echo "run.sh: $PY has no torch" >&2; exit 1; }
logs=${LOG_DIR:-$(mktemp -d)}
mkdir -p "$logs"

source "$(dirname "$0")/lib.sh"
step_times() { grep -a '^timed  step' "$@" | sed 's/.*: *\([0-9.]*\) ms.*/\1/'; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $ncores cores;" \
     "peak $peak GFLOP/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
summary=() summary_rounds=()
for cfg in $configs; do
    ratios=
    case "$cfg" in
        small) s=${steps:-8}; w=${warmup:-2};;
        gpt2) s=${steps:-3}; w=${warmup:-1};;
        *) echo "run.sh: unknown config $cfg (small, gpt2)" >&2; exit 2;;
    esac
    for r in $(seq 1 "$rounds"); do
        wait_quiet
        echo "== $cfg round $r/$rounds: cetus (others used ${cpu}% of the cores)"
        "$bin" --config "$cfg" --steps "$s" --warmup "$w" --peak "$peak" >"$logs/cetus-$cfg-$r.log" 2>&1 \
            || { tail -n 20 "$logs/cetus-$cfg-$r.log"; exit 1; }
        grep -a '^median' "$logs/cetus-$cfg-$r.log"
        wait_quiet
        echo "== $cfg round $r/$rounds: pytorch (others used ${cpu}% of the cores)"
        "${torch_env[@]}" "$PY" bench/torch_train.py --config "$cfg" --steps "$s" --warmup "$w" \
            --threads "$ncores" --peak "$peak" >"$logs/torch-$cfg-$r.log" 2>&1 \
            || { tail -n 20 "$logs/torch-$cfg-$r.log"; exit 1; }
        grep -a '^median' "$logs/torch-$cfg-$r.log"
        ratios+=" $(awk '/^RESULT/ {for (i = 1; i <= NF; i++) if ($i ~ /^step_ms=/) print substr($i, 9)}' \
            "$logs/torch-$cfg-$r.log" "$logs/cetus-$cfg-$r.log" | paste -sd' ' | awk '{printf "%.2f", $1 / $2}')"
    done
    summary_rounds+=("$cfg:$ratios")
    flops=$(grep -a -m1 -o '[0-9.]* GFLOP/token' "$logs/cetus-$cfg-1.log" | cut -d' ' -f1)
    tokens=$(grep -a -m1 -o 'batch [0-9]* x [0-9]*' "$logs/cetus-$cfg-1.log" | awk '{print $2 * $4}')
    c_ms=$(step_times "$logs"/cetus-"$cfg"-*.log | median)
    t_ms=$(step_times "$logs"/torch-"$cfg"-*.log | median)
    c_min=$(step_times "$logs"/cetus-"$cfg"-*.log | sort -g | head -n1)
    t_min=$(step_times "$logs"/torch-"$cfg"-*.log | sort -g | head -n1)
    summary+=("$(awk -v c="$cfg" -v cm="$c_ms" -v tm="$t_ms" -v n="$tokens" -v f="$flops" -v p="$peak" \
        -v k="$((rounds * s))" -v cb="$c_min" -v tb="$t_min" 'BEGIN {
            ct = n / (cm / 1e3); tt = n / (tm / 1e3);
            printf "%-6s %5d %10.1f %10.1f %9.0f %9.0f %7.2f %8.1f%% %8.1f%% %7.2f", c, k, cm, tm, ct, tt,
                   ct / tt, 100 * f * ct / p, 100 * f * tt / p, tb / cb }')")
done

echo
echo "medians over all timed steps of all rounds (logs in $logs):"
printf '%-6s %5s %10s %10s %9s %9s %7s %9s %9s %7s\n' config steps "cetus ms" "torch ms" \
       "cetus t/s" "torch t/s" ratio "cetus MFU" "torch MFU" "ratio*"
for line in "${summary[@]}"; do echo "$line"; done
echo "ratio*: of the fastest step of each (robust to other load on a shared machine)"
echo "ratio cetus/PyTorch of each round's medians: ${summary_rounds[*]}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
