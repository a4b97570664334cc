/* gpt_pass.c: the model's activation buffer (one allocation, laid out per (B, T)) and the
 * forward and backward passes: embeddings -> blocks -> final LayerNorm -> tied head -> loss,
 * then back in reverse. */
#include "core/core.h"
#include "model/model.h"
#include "model/gpt_internal.h"
#include "ops/ops.h"
#include <omp.h>
#include <string.h>

static const ct_moe_config *layer_moe(const ct_model *m, int l) {
    return ct_model_layer_is_moe(&m->cfg, l) ? &m->cfg.moe : NULL;
}

static const ct_moe_config *model_moe(const ct_model *m) { return m->cfg.moe_every > 0 ? &m->cfg.moe : NULL; }

/* This rank's vocabulary rows (all of them without tensor parallelism). */
static int vocab_rows(const ct_model *m) { return m->cfg.vocab_size / m->layout.tp_ranks; }
/* The logits' columns: the vocabulary rows on the head's stage, none elsewhere. */
static int local_vocab(const ct_model *m) { return m->layout.has_head ? vocab_rows(m) : 0; }

/* This stage's blocks. */
static size_t stage_blocks(const ct_model *m) { return (size_t)(m->layout.l1 - m->layout.l0); }

static ct_dims model_dims(const ct_model *m, int B, int T) {
    return (ct_dims){B, T, m->cfg.d_model, m->cfg.n_head, &m->tp.block};
}

static int recomputed(const ct_model *m, int l) { return m->pass.recompute && m->pass.recompute[l]; }

/* Floats of the blocks' activations: each kept block its own, the recomputed ones one
 * buffer (the largest of theirs) in turn. */
static size_t blocks_acts_size(const ct_model *m, ct_dims d, size_t *shared) {
    size_t own = 0;
    *shared = 0;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        size_t n = ct_block_acts_size(d, layer_moe(m, l));
        if (!recomputed(m, l)) own += n;
        else if (n > *shared)
            *shared = n;
    }
    return own + *shared;
}

static size_t acts_size(const ct_model *m, ct_dims d, int threads) {
    size_t N = (size_t)d.B * d.T, C = (size_t)d.C, L = stage_blocks(m), shared;
    size_t blocks = blocks_acts_size(m, d, &shared);
    return (L + 1) * N * C + blocks + ct_block_scratch_size(d, threads, model_moe(m)) + N * C + 3 * N +
           N * (size_t)local_vocab(m) + N * C;
}

/* Bytes of the expert-parallel sides of this stage's MoE blocks: each kept block its own,
 * the recomputed ones one shared (their forward runs again, exchange included, just before
 * their backward, as their block activations do). *one: a side's bytes. */
static size_t expert_sides_bytes(const ct_model *m, int N, size_t *one) {
    size_t layers = 0;
    int shared = 0;
    *one = (ct_moe_ep_acts_bytes(&m->cfg.moe, N, m->cfg.d_model, m->layout.ep_ranks) + 63) / 64 * 64;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        if (!ct_model_layer_is_moe(&m->cfg, l)) continue;
        if (recomputed(m, l)) shared = 1;
        else
            layers++;
    }
    layers += (size_t)shared;
    return *one * (layers ? layers : 1);
}

/* Expert parallelism: each MoE block's expert side, sized for N tokens per member. */
static ct_status layout_expert_sides(ct_model *m, int N) {
    const ct_moe_config *c = &m->cfg.moe;
    size_t one, need = expert_sides_bytes(m, N, &one);
    if (!m->pass.ep_acts && !(m->pass.ep_acts = ct_calloc((size_t)m->cfg.n_layer * sizeof *m->pass.ep_acts,
                                                          "the expert-parallel tables")))
        return CT_ENOMEM;
    if (need > m->pass.ep_buf_cap) {
        ct_free(m->pass.ep_buf);
        m->pass.ep_buf_cap = 0;
        if (!(m->pass.ep_buf = ct_alloc_in(CT_TIER_COMPUTE, need, "expert-parallel activations")))
            return CT_ENOMEM;
        m->pass.ep_buf_cap = need;
    }
    size_t at = 0, shared = SIZE_MAX;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        if (!ct_model_layer_is_moe(&m->cfg, l)) continue;
        size_t slot = recomputed(m, l) ? (shared == SIZE_MAX ? (shared = at++) : shared) : at++;
        ct_moe_ep_acts_layout(&m->pass.ep_acts[l], (char *)m->pass.ep_buf + one * slot, c, N, m->cfg.d_model,
                              m->layout.ep_ranks);
    }
    return CT_OK;
}

