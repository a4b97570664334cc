/* gpt.c: the GPT-2 model: a size table of named parameters in one contiguous buffer (laid out
 * embedding, block 0 .. block L-1, final norm, so every block is one contiguous range), the
 * explicit list of blocks, the tied head and the loss; forward and backward over them. */
#include "core/core.h"
#include "spec/model_spec.h"
#include "model/gpt_internal.h"
#include "model/model_comm.h"
#include "ops/ops.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

/* A tensor of the table: name, decay, logical shape and its tensor-parallel split
 * (split_dim -1: whole on every rank). */
typedef struct tensor_spec {
    const char *suffix;
    int decay, ndim, shape[3], split_dim, split_parts, split_expert;
} tensor_spec;

static void add_tensor(ct_model *m, const char *name, const tensor_spec *sp) {
    ct_tensor_info *t = &m->tensors[m->n_tensors];
    snprintf(m->names[m->n_tensors], MAX_NAME, "%s", name);
    t->name = m->names[m->n_tensors];
    t->ndim = sp->ndim;
    t->numel = t->full_numel = 1;
    t->split_dim = sp->split_dim;
    t->split_parts = sp->split_parts > 0 ? sp->split_parts : 1;
    t->split_expert = sp->split_expert;
    int ranks = t->split_expert ? m->ep_ranks : m->tp_ranks;
    if (ranks == 1) t->split_dim = -1; /* whole here */
    for (int k = 0; k < sp->ndim; k++) {
        t->full_shape[k] = sp->shape[k];
        t->shape[k] = k == t->split_dim ? sp->shape[k] / ranks : sp->shape[k];
        t->full_numel *= (size_t)t->full_shape[k];
        t->numel *= (size_t)t->shape[k];
    }
    t->offset = m->n_params;
    t->decay = sp->decay;
    m->n_params += t->numel;
    m->n_tensors++;
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
    const tensor_spec attn[CT_BLOCK_ATTN_TENSORS] = {
        {"ln_1.weight", 0, 1, {C}, -1, 1, 0}, {"ln_1.bias", 0, 1, {C}, -1, 1, 0},
        {"attn.c_attn.weight", 1, 2, {C, 3 * C}, 1, 3, 0}, {"attn.c_attn.bias", 0, 1, {3 * C}, 0, 3, 0},
        {"attn.c_proj.weight", 1, 2, {C, C}, 0, 1, 0}, {"attn.c_proj.bias", 0, 1, {C}, -1, 1, 0},
        {"ln_2.weight", 0, 1, {C}, -1, 1, 0}, {"ln_2.bias", 0, 1, {C}, -1, 1, 0}};
    const tensor_spec mlp[CT_BLOCK_MLP_TENSORS] = {
        {"mlp.c_fc.weight", 1, 2, {C, 4 * C}, 1, 1, 0}, {"mlp.c_fc.bias", 0, 1, {4 * C}, 0, 1, 0},
        {"mlp.c_proj.weight", 1, 2, {4 * C, C}, 0, 1, 0}, {"mlp.c_proj.bias", 0, 1, {C}, -1, 1, 0}};
    const tensor_spec experts[CT_MOE_TENSORS] = { /* experts split over the expert ranks */
        {"mlp.router.weight", 1, 2, {C, E}, -1, 1, 0},
        {"mlp.experts.c_fc.weight", 1, 3, {E, C, F}, 0, 1, 1}, {"mlp.experts.c_fc.bias", 0, 2, {E, F}, 0, 1, 1},
        {"mlp.experts.c_proj.weight", 1, 3, {E, F, C}, 0, 1, 1}, {"mlp.experts.c_proj.bias", 0, 2, {E, C}, 0, 1, 1}};
    for (int k = 0; k < CT_BLOCK_ATTN_TENSORS; k++) spec[n++] = attn[k];
    for (int k = 0; moe && k < CT_MOE_TENSORS; k++) spec[n++] = experts[k];
    for (int k = 0; !moe && k < CT_BLOCK_MLP_TENSORS; k++) spec[n++] = mlp[k];
    return n;
}

