/* tool_gpt_dump.c: runs a tiny GPT-2 through the public API and dumps everything an
 * independent reference needs to check it (tests/tools/torch_reference.py):
 *   the parameters, tokens, targets, prefix lengths; logits, loss and every parameter
 *   gradient of one forward + backward; then two AdamW steps (with gradient clipping that
 *   is active on the first step): the gradients fed to each step, the gradient norms it
 *   returned, the parameters after each step and the moments after the second.
 *
 * Usage: tool_gpt_dump OUT.bin [causal|prefix|image] [perturb] [bf16]
 *   prefix   rows get prefix-LM lengths {5, 0, 16} instead of a causal mask
 *   image    the model has an image prefix (8x8 images in 4x4 patches: the first 4
 *            positions of each row), prefix-LM over the image and the next token
 *   perturb  adds 1e-4 to one entry of one gradient before writing (the reference must fail)
 *   bf16     the matrix products in bf16 (train.precision = bf16); the dump gets a record
 *            "bf16" and the reference compares against PyTorch's bf16 autocast
 *
 * Dump format (little endian), a sequence of records until end of file:
 *   u32 name_len, name bytes, u32 dtype (0 = float32, 1 = int32), u32 ndim,
 *   u32 shape[ndim], then prod(shape) elements.
 * Names: "cfg" (int32 [n_layer, d_model, n_head, seq_len, vocab_size, B, T]), "image"
 *   (int32 [patch, height, width]) and "patches" [B, Np, patch^2] in image mode,
 *   "tokens", "targets" [B, T], "prefix" [B] (absent when causal), "logits" [B, T, V],
 *   "loss" [1], "adam" (float32 [lr, beta1, beta2, eps, weight_decay, clip1, clip2]),
 *   "norm1", "norm2" [1], and for every tensor NAME of the model: "param.NAME" (before any
 *   step), "grad.NAME" (the first backward, at param), "decay.NAME" (int32 [1]),
 *   "step1.NAME", "grad2.NAME" (the backward at step1), "step2.NAME", "m2.NAME", "v2.NAME". */
#include "cetus.h"
#include "model/model.h"
#include "ops/ops.h"
#include "train/optim.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dump.h"

enum { L = 2, D = 32, NH = 4, SEQ = 24, VOCAB = 97, B = 3, T = 16 };

static void put_f1(const char *name, float v) {
    int one = 1;
    put(name, 0, 1, &one, &v);
}

/* Writes every tensor of base (params, grads or a moment buffer) as "prefix.NAME". */
static void put_tensors(ct_model *m, const char *prefix, const float *base) {
    char name[128];
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info *t = ct_model_tensor(m, i);
        snprintf(name, sizeof name, "%s.%s", prefix, t->name);
        put(name, 0, t->ndim, t->shape, base + t->offset);
    }
}

