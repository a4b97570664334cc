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
    if (m->layout.stages > 1) CT_TRY(ct_model_table_only(&whole, &m->cfg));
    size_t most = 0;
    for (size_t i = 0; i < whole->table.n_tensors; i++)
        if (whole->table.tensors[i].full_numel > most) most = whole->table.tensors[i].full_numel;
    if (!(full = ct_alloc_in(CT_TIER_HOST, most * sizeof(float), "initialisation buffer"))) {
        if (whole != m) ct_model_free(whole);
        return CT_ENOMEM;
    }
    for (size_t i = 0; i < whole->table.n_tensors; i++) {
        draw_tensor(&rng, &whole->table.tensors[i], proj_std, full);
        const ct_tensor_info *t = whole == m ? &m->table.tensors[i]
                                             : ct_model_find_tensor(m, whole->table.tensors[i].name);
        if (!t) continue; /* another stage's */
        int rank, ranks;
        ct_model_tensor_part(m, t, &rank, &ranks);
        ct_tensor_take_part(t, rank, ranks, full, m->table.params + t->offset);
    }
    ct_free(full);
    if (whole != m) ct_model_free(whole);
    return CT_OK;
}

/* The model with its table and pass state allocated (zeroed), on the one-process layout;
 * NULL with the message when out of memory. */
static ct_model *create_tables(const ct_model_config *cfg) {
    ct_model *m = ct_calloc(sizeof *m, "the model");
    if (!m) return NULL;
    m->cfg = *cfg;
    if (ct_gpt_table_create(&m->table, cfg) != CT_OK || ct_gpt_pass_create(&m->pass, cfg->n_layer) != CT_OK) {
        ct_model_free(m);
        return NULL;
    }
    m->layout.tp_ranks = m->layout.ep_ranks = m->layout.stages = 1;
    m->layout.l1 = m->layout.stage_first[1] = cfg->n_layer;
    m->layout.has_embed = m->layout.has_head = 1;
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
    if (p > CT_MAX_STAGES)
        return ct_fail(CT_EINVAL, "parallel.pipeline = %d: at most %d stages", p, CT_MAX_STAGES);
    if (stage_blocks) {
        int sum = 0;
        for (int s = 0; s < p; s++) {
            if (stage_blocks[s] < 1)
                return ct_fail(CT_EINVAL, "parallel.stages: stage %d has %d blocks; every stage needs a block",
                               s, stage_blocks[s]);
            sum += plan[s] = stage_blocks[s];
        }
        if (sum != L)
            return ct_fail(CT_EINVAL,
                           "parallel.stages: the stages hold %d blocks in all but model.n_layer = %d", sum, L);
    } else {
        CT_TRY(ct_model_plan_stages(&m->cfg, p, plan));
    }
    m->layout.stages = p;
    m->layout.stage = p > 1 ? comm->stage : 0;
    for (int s = 0; s < p; s++) m->layout.stage_first[s + 1] = m->layout.stage_first[s] + plan[s];
    m->layout.l0 = 0;
    for (int s = 0; s < m->layout.stage; s++) m->layout.l0 += plan[s];
    m->layout.l1 = m->layout.l0 + plan[m->layout.stage];
    m->layout.has_embed = m->layout.stage == 0;
    m->layout.has_head = m->layout.stage == p - 1;
    return CT_OK;
}
ct_status ct_model_create(ct_model **out, const ct_model_config *cfg, uint64_t seed) {
    return ct_model_create_comm(out, cfg, seed, NULL, NULL);
}

/* The model's table on the layout comm gives (NULL: one process), without memory. */
static ct_status create_layout(ct_model **out, const ct_model_config *cfg, const ct_model_comm *comm,
                               const int *stage_blocks) {
    CT_TRY(ct_model_config_check(cfg));
    int ranks = comm ? comm->tp_ranks : 1;
    int experts = comm ? comm->ep_ranks : 1;
    CT_TRY(ct_model_check_tensor_split(cfg, ranks));
    if (experts > 1 && cfg->moe_every > 0) CT_TRY(ct_moe_group_check(&cfg->moe, experts));
    ct_model *m = create_tables(cfg);
    if (!m) return CT_ENOMEM;
    ct_status s = set_stage(m, comm, stage_blocks);
    if (s != CT_OK) {
        ct_model_free(m);
        return s;
    }
    m->layout.tp_ranks = ranks;
    m->layout.tp_rank = comm ? comm->tp_rank : 0;
    m->layout.ep_ranks = cfg->moe_every > 0 ? experts : 1;
    m->layout.ep_rank = m->layout.ep_ranks > 1 ? comm->ep_rank : 0;
    ct_gpt_tp_init(m, comm);
    ct_gpt_table_build(m);
    *out = m;
    return CT_OK;
}

ct_status ct_model_create_layout(ct_model **out, const ct_model_config *cfg, const ct_model_comm *layout,
                                 const int *stage_blocks) {
    return create_layout(out, cfg, layout, stage_blocks);
}

ct_status ct_model_create_comm(ct_model **out, const ct_model_config *cfg, uint64_t seed,
                               const ct_model_comm *comm, const int *stage_blocks) {
    ct_model *m;
    CT_TRY(create_layout(&m, cfg, comm, stage_blocks));
    /* counted in the host tier until placed (ct_gpt_offload_place): offload may keep most of it
     * off the compute tier */
    ct_status s = ct_gpt_table_alloc(m, 0, CT_TIER_HOST);
    if (s == CT_OK) s = init_params(m, seed);
    if (s != CT_OK) {
        ct_model_free(m);
        return s;
    }
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
    ct_gpt_tp_view(v);
    if (ct_gpt_pass_view(&v->pass, v) != CT_OK) {
        ct_free(v);
        return CT_ENOMEM;
    }
    *out = v;
    return CT_OK;
}

/* A view frees its pass state; a model of its own its offload state, its table and its
 * buffers too. */
void ct_model_free(ct_model *m) {
    if (!m) return;
    ct_gpt_pass_free(&m->pass, !m->base);
    ct_gpt_tp_free(&m->tp);
    if (!m->base) {
        ct_gpt_offload_free(m);
        ct_gpt_offload_unplace(m);
        ct_gpt_table_free(&m->table);
    }
    ct_free(m);
}

const ct_model_config *ct_model_get_config(const ct_model *m) { return &m->cfg; }
int ct_model_tensor_rank(const ct_model *m) { return m->layout.tp_rank; }
int ct_model_tensor_ranks(const ct_model *m) { return m->layout.tp_ranks; }
int ct_model_expert_rank(const ct_model *m) { return m->layout.ep_rank; }
int ct_model_stage(const ct_model *m) { return m->layout.stage; }
int ct_model_stages(const ct_model *m) { return m->layout.stages; }
void ct_model_stage_layers(const ct_model *m, int *first, int *end) {
    *first = m->layout.l0;
    *end = m->layout.l1;
}
int ct_model_expert_ranks(const ct_model *m) { return m->layout.ep_ranks; }

const float *ct_model_logits(const ct_model *m) { return m->pass.logits; }

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
