"""hf_gpt2.py: an independent reference for Hugging Face GPT-2 directories (config.json +
model.safetensors), written from transformers' GPT2LMHeadModel semantics in plain PyTorch
float64 (transformers itself is not installed here), and a writer of small random ones,
for tests/e2e/t_hf_import.sh.

  hf_gpt2.py loss TOKENS B T DIR LOGITS [DIR LOGITS ...]
                                      for each DIR: the mean next-token loss of its model on
                                      TOKENS (B rows of T + 1 ids: inputs are the first T,
                                      targets the last T) and the error of LOGITS (float32
                                      [B, T, V] from tool_ckpt_loss) against its logits, the
                                      largest difference over the largest reference logit;
                                      prints "DIR loss X logits error E"
  hf_gpt2.py make DIR SEED [BAD]      writes a random GPT-2 (n_layer 2, n_embd 32, n_head 4,
                                      n_positions 16, vocab 50257) as transformers saves
                                      GPT2LMHeadModel: "transformer." names, Conv1D weights
                                      [in, out], the causal-mask buffers h.N.attn.bias, no
                                      lm_head (tied); BAD spoils it: missing (a tensor left
                                      out), shape (c_attn stored [3C, C] like nn.Linear),
                                      activation ("relu"), head (an lm_head unlike wte); a
                                      spoilt one has a vocabulary of 97 (quicker to write)
  hf_gpt2.py check DIR                a cetus checkpoint's Hugging Face files: GPT2Config's
                                      fields, vocab.json / merges.txt in GPT-2's format

The reader follows the safetensors format (8-byte header length, JSON header, raw data) and
the model follows the config: n_inner (None: 4 * n_embd), layer_norm_epsilon, the activation
(gelu_new / gelu_pytorch_tanh: tanh form; gelu: erf form), scale_attn_weights.
"""
import json
import math
import os
import struct
import sys

import numpy as np

