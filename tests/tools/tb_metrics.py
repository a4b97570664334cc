"""tb_metrics.py: compares the scalars of a run's TensorBoard events, as tb_read.js prints
them ("STEP TAG VALUE" lines), with the run's metrics.jsonl, for t_tensorboard.sh.

    python3 tests/tools/tb_metrics.py METRICS_JSONL EVENTS_TXT [--subset]

Every figure of metrics.jsonl that the event log carries is mapped to its tag (loss ->
train/loss, val_loss -> val/loss, mfu -> perf/mfu, the MoE list -> moe/layerL/..., the
closing memory line -> memory/rankR/..., ...). A resumed run writes repeated steps' lines
to metrics.jsonl again; an event value must equal one of its (tag, step)'s lines, within
the rounding of the number as printed in the JSON plus float32's. Without --subset both
sides must hold the same (tag, step) pairs; with it (a log with a damaged file, whose steps
after the damage are lost) every event must be in metrics.jsonl. Exit 0 when all agree.
"""
import json
import math
import sys
from decimal import Decimal

STEP_KEYS = {"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm",
             "caption_loss": "train/caption_loss", "text_loss": "train/text_loss",
             "tokens_per_s": "perf/tokens_per_s", "mfu": "perf/mfu", "step_s": "perf/step_s",
             "acts_mb": "memory/acts_mb", "compute_peak_mb": "memory/compute_peak_mb",
             "host_mb": "memory/host_mb", "peak_rss_mb": "memory/peak_rss_mb"}
VAL_KEYS = {"val_loss": "val/loss", "val_loss_full": "val/loss_full", "val_caption_loss": "val/caption_loss",
            "val_token_acc": "val/token_acc", "val_exact_match": "val/exact_match"}


def expected(path):
    """{(tag, step): [raw numbers as printed]} from metrics.jsonl."""
    want = {}

    def add(tag, step, raw):
        want.setdefault((tag, step), []).append(raw)

    for line in open(path):
        m = json.loads(line, parse_float=str, parse_int=str)
        step = int(m["step"])
        if m.get("event") == "memory":
            for r in m["ranks"]:
                for k in ("compute_peak_mb", "peak_rss_mb"):
                    add(f"memory/rank{r['rank']}/{k}", step, r[k])
        elif "loss" in m:
            for k, tag in STEP_KEYS.items():
                if k in m and not (k.endswith("_loss") and k != "loss" and m[k] is None):
                    add(tag, step, m[k])
            if "moe" in m:
                add("moe/aux_loss", step, m["aux_loss"])
                for layer in m["moe"]:
                    for k in ("aux", "z", "dropped"):
                        add(f"moe/layer{layer['layer']}/{k}", step, layer[k])
                    for e, load in enumerate(layer["load"]):
                        add(f"moe/layer{layer['layer']}/load/{e}", step, load)
        for k, tag in VAL_KEYS.items():
            if k in m:
                add(tag, step, m[k])
        if "val_bpb" in m:
            add("val/bpb_full" if "val_loss_full" in m else "val/bpb", step, m["val_bpb"])
    return want


def agrees(raw, value):
    if raw is None:  # JSON has no NaN: a non-finite figure is null
        return not math.isfinite(value)
    d = Decimal(raw)
    tol = 0.5 * 10.0 ** d.as_tuple().exponent + 1.2e-7 * abs(float(d))
    return abs(float(d) - value) <= tol


def main():
    metrics, events = sys.argv[1], sys.argv[2]
    subset = "--subset" in sys.argv[3:]
    want = expected(metrics)
    got = {}
    for line in open(events):
        step, tag, value = line.split()
        got[(tag, int(step))] = float(value)
    bad = [f"{t} at step {s}: event {v}, metrics.jsonl {want.get((t, s))}"
           for (t, s), v in got.items() if not any(agrees(r, v) for r in want.get((t, s), []))]
    if not subset:
        bad += [f"{t} at step {s}: in metrics.jsonl only" for (t, s) in want if (t, s) not in got]
    for b in bad[:20]:
        print("tb_metrics: " + b, file=sys.stderr)
    steps = len({s for _, s in got})
    print(f"{len(got)} event values over {steps} steps against {len(want)} in metrics.jsonl: "
          f"{len(bad)} disagree")
    sys.exit(1 if bad else 0)


main()
