#!/usr/bin/python3
"""compare_runs.py RUN_A RUN_B [...]: validation-loss curves of training runs side by side,
at equal steps and at equal training wall-clock (the sum of step times before each
evaluation, so evaluation and sampling time do not count), read from each run's
metrics.jsonl. Also prints each run's median tokens/s."""
import json
import statistics
import sys


def load(run):
    evals, step_time, elapsed, tps = [], {}, 0.0, []
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            m = json.loads(line)
            if "loss" in m and "step_s" in m:
                elapsed += m["step_s"]
                step_time[m["step"]] = elapsed
                tps.append(m["tokens_per_s"])
            elif "val_loss" in m:
                evals.append((m["step"], step_time.get(m["step"], elapsed), m["val_loss"]))
    return evals, statistics.median(tps) if tps else 0.0


def at_time(evals, t):
    """Validation loss of the last evaluation made within t seconds of training."""
    best = None
    for step, secs, loss in evals:
        if secs <= t:
            best = loss
    return best


def main(runs):
    data = {r: load(r) for r in runs}
    print("median tokens/s: " + ", ".join(f"{r} {data[r][1]:.0f}" for r in runs))
    print("\nvalidation loss at equal steps")
    print("step    " + "".join(f"{r[-24:]:>26}" for r in runs))
    steps = sorted({s for r in runs for s, _, _ in data[r][0]})
    for s in steps:
        row = [next((l for st, _, l in data[r][0] if st == s), None) for r in runs]
        print(f"{s:<8}" + "".join(f"{'-' if v is None else f'{v:.4f}':>26}" for v in row))
    horizon = min(max(t for _, t, _ in data[r][0]) for r in runs if data[r][0])
    print("\nvalidation loss at equal training time (seconds of steps)")
    print("seconds " + "".join(f"{r[-24:]:>26}" for r in runs))
    for frac in (0.125, 0.25, 0.5, 0.75, 1.0):
        t = horizon * frac
        row = [at_time(data[r][0], t) for r in runs]
        print(f"{t:<8.0f}" + "".join(f"{'-' if v is None else f'{v:.4f}':>26}" for v in row))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: compare_runs.py RUN_A RUN_B [...]")
    main(sys.argv[1:])
