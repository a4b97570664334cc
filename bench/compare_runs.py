#!/usr/bin/python3
"""compare_runs.py RUN_A RUN_B [...]: validation-loss curves of training runs side by side,
at equal steps and at equal training wall-clock, read from each run's metrics.jsonl. Time
is step x the run's median step time (evaluation and sampling excluded): on a shared machine
a burst of outside load would otherwise tilt the comparison; the measured sums of step
times are printed too. Also prints each run's median tokens/s."""
import json
import statistics
import sys


def load(run):
    evals, step_time, elapsed, tps, step_s = [], {}, 0.0, [], []
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            if "loss" in m and "step_s" in m:
                elapsed += m["step_s"]
                step_time[m["step"]] = elapsed
                tps.append(m["tokens_per_s"])
                step_s.append(m["step_s"])
            elif "val_loss" in m:
                evals.append((m["step"], step_time.get(m["step"], elapsed), m["val_loss"]))
    median_s = statistics.median(step_s) if step_s else 0.0
    evals = [(step, step * median_s, loss, measured) for step, measured, loss in evals]
    return evals, statistics.median(tps) if tps else 0.0


def at_time(evals, t):
    """Validation loss of the last evaluation made within t seconds of training."""
    best = None
    for step, secs, loss, _ in evals:
        if secs <= t:
            best = loss
    return best


def main(runs):
    data = {r: load(r) for r in runs}
    print("median tokens/s: " + ", ".join(f"{r} {data[r][1]:.0f}" for r in runs))
    print("\nvalidation loss at equal steps")
    print("step    " + "".join(f"{r[-24:]:>26}" for r in runs))
    steps = sorted({s for r in runs for s, _, _, _ in data[r][0]})
    for s in steps:
        row = [next((f"{l:.4f} ({m:.0f}s)" for st, _, l, m in data[r][0] if st == s), "-") for r in runs]
        print(f"{s:<8}" + "".join(f"{v:>26}" for v in row))
    print("(in brackets: measured seconds of steps before that evaluation)")
    horizon = min(max(t for _, t, _, _ in data[r][0]) for r in runs if data[r][0])
    print("\nvalidation loss at equal training time (step x median step time)")
    print("seconds " + "".join(f"{r[-24:]:>26}" for r in runs))
    for frac in (0.125, 0.25, 0.5, 0.75, 1.0):
        t = horizon * frac
        row = [at_time(data[r][0], t) for r in runs]
        print(f"{t:<8.0f}" + "".join(f"{'-' if v is None else f'{v:.4f}':>26}" for v in row))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: compare_runs.py RUN_A RUN_B [...]")
    main(sys.argv[1:])