/* Room for the MoE statistics of recomputed blocks, taken at forward time. */
static ct_status alloc_snapshots(ct_model *m) {
    size_t L = (size_t)m->cfg.n_layer, E = (size_t)m->cfg.moe.n_experts;
    if (!(m->pass.moe_snap = ct_calloc(L * sizeof *m->pass.moe_snap, "MoE statistics")) ||
        !(m->pass.snap_load = ct_calloc(L * E * sizeof *m->pass.snap_load, "MoE statistics")) ||
        !(m->pass.snap_kept = ct_calloc(L * E * sizeof *m->pass.snap_kept, "MoE statistics"))) {
        ct_free(m->pass.moe_snap); /* all or none: the next pass tries again */
        ct_free(m->pass.snap_load);
        m->pass.moe_snap = NULL;
        m->pass.snap_load = NULL;
        return CT_ENOMEM;
    }
    return CT_OK;
}

static void snapshot_moe(ct_model *m, int l) {
    size_t E = (size_t)m->cfg.moe.n_experts;
    ct_moe_stats st;
    ct_moe_stats_get(&m->cfg.moe, &m->pass.block_acts[l].moe, &st);
    memcpy(m->pass.snap_load + (size_t)l * E, st.load, E * sizeof(float));
    memcpy(m->pass.snap_kept + (size_t)l * E, st.kept, E * sizeof(int32_t));
    st.load = m->pass.snap_load + (size_t)l * E;
    st.kept = m->pass.snap_kept + (size_t)l * E;
    m->pass.moe_snap[l] = st;
}

static ct_status layout_acts(ct_model *m, int B, int T) {
    CT_TRY(ct_gpt_offload_place(m));
    ct_dims d = model_dims(m, B, T);
    int threads = omp_get_max_threads();
    size_t need = acts_size(m, d, threads), N = (size_t)B * T, C = (size_t)d.C;
    if (need > m->pass.acts_cap) {
        ct_free(m->pass.acts);
        m->pass.acts_cap = 0;
        m->pass.acts = ct_alloc_in(CT_TIER_COMPUTE, need * sizeof(float), "model activations");
        if (!m->pass.acts) return CT_ENOMEM;
        m->pass.acts_cap = need;
    }
    if (N > m->pass.ints_cap) {
        ct_free(m->pass.tokens);
        m->pass.tokens = ct_alloc(3 * N * sizeof(int32_t), "token buffers");
        if (!m->pass.tokens) {
            m->pass.ints_cap = 0;
            return CT_ENOMEM;
        }
        m->pass.targets = m->pass.tokens + N;
        m->pass.prefix = m->pass.tokens + 2 * N;
        m->pass.ints_cap = N;
    }
    float *p = m->pass.acts, *shared = NULL;
    m->pass.res = p;
    p += (stage_blocks(m) + 1) * N * C; /* res[i]: input of block l0 + i */
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        if (recomputed(m, l)) continue;
        ct_block_acts_layout(&m->pass.block_acts[l], p, d, layer_moe(m, l));
        p += ct_block_acts_size(d, layer_moe(m, l));
    }
    size_t shared_size;
    blocks_acts_size(m, d, &shared_size);
    shared = p;
    p += shared_size;
    for (int l = m->layout.l0; l < m->layout.l1; l++)
        if (recomputed(m, l)) ct_block_acts_layout(&m->pass.block_acts[l], shared, d, layer_moe(m, l));
    ct_block_scratch_layout(&m->pass.scratch, p, d, threads, model_moe(m));
    p += ct_block_scratch_size(d, threads, model_moe(m));
    m->pass.lnf = p;
    p += N * C;
    m->pass.lnf_mean = p;
    p += N;
    m->pass.lnf_rstd = p;
    p += N;
    m->pass.lse = p;
    p += N;
    m->pass.logits = p;
    p += N * (size_t)local_vocab(m);
    m->pass.dres = p;
    if (m->layout.ep_ranks > 1) CT_TRY(layout_expert_sides(m, (int)N));
    if (m->pass.recompute && m->cfg.moe_every > 0 && !m->pass.moe_snap) CT_TRY(alloc_snapshots(m));
    m->pass.B = B;
    m->pass.T = T;
    m->pass.threads = threads;
    return CT_OK;
}