int ct_model_block_tensors(const ct_model *m, int l) {
    return CT_BLOCK_ATTN_TENSORS + (ct_model_layer_is_moe(&m->cfg, l) ? CT_MOE_TENSORS : CT_BLOCK_MLP_TENSORS);
}

/* Block l's weights, as block `owner` (itself, or the block whose weights it shares):
 * tensors named h.<owner>.*; a stage whose blocks use weights owned on an earlier stage
 * holds a copy (tied_copy) under the owner's names. */
static void add_block(ct_model *m, int l, int owner) {
    tensor_spec spec[CT_BLOCK_ATTN_TENSORS + CT_MOE_TENSORS];
    int n = block_specs(&m->cfg, ct_model_layer_is_moe(&m->cfg, l), spec);
    m->layer_first[l] = m->n_tensors;
    m->holds[l] = 1;
    add_layer_tensors(m, owner, spec, n);
    for (size_t i = m->layer_first[l]; owner < m->l0 && i < m->n_tensors; i++) m->tensors[i].tied_copy = 1;
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
static void build_table(ct_model *m) {
    const ct_model_config *c = &m->cfg;
    int C = c->d_model;
    const tensor_spec wte = {"", 1, 2, {c->vocab_size, C}, 0, 1, 0};
    if (m->has_embed) {
        add_tensor(m, "wte.weight", &wte);
        add_tensor(m, "wpe.weight", &(tensor_spec){"", 1, 2, {c->seq_len, C}, -1, 1, 0});
        add_image_tensors(m);
    }
    m->embed_tensors = m->n_tensors;
    for (int l = m->l0; l < m->l1; l++) {
        int owner = ct_model_share_owner(c, l), user = l;
        for (int k = m->l0; k < l && user == l; k++)
            if (ct_model_share_owner(c, k) == owner) user = k;
        if (user == l) add_block(m, l, owner);
        else m->layer_first[l] = m->layer_first[user];
    }
    if (!m->has_head) return;
    m->lnf_first = m->n_tensors;
    add_tensor(m, "ln_f.weight", &(tensor_spec){"", 0, 1, {C}, -1, 1, 0});
    add_tensor(m, "ln_f.bias", &(tensor_spec){"", 0, 1, {C}, -1, 1, 0});
    if (m->has_embed) return;
    add_tensor(m, "wte.weight", &wte); /* the head's copy of the tied weight */
    m->tensors[m->n_tensors - 1].tied_copy = 1;
}

/* Floats of block l's weights on this rank (the same on every stage). */
static size_t block_floats(const ct_model *m, int l) {
    tensor_spec spec[CT_BLOCK_ATTN_TENSORS + CT_MOE_TENSORS];
    int n = block_specs(&m->cfg, ct_model_layer_is_moe(&m->cfg, l), spec);
    size_t floats = 0;
    for (int i = 0; i < n; i++) {
        int ranks = spec[i].split_expert ? m->ep_ranks : m->tp_ranks;
        size_t numel = 1;
        for (int k = 0; k < spec[i].ndim; k++)
            numel *= (size_t)(k == spec[i].split_dim ? spec[i].shape[k] / ranks : spec[i].shape[k]);
        floats += numel;
    }
    return floats;
}

static int stage_of(const ct_model *m, int l) {
    int s = 0;
    while (s + 1 < m->stages && l >= m->stage_first[s + 1]) s++;
    return s;
}

int ct_model_stage_shared(const ct_model *m, ct_stage_shared *out) {
    const ct_model_config *c = &m->cfg;
    int count = 0;
    for (int o = 0; o < c->n_layer && m->stages > 1; o++) {
        if (ct_model_share_owner(c, o) != o) continue;
        int first = -1, last = -1, here = -1;
        for (int l = o; l < c->n_layer; l++) {
            if (ct_model_share_owner(c, l) != o) continue;
            int s = stage_of(m, l);
            if (first < 0) first = s;
            last = s;
            if (s == m->stage && here < 0) here = l;
        }
        if (first == last) continue; /* used on one stage: summed by backward itself */
        out[count++] = (ct_stage_shared){o, here >= 0, here >= 0 ? m->tensors[m->layer_first[here]].offset : 0,
                                         block_floats(m, o)};
    }
    return count;
}

void ct_model_bind_block(const ct_model *m, int l, ct_block_params *v, float *at, size_t lo) {
    const ct_tensor_info *t = &m->tensors[m->layer_first[l]];
    memset(v, 0, sizeof *v);
    float **attn = &v->ln1_w; /* the first eight fields, in table order */
    for (int k = 0; k < CT_BLOCK_ATTN_TENSORS; k++) attn[k] = at + (t[k].offset - lo);
    t += CT_BLOCK_ATTN_TENSORS;
    if (ct_model_layer_is_moe(&m->cfg, l)) {
        /* table order: router, c_fc w/b, c_proj w/b (this rank's experts) */
        v->moe = (ct_moe_params){at + (t[0].offset - lo), at + (t[1].offset - lo), at + (t[2].offset - lo),
                                 at + (t[3].offset - lo), at + (t[4].offset - lo)};
    } else {
        v->fc_w = at + (t[0].offset - lo); v->fc_b = at + (t[1].offset - lo);
        v->out_w = at + (t[2].offset - lo); v->out_b = at + (t[3].offset - lo);
    }
}

void ct_model_bind_blocks(const ct_model *m, ct_block_params *views, float *base) {
    for (int l = m->l0; l < m->l1; l++) ct_model_bind_block(m, l, &views[l], base, 0);
}

void ct_model_block_range(const ct_model *m, int l, size_t *lo, size_t *n) {
    const ct_tensor_info *last = &m->tensors[m->layer_first[l] + (size_t)ct_model_block_tensors(m, l) - 1];
    *lo = m->tensors[m->layer_first[l]].offset;
    *n = last->offset + last->numel - *lo;
}

/* GPT-2 initialisation of the logical tensors, in table order from one stream; a
 * tensor-parallel rank draws each whole tensor and keeps its part, so every layout starts
 * from the same model. */
/* Fills one logical tensor GPT-2 style from rng: normal weights (c_proj scaled down), unit
 * LayerNorm gains, zero biases. */
static void draw_tensor(ct_rng *rng, const ct_tensor_info *t, float proj_std, float *p) {
    int is_weight = strstr(t->name, ".weight") != NULL && !strstr(t->name, "ln_");
    int is_gain = strstr(t->name, "ln_") && strstr(t->name, ".weight");
    float std = strstr(t->name, "c_proj.weight") ? proj_std : 0.02f;
    for (size_t j = 0; j < t->full_numel; j++)
        p[j] = is_weight ? std * ct_rng_normal(rng) : (is_gain ? 1.0f : 0.0f);
}

/* GPT-2 initialisation of the logical tensors, in the one-process table's order from one
 * stream; a rank holding parts (tensor or expert parallelism) or a stage's tensors
 * (pipeline) draws every whole tensor and keeps what it holds, so every layout starts from
 * the same model. */
static ct_status init_params(ct_model *m, uint64_t seed) {
    ct_rng rng;
    ct_rng_seed(&rng, seed);
    float proj_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer), *full = NULL;
    ct_model *whole = m; /* the table to walk: the one-process model's */
    if (m->stages > 1) CT_TRY(ct_model_table_only(&whole, &m->cfg));
    size_t most = 0;
    for (size_t i = 0; i < whole->n_tensors; i++)
        if (whole->tensors[i].full_numel > most) most = whole->tensors[i].full_numel;
    if (!(full = ct_alloc_in(CT_TIER_HOST, most * sizeof(float), "initialisation buffer"))) {
        if (whole != m) ct_model_free(whole);
        return CT_ENOMEM;
    }
    for (size_t i = 0; i < whole->n_tensors; i++) {
        draw_tensor(&rng, &whole->tensors[i], proj_std, full);
        const ct_tensor_info *t = whole == m ? &m->tensors[i] : ct_model_find_tensor(m, whole->tensors[i].name);
        if (!t) continue; /* another stage's */
        int rank, ranks;
        ct_model_tensor_part(m, t, &rank, &ranks);
        ct_tensor_take_part(t, rank, ranks, full, m->params + t->offset);
    }
    ct_free(full);
    if (whole != m) ct_model_free(whole);
    return CT_OK;
}