/* Deterministic values in [-1, 1) from a 64-bit LCG (independent of the model's RNG). */
static uint64_t lcg = 0x9E3779B97F4A7C15ull;
static float uniform_pm1(void) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((lcg >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

/* Replaces the GPT-2 init (tiny weights, zero biases, unit gains) by larger, non-trivial
 * values so every term of the forward and backward contributes measurably. */
static void randomize(ct_model *m) {
    float *p = ct_model_params(m);
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info *t = ct_model_tensor(m, i);
        int gain = strstr(t->name, "ln_") && strstr(t->name, ".weight");
        for (size_t j = 0; j < t->numel; j++) {
            float u = uniform_pm1();
            p[t->offset + j] = t->ndim == 2 ? 0.25f * u : gain ? 1.0f + 0.2f * u : 0.1f * u;
        }
    }
}

static void check(ct_status s, const char *what) {
    if (s != CT_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, ct_status_name(s), ct_last_error());
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT.bin [causal|prefix|image] [perturb] [bf16]\n", argv[0]);
        return 2;
    }
    int use_image = argc > 2 && strcmp(argv[2], "image") == 0;
    int use_prefix = argc > 2 && (strcmp(argv[2], "prefix") == 0 || use_image);
    int perturb = 0, bf16 = 0;
    for (int i = 3; i < argc; i++) {
        perturb |= !strcmp(argv[i], "perturb");
        bf16 |= !strcmp(argv[i], "bf16");
    }
    ct_runtime_init(0, 0);
    check(ct_gemm_configure("auto", bf16 ? "bf16" : "fp32"), "ct_gemm_configure");

    ct_model_config cfg = {.n_layer = L, .d_model = D, .n_head = NH, .seq_len = SEQ, .vocab_size = VOCAB};
    if (use_image) cfg.image = (ct_image_config){.patch = 4, .height = 8, .width = 8};
    int Np = ct_model_image_patches(&cfg);
    ct_model *m;
    check(ct_model_create(&m, &cfg, 1234), "ct_model_create");
    randomize(m);
    size_t np = ct_model_num_params(m);
    float *p0 = malloc(np * sizeof(float)), *g1 = malloc(np * sizeof(float));
    if (!p0 || !g1) return 1;
    memcpy(p0, ct_model_params(m), np * sizeof(float));

    int32_t tokens[B * T], targets[B * T], prefix[B] = {5, 0, 16};
    for (int i = 0; i < B * T; i++) {
        tokens[i] = (int32_t)((i * 37 + 11) % VOCAB);
        targets[i] = (int32_t)((i * 53 + 7) % VOCAB);
        if (i % 7 == 3) targets[i] = -1; /* ignored positions */
    }
    float patches[B * 4 * 16];
    if (use_image) {
        for (int b = 0; b < B; b++) prefix[b] = Np + 1;
        for (int i = 0; i < B * T; i++)
            if (i % T < Np) targets[i] = -1; /* nothing to predict at an image position */
        for (int i = 0; i < B * Np * 16; i++) patches[i] = uniform_pm1();
        check(ct_model_set_image(m, patches, Np), "ct_model_set_image");
    }
    const int32_t *pfx = use_prefix ? prefix : NULL;

    float loss = 0.0f;
    check(ct_model_forward(m, tokens, targets, pfx, B, T, &loss), "forward");
    size_t nlog = (size_t)B * T * VOCAB;
    float *logits = malloc(nlog * sizeof(float));
    if (!logits) return 1;
    memcpy(logits, ct_model_logits(m), nlog * sizeof(float));
    ct_model_zero_grad(m);
    check(ct_model_backward(m, 1.0f), "backward");
    memcpy(g1, ct_model_grads(m), np * sizeof(float));

    /* AdamW: step 1 clips at half the gradient norm; step 2 with a loose clip. */
    ct_adamw_config ac = {0.9f, 0.95f, 1e-8f, 0.1f, 0.0f};
    float lr = 1e-2f;
    float clip1 = 0.5f * ct_grad_norm(g1, np), clip2 = 1e6f;
    ct_adamw *opt;
    check(ct_adamw_create(&opt, np), "ct_adamw_create");
    ac.grad_clip = clip1;
    float norm1 = ct_adamw_step(opt, m, lr, &ac);
    float *p1 = malloc(np * sizeof(float)), *g2 = malloc(np * sizeof(float));
    if (!p1 || !g2) return 1;
    memcpy(p1, ct_model_params(m), np * sizeof(float));
    float loss2;
    check(ct_model_forward(m, tokens, targets, pfx, B, T, &loss2), "forward 2");
    ct_model_zero_grad(m);
    check(ct_model_backward(m, 1.0f), "backward 2");
    memcpy(g2, ct_model_grads(m), np * sizeof(float));
    ac.grad_clip = clip2;
    float norm2 = ct_adamw_step(opt, m, lr, &ac);

    if (perturb) { /* a deliberate error in one entry of one gradient */
        const ct_tensor_info *t = ct_model_find_tensor(m, "h.1.attn.c_attn.weight");
        g1[t->offset + 77] += 1e-4f;
    }

    dump_out = fopen(argv[1], "wb");
    if (!dump_out) {
        perror(argv[1]);
        return 1;
    }
    int cfgv[7] = {L, D, NH, SEQ, VOCAB, B, T}, seven = 7, bt[2] = {B, T}, btv[3] = {B, T, VOCAB};
    int b1 = B, one = 1;
    put("cfg", 1, 1, &seven, cfgv);
    put("tokens", 1, 2, bt, tokens);
    put("targets", 1, 2, bt, targets);
    if (use_prefix) put("prefix", 1, 1, &b1, prefix);
    if (bf16) put("bf16", 1, 1, &one, &one);
    if (use_image) {
        int three = 3, img[3] = {4, 8, 8}, pshape[3] = {B, Np, 16};
        put("image", 1, 1, &three, img);
        put("patches", 0, 3, pshape, patches);
    }
    put("logits", 0, 3, btv, logits);
    put_f1("loss", loss);
    float adam[7] = {lr, ac.beta1, ac.beta2, ac.eps, ac.weight_decay, clip1, clip2};
    put("adam", 0, 1, &seven, adam);
    put_f1("norm1", norm1);
    put_f1("norm2", norm2);
    put_tensors(m, "param", p0);
    put_tensors(m, "grad", g1);
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info *t = ct_model_tensor(m, i);
        char name[128];
        int32_t decay = t->decay;
        snprintf(name, sizeof name, "decay.%s", t->name);
        put(name, 1, 1, &one, &decay);
    }
    put_tensors(m, "step1", p1);
    put_tensors(m, "grad2", g2);
    put_tensors(m, "step2", ct_model_params(m));
    put_tensors(m, "m2", ct_adamw_m(opt));
    put_tensors(m, "v2", ct_adamw_v(opt));
    if (fclose(dump_out) != 0) {
        perror(argv[1]);
        return 1;
    }
    printf("wrote %s: %zu tensors, %zu parameters, loss %.6f (after step 1: %.6f)\n", argv[1],
           ct_model_num_tensors(m), np, loss, loss2);
    ct_adamw_free(opt);
    ct_model_free(m);
    free(p0);
    free(g1);
    free(p1);
    free(g2);
    free(logits);
    return 0;
}
