/* gpt.c: the GPT-2 model's life: creating it (one process, on a layout it is handed, or a
 * micro-batch view), GPT-2 initialisation, pipeline stage assignment, freeing, and the
 * accessors of its config, layout and image input. The parameter table is gpt_table.c's,
 * the passes gpt_pass.c's. */
#include "core/core.h"
#include "model/model.h"
#include "spec/model_spec.h"
#include "model/gpt_internal.h"
#include "model/model_comm.h"
#include "ops/ops.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

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

/* The model with its tables allocated (zeroed); NULL with the message when out of memory. */
static ct_model *create_tables(const ct_model_config *cfg) {
    ct_model *m = ct_calloc(sizeof *m, "the model");
    size_t cap = 9 + (size_t)cfg->n_layer * (CT_BLOCK_ATTN_TENSORS + CT_MOE_TENSORS); /* embeddings (4 image), blocks, ln_f, tied copy */
    size_t L = (size_t)cfg->n_layer;
    if (!m || !(m->tensors = ct_calloc(cap * sizeof *m->tensors, "the model's tensor table")) ||
        !(m->names = ct_calloc(cap * sizeof *m->names, "the model's tensor names")) ||
        !(m->blocks = ct_calloc(L * sizeof *m->blocks, "the model's blocks")) ||
        !(m->block_grads = ct_calloc(L * sizeof *m->block_grads, "the model's block gradients")) ||
        !(m->block_acts = ct_calloc(L * sizeof *m->block_acts, "the model's block activations")) ||
        !(m->layer_first = ct_calloc(L * sizeof *m->layer_first, "the model's layer table")) ||
        !(m->holds = ct_calloc(L, "the model's layer table"))) {
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
    ct_model *m = create_tables(cfg);
    if (!m) return CT_ENOMEM;
    ct_gpt_table_build(m);
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
    ct_model *m = create_tables(cfg);
    if (!m) return CT_ENOMEM;
    ct_status s = set_stage(m, comm, stage_blocks);
    if (s != CT_OK) { ct_model_free(m); return s; }
    if (comm) m->comm = *comm;
    m->tp_ranks = ranks;
    m->tp_rank = comm ? comm->tp_rank : 0;
    m->tp = (ct_block_comm){m->tp_rank, m->tp_ranks, tp_sum_block, poll_block, m};
    m->ep_ranks = cfg->moe_every > 0 ? experts : 1;
    m->ep_rank = m->ep_ranks > 1 ? comm->ep_rank : 0;
    m->ep_group = (ct_moe_group){m->ep_rank, m->ep_ranks, ct_model_ep_alltoall, ct_model_ep_sizes, m};
    ct_gpt_table_build(m);
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
    ct_model *v = ct_alloc(sizeof *v, "a model view");
    if (!v) return CT_ENOMEM;
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
    if (!(v->block_acts = ct_calloc((size_t)v->cfg.n_layer * sizeof *v->block_acts, "a model view's blocks"))) {
        ct_free(v);
        return CT_ENOMEM;
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
    ct_free(m->ep_acts);
    ct_free(m->tokens);
    ct_free(m->block_acts);
    ct_free(m->moe_snap);
    ct_free(m->snap_load);
    ct_free(m->snap_kept);
}

void ct_model_free(ct_model *m) {
    if (!m) return;
    if (m->base) { free_pass_state(m); ct_free(m); return; }
    ct_model_offload_free(m);
    if (m->placed) ct_tier_move(m->n_params * sizeof(float), CT_TIER_COMPUTE, CT_TIER_HOST);
    ct_free(m->params);
    ct_free(m->grads);
    free_pass_state(m);
    ct_free(m->tensors);
    ct_free(m->names);
    ct_free(m->blocks);
    ct_free(m->block_grads);
    ct_free(m->layer_first);
    ct_free(m->holds);
    ct_free(m->recompute);
    ct_free(m);
}

const ct_model_config *ct_model_get_config(const ct_model *m) { return &m->cfg; }
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