/* Each MoE block draws its router noise from its own stream of the call's seed. */
static ct_block_ffn block_ffn(const ct_model *m, int l) {
    uint64_t seed = m->pass.noise_seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(l + 1));
    int ep = m->layout.ep_ranks > 1 && layer_moe(m, l);
    return (ct_block_ffn){layer_moe(m, l), seed, m->pass.training, ep ? &m->tp.ep_group : NULL,
                          ep ? &m->pass.ep_acts[l] : NULL};
}

void ct_model_set_grad_hook(ct_model *m, ct_grad_ready_fn fn, void *ctx) {
    m->hooks.grad = fn;
    m->hooks.grad_ctx = ctx;
}

void ct_model_set_params_hook(ct_model *m, ct_params_fn fn, void *ctx) {
    m->hooks.params = fn;
    m->hooks.params_ctx = ctx;
}

/* Tells the parameters hook (ZeRO 3) about a use of unit's weights. */
static ct_status use_params(const ct_model *m, ct_use_event event, int unit, int next) {
    const ct_model *o = ct_gpt_owner(m);
    return o->hooks.params ? o->hooks.params(o->hooks.params_ctx, event, unit, next) : CT_OK;
}

void ct_model_get_progress_hook(const ct_model *m, ct_progress_fn *fn, void **ctx) {
    *fn = m->hooks.progress;
    *ctx = m->hooks.progress_ctx;
}

void ct_model_set_progress_hook(ct_model *m, ct_progress_fn fn, void *ctx) {
    m->hooks.progress = fn;
    m->hooks.progress_ctx = ctx;
}

/* Tells the hook that the gradients of tensors [first, last) are final. */
static void grads_ready(const ct_model *m, size_t first, size_t last) {
    const ct_model *o = ct_gpt_owner(m);
    if (!o->hooks.grad) return;
    const ct_tensor_info *a = &m->table.tensors[first], *b = &m->table.tensors[last - 1];
    o->hooks.grad(a->offset, b->offset + b->numel - a->offset, o->hooks.grad_ctx);
}

void ct_model_set_logits_last(ct_model *m, int on) { m->pass.logits_last = on != 0; }

void ct_model_set_training(ct_model *m, int training, uint64_t noise_seed) {
    m->pass.training = training;
    m->pass.noise_seed = noise_seed;
}

float ct_model_aux_loss(const ct_model *m) { return m->pass.aux_loss; }

ct_status ct_model_moe_stats(const ct_model *m, int layer, ct_moe_stats *out) {
    if (layer < 0 || layer >= m->cfg.n_layer || !ct_model_layer_is_moe(&m->cfg, layer))
        return ct_fail(CT_EINVAL, "block %d has no MoE layer", layer);
    if (layer < m->layout.l0 || layer >= m->layout.l1)
        return ct_fail(CT_EINVAL, "block %d is on another pipeline stage", layer);
    if (recomputed(m, layer)) *out = m->pass.moe_snap[layer]; /* its activations are gone */
    else
        ct_moe_stats_get(&m->cfg.moe, &m->pass.block_acts[layer].moe, out);
    return CT_OK;
}

