/* test_plan.c: the planner on hardware described in the test: the bytes of each kind of
 * state follow the layout (ZeRO shards the moments, tensor parallelism splits the weights,
 * pipeline stages take their blocks), ranks of one stage differ where ZeRO 1 shards moments
 * across tiers, bad worlds and hardware are refused, the search ranks what fits and says
 * why nothing does, stages are balanced by device speed, and M6-10T plans on 512 V100s. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "model/model.h"
#include "plan/plan.h"
#include <string.h>

/* A cluster of `count` GPUs of the given speed and memory (GiB), 4 per node. */
#define GPU_GROUP(name, count, tflops, gib) \
    "{\"name\": \"" name "\", \"count\": " #count ", \"per_node\": 4, \"memory_gib\": " #gib \
    ", \"host_memory_gib\": 512, \"matmul_tflops\": " #tflops \
    ", \"memory_gbps\": 900, \"host_link_gbps\": 12, " \
    "\"disk_read_gbps\": 2, \"disk_write_gbps\": 1, \"intra_gbps\": 150, \"intra_latency_us\": 5, " \
    "\"inter_gbps\": 12.5, \"inter_latency_us\": 10}"

static ct_hardware *hardware(const char *groups) {
    static ct_hardware hw;
    char text[4096];
    snprintf(text, sizeof text, "{\"name\": \"rig\", \"groups\": [%s]}", groups);
    cr_assert_eq(ct_hw_parse(&hw, text, "rig.json"), CT_OK, "%s", ct_last_error());
    return &hw;
}

/* A small GPT (4 blocks, d 128, vocabulary 4096) with the given overrides. */
static ct_config config(const char *const *overrides) {
    ct_config c;
    ct_config_defaults(&c);
    const char *base[] = {"model.n_layer=4",
                          "model.d_model=128",
                          "model.n_head=4",
                          "model.seq_len=64",
                          "model.vocab_size=4096",
                          "train.batch_size=8",
                          NULL};
    for (int i = 0; base[i]; i++)
        cr_assert_eq(ct_config_apply_override(&c, base[i]), CT_OK, "%s", ct_last_error());
    for (int i = 0; overrides && overrides[i]; i++)
        cr_assert_eq(ct_config_apply_override(&c, overrides[i]), CT_OK, "%s", ct_last_error());
    return c;
}

static ct_plan *plan(const char *const *overrides, int world) {
    static ct_plan p;
    ct_config c = config(overrides);
    cr_assert_eq(ct_plan_make(&p, &c, world, hardware(GPU_GROUP("gpu", 16, 100, 32))), CT_OK, "%s",
                 ct_last_error());
    return &p;
}

static size_t model_params(const char *const *overrides) {
    ct_config c = config(overrides);
    ct_model *m;
    cr_assert_eq(ct_model_table_only(&m, &c.model), CT_OK);
    size_t n = ct_model_num_params(m);
    ct_model_free(m);
    return n;
}

Test(plan, one_process_holds_weights_gradients_and_two_moments) {
    const ct_plan *p = plan(NULL, 1);
    double n = (double)model_params(NULL) * sizeof(float);
    const ct_plan_stage *s = &p->stage[0];
    cr_assert_float_eq(s->bytes[CT_PK_PARAMS][CT_PT_COMPUTE], n, 1.0);
    cr_assert_float_eq(s->bytes[CT_PK_GRADS][CT_PT_COMPUTE], n, 1.0);
    cr_assert_float_eq(s->bytes[CT_PK_MOMENTS][CT_PT_COMPUTE], 2 * n, 1.0);
    cr_assert_gt(s->bytes[CT_PK_ACTS][CT_PT_COMPUTE], 0.0);
    double sum = 0.0;
    for (int k = 0; k < CT_PK_COUNT; k++) sum += s->bytes[k][CT_PT_COMPUTE];
    cr_assert_float_eq(s->compute_peak, sum, 1.0);
    cr_assert_gt(p->step_s, 0.0);
    cr_assert_gt(p->tokens_per_s, 0.0);
}

Test(plan, zero_shards_the_moments_and_tensor_splits_the_weights) {
    double one = plan(NULL, 1)->stage[0].bytes[CT_PK_MOMENTS][CT_PT_COMPUTE];
    const char *zero1[] = {"parallel.data=4", "parallel.zero=1", NULL};
    cr_assert_float_eq(plan(zero1, 4)->stage[0].bytes[CT_PK_MOMENTS][CT_PT_COMPUTE], one / 4, one * 1e-6);
    const char *zero3[] = {"parallel.data=4", "parallel.zero=3", NULL};
    const ct_plan *z3 = plan(zero3, 4);
    cr_assert_lt(z3->stage[0].bytes[CT_PK_PARAMS][CT_PT_COMPUTE], 0.8 * one / 2);
    cr_assert_gt(z3->stage[0].sent[CT_PA_DATA], 0.0);
    const char *tensor[] = {"parallel.tensor=2", NULL};
    const ct_plan *t = plan(tensor, 2);
    cr_assert_lt(t->stage[0].bytes[CT_PK_PARAMS][CT_PT_COMPUTE], 0.6 * one / 2);
    cr_assert_gt(t->stage[0].sent[CT_PA_TENSOR], 0.0);
}