static void tp_sum_block(void *ctx, float *buf, size_t n) { ct_model_tp_sum(ctx, buf, n); }

static ct_model *alloc_tables(const ct_model_config *cfg) {
    ct_model *m = calloc(1, sizeof *m);
    size_t cap = 9 + (size_t)cfg->n_layer * (CT_BLOCK_ATTN_TENSORS + CT_MOE_TENSORS); /* embeddings (4 image), blocks, ln_f, tied copy */
    if (!m || !(m->tensors = calloc(cap, sizeof *m->tensors)) ||
        !(m->names = calloc(cap, sizeof *m->names)) ||
        !(m->blocks = calloc((size_t)cfg->n_layer, sizeof *m->blocks)) ||
        !(m->block_grads = calloc((size_t)cfg->n_layer, sizeof *m->block_grads)) ||
        !(m->block_acts = calloc((size_t)cfg->n_layer, sizeof *m->block_acts)) ||
        !(m->layer_first = calloc((size_t)cfg->n_layer, sizeof *m->layer_first)) ||
        !(m->holds = calloc((size_t)cfg->n_layer, 1))) {
        ct_model_free(m);
        return NULL;
    }
    m->cfg = *cfg;
    m->tp_ranks = m->ep_ranks = m->stages = 1;
    m->l1 = m->stage_first[1] = cfg->n_layer;
    m->has_embed = m->has_head = 1;
    return m;
}