torch = None  # imported by cmd_loss alone: it takes seconds to load, make and check need numpy only
DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def activation(name):
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "gelu":
        return lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    raise SystemExit(f"hf_gpt2.py: activation {name} not modelled")


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def gpt2_loss(cfg, p, tokens, targets):
    """GPT2LMHeadModel's forward in float64; p maps names without "transformer." to tensors."""
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    act = activation(cfg.get("activation_function", "gelu_new"))
    B, T = tokens.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    x = p["wte.weight"][tokens] + p["wpe.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(cfg["n_layer"]):
        q = lambda s: p[f"h.{i}.{s}"]  # noqa: E731
        h = layer_norm(x, q("ln_1.weight"), q("ln_1.bias"), eps)
        qkv = h @ q("attn.c_attn.weight") + q("attn.c_attn.bias")  # Conv1D: x @ W[in, out] + b
        qq, kk, vv = (t.view(B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=-1))
        s = qq @ kk.transpose(-2, -1)
        if cfg.get("scale_attn_weights", True):
            s = s / math.sqrt(C // H)
        s = s.masked_fill(~causal, float("-inf"))
        y = (torch.softmax(s, dim=-1) @ vv).transpose(1, 2).reshape(B, T, C)
        x = x + y @ q("attn.c_proj.weight") + q("attn.c_proj.bias")
        h = layer_norm(x, q("ln_2.weight"), q("ln_2.bias"), eps)
        x = x + act(h @ q("mlp.c_fc.weight") + q("mlp.c_fc.bias")) @ q("mlp.c_proj.weight") + q("mlp.c_proj.bias")
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    head = p.get("lm_head.weight", p["wte.weight"]) if not cfg.get("tie_word_embeddings", True) else p["wte.weight"]
    logits = x @ head.T
    return torch.nn.functional.cross_entropy(logits.view(B * T, -1), targets.reshape(-1)).item(), logits


def cmd_loss(tokens_path, B, T, pairs):
    global torch
    import torch
    with open(tokens_path) as f:
        ids = torch.tensor([int(t) for t in f.read().split()], dtype=torch.long).view(B, T + 1)
    for d, logits_path in pairs:
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        raw = read_safetensors(os.path.join(d, "model.safetensors"))
        p = {(k[12:] if k.startswith("transformer.") else k): torch.from_numpy(v.astype(np.float64))
             for k, v in raw.items()}
        loss, logits = gpt2_loss(cfg, p, ids[:, :T], ids[:, 1:])
        got = torch.from_numpy(np.fromfile(logits_path, dtype=np.float32).astype(np.float64))
        err = (got.view(logits.shape) - logits).abs().max() / logits.abs().max()
        print(f"{d} loss {loss:.12g} logits error {err.item():.3g}")


def make(d, seed, bad):
    L, C, H, P, V = 2, 32, 4, 16, 97 if bad else 50257
    rng = np.random.default_rng(seed)
    r = lambda *s, std=0.02, mean=0.0: (mean + std * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    # large embeddings: logits of a few units, so the loss feels every term of the model
    t = {"transformer.wte.weight": r(V, C, std=0.5), "transformer.wpe.weight": r(P, C, std=0.5)}
    for i in range(L):
        h = f"transformer.h.{i}."
        t.update({h + "ln_1.weight": r(C, std=0.1, mean=1.0), h + "ln_1.bias": r(C, std=0.1),
                  h + "attn.bias": np.tril(np.ones((P, P), np.float32)).reshape(1, 1, P, P),
                  h + "attn.c_attn.weight": r(C, 3 * C, std=0.3), h + "attn.c_attn.bias": r(3 * C, std=0.1),
                  h + "attn.c_proj.weight": r(C, C, std=0.1), h + "attn.c_proj.bias": r(C, std=0.1),
                  h + "ln_2.weight": r(C, std=0.1, mean=1.0), h + "ln_2.bias": r(C, std=0.1),
                  h + "mlp.c_fc.weight": r(C, 4 * C, std=0.2), h + "mlp.c_fc.bias": r(4 * C, std=0.1),
                  h + "mlp.c_proj.weight": r(4 * C, C, std=0.1), h + "mlp.c_proj.bias": r(C, std=0.1)})
    t["transformer.ln_f.weight"], t["transformer.ln_f.bias"] = r(C, std=0.1, mean=1.0), r(C, std=0.1)
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": L, "n_embd": C, "n_head": H,
           "n_positions": P, "n_ctx": P, "vocab_size": V, "n_inner": None, "activation_function": "gelu_new",
           "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
           "scale_attn_weights": True, "tie_word_embeddings": True, "bos_token_id": 50256, "eos_token_id": 50256}
    if bad == "missing":
        del t["transformer.h.1.mlp.c_fc.bias"]
    elif bad == "shape":
        t["transformer.h.0.attn.c_attn.weight"] = np.ascontiguousarray(t["transformer.h.0.attn.c_attn.weight"].T)
    elif bad == "activation":
        cfg["activation_function"] = "relu"
    elif bad == "head":
        t["lm_head.weight"] = r(V, C)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), t)


def check(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    want = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "bos_token_id": 50256, "eos_token_id": 50256}
    for k, v in want.items():
        assert cfg.get(k) == v, f"config.json {k} = {cfg.get(k)!r}, expected {v!r}"
    for k in ("n_layer", "n_embd", "n_head", "n_positions", "n_ctx", "vocab_size"):
        assert isinstance(cfg.get(k), int), f"config.json has no integer {k}"
    with open(os.path.join(d, "vocab.json")) as f:
        vocab = json.load(f)
    assert len(vocab) == 50257 and vocab["<|endoftext|>"] == 50256, "vocab.json is not GPT-2's"
    with open(os.path.join(d, "merges.txt"), encoding="utf-8") as f:
        merges = f.read().split("\n")
    assert merges[0].startswith("#version") and merges[1] == "\u0120 t", "merges.txt is not GPT-2's"
    print(f"check ok: {d}: GPT-2 n_layer {cfg['n_layer']} n_embd {cfg['n_embd']}, {len(merges) - 2} merges")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["loss"] and len(a) >= 6 and len(a) % 2 == 0:
        cmd_loss(a[1], int(a[2]), int(a[3]), list(zip(a[4::2], a[5::2])))
    elif a[:1] == ["make"] and len(a) in (3, 4):
        make(a[1], int(a[2]), a[3] if len(a) == 4 else None)
    elif a[:1] == ["check"] and len(a) == 2:
        check(a[1])
    else:
        raise SystemExit(__doc__)
