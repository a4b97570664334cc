"""torch_gpt.py: an independent GPT-2 in plain PyTorch (no transformers), used as the
reference for cetus's model (tests/tools/torch_reference.py) and as the PyTorch side of the
training benchmark (bench/torch_train.py).

Parameters are plain leaf tensors named as in Hugging Face GPT-2 (wte.weight, wpe.weight,
h.N.ln_1.weight, h.N.attn.c_attn.weight [C, 3C] stored [in, out] like HF's Conv1D, ...,
ln_f.bias); the head is tied to wte. Two formulations of the same model:

  fused=False  every op written out from its definition (LayerNorm from mean and variance,
               GELU's tanh formula, masked softmax from exp and sum, cross-entropy from
               log-sum-exp): the reference, meant to run in float64;
  fused=True   the same math on PyTorch's fastest built-in kernels (F.layer_norm,
               F.gelu(approximate="tanh"), torch.addmm, baddbmm + softmax,
               F.cross_entropy): the benchmark model, float32.

The attention mask: row b with prefix length P (0 = causal) lets position i attend to
position j iff j <= max(i, P - 1).

Image prefix (cfg.image = (P, H, W)): the image's (H/P) x (W/P) patches (raster order, each
[P*P] pixels) are projected by img.patch.weight [P*P, C] + img.patch.bias and get
img.row.weight[r] + img.col.weight[c]; they fill the first positions of a row, and the text
after them takes wpe from position 0.
"""
import math

import torch
import torch.nn.functional as F

LN_EPS = 1e-5
BLOCK_TENSORS = [  # suffix, shape as a function of C, decays
    ("ln_1.weight", lambda C: (C,)), ("ln_1.bias", lambda C: (C,)),
    ("attn.c_attn.weight", lambda C: (C, 3 * C)), ("attn.c_attn.bias", lambda C: (3 * C,)),
    ("attn.c_proj.weight", lambda C: (C, C)), ("attn.c_proj.bias", lambda C: (C,)),
    ("ln_2.weight", lambda C: (C,)), ("ln_2.bias", lambda C: (C,)),
    ("mlp.c_fc.weight", lambda C: (C, 4 * C)), ("mlp.c_fc.bias", lambda C: (4 * C,)),
    ("mlp.c_proj.weight", lambda C: (4 * C, C)), ("mlp.c_proj.bias", lambda C: (C,)),
]


class GPTConfig:
    def __init__(self, n_layer, d_model, n_head, seq_len, vocab_size, image=None):
        assert d_model % n_head == 0
        self.n_layer, self.d_model, self.n_head = n_layer, d_model, n_head
        self.seq_len, self.vocab_size = seq_len, vocab_size
        self.image = image  # (patch, height, width) or None


