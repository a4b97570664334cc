/* gpt_table.c: the model's parameter table: named tensors (Hugging Face GPT-2 names) laid out
 * in one contiguous buffer (embeddings, block 0 .. block L-1, final norm, so every block is
 * one contiguous range), block views bound onto a buffer by the table, each block's range,
 * the shared weight sets of a pipeline stage, and lookups by index or name. */
#include "core/core.h"
#include "model/gpt_internal.h"
#include "model/model.h"
#include "spec/model_spec.h"
#include <string.h>

/* A tensor of the table: name, decay, logical shape and its tensor-parallel split
 * (split_dim -1: whole on every rank). */
typedef struct tensor_spec {
    const char *suffix;
    int decay, ndim, shape[3], split_dim, split_parts, split_expert;
} tensor_spec;

static void add_tensor(ct_model *m, const char *name, const tensor_spec *sp) {
    ct_tensor_info *t = &m->table.tensors[m->table.n_tensors];
    snprintf(m->table.names[m->table.n_tensors], MAX_NAME, "%s", name);
    t->name = m->table.names[m->table.n_tensors];
    t->ndim = sp->ndim;
    t->numel = t->full_numel = 1;
    t->split_dim = sp->split_dim;
    t->split_parts = sp->split_parts > 0 ? sp->split_parts : 1;
    t->split_expert = sp->split_expert;
    int ranks = t->split_expert ? m->layout.ep_ranks : m->layout.tp_ranks;
    if (ranks == 1) t->split_dim = -1; /* whole here */
    for (int k = 0; k < sp->ndim; k++) {
        t->full_shape[k] = sp->shape[k];
        t->shape[k] = k == t->split_dim ? sp->shape[k] / ranks : sp->shape[k];
        t->full_numel *= (size_t)t->full_shape[k];
        t->numel *= (size_t)t->shape[k];
    }
    t->offset = m->table.n_params;
    t->decay = sp->decay;
    m->table.n_params += t->numel;
    m->table.n_tensors++;
}

static void add_layer_tensors(ct_model *m, int l, const tensor_spec *spec, int n) {
    char name[MAX_NAME];
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "h.%d.%s", l, spec[k].suffix);
        add_tensor(m, name, &spec[k]);
    }
}

/* The tensors of a block's weights, in table order (attention half, then the dense MLP or
 * the MoE layer) into spec; returns how many. MoE experts are stacked: expert e is slice e
 * of each tensor. Tensor-parallel splits: Q, K and V columns (heads) of c_attn; rows of
 * attn.c_proj; columns of mlp.c_fc, rows of mlp.c_proj. Expert parallelism splits the
 * stacked experts (dimension 0) over the expert ranks. */