/* The one-process model's table alone (no parameters), for walking it. */
ct_status ct_model_table_only(ct_model **out, const ct_model_config *cfg) {
    ct_model *m = alloc_tables(cfg);
    if (!m) return ct_fail(CT_ENOMEM, "out of memory creating the model tables");
    build_table(m);
    *out = m;
    return CT_OK;
}

/* Stage s holds the blocks after those of stages < s: stage_blocks[s] of them, or as the
 * compute-balanced plan says. */
static ct_status set_stage(ct_model *m, const ct_model_comm *comm, const int *stage_blocks) {
    int p = comm ? comm->stages : 1, L = m->cfg.n_layer;
    int plan[CT_MAX_STAGES];
    if (p > CT_MAX_STAGES) return ct_fail(CT_EINVAL, "parallel.pipeline = %d: at most %d stages", p, CT_MAX_STAGES);
    if (stage_blocks) {
        int sum = 0;
        for (int s = 0; s < p; s++) {
            if (stage_blocks[s] < 1)
                return ct_fail(CT_EINVAL, "parallel.stages: stage %d has %d blocks; every stage needs a block", s,
                               stage_blocks[s]);
            sum += plan[s] = stage_blocks[s];
        }
        if (sum != L)
            return ct_fail(CT_EINVAL, "parallel.stages: the stages hold %d blocks in all but model.n_layer = %d",
                           sum, L);
    } else {
        CT_TRY(ct_model_plan_stages(&m->cfg, p, plan));
    }
    m->stages = p;
    m->stage = p > 1 ? comm->stage : 0;
    for (int s = 0; s < p; s++) m->stage_first[s + 1] = m->stage_first[s] + plan[s];
    m->l0 = 0;
    for (int s = 0; s < m->stage; s++) m->l0 += plan[s];
    m->l1 = m->l0 + plan[m->stage];
    m->has_embed = m->stage == 0;
    m->has_head = m->stage == p - 1;
    return CT_OK;
}
static void poll_block(void *ctx) {
    const ct_model *o = ct_model_owner(ctx);
    if (o->progress_hook) o->progress_hook(o->progress_ctx);
}

ct_status ct_model_create(ct_model **out, const ct_model_config *cfg, uint64_t seed) {
    return ct_model_create_comm(out, cfg, seed, NULL, NULL);
}

