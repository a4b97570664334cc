#!/usr/bin/env bash
# bench/run_moe.sh: cetus vs PyTorch on the Mixture-of-Experts layer alone (forward +
# backward), and on the dense MLP of the same active FLOPs, on the same machine in the same
# run. For each mode (capacity factor 1.25, dropless), runs build/bench/bench_moe (cetus) and
# bench/torch_moe.py (PyTorch float32, its fastest settings here) alternately for a few
# rounds, pools the timed calls of all rounds, and prints the median time per call,
# tokens/s, GFLOP/s of active FLOPs and the ratio cetus/PyTorch, for the MoE layer and for
# the dense layer (pooled over the modes: it is the same layer).
#
# Usage: bench/run_moe.sh [--mode capacity|dropless|all] [--dropless] [--capacity CF]
#                         [--rounds R] [--calls N] [--warmup N] [--tokens N]
#                         [--peak GFLOPS] [--wait-quiet PERCENT] [--no-check]
#   defaults: both modes, 3 rounds, 10 timed calls + 3 warmup per run, 4096 tokens per call,
#   capacity factor 1.25 (a full run takes about 3-4 minutes here). --dropless = --mode dropless.
#   Layer config: 8 experts, top-2 (gates renormalised), d 384, ffn 1536, aux 0.01, z 0.001.
#   --wait-quiet PERCENT: for shared machines: before each run, wait (up to 5 minutes) until
#   other processes use less than PERCENT of the cores over 2 seconds. The CPU use of others
#   just before each run is printed either way.
#   First, unless --no-check, both layers are run once on the same small input and weights
#   (bench_moe --dump, torch_moe.py --check) to show they compute the same thing.
# Environment: BUILD (build dir, default build), PYTHON (default /usr/bin/python3, which has
# torch), LOG_DIR (keeps each run's full output; default a temporary directory).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
modes=all rounds=3 calls=10 warmup=3 tokens=4096 cf=1.25 peak=230 quiet='' docheck=1
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) modes=$2; shift 2;;
        --dropless) modes=dropless; shift;;
        --capacity) cf=$2; shift 2;;
        --rounds) rounds=$2; shift 2;;
        --calls) calls=$2; shift 2;;
        --warmup) warmup=$2; shift 2;;
        --tokens) tokens=$2; shift 2;;
        --peak) peak=$2; shift 2;;
        --wait-quiet) quiet=$2; shift 2;;
        --no-check) docheck=0; shift;;
        -h|--help) sed -n '2,23p' "$0"; exit 0;;
        *) echo "run_moe.sh: unknown argument $1" >&2; exit 2;;
    esac
done
[ "$modes" = all ] && modes="capacity dropless"

bin=$BUILD/bench/bench_moe
make -s BUILD="$BUILD" "$bin" || { echo "run_moe.sh: could not build $bin" >&2; exit 1; }
"$PY" -c 'import torch, numpy' 2>/dev/null || { echo "run_moe.sh: $PY has no torch/numpy" >&2; exit 1; }
logs=${LOG_DIR:-$(mktemp -d)}
mkdir -p "$logs"

source "$(dirname "$0")/lib.sh"
# call_times LAYER FILES...: the ms of every timed call of that layer
call_times() { local l=$1; shift; grep -ah "^timed  $l call" "$@" | sed 's/.*: *\([0-9.]*\) ms.*/\1/'; }
# field KEY LAYER FILE: a value from the file's RESULT line for that layer
field() { awk -v k="$1" -v l="layer=$2" '/^RESULT/ && $0 ~ l" " {for (i = 1; i <= NF; i++)
          if (index($i, k "=") == 1) print substr($i, length(k) + 2)}' "$3"; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $ncores cores;" \
     "peak $peak GFLOP/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$docheck" = 1 ]; then
    echo "== agreement check (64 tokens, the same weights and inputs; capacity factor 0.75 and dropless)"
    for opt in "--capacity 0.75" "--dropless"; do
        # shellcheck disable=SC2086
        if ! "$bin" --tokens 64 $opt --dump "$logs/check.bin" >"$logs/check.log" 2>&1 ||
           ! "${torch_env[@]}" "$PY" bench/torch_moe.py --check "$logs/check.bin" >>"$logs/check.log" 2>&1; then
            cat "$logs/check.log"; echo "run_moe.sh: cetus and PyTorch disagree" >&2; exit 1
        fi
        grep -a -E '^(check|max relative|agreement)' "$logs/check.log" | sed 's/^/  /'
    done
fi