static ct_status check_inputs(const ct_model *m, const int32_t *tokens, const int32_t *targets,
                              const int32_t *prefix_len, const float *x_in, int B, int T) {
    const ct_model_config *c = &m->cfg;
    if (B < 1 || T < 1) return ct_fail(CT_EINVAL, "forward: batch %d x %d is empty", B, T);
    if (T > c->seq_len)
        return ct_fail(CT_EINVAL, "forward: sequence length %d exceeds model.seq_len = %d", T, c->seq_len);
    if (m->layout.has_embed ? !tokens : !x_in)
        return ct_fail(CT_EINVAL, "forward: pipeline stage %d of %d needs %s", m->layout.stage,
                       m->layout.stages, m->layout.has_embed ? "tokens" : "the previous stage's output");
    if (m->pass.image_patches && (!m->layout.has_embed || T <= m->pass.image_patches))
        return ct_fail(CT_EINVAL, "forward: %d positions cannot hold the image's %d patches and text", T,
                       m->pass.image_patches);
    for (size_t i = 0; i < (size_t)B * T; i++) {
        if ((int)(i % (size_t)T) < m->pass.image_patches) continue; /* an image position */
        if (tokens && (tokens[i] < 0 || tokens[i] >= c->vocab_size))
            return ct_fail(CT_EINVAL, "forward: token %d at position %zu is outside the vocabulary [0, %d)",
                           tokens[i], i, c->vocab_size);
        if (targets && targets[i] >= c->vocab_size)
            return ct_fail(CT_EINVAL, "forward: target %d at position %zu is outside the vocabulary [0, %d)",
                           targets[i], i, c->vocab_size);
    }
    for (int b = 0; prefix_len && b < B; b++)
        if (prefix_len[b] < 0 || prefix_len[b] > T)
            return ct_fail(CT_EINVAL, "forward: prefix length %d of row %d is outside [0, %d]", prefix_len[b],
                           b, T);
    return CT_OK;
}

/* The image input of this forward: a copy of the caller's patches [B, Np, P * P]. */
static ct_status take_patches(ct_model *m, int B) {
    m->pass.n_patches = m->pass.image_patches;
    if (!m->pass.n_patches) return CT_OK;
    size_t need = (size_t)B * m->pass.n_patches * (size_t)m->cfg.image.patch * m->cfg.image.patch;
    if (need > m->pass.patch_cap) {
        ct_free(m->pass.patch_in);
        m->pass.patch_cap = 0;
        if (!(m->pass.patch_in = ct_alloc_in(CT_TIER_COMPUTE, need * sizeof(float), "image patches")))
            return CT_ENOMEM;
        m->pass.patch_cap = need;
    }
    memcpy(m->pass.patch_in, m->pass.image_src, need * sizeof(float));
    return CT_OK;
}

/* res[0]: each row's image patches (projected, plus their 2-D positions) and then its tokens
 * (token and position embeddings; vocabulary-parallel: summed over the ranks), the text's
 * positions counting from 0 after the image. */
static void embed(ct_model *m, const int32_t *tokens, int B, int T) {
    int N = B * T, C = m->cfg.d_model, V = vocab_rows(m), v0 = ct_gpt_tp_vocab_lo(m), Np = m->pass.n_patches;
    int Tt = T - Np, K = m->cfg.image.patch * m->cfg.image.patch;
    const float *wte = m->table.params + m->table.wte, *wpe = m->table.params + m->table.wpe;
    for (int b = 0; b < B; b++) {
        float *x = m->pass.res + ((size_t)b * T + Np) * C;
        const int32_t *tok = tokens + (size_t)b * T + Np;
        if (m->layout.tp_ranks == 1) ct_embedding_forward(x, tok, wte, wpe, 1, Tt, C);
        else
            ct_embedding_lookup(x, tok, wte, v0, v0 + V, 1, Tt, C); /* each rank its vocabulary rows */
        if (Np) memset(x - (size_t)Np * C, 0, (size_t)Np * C * sizeof(float));
    }
    if (m->layout.tp_ranks > 1) { /* the sum has every token's row */
        ct_gpt_tp_sum(m, m->pass.res, (size_t)N * C);
        for (int b = 0; b < B; b++)
            ct_embedding_add_positions(m->pass.res + ((size_t)b * T + Np) * C, wpe, 1, Tt, C);
    }
    for (int b = 0; b < B && Np; b++)
        ct_patch_embed_forward(m->pass.res + (size_t)b * T * C, m->pass.patch_in + (size_t)b * Np * K,
                               m->table.params + m->table.img_w, m->table.params + m->table.img_b,
                               m->table.params + m->table.img_row, m->table.params + m->table.img_col, Np,
                               m->cfg.image.width / m->cfg.image.patch, K, C);
}