ct_status ct_model_create_comm(ct_model **out, const ct_model_config *cfg, uint64_t seed,
                               const ct_model_comm *comm, const int *stage_blocks) {
    CT_TRY(ct_model_config_check(cfg));
    int ranks = comm ? comm->tp_ranks : 1;
    int experts = comm ? comm->ep_ranks : 1;
    CT_TRY(ct_model_check_tensor_split(cfg, ranks));
    if (experts > 1 && cfg->moe_every > 0) CT_TRY(ct_moe_group_check(&cfg->moe, experts));
    ct_model *m = alloc_tables(cfg);
    if (!m) return ct_fail(CT_ENOMEM, "out of memory creating the model tables");
    ct_status s = set_stage(m, comm, stage_blocks);
    if (s != CT_OK) { ct_model_free(m); return s; }
    if (comm) m->comm = *comm;
    m->tp_ranks = ranks;
    m->tp_rank = comm ? comm->tp_rank : 0;
    m->tp = (ct_block_comm){m->tp_rank, m->tp_ranks, tp_sum_block, poll_block, m};
    m->ep_ranks = cfg->moe_every > 0 ? experts : 1;
    m->ep_rank = m->ep_ranks > 1 ? comm->ep_rank : 0;
    m->ep_group = (ct_moe_group){m->ep_rank, m->ep_ranks, ct_model_ep_alltoall, ct_model_ep_sizes, m};
    build_table(m);
    const ct_tensor_info *wte = ct_model_find_tensor(m, "wte.weight"), *wpe = ct_model_find_tensor(m, "wpe.weight");
    m->wte = wte ? wte->offset : 0;
    m->wpe = wpe ? wpe->offset : 0;
    const ct_tensor_info *img = ct_model_find_tensor(m, "img.patch.weight");
    if (img) {
        m->img_w = img[0].offset;
        m->img_b = img[1].offset;
        m->img_row = img[2].offset;
        m->img_col = img[3].offset;
    }
    if (m->has_head) {
        m->lnf_w = m->tensors[m->lnf_first].offset;
        m->lnf_b = m->tensors[m->lnf_first + 1].offset;
    }
    /* counted in the host tier until placed (ct_model_place): offload may keep most of it
     * off the compute tier */
    m->params = ct_alloc_in(CT_TIER_HOST, (m->n_params ? m->n_params : 1) * sizeof(float), "model parameters");
    if (!m->params) { ct_model_free(m); return CT_ENOMEM; }
    ct_model_bind_blocks(m, m->blocks, m->params);
    s = init_params(m, seed);
    if (s != CT_OK) { ct_model_free(m); return s; }
    *out = m;
    return CT_OK;
}

ct_status ct_model_create_view(ct_model **out, ct_model *base) {
    if (base->base) base = base->base;
    CT_TRY(ct_model_ensure_grads(base));
    ct_model *v = malloc(sizeof *v);
    if (!v) return ct_fail(CT_ENOMEM, "out of memory for a model view");
    *v = *base; /* shares the tables, parameters, gradients and block views */
    v->base = base;
    v->acts = NULL;
    v->acts_cap = 0;
    v->tokens = v->targets = v->prefix = NULL;
    v->patch_in = NULL;
    v->patch_cap = 0;
    v->ints_cap = 0;
    v->tp_buf = NULL;
    v->tp_buf_cap = 0;
    v->ep_acts = NULL;
    v->ep_buf = NULL;
    v->ep_buf_cap = 0;
    v->moe_snap = NULL;
    v->snap_load = NULL;
    v->snap_kept = NULL;
    v->has_targets = v->prefix_set = v->logits_are_grads = 0;
    v->B = v->T = 0; /* nothing from the base's last pass: layout_acts sets these */
    v->res = v->lnf = v->lnf_mean = v->lnf_rstd = v->logits = v->lse = v->dres = NULL;
    memset(&v->scratch, 0, sizeof v->scratch);
    v->tp.ctx = v; /* its passes record their own collective failures */
    v->ep_group.ctx = v;
    if (!(v->block_acts = calloc((size_t)v->cfg.n_layer, sizeof *v->block_acts))) {
        free(v);
        return ct_fail(CT_ENOMEM, "out of memory for a model view");
    }
    *out = v;
    return CT_OK;
}

