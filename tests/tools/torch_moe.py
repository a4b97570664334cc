"""torch_moe.py: an independent PyTorch Mixture-of-Experts layer, checked against a cetus dump
(tests/tools/tool_moe_dump.c) of src/model/moe.c.

Usage: torch_moe.py DUMP.bin      exit 0 if every check passes, 1 otherwise

The reference is written from the definitions, token by token, in float64 from cetus's
float32 parameters, with autograd for every gradient:
  logits   x @ router_w, plus router noise when training (std * standard normals drawn
           by a Python xoshiro256** seeded through splitmix64 with the dump's seed, one per
           logit in row-major order, Box-Muller as in src/core/rng.c)
  routing  top1: argmax of softmax(logits), gate = its probability; top2/topk: the k most
           probable, gate = p / (sum of the chosen p); prototype: k groups of E/k experts,
           argmax within each, gate = softmax probability within the group
  capacity ceil(cf * N * k / E) per expert (N if dropless); assignments considered in the
           order (choice 0 of tokens 0..N-1), (choice 1 of tokens 0..N-1), ...; an
           assignment whose expert is full is dropped and contributes nothing
  experts  y[n] = sum of gate * (gelu_tanh(x[n] @ fc_w[e] + fc_b[e]) @ proj_w[e] + proj_b[e])
  aux      E * sum_i f_i P_i (prototype: per group with E/k experts, averaged over groups),
           f_i = routed assignments (before dropping) / (N k) (detached), P_i = mean_n p
  z        mean_n logsumexp(logits_n)^2
  L        sum(y * w) + loss_scale * (aux_coef * aux + z_coef * z)

Checked: routing choices, kept/dropped assignments, capacity, dropped fraction and load
(exactly or to 1e-6); gates, y, aux, z and the returned loss (relative error 1e-5); the
gradients of L for router_w, fc_w, fc_b, proj_w, proj_b and x (relative error 1e-5).
Error measure: max|cetus - ref| / max|ref| over a tensor. float32 with sums of at most
F = 12 terms gives measured errors of 1e-8 to 4e-7, so each tolerance is 25x or more above
them; a wrong term (a missing loss gradient, an unscaled gate, the wrong normalisation)
gives 1e-3 to 1, and one router gradient entry off by 1e-3 (the dump's "perturb") gives
~1.6e-4 and is rejected. A near tie in the router (two logits within
1e-4) would make the routing ill-defined in float32; it is reported instead of compared.
"""
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_format import read_dump  # noqa: E402
import torch

TOL = {"out": 1e-5, "grad": 1e-5}
ROUTINGS = ["top1", "top2", "topk", "prototype"]
M64 = (1 << 64) - 1




class Xoshiro:
    """xoshiro256** seeded through splitmix64, as src/core/rng.c."""

    def __init__(self, seed):
        self.s = []
        x = seed & M64
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def u64(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def normal(self):
        u1 = ((self.u64() >> 11) + 1.0) * (1.0 / 9007199254740993.0)
        u2 = (self.u64() >> 11) * (1.0 / 9007199254740992.0)
        return float(np.float32(math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)))


def gelu_tanh(h):
    return 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))


def choose(routing, logits_row, k, E):
    """Experts chosen for one token (a list of k ints) and the smallest logit gap that
    decided them (for the near-tie guard)."""
    l = logits_row.tolist()
    if routing == "prototype":
        G = E // k
        groups = [list(range(g * G, (g + 1) * G)) for g in range(k)]
        picks = [max(grp, key=lambda i: l[i]) for grp in groups]
        gaps = [l[p] - max([l[i] for i in grp if i != p], default=-math.inf)
                for p, grp in zip(picks, groups)]
        return picks, min(gaps)
    order = sorted(range(E), key=lambda i: -l[i])
    gaps = [l[order[j]] - l[order[j + 1]] for j in range(min(k, E - 1))]
    return order[:k], min(gaps) if gaps else math.inf