/* The gradients of the embeddings (and the image tower) from dres. */
static void embed_backward(ct_model *m, int B, int T) {
    int C = m->cfg.d_model, V = vocab_rows(m), v0 = ct_gpt_tp_vocab_lo(m), Np = m->pass.n_patches;
    int Tt = T - Np, K = m->cfg.image.patch * m->cfg.image.patch;
    float *g = m->table.grads;
    if (!Np) {
        ct_embedding_backward(g + m->table.wte, g + m->table.wpe, m->pass.dres, m->pass.tokens, v0, v0 + V, B,
                              T, C);
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *d = m->pass.dres + (size_t)b * T * C;
        ct_embedding_backward(g + m->table.wte, g + m->table.wpe, d + (size_t)Np * C,
                              m->pass.tokens + (size_t)b * T + Np, v0, v0 + V, 1, Tt, C);
        ct_patch_embed_backward(g + m->table.img_w, g + m->table.img_b, g + m->table.img_row,
                                g + m->table.img_col, d, m->pass.patch_in + (size_t)b * Np * K, Np,
                                m->cfg.image.width / m->cfg.image.patch, K, C);
    }
}

/* ln_f, the tied head's logits and, with targets, the loss. */
static float head_forward(ct_model *m, const int32_t *targets, int N) {
    int C = m->cfg.d_model, V = local_vocab(m);
    float *x = m->pass.res + stage_blocks(m) * (size_t)N * C, l = 0.0f;
    ct_layernorm_forward(m->pass.lnf, m->pass.lnf_mean, m->pass.lnf_rstd, x, m->table.params + m->table.lnf_w,
                         m->table.params + m->table.lnf_b, N, C);
    m->pass.logits_partial = !targets && m->pass.logits_last;
    if (m->pass.logits_partial) { /* generation: only each row's last position, rows T apart */
        int B = m->pass.B, T = m->pass.T;
        ct_gemm(0, 1, B, V, C, 1.0f, m->pass.lnf + (size_t)(T - 1) * C, T * C, m->table.params + m->table.wte,
                C, 0.0f, m->pass.logits + (size_t)(T - 1) * V, T * V);
        return l;
    }
    /* logits[N,V] = lnf[N,C] wte[V,C]^T (this rank's V/R vocabulary rows) */
    ct_gemm(0, 1, N, V, C, 1.0f, m->pass.lnf, C, m->table.params + m->table.wte, C, 0.0f, m->pass.logits, V);
    if (targets)
        l = m->layout.tp_ranks == 1
                ? ct_crossentropy_forward(m->pass.lse, m->pass.logits, targets, N, V, &m->pass.counted)
                : ct_gpt_tp_crossentropy(m, m->pass.logits, m->pass.lse, targets, N, &m->pass.counted);
    return l;
}

ct_status ct_model_forward(ct_model *m, const int32_t *tokens, const int32_t *targets,
                           const int32_t *prefix_len, int B, int T, float *loss) {
    if (m->layout.stages > 1)
        return ct_fail(CT_EINVAL, "forward: this model is pipeline stage %d of %d; use ct_model_forward_stage",
                       m->layout.stage, m->layout.stages);
    return ct_model_forward_stage(m, tokens, targets, prefix_len, NULL, B, T, loss);
}