static int block_specs(const ct_model_config *c, int moe, tensor_spec *spec) {
    int C = c->d_model, E = c->moe.n_experts, F = c->moe.d_hidden, n = 0;
    const tensor_spec attn[CT_BLOCK_ATTN_TENSORS] = {{"ln_1.weight", 0, 1, {C}, -1, 1, 0},
                                                     {"ln_1.bias", 0, 1, {C}, -1, 1, 0},
                                                     {"attn.c_attn.weight", 1, 2, {C, 3 * C}, 1, 3, 0},
                                                     {"attn.c_attn.bias", 0, 1, {3 * C}, 0, 3, 0},
                                                     {"attn.c_proj.weight", 1, 2, {C, C}, 0, 1, 0},
                                                     {"attn.c_proj.bias", 0, 1, {C}, -1, 1, 0},
                                                     {"ln_2.weight", 0, 1, {C}, -1, 1, 0},
                                                     {"ln_2.bias", 0, 1, {C}, -1, 1, 0}};
    const tensor_spec mlp[CT_BLOCK_MLP_TENSORS] = {{"mlp.c_fc.weight", 1, 2, {C, 4 * C}, 1, 1, 0},
                                                   {"mlp.c_fc.bias", 0, 1, {4 * C}, 0, 1, 0},
                                                   {"mlp.c_proj.weight", 1, 2, {4 * C, C}, 0, 1, 0},
                                                   {"mlp.c_proj.bias", 0, 1, {C}, -1, 1, 0}};
    const tensor_spec experts[CT_MOE_TENSORS] = {/* experts split over the expert ranks */
                                                 {"mlp.router.weight", 1, 2, {C, E}, -1, 1, 0},
                                                 {"mlp.experts.c_fc.weight", 1, 3, {E, C, F}, 0, 1, 1},
                                                 {"mlp.experts.c_fc.bias", 0, 2, {E, F}, 0, 1, 1},
                                                 {"mlp.experts.c_proj.weight", 1, 3, {E, F, C}, 0, 1, 1},
                                                 {"mlp.experts.c_proj.bias", 0, 2, {E, C}, 0, 1, 1}};
    for (int k = 0; k < CT_BLOCK_ATTN_TENSORS; k++) spec[n++] = attn[k];
    for (int k = 0; moe && k < CT_MOE_TENSORS; k++) spec[n++] = experts[k];
    for (int k = 0; !moe && k < CT_BLOCK_MLP_TENSORS; k++) spec[n++] = mlp[k];
    return n;
}

int ct_gpt_table_block_tensors(const ct_model *m, int l) {
    return CT_BLOCK_ATTN_TENSORS + (ct_model_layer_is_moe(&m->cfg, l) ? CT_MOE_TENSORS : CT_BLOCK_MLP_TENSORS);
}

/* Block l's weights, as block `owner` (itself, or the block whose weights it shares):
 * tensors named h.<owner>.*; a stage whose blocks use weights owned on an earlier stage
 * holds a copy (tied_copy) under the owner's names. */
static void add_block(ct_model *m, int l, int owner) {
    tensor_spec spec[CT_BLOCK_ATTN_TENSORS + CT_MOE_TENSORS];
    int n = block_specs(&m->cfg, ct_model_layer_is_moe(&m->cfg, l), spec);
    m->table.layer_first[l] = m->table.n_tensors;
    m->table.holds[l] = 1;
    add_layer_tensors(m, owner, spec, n);
    for (size_t i = m->table.layer_first[l]; owner < m->layout.l0 && i < m->table.n_tensors; i++)
        m->table.tensors[i].tied_copy = 1;
}

/* The image tower's tensors (whole on every rank): the patch projection and the 2-D
 * position embeddings. */
static void add_image_tensors(ct_model *m) {
    const ct_image_config *im = &m->cfg.image;
    int C = m->cfg.d_model, P = im->patch;
    if (P == 0) return;
    add_tensor(m, "img.patch.weight", &(tensor_spec){"", 1, 2, {P * P, C}, -1, 1, 0});
    add_tensor(m, "img.patch.bias", &(tensor_spec){"", 0, 1, {C}, -1, 1, 0});
    add_tensor(m, "img.row.weight", &(tensor_spec){"", 1, 2, {im->height / P, C}, -1, 1, 0});
    add_tensor(m, "img.col.weight", &(tensor_spec){"", 1, 2, {im->width / P, C}, -1, 1, 0});
}

/* The size table: embeddings, then each block's weights (a block sharing weights already
 * in the table points at them), then the final LayerNorm (and, on a later pipeline stage,
 * the head's copy of the tied wte). Tensor-parallel: vocabulary rows of wte. */
