"""torch_reference.py: checks a cetus dump (tests/tools/tool_gpt_dump.c) against the independent
PyTorch GPT-2 in tests/tools/torch_gpt.py.

Usage: torch_reference.py DUMP.bin      exit 0 if every check passes, 1 otherwise

What is compared (cetus computes in float32; the reference in float64 from the same float32
parameters, so the reference is exact to ~1e-16 and the error measured is cetus's own):
  logits            every [B, T, V] entry
  loss              the mean cross-entropy over counted targets (targets < 0 ignored)
  grad.NAME         every parameter gradient, tensor by tensor, by Hugging Face name
  grad2.NAME        every gradient again at the parameters after one AdamW step
  norm1, norm2      the global gradient norms ct_adamw_step returned
  step1/step2.NAME  the parameters after two AdamW steps, replayed by torch.optim.AdamW
                    (decay group = the 2-D tensors) from cetus's own gradients, so the
                    optimizer is checked apart from the gradient error; step 1 clips the
                    gradients to half their norm (scale = clip / norm when norm > clip)
  m2/v2.NAME        the AdamW moments after step 2 against torch's exp_avg / exp_avg_sq
  fused path        torch_gpt's fused=True model (the one bench/torch_train.py times)
                    against its fused=False reference, both float64

Error measure: err(x) = max|cetus - ref| / max|ref| over a tensor (relative to the tensor's
largest magnitude, so entries near zero are judged on the tensor's scale). Tolerances:
  logits 1e-5, loss 1e-6 (relative), gradients 1e-4, gradient norms 1e-5,
  parameters after AdamW 1e-6, moments 1e-5, fused vs reference 1e-10.
float32 has a unit roundoff of 6e-8; accumulation over C <= 4C = 128 terms and 2 layers
gives measured errors of ~4e-7 (logits), ~1e-6 (gradients), ~1e-7 (parameters after AdamW,
the float32 rounding of the parameters themselves); each tolerance is 9x to 90x above what
was measured, while a wrong term (a missing bias, a mask off by one, an unscaled or
unclipped gradient, decay on a bias) gives errors of order 1e-3 to 1, and one gradient
entry off by 1e-4 (tool_gpt_dump's "perturb") is rejected with an error of 2e-3.
"""
import os
import struct
import sys

import numpy as np

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_gpt  # noqa: E402
from dump_format import read_dump  # noqa: E402

TOL = {"logits": 1e-5, "loss": 1e-6, "grad": 1e-4, "norm": 1e-5, "step": 1e-6,
       "moment": 1e-5, "fused": 1e-10}
# bf16 dumps: products from bf16-rounded inputs (unit roundoff 2^-9 = 2e-3), accumulated in
# float32. Each error must stay within BF16_VS_TORCH x PyTorch autocast's own error against
# float64 (+ a floor), and under the absolute tolerance below.
TOL_BF16 = {"logits": 2e-2, "loss": 1e-2, "grad": 5e-2}
BF16_VS_TORCH = 2.0
TOL_BF16_FLOOR = 1e-3




class Checker:
    def __init__(self):
        self.failures = []
        self.worst = {}
        self.autocast = {}

    def rel(self, key, label, got, ref, tol):
        got = torch.as_tensor(np.asarray(got, dtype=np.float64))
        ref = torch.as_tensor(ref, dtype=torch.float64).detach().reshape(got.shape)
        scale = ref.abs().max().item()
        err = (got - ref).abs().max().item() / (scale if scale > 0 else 1.0)
        if not np.isfinite(err) or err > tol:
            self.failures.append(f"{label}: error {err:.3e} > tolerance {tol:.0e}")
        if err > self.worst.get(key, (-1.0, ""))[0]:
            self.worst[key] = (err, label)
        return err


def tensors(d, prefix):
    return {k[len(prefix) + 1:]: v for k, v in d.items() if k.startswith(prefix + ".")}


