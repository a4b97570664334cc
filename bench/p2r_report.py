"""p2r_report.py: reads the runs of bench/run_p2r.sh (run dirs with metrics.jsonl and logs)
and reports, for each, the compute (model FLOPs) and the training wall clock it took to reach
the scratch run's final validation loss, against scratch; optionally plots every run's
validation loss against compute (PNG) and writes the figures as JSON.

usage: p2r_report.py [--best] [--plot PNG] [--json OUT] DIR SCRATCH RUN...
       p2r_report.py --memory DIR REAL PSEUDO
  --best    print only the name of the run that needs the least compute to the target (if
            none reaches it: the one with the lowest final validation loss)
  --memory  the parameters, checkpoint bytes and memory peaks of two short runs
"""
import argparse
import glob
import json
import os
import re


def load(root, name):
    """Per evaluation: (step, val_loss, compute in FLOPs, summed step seconds)."""
    rows = [json.loads(line) for line in open(f"{root}/{name}/metrics.jsonl")]
    tokens = None
    phases, steps, evals = [], {}, []  # phases: (first step, flops per token)
    for r in rows:
        if r.get("event") == "start":
            phases.append((r["step"], r["flops_per_token"]))
        elif "val_loss" in r:
            evals.append((r["step"], r["val_loss"]))
        elif "step_s" in r:
            steps[r["step"]] = r["step_s"]
    log = open(f"{root}/{name}.log").read()
    m = re.search(r"training: \d+ steps of (\d+) x (\d+) tokens x (\d+) accumulation", log)
    tokens = int(m.group(1)) * int(m.group(2)) * int(m.group(3))
    switch = re.search(r"delink: .* in ([0-9.]+)s", log)

    def flops_per_token(step):  # of the step that ends at `step`
        return [f for first, f in phases if first < step][-1]

    out, compute, wall, done = [], 0.0, 0.0, 0
    for step, loss in evals:
        while done < step:
            done += 1
            compute += flops_per_token(done) * tokens
            wall += steps[done]
        out.append((step, loss, compute, wall))
    return {"name": name, "evals": out, "switch_s": float(switch.group(1)) if switch else 0.0,
            "phases": phases}


def reach(run, target):
    """Linear interpolation between the evaluations around the first one at or below target."""
    prev = None
    for e in run["evals"]:
        if e[1] <= target:
            if prev is None or prev[1] == e[1]:
                return e[0], e[2], e[3]
            f = (prev[1] - target) / (prev[1] - e[1])
            return tuple(prev[i] + f * (e[i] - prev[i]) for i in (0, 2, 3))  # step, compute, wall
        prev = e
    return None