static void add_tensors(ct_model *m) {
    const ct_model_config *c = &m->cfg;
    int C = c->d_model;
    const tensor_spec wte = {"", 1, 2, {c->vocab_size, C}, 0, 1, 0};
    if (m->layout.has_embed) {
        add_tensor(m, "wte.weight", &wte);
        add_tensor(m, "wpe.weight", &(tensor_spec){"", 1, 2, {c->seq_len, C}, -1, 1, 0});
        add_image_tensors(m);
    }
    m->table.embed_tensors = m->table.n_tensors;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        int owner = ct_model_share_owner(c, l), user = l;
        for (int k = m->layout.l0; k < l && user == l; k++)
            if (ct_model_share_owner(c, k) == owner) user = k;
        if (user == l) add_block(m, l, owner);
        else
            m->table.layer_first[l] = m->table.layer_first[user];
    }
    if (!m->layout.has_head) return;
    m->table.lnf_first = m->table.n_tensors;
    add_tensor(m, "ln_f.weight", &(tensor_spec){"", 0, 1, {C}, -1, 1, 0});
    add_tensor(m, "ln_f.bias", &(tensor_spec){"", 0, 1, {C}, -1, 1, 0});
    if (m->layout.has_embed) return;
    add_tensor(m, "wte.weight", &wte); /* the head's copy of the tied weight */
    m->table.tensors[m->table.n_tensors - 1].tied_copy = 1;
}

/* The offsets the passes read directly: embeddings, the image's tensors, ln_f. */
static void find_offsets(ct_model *m) {
    gpt_table *t = &m->table;
    const ct_tensor_info *wte = ct_model_find_tensor(m, "wte.weight"),
                         *wpe = ct_model_find_tensor(m, "wpe.weight");
    t->wte = wte ? wte->offset : 0;
    t->wpe = wpe ? wpe->offset : 0;
    const ct_tensor_info *img = ct_model_find_tensor(m, "img.patch.weight");
    if (img) {
        t->img_w = img[0].offset;
        t->img_b = img[1].offset;
        t->img_row = img[2].offset;
        t->img_col = img[3].offset;
    }
    if (m->layout.has_head) {
        t->lnf_w = t->tensors[t->lnf_first].offset;
        t->lnf_b = t->tensors[t->lnf_first + 1].offset;
    }
}

void ct_gpt_table_build(ct_model *m) {
    add_tensors(m);
    find_offsets(m);
}

ct_status ct_gpt_table_alloc(ct_model *m, int grads, ct_tier tier) {
    size_t bytes = (m->table.n_params ? m->table.n_params : 1) * sizeof(float);
    float *buf = grads ? ct_calloc_in(tier, bytes, "model gradients")
                       : ct_alloc_in(tier, bytes, "model parameters");
    if (!buf) return CT_ENOMEM;
    *(grads ? &m->table.grads : &m->table.params) = buf;
    ct_gpt_table_bind_blocks(m, grads ? m->table.block_grads : m->table.blocks, buf);
    return CT_OK;
}

/* ZeRO 3 (m->sharded[1]): the buffer is address space in the host tier, and the compute tier
 * counts only the floats resident at once. */
ct_status ct_model_ensure_grads(ct_model *m) {
    if (m->table.grads) return CT_OK;
    if (!m->sharded[1]) return ct_gpt_table_alloc(m, 1, CT_TIER_COMPUTE);
    CT_TRY(ct_gpt_table_alloc(m, 1, CT_TIER_HOST));
    if (ct_tier_charge(m->sharded[1] * sizeof(float), CT_TIER_HOST, CT_TIER_COMPUTE,
                       "model gradients (this rank's shards and the units being reduced)"))
        return CT_OK;
    ct_free(m->table.grads);
    m->table.grads = NULL;
    return CT_ENOMEM;
}

ct_status ct_gpt_table_create(gpt_table *t, const ct_model_config *cfg) {
    /* embeddings (4 of the image), the blocks, ln_f and the head's tied copy */
    size_t cap = 9 + (size_t)cfg->n_layer * (CT_BLOCK_ATTN_TENSORS + CT_MOE_TENSORS), L = (size_t)cfg->n_layer;
    if (!(t->tensors = ct_calloc(cap * sizeof *t->tensors, "the model's tensor table")) ||
        !(t->names = ct_calloc(cap * sizeof *t->names, "the model's tensor names")) ||
        !(t->blocks = ct_calloc(L * sizeof *t->blocks, "the model's blocks")) ||
        !(t->block_grads = ct_calloc(L * sizeof *t->block_grads, "the model's block gradients")) ||
        !(t->layer_first = ct_calloc(L * sizeof *t->layer_first, "the model's layer table")) ||
        !(t->holds = ct_calloc(L, "the model's layer table")))
        return CT_ENOMEM;
    return CT_OK;
}

