"""torch_moe.py: the PyTorch side of bench/bench_moe.c: the same Mixture-of-Experts layer in
float32, written the way an efficient PyTorch layer is written (as in Megatron-Core's
SequentialMLP or DeepSpeed's Experts: per-expert weights, one matmul per expert and
projection on that expert's contiguous rows), forward + backward with autograd on random x
and dy (parameter gradients and dx); and the dense MLP of the same active FLOPs.

  router   logits = x @ router_w (torch.mm), probs = softmax, lse = logsumexp
  top-k    probs.topk(k); gates = chosen / their sum (renormalised)
  capacity GShard priority: assignments in the order (choice 0 of tokens 0..N-1), (choice 1
           of tokens 0..N-1), ...; a stable sort by expert gives each assignment its position
           within its expert; positions >= capacity are dropped (none when --dropless)
  experts  x.index_select(rows of each expert, expert-major), split per expert, then per expert
           torch.addmm(fc_b, xe, fc_w) -> gelu(tanh) -> torch.addmm(proj_b, act, proj_w)
  combine  y = zeros.index_add_(0, token of each row, out * gate)
  losses   aux = E * sum_i f_i P_i (f_i = routed fraction before capacity, detached;
           P_i = mean probability), z = mean lse^2; aux_coef * aux + z_coef * z is in the graph
  backward torch.autograd.backward((y, loss), (dy, 1))
Dense: y = addmm(b2, gelu(addmm(b1, x, w1)), w2) with hidden k * F.
Active FLOPs per token as bench_moe.c: 3 x (2CE + k x 4CF); dense 3 x 4C(kF).

Run it with its fastest settings on this machine (bench/run_moe.sh does):
  LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp OMP_PROC_BIND=close \
  OMP_PLACES=cores /usr/bin/python3 bench/torch_moe.py --threads 2

Usage: torch_moe.py [--experts E] [--top-k K] [--d C] [--ffn F] [--capacity CF] [--dropless]
                    [--aux A] [--z Z] [--tokens N] [--calls N] [--warmup N]
                    [--layer moe|dense|both] [--threads N] [--peak GFLOPS]
       torch_moe.py --check DUMP   (DUMP from bench_moe --dump: the same layer on cetus's
                    weights and inputs, in float64; compares routing, y, losses, dx and
                    every gradient; exit 1 if any relative error exceeds 1e-4)
Machine-readable lines: RESULT impl=torch layer=moe|dense tokens=N calls=N call_ms=.. ...
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as Fn


class MoE:
    def __init__(self, E, k, C, F, cf, dropless, aux_coef, z_coef, dtype=torch.float32, gen=None):
        self.E, self.k, self.C, self.F = E, k, C, F
        self.cf, self.dropless, self.aux_coef, self.z_coef = cf, dropless, aux_coef, z_coef

        def param(*shape, std):
            t = torch.randn(*shape, generator=gen, dtype=dtype) * std if std else torch.zeros(*shape, dtype=dtype)
            return t.requires_grad_()
        self.router_w = param(C, E, std=0.02)
        self.fc_w = [param(C, F, std=0.02) for _ in range(E)]
        self.fc_b = [param(F, std=0) for _ in range(E)]
        self.proj_w = [param(F, C, std=0.02) for _ in range(E)]
        self.proj_b = [param(C, std=0) for _ in range(E)]

    def parameters(self):
        return [self.router_w] + self.fc_w + self.fc_b + self.proj_w + self.proj_b

    def capacity(self, N):
        return N if self.dropless else min(N, math.ceil(self.cf * N * self.k / self.E))

    def forward(self, x):
        """y [N, C], the loss to add (aux_coef * aux + z_coef * z), and statistics."""
        N, E, k = x.shape[0], self.E, self.k
        logits = torch.mm(x, self.router_w)
        probs = torch.softmax(logits, dim=1)
        lse = torch.logsumexp(logits, dim=1)
        top_p, top_e = probs.topk(k, dim=1)
        gates = top_p / top_p.sum(dim=1, keepdim=True)
        # GShard priority: flat assignment a = j * N + n (choice-major); a stable sort by
        # expert packs rows expert-major in that order; rank within the expert -> capacity.
        flat_e = top_e.t().reshape(-1)
        routed = torch.bincount(flat_e, minlength=E)
        sorted_e, order = torch.sort(flat_e, stable=True)
        start = torch.cumsum(routed, 0) - routed
        cap = self.capacity(N)
        if cap < N:
            keep = (torch.arange(N * k) - start[sorted_e]) < cap
            order = order[keep]
            counts = routed.clamp(max=cap)
        else:
            counts = routed
        token = order % N
        gate_rows = gates.t().reshape(-1).index_select(0, order)
        xe = x.index_select(0, token)
        counts = counts.tolist()
        outs, r0 = [], sum(counts)
        # split, not slicing: the backward of a split is one cat; that of each slice would be
        # a zero-filled tensor of xe's full size added into xe's gradient
        for e, xe_e in enumerate(xe.split(counts)):
            if counts[e] == 0:
                continue
            h = torch.addmm(self.fc_b[e], xe_e, self.fc_w[e])
            act = Fn.gelu(h, approximate="tanh")
            outs.append(torch.addmm(self.proj_b[e], act, self.proj_w[e]))
        out = torch.cat(outs) * gate_rows.unsqueeze(1)
        y = torch.zeros_like(x).index_add_(0, token, out)
        f = routed.to(x.dtype) / (N * k)
        aux = E * (f * probs.mean(dim=0)).sum()
        z = (lse * lse).mean()
        loss = self.aux_coef * aux + self.z_coef * z
        stats = dict(aux=aux, z=z, dropped=1.0 - r0 / (N * k), capacity=cap, rows=r0,
                     top_e=top_e, kept_order=order)
        return y, loss, stats


class Dense:
    def __init__(self, C, H, dtype=torch.float32, gen=None):
        self.w1 = (torch.randn(C, H, generator=gen, dtype=dtype) * 0.02).requires_grad_()
        self.b1 = torch.zeros(H, dtype=dtype).requires_grad_()
        self.w2 = (torch.randn(H, C, generator=gen, dtype=dtype) * 0.02).requires_grad_()
        self.b2 = torch.zeros(C, dtype=dtype).requires_grad_()

    def parameters(self):
        return [self.w1, self.b1, self.w2, self.b2]

    def forward(self, x):
        act = Fn.gelu(torch.addmm(self.b1, x, self.w1), approximate="tanh")
        return torch.addmm(self.b2, act, self.w2)


def zero_grad(params):
    for p in params:
        p.grad = None


def timed_calls(name, layer, x, dy, a, flops_tok):
    one = torch.ones(())
    times = {"call": [], "fwd": [], "bwd": []}
    dropped = []
    for s in range(a.warmup + a.calls):
        zero_grad(layer.parameters())
        x.grad = None
        t0 = time.perf_counter()
        if name == "moe":
            y, loss, st = layer.forward(x)
            t1 = time.perf_counter()
            torch.autograd.backward((y, loss), (dy, one))
        else:
            y = layer.forward(x)
            t1 = time.perf_counter()
            torch.autograd.backward(y, dy)
        t2 = time.perf_counter()
        warm = s < a.warmup
        extra = f"  loss {loss.item():.5f}  dropped {st['dropped']:.4f}" if name == "moe" else ""
        print(f"{'warmup' if warm else 'timed '} {name} call {(s if warm else s - a.warmup) + 1:2d}: "
              f"{1e3 * (t2 - t0):8.2f} ms (forward {1e3 * (t1 - t0):.2f}, backward {1e3 * (t2 - t1):.2f})"
              f"{extra}", flush=True)
        if not warm:
            for key, v in (("call", t2 - t0), ("fwd", t1 - t0), ("bwd", t2 - t1)):
                times[key].append(v)
            if name == "moe":
                dropped.append(st["dropped"])
    med = {key: statistics.median(v) for key, v in times.items()}
    N = x.shape[0]
    tps = N / med["call"]
    gf = flops_tok * tps * 1e-9
    print(f"median of {a.calls} calls ({name}): {1e3 * med['call']:.2f} ms/call (forward "
          f"{1e3 * med['fwd']:.2f}, backward {1e3 * med['bwd']:.2f}), {tps:.0f} tokens/s, {gf:.1f} GFLOP/s, "
          f"{100 * gf / a.peak:.1f}% of peak")
    extra = f" dropped={statistics.mean(dropped):.4f}" if name == "moe" else ""
    print(f"RESULT impl=torch layer={name} tokens={N} calls={a.calls} call_ms={1e3 * med['call']:.3f} "
          f"tokens_per_s={tps:.1f} gflops={gf:.2f} fwd_ms={1e3 * med['fwd']:.3f} "
          f"bwd_ms={1e3 * med['bwd']:.3f}{extra}", flush=True)


def bench(a):
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(1337)
    E, k, C, F, N = a.experts, a.top_k, a.d, a.ffn, a.tokens
    print(f"torch_moe: torch {torch.__version__}, {torch.get_num_threads()} threads; peak {a.peak:.0f} GFLOP/s")
    x = torch.randn(N, C, generator=gen).requires_grad_()
    dy = torch.randn(N, C, generator=gen)
    if a.layer in ("moe", "both"):
        moe = MoE(E, k, C, F, a.capacity, a.dropless, a.aux, a.z, gen=gen)
        flops_tok = 3.0 * (2.0 * C * E + k * 4.0 * C * F)
        n_params = sum(p.numel() for p in moe.parameters())
        print(f"moe: {E} experts, top-{k} (gates renormalised), d {C}, ffn {F}, "
              f"{'dropless' if a.dropless else 'capacity factor'}, aux {a.aux:g}, z {a.z:g}; {N} tokens/call; "
              f"{n_params / 1e6:.2f}M parameters; {flops_tok * 1e-9:.4f} GFLOP/token (fwd+bwd, active)")
        if not a.dropless:
            print(f"moe: capacity factor {a.capacity:g}: {moe.capacity(N)} rows per expert")
        timed_calls("moe", moe, x, dy, a, flops_tok)
        del moe
    if a.layer in ("dense", "both"):
        H = k * F
        dense = Dense(C, H, gen=gen)
        flops_tok = 3.0 * 4.0 * C * H
        print(f"dense: d {C}, hidden {H} (= top_k x ffn), gelu, biases; {N} tokens/call; "
              f"{flops_tok * 1e-9:.4f} GFLOP/token (fwd+bwd)")
        timed_calls("dense", dense, x, dy, a, flops_tok)


def check(path):
    """The layer above in float64 on cetus's weights and inputs (bench_moe --dump)."""
    import numpy as np
    raw = open(path, "rb").read()
    hdr = np.frombuffer(raw, "<i4", 8, 0)
    N, C, E, F, k, dropless, cap_c, rows_c = [int(v) for v in hdr]
    cf, aux_coef, z_coef = [float(v) for v in np.frombuffer(raw, "<f4", 3, 32)]
    pos = 44

    def take(n, dtype="<f4"):
        nonlocal pos
        v = np.frombuffer(raw, dtype, n, pos).astype(np.float64 if dtype == "<f4" else np.int64)
        pos += 4 * n
        return torch.from_numpy(v)
    x, dy = take(N * C).view(N, C), take(N * C).view(N, C)

    def params():
        return dict(router_w=take(C * E).view(C, E), fc_w=take(E * C * F).view(E, C, F),
                    fc_b=take(E * F).view(E, F), proj_w=take(E * F * C).view(E, F, C),
                    proj_b=take(E * C).view(E, C))
    p = params()
    y_c, l3 = take(N * C).view(N, C), take(3)
    expert_c, row_c = take(N * k, "<i4").view(N, k), take(N * k, "<i4").view(N, k)
    dx_c = take(N * C).view(N, C)
    g_c = params()
    assert pos == len(raw), f"dump size {len(raw)} != {pos}"

    m = MoE(E, k, C, F, cf, bool(dropless), aux_coef, z_coef, dtype=torch.float64)
    m.router_w = p["router_w"].clone().requires_grad_()
    for name in ("fc_w", "fc_b", "proj_w", "proj_b"):
        setattr(m, name, [t.clone().requires_grad_() for t in p[name]])
    x = x.clone().requires_grad_()
    y, loss, st = m.forward(x)
    torch.autograd.backward((y, loss), (dy, torch.ones((), dtype=torch.float64)))
    fails = []
    if not torch.equal(st["top_e"], expert_c):
        fails.append("expert choices differ")
    kept_t = torch.zeros(N * k, dtype=torch.bool)
    kept_t[st["kept_order"] % N * k + st["kept_order"] // N] = True
    if not torch.equal(kept_t.view(N, k), row_c >= 0):
        fails.append("kept assignments differ")
    if st["capacity"] != cap_c or st["rows"] != rows_c:
        fails.append(f"capacity/rows {cap_c}/{rows_c} vs {st['capacity']}/{st['rows']}")

    def rel(got, ref):
        return ((got - ref).abs().max() / ref.abs().max().clamp(min=1e-300)).item()
    errs = [("y", rel(y_c, y.detach())), ("loss", rel(l3[0:1], loss.detach().view(1))),
            ("aux", rel(l3[1:2], st["aux"].detach().view(1))), ("z", rel(l3[2:3], st["z"].detach().view(1))),
            ("dx", rel(dx_c, x.grad)), ("grad.router_w", rel(g_c["router_w"], m.router_w.grad))]
    for name in ("fc_w", "fc_b", "proj_w", "proj_b"):
        errs.append(("grad." + name, rel(g_c[name], torch.stack([t.grad for t in getattr(m, name)]))))
    print(f"check N={N} C={C} E={E} F={F} k={k} {'dropless' if dropless else f'cf {cf:g}'}: capacity "
          f"{st['capacity']}, rows {st['rows']} (dropped {st['dropped']:.4f}); loss cetus {l3[0].item():.8f} "
          f"torch {loss.item():.8f}")
    print("max relative error (max|cetus - torch| / max|torch|): "
          + ", ".join(f"{n} {e:.1e}" for n, e in errs))
    fails += [f"{n}: {e:.2e} > 1e-4" for n, e in errs if not e <= 1e-4]
    for msg in fails:
        print("FAIL " + msg)
    if not fails:
        print("agreement: OK")
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--ffn", type=int, default=1536)
    ap.add_argument("--capacity", type=float, default=1.25)
    ap.add_argument("--dropless", action="store_true")
    ap.add_argument("--aux", type=float, default=0.01)
    ap.add_argument("--z", type=float, default=0.001)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--layer", default="both", choices=["moe", "dense", "both"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak", type=float, default=230.0)
    ap.add_argument("--check", metavar="DUMP")
    a = ap.parse_args()
    if a.check:
        torch.set_num_threads(a.threads)
        return check(a.check)
    bench(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