Test(plan, pipeline_stages_take_their_blocks) {
    const char *pipe[] = {"parallel.pipeline=2", NULL};
    const ct_plan *p = plan(pipe, 2);
    cr_assert_eq(p->n_stages, 2);
    cr_assert_eq(p->stage[0].first, 0);
    cr_assert_eq(p->stage[0].end, p->stage[1].first);
    cr_assert_eq(p->stage[1].end, 4);
    cr_assert_gt(p->bubble, 0.0);
    cr_assert_eq(ct_plan_stage_of(p, 1), 1);
    cr_assert_gt(p->stage[0].sent[CT_PA_PIPELINE], 0.0);
}

Test(plan, recomputation_keeps_one_shared_buffer) {
    ct_plan_stage kept = plan(NULL, 1)->stage[0];
    cr_assert_eq(kept.kept, 4);
    const char *rec[] = {"memory.recompute=all", NULL};
    ct_plan_stage r = plan(rec, 1)->stage[0];
    cr_assert_eq(r.recomputed, 4);
    cr_assert_float_eq(r.shared, kept.kept_max, 1.0);
    cr_assert_lt(r.bytes[CT_PK_ACTS][CT_PT_COMPUTE],
                 kept.bytes[CT_PK_ACTS][CT_PT_COMPUTE] - 0.5 * kept.kept_total);
}

Test(plan, offloaded_moments_differ_by_rank_under_zero1) {
    /* the embeddings (the largest unit) go to host first: rank 0's shard holds them */
    const char *opt[] = {"parallel.data=2", "parallel.zero=1", "offload.optimizer=embed:host", NULL};
    const ct_plan *p = plan(opt, 2);
    double c0, r0, c1, r1;
    ct_plan_rank_peaks(p, 0, &c0, &r0);
    ct_plan_rank_peaks(p, 1, &c1, &r1);
    cr_assert_lt(c0, c1, "rank 0 %.0f, rank 1 %.0f", c0, c1);
}

Test(plan, refuses_worlds_and_hardware_that_do_not_fit) {
    ct_plan p;
    const char *tensor[] = {"parallel.tensor=2", NULL};
    ct_config c = config(tensor);
    cr_assert_eq(ct_plan_make(&p, &c, 3, hardware(GPU_GROUP("gpu", 16, 100, 32))), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "layouts that fit 3 ranks"), "%s", ct_last_error());
    const char *wide[] = {"train.batch_size=32", NULL};
    c = config(wide);
    cr_assert_eq(ct_plan_make(&p, &c, 32, hardware(GPU_GROUP("gpu", 16, 100, 32))), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "has 16 devices but the world is 32"), "%s", ct_last_error());
}

Test(plan, search_ranks_what_fits_and_says_why_nothing_does) {
    ct_config c = config(NULL);
    static ct_plan_choice best[4];
    char why[4096];
    const ct_hardware *hw = hardware(GPU_GROUP("gpu", 16, 100, 32));
    int n = ct_plan_search(&c, 4, hw, 0, best, 4, why, sizeof why);
    cr_assert_eq(n, 4, "%s", why);
    for (int i = 1; i < n; i++) cr_assert_geq(best[i - 1].plan.tokens_per_s, best[i].plan.tokens_per_s);
    cr_assert(strstr(best[0].keys, "parallel.data="), "%s", best[0].keys);
    n = ct_plan_search(&c, 4, hw, 1 << 20, best, 4, why, sizeof why);
    cr_assert_eq(n, 0);
    cr_assert(strstr(why, "the least device memory any layout needed"), "%s", why);
}

Test(plan, stages_are_balanced_by_device_speed) {
    const char *deep[] = {"model.n_layer=12", NULL};
    ct_config c = config(deep);
    static ct_plan_choice best[64];
    char why[4096];
    const ct_hardware *hw = hardware(GPU_GROUP("fast", 4, 300, 32) ", " GPU_GROUP("slow", 4, 100, 32));
    int n = ct_plan_search(&c, 8, hw, 0, best, 64, why, sizeof why);
    int found = 0;
    for (int i = 0; i < n && !found; i++) {
        const ct_plan *p = &best[i].plan;
        if (p->n_stages != 2) continue;
        found = 1;
        cr_assert_gt(p->stage[0].end - p->stage[0].first, p->stage[1].end - p->stage[1].first, "%s",
                     best[i].keys);
    }
    cr_assert(found, "no two-stage layout among %d", n);
}

Test(plan, m6_10t_fits_512_v100s) {
    ct_config c;
    ct_config_defaults(&c);
    cr_assert_eq(ct_config_load_file(&c, "configs/m6_10t.json"), CT_OK, "%s", ct_last_error());
    static ct_hardware hw;
    cr_assert_eq(ct_hw_load(&hw, "hardware/v100_512.json"), CT_OK, "%s", ct_last_error());
    static ct_plan p;
    cr_assert_eq(ct_plan_make(&p, &c, 512, &hw), CT_OK, "%s", ct_last_error());
    char why[512];
    cr_assert(ct_plan_fits(&p, &hw, why, sizeof why), "%s", why);
    cr_assert_gt(p.params_total, 1e13);
    cr_assert_gt(p.stage[0].bytes[CT_PK_PARAMS][CT_PT_DISK], 0.0);
}
