"""torch_train.py: the PyTorch side of bench/bench_train.c: the same GPT-2 (tests/tools/torch_gpt.py,
fused formulation, float32), the same training step (zero_grad, forward, backward,
global-norm clipping to 1.0, AdamW lr 3e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1
on the 2-D tensors) on random tokens; a few warmup steps, then N timed steps; prints the
median step time, tokens/s and MFU with the same FLOP count as cetus.

Run it with its fastest settings on this machine (bench/run.sh does):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_PROC_BIND=close \
  OMP_PLACES=cores /usr/bin/python3 bench/torch_train.py --config small --threads 2

Usage: torch_train.py [--config small|gpt2|gpt2_1k] [--steps N] [--warmup N] [--batch B]
                      [--seq T] [--threads N] [--peak GFLOPS] [--foreach 0|1] [--bf16]
  --bf16: the forward under torch.autocast("cpu", dtype=torch.bfloat16) (its matmuls in bf16,
  float32 master weights and optimizer), PyTorch's mixed precision on a CPU.
The last line is machine-readable: RESULT impl=torch config=NAME steps=N step_ms=.. ...
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
import torch_gpt  # noqa: E402

CONFIGS = {  # n_layer, d_model, n_head, seq_len (position table), vocab; T, B
    "small": ((6, 384, 6, 256, 8192), 256, 4),
    "gpt2": ((12, 768, 12, 1024, 50257), 256, 4),
    "gpt2_1k": ((12, 768, 12, 1024, 50257), 1024, 4),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--seq", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak", type=float, default=230.0)
    ap.add_argument("--foreach", type=int, default=0,
                    help="multi-tensor AdamW (slower here, so off by default)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    (L, C, H, S, V), T, B = CONFIGS[a.config]
    T, B = a.seq or T, a.batch or B
    cfg = torch_gpt.GPTConfig(L, C, H, max(S, T), V)
    model = torch_gpt.GPT(cfg, dtype=torch.float32, fused=True, seed=1337)
    params = model.parameters()
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=3e-4, betas=(0.9, 0.95), eps=1e-8,
                            foreach=bool(a.foreach))
    flops_tok = model.flops_per_token(T)
    n_params = sum(p.numel() for p in params)
    print(f"config {a.config}: {L} layers, d {C}, {H} heads, vocab {V}, batch {B} x {T}; "
          f"{n_params / 1e6:.2f}M parameters; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; {flops_tok * 1e-9:.3f} GFLOP/token; peak {a.peak:.0f} GFLOP/s", flush=True)

    gen = torch.Generator().manual_seed(0)
    times = {"step": [], "fwd": [], "bwd": [], "opt": []}
    for s in range(a.warmup + a.steps):
        stream = torch.randint(0, V, (B * T + 1,), generator=gen)
        tokens, targets = stream[:-1].view(B, T), stream[1:].view(B, T)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            _, loss = model.forward(tokens, targets)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        t3 = time.perf_counter()
        warm = s < a.warmup
        print(f"{'warmup' if warm else 'timed '} step {(s if warm else s - a.warmup) + 1:2d}: "
              f"{1e3 * (t3 - t0):8.1f} ms (forward {1e3 * (t1 - t0):.1f}, backward {1e3 * (t2 - t1):.1f}, "
              f"adamw {1e3 * (t3 - t2):.1f})  loss {loss.item():.4f}  norm {norm.item():.3f}", flush=True)
        if not warm:
            for k, v in (("step", t3 - t0), ("fwd", t1 - t0), ("bwd", t2 - t1), ("opt", t3 - t2)):
                times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    tps = B * T / med["step"]
    mfu = flops_tok * tps / (a.peak * 1e9)
    print(f"median of {a.steps} steps: {1e3 * med['step']:.1f} ms/step (forward {1e3 * med['fwd']:.1f}, "
          f"backward {1e3 * med['bwd']:.1f}, adamw {1e3 * med['opt']:.1f}), {tps:.0f} tokens/s, "
          f"{flops_tok * tps * 1e-9:.1f} GFLOP/s, MFU {100 * mfu:.1f}%")
    print(f"RESULT impl=torch config={a.config} precision={'bf16' if a.bf16 else 'fp32'} steps={a.steps} step_ms={1e3 * med['step']:.2f} "
          f"tokens_per_s={tps:.1f} mfu={mfu:.4f} fwd_ms={1e3 * med['fwd']:.2f} "
          f"bwd_ms={1e3 * med['bwd']:.2f} opt_ms={1e3 * med['opt']:.2f} "
          f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


if __name__ == "__main__":
    main()