ct_status ct_model_forward_stage(ct_model *m, const int32_t *tokens, const int32_t *targets,
                                 const int32_t *prefix_len, const float *x_in, int B, int T, float *loss) {
    CT_TRY(check_inputs(m, tokens, targets, prefix_len, x_in, B, T));
    CT_TRY(layout_acts(m, B, T));
    int N = B * T, C = m->cfg.d_model;
    ct_dims d = model_dims(m, B, T);
    ct_gpt_tp_begin(m);
    m->pass.logits_are_grads = 0;
    if (tokens) memcpy(m->pass.tokens, tokens, (size_t)N * sizeof(int32_t));
    m->pass.has_targets = targets != NULL || !m->layout.has_head;
    if (targets) memcpy(m->pass.targets, targets, (size_t)N * sizeof(int32_t));
    const int32_t *prefix = NULL;
    m->pass.prefix_set = prefix_len != NULL;
    if (prefix_len) {
        memcpy(m->pass.prefix, prefix_len, (size_t)B * sizeof(int32_t));
        prefix = m->pass.prefix;
    }
    int head = m->cfg.n_layer + 1, after_blocks = m->layout.has_head ? head : -1;
    if (m->layout.has_embed) {
        CT_TRY(take_patches(m, B));
        CT_TRY(use_params(m, CT_USE_GET, 0, m->layout.l0 < m->layout.l1 ? 1 + m->layout.l0 : after_blocks));
        embed(m, tokens, B, T);
        CT_TRY(use_params(m, CT_USE_PUT_FORWARD, 0, -1));
    } else {
        memcpy(m->pass.res, x_in, (size_t)N * C * sizeof(float));
    }
    m->pass.aux_loss = 0.0f;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        ct_block_ffn ffn = block_ffn(m, l);
        size_t i = (size_t)(l - m->layout.l0);
        CT_TRY(use_params(m, CT_USE_GET, 1 + l, l + 1 < m->layout.l1 ? 2 + l : after_blocks));
        CT_TRY(ct_gpt_offload_enter(m, l, l + 1));
        m->pass.aux_loss += ct_block_forward(&m->table.blocks[l], &m->pass.block_acts[l],
                                             m->pass.res + i * N * C, m->pass.res + (i + 1) * N * C, prefix, d,
                                             &ffn);
        if (recomputed(m, l) && ffn.moe) snapshot_moe(m, l);
        CT_TRY(use_params(m, CT_USE_PUT_FORWARD, 1 + l, -1));
    }
    if (m->layout.has_head) {
        CT_TRY(use_params(m, CT_USE_GET, head, -1));
        float l = head_forward(m, targets, N);
        if (targets && loss) *loss = l;
        CT_TRY(use_params(m, CT_USE_PUT_FORWARD, head, -1));
    }
    return ct_gpt_tp_end(m, "parallel forward");
}

const float *ct_model_stage_output(const ct_model *m) {
    return m->pass.res + stage_blocks(m) * (size_t)m->pass.B * m->pass.T * m->cfg.d_model;
}

const float *ct_model_stage_input_grad(const ct_model *m) { return m->pass.dres; }

ct_status ct_model_set_recompute(ct_model *m, const int *layers) {
    if (m->base || m->pass.acts)
        return ct_fail(CT_EINVAL, "activation recomputation must be chosen before the model's first pass "
                                  "and its views");
    int any = 0;
    for (int l = 0; layers && l < m->cfg.n_layer; l++) any |= layers[l] != 0;
    ct_free(m->pass.recompute);
    m->pass.recompute = NULL;
    if (!any) return CT_OK;
    if (!(m->pass.recompute = ct_calloc((size_t)m->cfg.n_layer, "the recomputation mask"))) return CT_ENOMEM;
    for (int l = 0; l < m->cfg.n_layer; l++) m->pass.recompute[l] = layers[l] != 0;
    return CT_OK;
}

size_t ct_model_acts_bytes_for(const ct_model *m, int B, int T) {
    ct_dims d = model_dims(m, B, T);
    size_t N = (size_t)B * T, bytes = acts_size(m, d, omp_get_max_threads()) * sizeof(float);
    size_t one;
    if (m->layout.ep_ranks > 1) bytes += expert_sides_bytes(m, (int)N, &one);
    if (m->layout.tp_ranks > 1) bytes += ((size_t)m->layout.tp_ranks + 2) * N * sizeof(float);
    return bytes;
}

size_t ct_model_block_acts_bytes(const ct_model *m, int layer, int B, int T) {
    size_t bytes = ct_block_acts_size(model_dims(m, B, T), layer_moe(m, layer)) * sizeof(float), one = 0;
    if (m->layout.ep_ranks > 1 && layer_moe(m, layer)) expert_sides_bytes(m, B * T, &one);
    return bytes + one;
}