def memory(root, names):
    """Parameters, checkpoint files and peaks of the real and the pseudo run."""
    out = {}
    for name in names:
        rows = [json.loads(line) for line in open(f"{root}/{name}/metrics.jsonl")]
        start = [r for r in rows if r.get("event") == "start"][0]
        steps = [r for r in rows if "step_s" in r]
        ckpt = sorted(glob.glob(f"{root}/{name}/ckpt/step_*"))[-1]
        out[name] = {"params": start["params"],
                     "model_bytes": os.path.getsize(f"{ckpt}/model.safetensors"),
                     "optimizer_bytes": os.path.getsize(f"{ckpt}/optimizer.safetensors"),
                     "compute_peak_mb": max(r["compute_peak_mb"] for r in steps),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in steps)}
    real, pseudo = (out[n] for n in names)
    print(f"{'':<22} {'real':>12} {'pseudo':>12} {'ratio':>7}")
    for key, unit, div in (("params", "M", 1e6), ("model_bytes", "MB", 1e6), ("optimizer_bytes", "MB", 1e6),
                           ("compute_peak_mb", "MiB", 1), ("peak_rss_mb", "MiB", 1)):
        print(f"{key + ' (' + unit + ')':<22} {real[key] / div:>12.1f} {pseudo[key] / div:>12.1f} "
              f"{pseudo[key] / real[key]:>7.3f}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--best", action="store_true")
    ap.add_argument("--plot")
    ap.add_argument("--json")
    ap.add_argument("root")
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    if a.memory:
        figures = memory(a.root, a.runs)
        if a.json:
            json.dump(figures, open(a.json, "w"), indent=1)
        return
    runs = [load(a.root, n) for n in a.runs]
    scratch = runs[0]
    target = scratch["evals"][-1][1]
    rows = []
    for r in runs:
        hit = reach(r, target)
        rows.append({"run": r["name"], "final_val_loss": r["evals"][-1][1],
                     "steps_to_target": hit[0] if hit else None,
                     "compute_to_target": hit[1] if hit else None,
                     "wall_to_target_s": hit[2] + (r["switch_s"] if hit else 0.0) if hit else None,
                     "switch_s": r["switch_s"]})
    base = rows[0]
    for r, row in zip(runs, rows):  # and the other way: scratch's compute to each run's final loss
        hit = reach(scratch, r["evals"][-1][1])
        row["scratch_compute_to_final"] = hit[1] if hit else None
    for row in rows:
        ok = row["compute_to_target"] is not None
        row["compute_ratio"] = row["compute_to_target"] / base["compute_to_target"] if ok else None
        row["wall_ratio"] = row["wall_to_target_s"] / base["wall_to_target_s"] if ok else None
    if a.best:  # the least compute to the target; if none reaches it, the lowest final loss
        reached = [r for r in rows[1:] if r["compute_to_target"] is not None]
        best = min(reached, key=lambda r: r["compute_to_target"]) if reached else \
            min(rows[1:], key=lambda r: r["final_val_loss"])
        print(best["run"])
        return
    print(f"target: the scratch run's final validation loss {target:.4f}")
    total = scratch["evals"][-1][2]
    for row in rows[1:]:
        if row["scratch_compute_to_final"] is not None:
            print(f"{row['run']}: its final loss {row['final_val_loss']:.4f} took scratch "
                  f"{row['scratch_compute_to_final'] / total:.3f} of the compute budget")
    print(f"{'run':<16} {'final val':>9} {'steps':>7} {'TFLOP':>8} {'vs scratch':>10} {'seconds':>8} "
          f"{'vs scratch':>10} {'switch s':>8}")
    for row in rows:
        if row["compute_to_target"] is None:
            print(f"{row['run']:<16} {row['final_val_loss']:>9.4f} {'not reached':>7}")
            continue
        print(f"{row['run']:<16} {row['final_val_loss']:>9.4f} {row['steps_to_target']:>7.0f} "
              f"{row['compute_to_target'] / 1e12:>8.2f} {row['compute_ratio']:>10.3f} "
              f"{row['wall_to_target_s']:>8.1f} {row['wall_ratio']:>10.3f} {row['switch_s']:>8.1f}")
    if a.json:
        json.dump({"target": target, "runs": rows,
                   "curves": {r["name"]: r["evals"] for r in runs}}, open(a.json, "w"), indent=1)
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for r in runs:
            xs = [e[2] / 1e12 for e in r["evals"]]
            ys = [e[1] for e in r["evals"]]
            ax.plot(xs, ys, marker=".", label=r["name"], linewidth=2.2 if r is scratch else 1.3)
            for first, _ in r["phases"][1:]:
                sw = [e for e in r["evals"] if e[0] == first]
                if sw:
                    ax.axvline(sw[0][2] / 1e12, color=ax.lines[-1].get_color(), linestyle=":", linewidth=0.8)
        ax.axhline(target, color="gray", linestyle="--", linewidth=0.8, label="scratch final")
        ax.set_xlabel("training compute (TFLOP, model FLOPs)")
        ax.set_ylabel("validation loss")
        ax.set_title("Pseudo-to-Real vs from scratch (dotted: the switch)")
        ax.set_ylim(top=min(ax.get_ylim()[1], target + 2.0))
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.plot)
        print(f"plot: {a.plot}")


if __name__ == "__main__":
    main()