def reference(d):
    N, C, E, F, k, routing_id, dropless, training, seed_lo, seed_hi = [int(v) for v in d["cfg"]]
    cf, aux_coef, z_coef, noise_std, loss_scale = [float(v) for v in d["fcfg"]]
    routing = ROUTINGS[routing_id]
    t = {name: torch.tensor(d[name], dtype=torch.float64, requires_grad=True)
         for name in ["x", "router_w", "fc_w", "fc_b", "proj_w", "proj_b"]}
    logits = t["x"] @ t["router_w"]
    if training and noise_std > 0:
        rng = Xoshiro((seed_lo & 0xFFFFFFFF) | ((seed_hi & 0xFFFFFFFF) << 32))
        noise = [float(np.float32(noise_std) * np.float32(rng.normal())) for _ in range(N * E)]
        logits = logits + torch.tensor(noise, dtype=torch.float64).reshape(N, E)
    G = E // k if routing == "prototype" else E
    probs = torch.cat([torch.softmax(logits[:, g:g + G], dim=1) for g in range(0, E, G)], dim=1)

    experts, min_gap = [], math.inf
    for n in range(N):
        picks, gap = choose(routing, logits[n].detach(), k, E)
        experts.append(picks)
        min_gap = min(min_gap, gap)
    gates = []
    for n in range(N):
        chosen = probs[n, experts[n]]
        gates.append(chosen if routing in ("top1", "prototype") else chosen / chosen.sum())

    capacity = N if dropless else min(N, math.ceil(cf * N * k / E))
    fill, kept = [0] * E, [[False] * k for _ in range(N)]
    for j in range(k):
        for n in range(N):
            e = experts[n][j]
            if fill[e] < capacity:
                fill[e] += 1
                kept[n][j] = True

    rows = []
    for n in range(N):
        acc = torch.zeros(C, dtype=torch.float64)
        for j in range(k):
            if kept[n][j]:
                e = experts[n][j]
                h = t["x"][n] @ t["fc_w"][e] + t["fc_b"][e]
                acc = acc + gates[n][j] * (gelu_tanh(h) @ t["proj_w"][e] + t["proj_b"][e])
        rows.append(acc)
    y = torch.stack(rows)

    routed = torch.zeros(E, dtype=torch.float64)
    for n in range(N):
        for e in experts[n]:
            routed[e] += 1.0
    f = routed / (N * k)
    P = probs.mean(dim=0)
    aux = (G * (f * k) * P).sum() / k if routing == "prototype" else E * (f * P).sum()
    z = (torch.logsumexp(logits, dim=1) ** 2).mean()
    w = torch.tensor(d["w"], dtype=torch.float64)
    L = (y * w).sum() + loss_scale * (aux_coef * aux + z_coef * z)
    L.backward()
    return dict(routing=routing, capacity=capacity, kept=kept, experts=experts, fill=fill,
                min_gap=min_gap, gates=torch.stack([torch.stack(list(g)) for g in gates]).detach(),
                y=y.detach(), aux=aux.item(), z=z.item(), f=f,
                loss=aux_coef * aux.item() + z_coef * z.item(), t=t, N=N, k=k)


def rel_err(got, ref):
    got = torch.as_tensor(np.asarray(got, dtype=np.float64))
    ref = torch.as_tensor(ref, dtype=torch.float64).reshape(got.shape)
    scale = ref.abs().max().item()
    return (got - ref).abs().max().item() / (scale if scale > 0 else 1.0)


def main(path):
    d = read_dump(path)
    r = reference(d)
    fails, report = [], []
    if r["min_gap"] < 1e-4:
        print(f"FAIL near tie in the router (gap {r['min_gap']:.2e}); pick another input")
        return 1
    N, k = r["N"], r["k"]
    got_experts = d["expert"].tolist()
    if got_experts != r["experts"]:
        fails.append(f"expert choices differ: cetus {got_experts} ref {r['experts']}")
    got_kept = [[int(v) >= 0 for v in row] for row in d["row"]]
    if got_kept != r["kept"]:
        fails.append(f"kept assignments differ: cetus {got_kept} ref {r['kept']}")
    if int(d["capacity"][0]) != r["capacity"]:
        fails.append(f"capacity {int(d['capacity'][0])} vs ref {r['capacity']}")
    if list(d["kept"]) != r["fill"]:
        fails.append(f"kept per expert {list(d['kept'])} vs ref {r['fill']}")
    dropped_ref = 1.0 - sum(r["fill"]) / (N * k)
    if abs(float(d["dropped"][0]) - dropped_ref) > 1e-6:
        fails.append(f"dropped {float(d['dropped'][0])} vs ref {dropped_ref}")
    if rel_err(d["load"], r["f"]) > 1e-6:
        fails.append(f"load {d['load']} vs ref {r['f'].numpy()}")
    checks = [("gate", d["gate"], r["gates"], "out"), ("y", d["y"], r["y"], "out"),
              ("aux", d["aux"], [r["aux"]], "out"), ("z", d["z"], [r["z"]], "out"),
              ("loss", d["loss"], [r["loss"]], "out")]
    for name in ["router_w", "fc_w", "fc_b", "proj_w", "proj_b", "x"]:
        checks.append(("grad." + name, d["grad." + name], r["t"][name].grad, "grad"))
    for label, got, ref, kind in checks:
        err = rel_err(got, ref)
        report.append(f"{label} {err:.1e}")
        if not np.isfinite(err) or err > TOL[kind]:
            fails.append(f"{label}: error {err:.3e} > tolerance {TOL[kind]:.0e}")
    print(f"{r['routing']} k={k} capacity={r['capacity']} dropped={dropped_ref:.3f}: "
          + ", ".join(report))
    for msg in fails:
        print("FAIL " + msg)
    return 1 if fails else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