size_t ct_model_acts_bytes(const ct_model *m) { return m->pass.acts_cap * sizeof(float) + m->pass.ep_buf_cap; }

void ct_model_zero_grad(ct_model *m) {
    if (ct_gpt_offload_zero_grad(m)) return;
    if (m->table.grads) memset(m->table.grads, 0, m->table.n_params * sizeof(float));
}

/* From the loss to dL/d(ln_f input) in m->pass.dres; the head's and ln_f's gradients. */
static void head_backward(ct_model *m, float grad_scale, int N) {
    int C = m->cfg.d_model, V = local_vocab(m), v0 = ct_gpt_tp_vocab_lo(m);
    float scale = m->pass.counted ? grad_scale / (float)m->pass.counted : 0.0f;
    ct_crossentropy_backward_part(m->pass.logits, m->pass.lse, m->pass.targets, N, V, v0, scale);
    m->pass.logits_are_grads = 1;
    float *dlogits = m->pass.logits, *dlnf = m->pass.scratch.dln, *g = m->table.grads;
    /* dlnf[N,C] = dlogits[N,V] wte[V,C];  dwte[V,C] += dlogits^T lnf */
    ct_gemm(0, 0, N, C, V, 1.0f, dlogits, V, m->table.params + m->table.wte, C, 0.0f, dlnf, C);
    ct_gpt_tp_sum(m, dlnf, (size_t)N * C); /* each rank's vocabulary rows contribute */
    ct_gemm(1, 0, V, C, N, 1.0f, dlogits, V, m->pass.lnf, C, 1.0f, g + m->table.wte, C);
    const ct_model *o = ct_gpt_owner(m);
    if (o->hooks.progress) o->hooks.progress(o->hooks.progress_ctx);
    memset(m->pass.dres, 0, (size_t)N * C * sizeof(float));
    ct_layernorm_backward(m->pass.dres, g + m->table.lnf_w, g + m->table.lnf_b, dlnf,
                          m->pass.res + stage_blocks(m) * (size_t)N * C, m->table.params + m->table.lnf_w,
                          m->pass.lnf_mean, m->pass.lnf_rstd, N, C);
    grads_ready(m, m->table.lnf_first, m->table.n_tensors); /* ln_f (and the head's wte copy) */
}

ct_status ct_model_backward(ct_model *m, float grad_scale) {
    if (m->layout.stages > 1)
        return ct_fail(CT_EINVAL,
                       "backward: this model is pipeline stage %d of %d; use ct_model_backward_stage",
                       m->layout.stage, m->layout.stages);
    return ct_model_backward_stage(m, grad_scale, NULL);
}

ct_status ct_model_backward_stage(ct_model *m, float grad_scale, const float *dy) {
    if (!m->pass.has_targets) return ct_fail(CT_EINVAL, "backward: the last forward had no targets");
    if (!m->layout.has_head && !dy)
        return ct_fail(CT_EINVAL, "backward: pipeline stage %d of %d needs dL/d(output)", m->layout.stage,
                       m->layout.stages);
    CT_TRY(ct_model_ensure_grads(m));
    int B = m->pass.B, T = m->pass.T, N = B * T, C = m->cfg.d_model;
    ct_dims d = model_dims(m, B, T);
    const int32_t *prefix = m->pass.prefix_set ? m->pass.prefix : NULL;
    ct_gpt_tp_begin(m);
    if (m->layout.has_head) {
        int head = m->cfg.n_layer + 1;
        CT_TRY(use_params(m, CT_USE_GET, head, m->layout.l1 > m->layout.l0 ? m->layout.l1 : -1));
        head_backward(m, grad_scale, N);
        CT_TRY(use_params(m, CT_USE_PUT_BACKWARD, head, -1));
    } else {
        memcpy(m->pass.dres, dy, (size_t)N * C * sizeof(float));
    }
    for (int l = m->layout.l1 - 1; l >= m->layout.l0; l--) {
        ct_block_ffn ffn = block_ffn(m, l);
        CT_TRY(use_params(m, CT_USE_GET, 1 + l, l > m->layout.l0 ? l : -1));
        CT_TRY(ct_gpt_offload_enter(m, l, l - 1));
        ct_gpt_offload_grads_in(m, l);
        if (recomputed(m, l)) /* the same forward again (same noise): its output is unchanged */
            (void)ct_block_forward(&m->table.blocks[l], &m->pass.block_acts[l],
                                   m->pass.res + (size_t)(l - m->layout.l0) * N * C,
                                   m->pass.res + (size_t)(l - m->layout.l0 + 1) * N * C, prefix, d, &ffn);
        ct_block_backward(&m->table.blocks[l], &m->table.block_grads[l], &m->pass.block_acts[l],
                          m->pass.res + (size_t)(l - m->layout.l0) * N * C, m->pass.dres, &m->pass.scratch,
                          prefix, d, &ffn, grad_scale);
        ct_gpt_offload_grads_out(m, l);
        CT_TRY(use_params(m, CT_USE_PUT_BACKWARD, 1 + l, -1));
        if (m->table.holds[l]) /* shared weights: this is their last use in backward */
            grads_ready(m, m->table.layer_first[l],
                        m->table.layer_first[l] + (size_t)ct_gpt_table_block_tensors(m, l));
    }
    if (m->layout.has_embed) {
        embed_backward(m, B, T);
        grads_ready(m, 0, m->table.embed_tensors);
    }
    m->pass.has_targets = 0; /* logits were overwritten by their gradient */
    return ct_gpt_tp_end(m, "parallel backward");
}