/* What a view owns: its activations and token copies. */
static void free_pass_state(ct_model *m) {
    ct_free(m->acts);
    ct_free(m->patch_in);
    ct_free(m->tp_buf);
    ct_free(m->ep_buf);
    free(m->ep_acts);
    free(m->tokens);
    free(m->block_acts);
    free(m->moe_snap);
    free(m->snap_load);
    free(m->snap_kept);
}

void ct_model_free(ct_model *m) {
    if (!m) return;
    if (m->base) { free_pass_state(m); free(m); return; }
    ct_model_offload_free(m);
    if (m->placed) ct_tier_move(m->n_params * sizeof(float), CT_TIER_COMPUTE, CT_TIER_HOST);
    ct_free(m->params);
    ct_free(m->grads);
    free_pass_state(m);
    free(m->tensors);
    free(m->names);
    free(m->blocks);
    free(m->block_grads);
    free(m->layer_first);
    free(m->holds);
    free(m->recompute);
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
size_t ct_model_num_params_full(const ct_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_tensors; i++) n += m->tensors[i].full_numel;
    return n;
}
int ct_model_tensor_rank(const ct_model *m) { return m->tp_rank; }
int ct_model_tensor_ranks(const ct_model *m) { return m->tp_ranks; }
int ct_model_expert_rank(const ct_model *m) { return m->ep_rank; }
int ct_model_stage(const ct_model *m) { return m->stage; }
int ct_model_stages(const ct_model *m) { return m->stages; }
void ct_model_stage_layers(const ct_model *m, int *first, int *end) {
    *first = m->l0;
    *end = m->l1;
}
int ct_model_expert_ranks(const ct_model *m) { return m->ep_ranks; }

void ct_model_tensor_part(const ct_model *m, const ct_tensor_info *t, int *rank, int *ranks) {
    *rank = 0;
    *ranks = 1;
    if (t->split_dim < 0) return;
    *rank = t->split_expert ? m->ep_rank : m->tp_rank;
    *ranks = t->split_expert ? m->ep_ranks : m->tp_ranks;
}
float *ct_model_params(ct_model *m) { return m->params; }
float *ct_model_grads(ct_model *m) { return m->grads; }
const float *ct_model_logits(const ct_model *m) { return m->logits; }

ct_status ct_model_set_image(ct_model *m, const float *patches, int n_patches) {
    int grid = ct_model_image_patches(&m->cfg);
    if (n_patches != 0 && grid == 0)
        return ct_fail(CT_EINVAL, "image input: %d patches for a text-only model (image.patch = 0)", n_patches);
    if (n_patches != 0 && n_patches != grid)
        return ct_fail(CT_EINVAL, "image input: %d patches, but the model's image grid has %d (image.height / "
                       "image.patch x image.width / image.patch)", n_patches, grid);
    if (n_patches && m->stages > 1)
        return ct_fail(CT_EINVAL, "image input with pipeline stages is not supported yet");
    if (n_patches && !patches) return ct_fail(CT_EINVAL, "image input: no patches");
    m->image_src = n_patches ? patches : NULL;
    m->image_patches = n_patches;
    return CT_OK;
}

double ct_model_flops_per_token(const ct_model *m, int T) {
    const ct_model_config *c = &m->cfg;
    double C = c->d_model, L = c->n_layer, moe_layers = 0;
    for (int l = 0; l < c->n_layer; l++) moe_layers += ct_model_layer_is_moe(c, l);
    /* per token: attention 4C^2, dense MLP 8C^2, MoE router CE + k experts of 2CF */
    double moe_active = C * c->moe.n_experts + (double)c->moe.top_k * 2.0 * C * c->moe.d_hidden;
    double matmul_params = L * 4.0 * C * C + (L - moe_layers) * 8.0 * C * C + moe_layers * moe_active +
                           C * (double)c->vocab_size;
    return 6.0 * matmul_params + 12.0 * L * (double)T * C;
}