def model_inputs(d):
    tokens = torch.as_tensor(d["tokens"], dtype=torch.long)
    targets = torch.as_tensor(d["targets"], dtype=torch.long)
    prefix = torch.as_tensor(d["prefix"], dtype=torch.long) if "prefix" in d else None
    patches = torch.as_tensor(np.asarray(d["patches"], dtype=np.float64)) if "patches" in d else None
    return tokens, targets, prefix, patches


def forward_backward(model, d, params):
    model.load(params)
    tokens, targets, prefix, patches = model_inputs(d)
    logits, loss = model.forward(tokens, targets, prefix, patches)
    loss.backward()
    return logits, loss, {n: p.grad for n, p in model.params.items()}


def check_table(ck, d, cfg):
    """The dump holds exactly the Hugging Face GPT-2 tensors, shapes and decay flags."""
    want = torch_gpt.param_shapes(cfg)
    got = tensors(d, "param")
    if [n for n, _ in want] != list(got):
        ck.failures.append(f"tensor table: names {list(got)[:4]}... differ from GPT-2's")
        return False
    for name, shape in want:
        if tuple(got[name].shape) != tuple(shape):
            ck.failures.append(f"{name}: shape {got[name].shape}, expected {shape}")
        if int(d["decay." + name][0]) != (len(shape) == 2):
            ck.failures.append(f"{name}: decay flag {int(d['decay.' + name][0])}, expected {int(len(shape) == 2)}")
    return not ck.failures


def check_model(ck, d, cfg):
    model = torch_gpt.GPT(cfg, dtype=torch.float64, fused=False)
    logits, loss, grads = forward_backward(model, d, tensors(d, "param"))
    ck.rel("logits", "logits", d["logits"], logits, TOL["logits"])
    ck.rel("loss", "loss", d["loss"], loss, TOL["loss"])
    for name, g in grads.items():
        ck.rel("grad", "grad." + name, d["grad." + name], g, TOL["grad"])
    print(f"loss: cetus {d['loss'][0]:.7f}  torch float64 {loss.item():.7f}")

    # the benchmark's fused formulation computes the same function and gradients
    fused = torch_gpt.GPT(cfg, dtype=torch.float64, fused=True)
    flogits, floss, fgrads = forward_backward(fused, d, tensors(d, "param"))
    ck.rel("fused", "fused logits", flogits.detach(), logits, TOL["fused"])
    ck.rel("fused", "fused loss", floss.detach().reshape(1), loss.reshape(1), TOL["fused"])
    for name, g in fgrads.items():
        ck.rel("fused", "fused grad." + name, g, grads[name], TOL["fused"])

    # gradients at the parameters after step 1 (cetus's own)
    _, _, grads2 = forward_backward(model, d, tensors(d, "step1"))
    for name, g in grads2.items():
        ck.rel("grad", "grad2." + name, d["grad2." + name], g, TOL["grad"])


def check_adamw(ck, d, cfg):
    lr, b1, b2, eps, wd, clip1, clip2 = (float(x) for x in d["adam"])
    model = torch_gpt.GPT(cfg, dtype=torch.float64)
    model.load(tensors(d, "param"))
    opt = torch.optim.AdamW(model.param_groups(wd), lr=lr, betas=(b1, b2), eps=eps)
    # torch's AdamW multiplies p by (1 - lr wd) before the Adam update; cetus subtracts
    # lr (update + wd p): the same number in exact arithmetic.
    for step, (gkey, clip, nkey) in enumerate([("grad", clip1, "norm1"), ("grad2", clip2, "norm2")], 1):
        grads = tensors(d, gkey)
        for name, p in model.params.items():
            p.grad = torch.as_tensor(grads[name], dtype=torch.float64).clone()
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.params.values()))
        ck.rel("norm", f"{nkey}", d[nkey], norm.reshape(1), TOL["norm"])
        if norm > clip:  # the clipping rule: scale = clip / norm when norm > clip
            for p in model.params.values():
                p.grad.mul_(clip / norm)
        elif step == 1:
            ck.failures.append("AdamW step 1 was meant to clip but the norm is below the clip")
        opt.step()
        for name, p in model.params.items():
            ck.rel("step", f"step{step}.{name}", d[f"step{step}.{name}"], p.detach(), TOL["step"])
    for name, p in model.params.items():
        st = opt.state[p]
        ck.rel("moment", "m2." + name, d["m2." + name], st["exp_avg"], TOL["moment"])
        ck.rel("moment", "v2." + name, d["v2." + name], st["exp_avg_sq"], TOL["moment"])