ct_status ct_model_set_image(ct_model *m, const float *patches, int n_patches) {
    int grid = ct_model_image_patches(&m->cfg);
    if (n_patches != 0 && grid == 0)
        return ct_fail(CT_EINVAL, "image input: %d patches for a text-only model (image.patch = 0)", n_patches);
    if (n_patches != 0 && n_patches != grid)
        return ct_fail(CT_EINVAL,
                       "image input: %d patches, but the model's image grid has %d (image.height / "
                       "image.patch x image.width / image.patch)",
                       n_patches, grid);
    if (n_patches && m->layout.stages > 1)
        return ct_fail(CT_EINVAL, "image input with pipeline stages is not supported yet");
    if (n_patches && !patches) return ct_fail(CT_EINVAL, "image input: no patches");
    m->pass.image_src = n_patches ? patches : NULL;
    m->pass.image_patches = n_patches;
    return CT_OK;
}

ct_status ct_gpt_pass_create(gpt_pass *p, int n_layer) {
    p->block_acts = ct_calloc((size_t)n_layer * sizeof *p->block_acts, "the model's block activations");
    return p->block_acts ? CT_OK : CT_ENOMEM;
}

/* A view copies its base's pass: it keeps the inputs and settings (image, recomputation,
 * training, logits) and starts with no buffers and nothing from the base's last pass
 * (layout_acts sets B and T). */
ct_status ct_gpt_pass_view(gpt_pass *p, ct_model *view) {
    p->acts = NULL;
    p->acts_cap = 0;
    p->tokens = p->targets = p->prefix = NULL;
    p->patch_in = NULL;
    p->patch_cap = 0;
    p->ints_cap = 0;
    p->ep_acts = NULL;
    p->ep_buf = NULL;
    p->ep_buf_cap = 0;
    p->moe_snap = NULL;
    p->snap_load = NULL;
    p->snap_kept = NULL;
    p->has_targets = p->prefix_set = p->logits_are_grads = 0;
    p->B = p->T = 0;
    p->res = p->lnf = p->lnf_mean = p->lnf_rstd = p->logits = p->lse = p->dres = NULL;
    memset(&p->scratch, 0, sizeof p->scratch);
    return ct_gpt_pass_create(p, view->cfg.n_layer);
}

void ct_gpt_pass_free(gpt_pass *p, int owns_settings) {
    ct_free(p->acts);
    ct_free(p->patch_in);
    ct_free(p->ep_buf);
    ct_free(p->ep_acts);
    ct_free(p->tokens);
    ct_free(p->block_acts);
    ct_free(p->moe_snap);
    ct_free(p->snap_load);
    ct_free(p->snap_kept);
    if (owns_settings) ct_free(p->recompute);
    memset(p, 0, sizeof *p);
}