void ct_gpt_table_free(gpt_table *t) {
    ct_free(t->params);
    ct_free(t->grads);
    ct_free(t->tensors);
    ct_free(t->names);
    ct_free(t->blocks);
    ct_free(t->block_grads);
    ct_free(t->layer_first);
    ct_free(t->holds);
    memset(t, 0, sizeof *t);
}

/* Floats of block l's weights on this rank (the same on every stage). */
static size_t block_floats(const ct_model *m, int l) {
    tensor_spec spec[CT_BLOCK_ATTN_TENSORS + CT_MOE_TENSORS];
    int n = block_specs(&m->cfg, ct_model_layer_is_moe(&m->cfg, l), spec);
    size_t floats = 0;
    for (int i = 0; i < n; i++) {
        int ranks = spec[i].split_expert ? m->layout.ep_ranks : m->layout.tp_ranks;
        size_t numel = 1;
        for (int k = 0; k < spec[i].ndim; k++)
            numel *= (size_t)(k == spec[i].split_dim ? spec[i].shape[k] / ranks : spec[i].shape[k]);
        floats += numel;
    }
    return floats;
}

static int stage_of(const ct_model *m, int l) {
    int s = 0;
    while (s + 1 < m->layout.stages && l >= m->layout.stage_first[s + 1]) s++;
    return s;
}

int ct_model_stage_shared(const ct_model *m, ct_stage_shared *out) {
    const ct_model_config *c = &m->cfg;
    int count = 0;
    for (int o = 0; o < c->n_layer && m->layout.stages > 1; o++) {
        if (ct_model_share_owner(c, o) != o) continue;
        int first = -1, last = -1, here = -1;
        for (int l = o; l < c->n_layer; l++) {
            if (ct_model_share_owner(c, l) != o) continue;
            int s = stage_of(m, l);
            if (first < 0) first = s;
            last = s;
            if (s == m->layout.stage && here < 0) here = l;
        }
        if (first == last) continue; /* used on one stage: summed by backward itself */
        out[count++] = (ct_stage_shared){o, here >= 0,
                                         here >= 0 ? m->table.tensors[m->table.layer_first[here]].offset : 0,
                                         block_floats(m, o)};
    }
    return count;
}

void ct_gpt_table_bind_block(const ct_model *m, int l, ct_block_params *v, float *at, size_t lo) {
    const ct_tensor_info *t = &m->table.tensors[m->table.layer_first[l]];
    memset(v, 0, sizeof *v);
    float **attn = &v->ln1_w; /* the first eight fields, in table order */
    for (int k = 0; k < CT_BLOCK_ATTN_TENSORS; k++) attn[k] = at + (t[k].offset - lo);
    t += CT_BLOCK_ATTN_TENSORS;
    if (ct_model_layer_is_moe(&m->cfg, l)) {
        /* table order: router, c_fc w/b, c_proj w/b (this rank's experts) */
        v->moe = (ct_moe_params){at + (t[0].offset - lo), at + (t[1].offset - lo), at + (t[2].offset - lo),
                                 at + (t[3].offset - lo), at + (t[4].offset - lo)};
    } else {
        v->fc_w = at + (t[0].offset - lo);
        v->fc_b = at + (t[1].offset - lo);
        v->out_w = at + (t[2].offset - lo);
        v->out_b = at + (t[3].offset - lo);
    }
}