def check_bf16(ck, d, cfg):
    """A dump whose products ran in bf16: logits, loss and every gradient against the float64
    model, each within a bound of PyTorch's own bf16 autocast (the same float32 model, its
    matmuls in bf16) against that same reference; and visibly off the float64 result, so the
    bf16 path really ran (float32 products land ~1e-7 from it)."""
    ref = torch_gpt.GPT(cfg, dtype=torch.float64, fused=False)
    logits, loss, grads = forward_backward(ref, d, tensors(d, "param"))
    auto = torch_gpt.GPT(cfg, dtype=torch.float32, fused=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        alogits, aloss, agrads = forward_backward(auto, d, tensors(d, "param"))
    pairs = [("logits", "logits", d["logits"], alogits.detach().float(), logits),
             ("loss", "loss", d["loss"], aloss.detach().float().reshape(1), loss.reshape(1))]
    pairs += [("grad", "grad." + n, d["grad." + n], agrads[n].float(), g) for n, g in grads.items()]
    for key, label, got, theirs, exact in pairs:
        mine = ck.rel(key, label, got, exact, TOL_BF16[key])
        torch_err = Checker().rel(key, label, theirs, exact, 1.0)
        if mine > BF16_VS_TORCH * torch_err + TOL_BF16_FLOOR:
            ck.failures.append(f"{label}: bf16 error {mine:.3e} > {BF16_VS_TORCH} x PyTorch autocast's "
                               f"{torch_err:.3e} + {TOL_BF16_FLOOR:.0e}")
        ck.autocast[key] = max(ck.autocast.get(key, 0.0), torch_err)
    if ck.worst["logits"][0] < 1e-5:
        ck.failures.append(f"logits within {ck.worst['logits'][0]:.1e} of float64: the products did not run in bf16")
    print(f"loss: cetus bf16 {d['loss'][0]:.7f}  torch autocast {aloss.item():.7f}  torch float64 {loss.item():.7f}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    d = read_dump(sys.argv[1])
    L, C, H, S, V, B, T = (int(x) for x in d["cfg"])
    image = tuple(int(x) for x in d["image"]) if "image" in d else None
    cfg = torch_gpt.GPTConfig(L, C, H, S, V, image)
    mode = "prefix-LM " + str(d["prefix"].tolist()) if "prefix" in d else "causal"
    if image:
        mode += f", image {image[1]}x{image[2]} in {image[0]}x{image[0]} patches"
    print(f"model: {L} layers, d {C}, {H} heads, seq_len {S}, vocab {V}; batch {B} x {T}; {mode}")
    torch.set_num_threads(1)
    ck = Checker()
    bf16 = "bf16" in d
    if check_table(ck, d, cfg):
        if bf16:
            check_bf16(ck, d, cfg)
        else:
            check_model(ck, d, cfg)
            check_adamw(ck, d, cfg)
    print("max error (max|cetus - ref| / max|ref|) per kind, against its tolerance:")
    for key, (err, label) in ck.worst.items():
        tol = TOL_BF16[key] if bf16 else TOL[key]
        extra = f"; PyTorch autocast {ck.autocast[key]:.3e}" if key in ck.autocast else ""
        print(f"  {key:7s} {err:.3e}  (tol {tol:.0e}{extra})  worst: {label}")
    for f in ck.failures:
        print("FAIL " + f)
    print("FAILED" if ck.failures else "PASSED", f"({len(ck.failures)} failures)")
    return 1 if ck.failures else 0


if __name__ == "__main__":
    sys.exit(main())
