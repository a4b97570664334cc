/* gpt.c: the GPT-2 model: a size table of named parameters in one contiguous buffer (laid out
 * embedding, block 0 .. block L-1, final norm, so every block is one contiguous range), the
 * explicit list of blocks, the tied head and the loss; forward and backward over them. */
#include "core/core.h"
#include "model/gpt_internal.h"
#include "ops/ops.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

ct_status ct_model_config_check(const ct_model_config *c) {
    if (c->n_layer < 1) return ct_fail(CT_EINVAL, "model.n_layer = %d: must be at least 1", c->n_layer);
    if (c->d_model < 1) return ct_fail(CT_EINVAL, "model.d_model = %d: must be at least 1", c->d_model);
    if (c->n_head < 1) return ct_fail(CT_EINVAL, "model.n_head = %d: must be at least 1", c->n_head);
    if (c->d_model % c->n_head != 0)
        return ct_fail(CT_EINVAL, "model.d_model = %d is not divisible by model.n_head = %d; "
                       "pick n_head among the divisors of d_model", c->d_model, c->n_head);
    if (c->seq_len < 1) return ct_fail(CT_EINVAL, "model.seq_len = %d: must be at least 1", c->seq_len);
    if (c->vocab_size < 1) return ct_fail(CT_EINVAL, "model.vocab_size = %d: must be at least 1", c->vocab_size);
    return CT_OK;
}

static void add_tensor(ct_model *m, const char *name, int decay, int d0, int d1) {
    ct_tensor_info *t = &m->tensors[m->n_tensors];
    snprintf(m->names[m->n_tensors], MAX_NAME, "%s", name);
    t->name = m->names[m->n_tensors];
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (d1 ? (size_t)d1 : 1);
    t->offset = m->n_params;
    t->decay = decay;
    m->n_params += t->numel;
    m->n_tensors++;
}

static void build_table(ct_model *m) {
    const ct_model_config *c = &m->cfg;
    int C = c->d_model;
    char name[MAX_NAME];
    add_tensor(m, "wte.weight", 1, c->vocab_size, C);
    add_tensor(m, "wpe.weight", 1, c->seq_len, C);
    static const char *suffix[CT_BLOCK_TENSORS] = {
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
        "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
    const int dims[CT_BLOCK_TENSORS][2] = {
        {C, 0}, {C, 0}, {C, 3 * C}, {3 * C, 0}, {C, C}, {C, 0},
        {C, 0}, {C, 0}, {C, 4 * C}, {4 * C, 0}, {4 * C, C}, {C, 0}};
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < CT_BLOCK_TENSORS; k++) {
            snprintf(name, sizeof name, "h.%d.%s", l, suffix[k]);
            add_tensor(m, name, dims[k][1] != 0, dims[k][0], dims[k][1]);
        }
    add_tensor(m, "ln_f.weight", 0, C, 0);
    add_tensor(m, "ln_f.bias", 0, C, 0);
}

void ct_model_bind_blocks(const ct_model *m, ct_block_params *views, float *base) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const ct_tensor_info *t = &m->tensors[2 + (size_t)l * CT_BLOCK_TENSORS];
        float **f = (float **)&views[l];
        for (int k = 0; k < CT_BLOCK_TENSORS; k++) f[k] = base + t[k].offset;
    }
}

static void init_params(ct_model *m, uint64_t seed) {
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    float proj_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const ct_tensor_info *t = &m->tensors[i];
        float *p = m->params + t->offset;
        int is_gain = strstr(t->name, "ln_") && strstr(t->name, ".weight");
        int is_proj = strstr(t->name, "c_proj.weight") != NULL;
        float std = is_proj ? proj_std : 0.02f;
        for (size_t j = 0; j < t->numel; j++)
            p[j] = t->ndim == 2 ? std * ct_rng_normal(&rng) : (is_gain ? 1.0f : 0.0f);
    }
}

ct_status ct_model_create(ct_model **out, const ct_model_config *cfg, uint64_t seed) {
    CT_TRY(ct_model_config_check(cfg));
    ct_model *m = calloc(1, sizeof *m);
    size_t cap = 4 + (size_t)cfg->n_layer * CT_BLOCK_TENSORS;
    if (!m || !(m->tensors = calloc(cap, sizeof *m->tensors)) ||
        !(m->names = calloc(cap, sizeof *m->names)) ||
        !(m->blocks = calloc((size_t)cfg->n_layer, sizeof *m->blocks)) ||
        !(m->block_grads = calloc((size_t)cfg->n_layer, sizeof *m->block_grads)) ||
        !(m->block_acts = calloc((size_t)cfg->n_layer, sizeof *m->block_acts))) {
        ct_model_free(m);
        return ct_fail(CT_ENOMEM, "out of memory creating the model tables");
    }
    m->cfg = *cfg;
    build_table(m);
    m->wte = m->tensors[0].offset;
    m->wpe = m->tensors[1].offset;
    m->lnf_w = m->tensors[m->n_tensors - 2].offset;
    m->lnf_b = m->tensors[m->n_tensors - 1].offset;
    m->params = ct_alloc(m->n_params * sizeof(float), "model parameters");
    if (!m->params) { ct_model_free(m); return CT_ENOMEM; }
    ct_model_bind_blocks(m, m->blocks, m->params);
    init_params(m, seed);
    *out = m;
    return CT_OK;
}

void ct_model_free(ct_model *m) {
    if (!m) return;
    ct_free(m->params);
    ct_free(m->grads);
    ct_free(m->acts);
    free(m->tokens);
    free(m->tensors);
    free(m->names);
    free(m->blocks);
    free(m->block_grads);
    free(m->block_acts);
    free(m);
}

const ct_model_config *ct_model_get_config(const ct_model *m) { return &m->cfg; }
size_t ct_model_num_tensors(const ct_model *m) { return m->n_tensors; }
const ct_tensor_info *ct_model_tensor(const ct_model *m, size_t i) {
    return i < m->n_tensors ? &m->tensors[i] : NULL;
}
const ct_tensor_info *ct_model_find_tensor(const ct_model *m, const char *name) {
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}
size_t ct_model_num_params(const ct_model *m) { return m->n_params; }
float *ct_model_params(ct_model *m) { return m->params; }
float *ct_model_grads(ct_model *m) { return m->grads; }
const float *ct_model_logits(const ct_model *m) { return m->logits; }

double ct_model_flops_per_token(const ct_model *m, int T) {
    const ct_model_config *c = &m->cfg;
    double C = c->d_model, L = c->n_layer;
    double matmul_params = L * 12.0 * C * C + C * (double)c->vocab_size;
    return 6.0 * matmul_params + 12.0 * L * (double)T * C;
}