def param_shapes(cfg):
    """[(name, shape)] in Hugging Face GPT-2 naming and cetus's order."""
    C = cfg.d_model
    out = [("wte.weight", (cfg.vocab_size, C)), ("wpe.weight", (cfg.seq_len, C))]
    if cfg.image:
        P, H, W = cfg.image
        out += [("img.patch.weight", (P * P, C)), ("img.patch.bias", (C,)),
                ("img.row.weight", (H // P, C)), ("img.col.weight", (W // P, C))]
    for layer in range(cfg.n_layer):
        out += [(f"h.{layer}.{s}", f(C)) for s, f in BLOCK_TENSORS]
    out += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return out


# ---- ops from their definitions (fused=False) ----------------------------------------------

def layernorm_ref(x, w, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + LN_EPS) * w + b


def gelu_ref(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax_ref(s):
    e = torch.exp(s - s.max(-1, keepdim=True).values)  # masked entries are -inf -> 0
    return e / e.sum(-1, keepdim=True)


def cross_entropy_ref(logits, targets):
    m = logits.max(-1, keepdim=True).values
    lse = m.squeeze(-1) + torch.log(torch.exp(logits - m).sum(-1))
    valid = targets >= 0
    picked = logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return ((lse - picked) * valid).sum() / valid.sum()


def attention_mask(B, T, prefix, device=None):
    """bool [B, 1, T, T]: True where position i (row) may attend to position j (column)."""
    i = torch.arange(T, device=device).view(1, T, 1)
    j = torch.arange(T, device=device).view(1, 1, T)
    if prefix is None:
        prefix = torch.zeros(B, dtype=torch.long, device=device)
    lim = torch.maximum(i, (prefix.view(B, 1, 1) - 1))
    return (j <= lim).unsqueeze(1)


class GPT:
    def __init__(self, cfg, dtype=torch.float64, fused=False, seed=0):
        self.cfg, self.dtype, self.fused = cfg, dtype, fused
        g = torch.Generator().manual_seed(seed)
        proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
        self.params = {}
        for name, shape in param_shapes(cfg):  # GPT-2 init, like cetus's
            if len(shape) == 2:
                std = proj_std if name.endswith("c_proj.weight") else 0.02
                t = torch.randn(shape, generator=g, dtype=torch.float32) * std
            elif ".ln_" in name or name.startswith("ln_"):
                t = torch.ones(shape) if name.endswith(".weight") else torch.zeros(shape)
            else:
                t = torch.zeros(shape)
            self.params[name] = t.to(dtype).requires_grad_(True)
        self._bias_cache = {}

    def parameters(self):
        return list(self.params.values())

    def load(self, tensors):
        """tensors: name -> array-like of the right shape (copied, in self.dtype)."""
        for name, shape in param_shapes(self.cfg):
            t = torch.as_tensor(tensors[name]).to(self.dtype).reshape(shape).clone()
            self.params[name] = t.requires_grad_(True)

    def param_groups(self, weight_decay):
        """AdamW groups: decay on matrices and embeddings (2-D), none on biases and gains."""
        named = list(self.params.items())
        return [{"params": [p for n, p in named if p.dim() == 2], "weight_decay": weight_decay},
                {"params": [p for n, p in named if p.dim() != 2], "weight_decay": 0.0}]

    # -- attention --------------------------------------------------------------------------

    def _mask_bias(self, B, T, prefix):
        """Additive mask [B or 1, 1, T, T] (0 or -inf) for the fused path, cached."""
        key = (T, None if prefix is None else tuple(prefix.tolist()))
        if key not in self._bias_cache:
            mask = attention_mask(1 if prefix is None else B, T, prefix)
            bias = torch.zeros(mask.shape, dtype=self.dtype)
            self._bias_cache[key] = bias.masked_fill(~mask, float("-inf"))
        return self._bias_cache[key]

    def _attention(self, x, p, prefix):
        B, T, C = x.shape
        H = self.cfg.n_head
        hd = C // H
        if self.fused:
            qkv = torch.addmm(p["attn.c_attn.bias"], x.view(B * T, C), p["attn.c_attn.weight"])
        else:
            qkv = x @ p["attn.c_attn.weight"] + p["attn.c_attn.bias"]
        q, k, v = qkv.view(B, T, 3 * C).split(C, dim=-1)
        q, k, v = (t.reshape(B, T, H, hd).transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
        scale = 1.0 / math.sqrt(hd)
        if self.fused:
            bias = self._mask_bias(B, T, prefix).expand(B, H, T, T).reshape(B * H, T, T)
            s = torch.baddbmm(bias, q.reshape(B * H, T, hd), k.reshape(B * H, T, hd).transpose(1, 2),
                              alpha=scale)
            att = torch.softmax(s, dim=-1)
            y = torch.bmm(att, v.reshape(B * H, T, hd)).view(B, H, T, hd)
        else:
            s = (q @ k.transpose(-2, -1)) * scale
            s = s.masked_fill(~attention_mask(B, T, prefix), float("-inf"))
            y = softmax_ref(s) @ v
        y = y.transpose(1, 2).reshape(B, T, C)
        if self.fused:
            return torch.addmm(p["attn.c_proj.bias"], y.view(B * T, C),
                               p["attn.c_proj.weight"]).view(B, T, C)
        return y @ p["attn.c_proj.weight"] + p["attn.c_proj.bias"]

    def _mlp(self, x, p):
        B, T, C = x.shape
        if self.fused:
            h = torch.addmm(p["mlp.c_fc.bias"], x.view(B * T, C), p["mlp.c_fc.weight"])
            h = F.gelu(h, approximate="tanh")
            return torch.addmm(p["mlp.c_proj.bias"], h, p["mlp.c_proj.weight"]).view(B, T, C)
        h = gelu_ref(x @ p["mlp.c_fc.weight"] + p["mlp.c_fc.bias"])
        return h @ p["mlp.c_proj.weight"] + p["mlp.c_proj.bias"]

    def _ln(self, x, w, b):
        if self.fused:
            return F.layer_norm(x, (x.shape[-1],), w, b, LN_EPS)
        return layernorm_ref(x, w, b)

    # -- model ------------------------------------------------------------------------------

    def _embed(self, tokens, patches):
        """[B, T, C]: the image's patches (if any) in the first positions, then the text."""
        P = self.params
        T = tokens.shape[1]
        if patches is None:
            return P["wte.weight"][tokens] + P["wpe.weight"][:T]
        Np = patches.shape[1]
        Wp = self.cfg.image[2] // self.cfg.image[0]
        n = torch.arange(Np)
        img = (patches.to(self.dtype) @ P["img.patch.weight"] + P["img.patch.bias"] +
               P["img.row.weight"][n // Wp] + P["img.col.weight"][n % Wp])
        text = P["wte.weight"][tokens[:, Np:]] + P["wpe.weight"][:T - Np]
        return torch.cat([img, text], dim=1)

    def forward(self, tokens, targets=None, prefix=None, patches=None):
        """tokens, targets: long [B, T] (targets < 0 ignored); prefix: long [B] or None;
        patches: [B, Np, P*P] image patches in the first Np positions, or None.
        Returns (logits [B, T, V], mean loss over counted targets or None)."""
        B, T = tokens.shape
        P = self.params
        x = self._embed(tokens, patches)
        for layer in range(self.cfg.n_layer):
            p = {s: P[f"h.{layer}.{s}"] for s, _ in BLOCK_TENSORS}
            x = x + self._attention(self._ln(x, p["ln_1.weight"], p["ln_1.bias"]), p, prefix)
            x = x + self._mlp(self._ln(x, p["ln_2.weight"], p["ln_2.bias"]), p)
        x = self._ln(x, P["ln_f.weight"], P["ln_f.bias"])
        logits = x @ P["wte.weight"].t()
        if targets is None:
            return logits, None
        if self.fused:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.view(-1), ignore_index=-1)
        else:
            loss = cross_entropy_ref(logits, targets)
        return logits, loss

    def flops_per_token(self, T):
        """6 x (matmul parameters) + attention (12 L T C), the figure cetus reports."""
        C, L = self.cfg.d_model, self.cfg.n_layer
        return 6.0 * (L * 12.0 * C * C + C * self.cfg.vocab_size) + 12.0 * L * T * C