void ct_gpt_table_bind_blocks(const ct_model *m, ct_block_params *views, float *base) {
    for (int l = m->layout.l0; l < m->layout.l1; l++) ct_gpt_table_bind_block(m, l, &views[l], base, 0);
}

void ct_gpt_table_block_range(const ct_model *m, int l, size_t *lo, size_t *n) {
    const ct_tensor_info *last =
        &m->table.tensors[m->table.layer_first[l] + (size_t)ct_gpt_table_block_tensors(m, l) - 1];
    *lo = m->table.tensors[m->table.layer_first[l]].offset;
    *n = last->offset + last->numel - *lo;
}

int ct_model_num_units(const ct_model *m) { return m->cfg.n_layer + 2; }

void ct_model_unit_range(const ct_model *m, int unit, size_t *lo, size_t *n) {
    const gpt_table *t = &m->table;
    int l = unit - 1;
    *lo = *n = 0;
    if (unit == 0 && m->layout.has_embed && t->embed_tensors) {
        const ct_tensor_info *last = &t->tensors[t->embed_tensors - 1];
        *n = last->offset + last->numel;
    } else if (l >= m->layout.l0 && l < m->layout.l1) {
        ct_gpt_table_block_range(m, l, lo, n);
    } else if (unit == m->cfg.n_layer + 1 && m->layout.has_head) {
        *lo = t->tensors[t->lnf_first].offset;
        *n = t->n_params - *lo;
    }
}

size_t ct_model_num_tensors(const ct_model *m) { return m->table.n_tensors; }
const ct_tensor_info *ct_model_tensor(const ct_model *m, size_t i) {
    return i < m->table.n_tensors ? &m->table.tensors[i] : NULL;
}
const ct_tensor_info *ct_model_find_tensor(const ct_model *m, const char *name) {
    for (size_t i = 0; i < m->table.n_tensors; i++)
        if (strcmp(m->table.tensors[i].name, name) == 0) return &m->table.tensors[i];
    return NULL;
}
size_t ct_model_num_params(const ct_model *m) { return m->table.n_params; }
/* The public view of tensor t: its name, shape and where its values and gradients are. */
static void param_view(ct_model *m, const ct_tensor_info *t, ct_param *out) {
    float *grads = ct_model_grads(m);
    *out = (ct_param){.name = t->name,
                      .ndim = t->ndim,
                      .numel = t->numel,
                      .data = ct_model_params(m) + t->offset,
                      .grad = grads ? grads + t->offset : NULL};
    memcpy(out->shape, t->shape, sizeof out->shape);
}
ct_status ct_model_param(ct_model *m, size_t i, ct_param *out) {
    if (i >= m->table.n_tensors)
        return ct_fail(CT_EINVAL, "tensor %zu: the model has %zu tensors", i, m->table.n_tensors);
    param_view(m, &m->table.tensors[i], out);
    return CT_OK;
}
ct_status ct_model_find_param(ct_model *m, const char *name, ct_param *out) {
    const ct_tensor_info *t = ct_model_find_tensor(m, name);
    if (!t)
        return ct_fail(CT_EINVAL, "no tensor named '%s' in the model (e.g. '%s')", name,
                       m->table.tensors[0].name);
    param_view(m, t, out);
    return CT_OK;
}
size_t ct_model_num_params_full(const ct_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->table.n_tensors; i++) n += m->table.tensors[i].full_numel;
    return n;
}
void ct_model_tensor_part(const ct_model *m, const ct_tensor_info *t, int *rank, int *ranks) {
    *rank = 0;
    *ranks = 1;
    if (t->split_dim < 0) return;
    *rank = t->split_expert ? m->layout.ep_rank : m->layout.tp_rank;
    *ranks = t->split_expert ? m->layout.ep_ranks : m->layout.tp_ranks;
}
float *ct_model_params(ct_model *m) { return m->table.params; }
float *ct_model_grads(ct_model *m) { return m->table.grads; }