common=(--calls "$calls" --warmup "$warmup" --tokens "$tokens" --peak "$peak")
summary=() per_round=()
for mode in $modes; do
    case "$mode" in
        capacity) mflags=(--capacity "$cf");;
        dropless) mflags=(--dropless);;
        *) echo "run_moe.sh: unknown mode $mode (capacity, dropless)" >&2; exit 2;;
    esac
    rr_moe='' rr_dense=''
    for r in $(seq 1 "$rounds"); do
        wait_quiet
        echo "== $mode round $r/$rounds: cetus (others used ${cpu}% of the cores)"
        "$bin" "${mflags[@]}" "${common[@]}" >"$logs/cetus-$mode-$r.log" 2>&1 \
            || { tail -n 20 "$logs/cetus-$mode-$r.log"; exit 1; }
        grep -a '^median' "$logs/cetus-$mode-$r.log"
        wait_quiet
        echo "== $mode round $r/$rounds: pytorch (others used ${cpu}% of the cores)"
        "${torch_env[@]}" "$PY" bench/torch_moe.py "${mflags[@]}" "${common[@]}" --threads "$ncores" \
            >"$logs/torch-$mode-$r.log" 2>&1 || { tail -n 20 "$logs/torch-$mode-$r.log"; exit 1; }
        grep -a '^median' "$logs/torch-$mode-$r.log"
        for l in moe dense; do
            ratio=$(awk -v t="$(field call_ms $l "$logs/torch-$mode-$r.log")" \
                        -v c="$(field call_ms $l "$logs/cetus-$mode-$r.log")" 'BEGIN {printf "%.2f", t / c}')
            if [ $l = moe ]; then rr_moe+=" $ratio"; else rr_dense+=" $ratio"; fi
        done
    done
    per_round+=("moe-$mode:$rr_moe" "dense($mode runs):$rr_dense")
done

# line LABEL LAYER FLOP/token FILES-cetus... -- FILES-torch...
line() {
    local label=$1 layer=$2 flops=$3; shift 3
    local cfiles=() tfiles=() side=c
    for f in "$@"; do
        if [ "$f" = -- ]; then side=t; elif [ $side = c ]; then cfiles+=("$f"); else tfiles+=("$f"); fi
    done
    local cm tm cb tb n
    cm=$(call_times "$layer" "${cfiles[@]}" | median); tm=$(call_times "$layer" "${tfiles[@]}" | median)
    cb=$(call_times "$layer" "${cfiles[@]}" | sort -g | head -n1)
    tb=$(call_times "$layer" "${tfiles[@]}" | sort -g | head -n1)
    n=$(call_times "$layer" "${cfiles[@]}" | wc -l)
    awk -v lb="$label" -v cm="$cm" -v tm="$tm" -v n="$tokens" -v f="$flops" -v k="$n" \
        -v cb="$cb" -v tb="$tb" 'BEGIN {
            ct = n / (cm / 1e3); tt = n / (tm / 1e3);
            printf "%-18s %5d %9.1f %9.1f %9.0f %9.0f %7.2f %8.1f %8.1f %7.2f", lb, k, cm, tm, ct, tt,
                   ct / tt, f * ct * 1e-9, f * tt * 1e-9, tb / cb }'
}
first_log=$logs/cetus-${modes%% *}-1.log
moe_flops=$(grep -a -m1 -o '[0-9.]* GFLOP/token (fwd+bwd, active)' "$first_log" | awk '{print $1 * 1e9}')
dense_flops=$(grep -a -m1 -o '[0-9.]* GFLOP/token (fwd+bwd)$' "$first_log" | awk '{print $1 * 1e9}')
for mode in $modes; do
    drop_c=$(for f in "$logs"/cetus-"$mode"-*.log; do field dropped moe "$f"; done | median)
    drop_t=$(for f in "$logs"/torch-"$mode"-*.log; do field dropped moe "$f"; done | median)
    label="moe $mode"; [ "$mode" = capacity ] && label="moe capacity $cf"
    summary+=("$(line "$label" moe "$moe_flops" "$logs"/cetus-"$mode"-*.log -- "$logs"/torch-"$mode"-*.log)   dropped $drop_c / $drop_t")
done
cl=() tl=()
for mode in $modes; do cl+=("$logs"/cetus-"$mode"-*.log); tl+=("$logs"/torch-"$mode"-*.log); done
summary+=("$(line "dense (k x ffn)" dense "$dense_flops" "${cl[@]}" -- "${tl[@]}")")

echo
echo "medians over all timed calls of all rounds, $tokens tokens per call, forward + backward (logs in $logs):"
printf '%-18s %5s %9s %9s %9s %9s %7s %8s %8s %7s\n' layer calls "cetus ms" "torch ms" \
       "cetus t/s" "torch t/s" ratio "cetus GF" "torch GF" "ratio*"
for l in "${summary[@]}"; do echo "$l"; done
echo "GF: GFLOP/s of active FLOPs (MoE: router + k experts per token, dropped ones included);"
echo "ratio: cetus/PyTorch tokens/s; ratio*: of the fastest call of each (robust to other load);"
echo "dropped: mean fraction of assignments dropped by the capacity, cetus / PyTorch"
echo "ratio cetus/PyTorch of each round's medians: ${per_round[*]}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
