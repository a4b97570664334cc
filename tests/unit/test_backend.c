/* test_backend.c: the backend seam (src/ops/backend.h). The CPU backend is registered and
 * current from the start; unknown names and incomplete tables are refused with messages; a
 * counting backend (every op counts its calls, then runs the CPU kernel) receives every op
 * that training steps of a MoE model, an image-prefix model and a model with an offloaded
 * block use, and their results equal the CPU backend's bit for bit; runtime.backend is
 * checked by the config and selected by a run. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "data/shard.h"
#include "model/model.h"
#include "ops/backend.h"
#include "ops/cpu.h"
#include "parallel/comm.h"
#include "train/config.h"
#include "train/optim.h"
#include "train/trainer.h"
#include <stdatomic.h>
#include <string.h>
#define TMPDIR_TEMPLATE "/tmp/cetus_backend_XXXXXX"
#include "tmpdir.h"

/* ---- the counting backend ---------------------------------------------------------------- */

enum {
#define OP_ID(ret, op, params, args) OP_##op,
    CT_BACKEND_OPS(OP_ID)
#undef OP_ID
        N_OPS
};
static const char *const op_names[N_OPS] = {
#define OP_NAME(ret, op, params, args) #op,
    CT_BACKEND_OPS(OP_NAME)
#undef OP_NAME
};
static atomic_long calls[N_OPS]; /* atomic: the offload I/O thread copies too */

#define COUNTED(ret, op, params, args) \
    static ret counted_##op params { \
        atomic_fetch_add(&calls[OP_##op], 1); \
        CT_BACKEND_RETURN(ret, ct_cpu_##op args); \
    }
CT_BACKEND_OPS(COUNTED)
#undef COUNTED

static const ct_backend counting = {.name = "counting",
#define ENTRY(ret, op, params, args) .op = counted_##op,
                                    CT_BACKEND_OPS(ENTRY)
#undef ENTRY
};

static void reset_calls(void) {
    for (int i = 0; i < N_OPS; i++) atomic_store(&calls[i], 0);
}

/* Ops a one-rank step need not call: the vocabulary-parallel pieces of tensor parallelism
 * (tests/e2e/t_mpi_tp.sh covers them), the whole-vocabulary cross-entropy backward (the model
 * uses its vocabulary-slice form) and the column sum (the matmul kernel's own helper). */
static int spared(int op) {
    return op == OP_embedding_lookup || op == OP_embedding_add_positions || op == OP_rowmax ||
           op == OP_crossentropy_partials || op == OP_crossentropy_backward || op == OP_colsum_accumulate;
}

static void setup(void) { ct_runtime_init(0, 0); }

/* ---- registry and selection -------------------------------------------------------------- */

Test(backend, cpu_is_registered_and_the_default, .init = setup) {
    const ct_backend *cpu = ct_backend_find("cpu");
    cr_assert_not_null(cpu);
    cr_assert_eq(cpu, &ct_backend_cpu);
    cr_assert_eq(ct_backend_get(), cpu, "the CPU backend is current before anything is selected");
    cr_assert_str_eq(ct_backend_get()->name, "cpu");
    char names[64];
    cr_assert_str_eq(ct_backend_names(names, sizeof names), "cpu");
    cr_assert_eq(ct_backend_select("cpu"), CT_OK);
    ct_backend_set(&counting);
    ct_backend_set(NULL);
    cr_assert_eq(ct_backend_get(), cpu, "set(NULL) restores the CPU backend");
}

Test(backend, unknown_name_is_refused_naming_the_registered, .init = setup) {
    cr_assert_null(ct_backend_find("cuda"));
    cr_assert_null(ct_backend_find(NULL));
    cr_assert_eq(ct_backend_select("cuda"), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "unknown backend \"cuda\"; registered: cpu"), "%s", ct_last_error());
    cr_assert_eq(ct_backend_get(), &ct_backend_cpu, "a refused selection keeps the current backend");
    cr_assert_eq(ct_backend_register(&counting), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_backend_select("cuda"), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "registered: cpu, counting"), "%s", ct_last_error());
}

Test(backend, register_refuses_bad_tables, .init = setup) {
    cr_assert_eq(ct_backend_register(&counting), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_backend_register(&counting), CT_OK, "registering the same table again is a no-op");
    ct_backend other = counting;
    cr_assert_eq(ct_backend_register(&other), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "\"counting\" is registered already"), "%s", ct_last_error());
    other.name = "partial";
    other.attention_backward = NULL;
    cr_assert_eq(ct_backend_register(&other), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "lacks the op attention_backward"), "%s", ct_last_error());
    other.name = NULL;
    cr_assert_eq(ct_backend_register(&other), CT_EINVAL);
    cr_assert_null(ct_backend_find("partial"));
    cr_assert_eq(ct_backend_select("counting"), CT_OK);
    cr_assert_eq(ct_backend_get(), &counting);
}

/* ---- the model goes through the table ---------------------------------------------------- */

enum { B = 2, T = 8, V = 23, SCENARIOS = 3, STEPS = 2 };

static const ct_model_config moe_model = {.n_layer = 2,
                                          .d_model = 16,
                                          .n_head = 2,
                                          .seq_len = 12,
                                          .vocab_size = V,
                                          .moe_every = 2,
                                          .moe = {.n_experts = 4,
                                                  .top_k = 2,
                                                  .d_hidden = 24,
                                                  .routing = CT_MOE_TOP2,
                                                  .capacity_factor = 1.25f,
                                                  .aux_coef = 0.01f,
                                                  .z_coef = 0.001f}};
static const ct_model_config image_model = {.n_layer = 1,
                                            .d_model = 16,
                                            .n_head = 2,
                                            .seq_len = 12,
                                            .vocab_size = V,
                                            .image = {.patch = 2, .height = 4, .width = 4}};
static const ct_model_config dense_model = {
    .n_layer = 2, .d_model = 16, .n_head = 2, .seq_len = 12, .vocab_size = V};

typedef struct outcome {
    float loss[SCENARIOS][STEPS];
    float *params[SCENARIOS];
    size_t n[SCENARIOS];
} outcome;

/* Forward, backward and an AdamW step, STEPS times, on fixed data. */
static void train(ct_model *m, const int32_t *prefix, float *losses) {
    int32_t toks[B * T], tgts[B * T];
    ct_rng r;
    ct_rng_seed(&r, 5);
    for (int i = 0; i < B * T; i++) {
        toks[i] = (int32_t)ct_rng_below(&r, V);
        tgts[i] = i % 7 == 5 ? -1 : (int32_t)ct_rng_below(&r, V);
    }
    ct_adamw *opt;
    cr_assert_eq(ct_adamw_create(&opt, ct_model_num_params(m)), CT_OK);
    const ct_adamw_config ac = {
        .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 1.0f};
    for (int s = 0; s < STEPS; s++) {
        ct_model_zero_grad(m);
        cr_assert_eq(ct_model_forward(m, toks, tgts, prefix, B, T, &losses[s]), CT_OK, "%s", ct_last_error());
        cr_assert_eq(ct_model_backward(m, 1.0f), CT_OK, "%s", ct_last_error());
        ct_adamw_step(opt, m, 3e-3f, &ac);
        cr_assert_eq(ct_model_offload_settle(m), CT_OK, "%s", ct_last_error());
    }
    ct_adamw_free(opt);
}

static void keep(outcome *o, int k, ct_model *m) {
    o->n[k] = ct_model_num_params(m);
    o->params[k] = malloc(o->n[k] * sizeof(float));
    memcpy(o->params[k], ct_model_params(m), o->n[k] * sizeof(float));
    ct_model_free(m);
}

/* The three scenarios on the current backend. */
static void run_scenarios(outcome *o) {
    ct_model *m;
    cr_assert_eq(ct_model_create(&m, &moe_model, 11), CT_OK, "%s", ct_last_error());
    train(m, NULL, o->loss[0]);
    keep(o, 0, m);

    enum { NP = 4, K = 4 };
    float pixels[16], patches[B * NP * K];
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < 16; i++) pixels[i] = (float)((i * 7 + b * 3) % 16) / 15.0f;
        ct_image_patches(&image_model, pixels, patches + b * NP * K);
    }
    const int32_t prefix[B] = {NP + 1, NP};
    cr_assert_eq(ct_model_create(&m, &image_model, 12), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_model_set_image(m, patches, NP), CT_OK, "%s", ct_last_error());
    train(m, prefix, o->loss[1]);
    keep(o, 1, m);

    /* block 0's parameters and gradients in host memory: prefetched and written back */
    const ct_place places[4] = {CT_PLACE_COMPUTE, CT_PLACE_HOST, CT_PLACE_COMPUTE, CT_PLACE_COMPUTE};
    cr_assert_eq(ct_model_create(&m, &dense_model, 13), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_model_set_offload(m, places, places, NULL, 0), CT_OK, "%s", ct_last_error());
    train(m, NULL, o->loss[2]);
    keep(o, 2, m);
}

Test(backend, training_steps_go_through_the_table_bit_for_bit, .init = setup) {
    outcome cpu, counted;
    reset_calls();
    run_scenarios(&cpu);
    for (int i = 0; i < N_OPS; i++)
        cr_assert_eq(atomic_load(&calls[i]), 0, "the CPU run counted %s", op_names[i]);

    cr_assert_eq(ct_backend_register(&counting), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_backend_select("counting"), CT_OK, "%s", ct_last_error());
    run_scenarios(&counted);
    ct_backend_set(NULL);

    for (int i = 0; i < N_OPS; i++) {
        long n = atomic_load(&calls[i]);
        cr_log_info("%-28s %6ld calls", op_names[i], n);
        if (!spared(i)) cr_assert_gt(n, 0, "%s was not called through the backend table", op_names[i]);
    }
    for (int k = 0; k < SCENARIOS; k++) {
        cr_assert_eq(memcmp(cpu.loss[k], counted.loss[k], sizeof cpu.loss[k]), 0, "scenario %d: losses differ",
                     k);
        cr_assert_eq(cpu.n[k], counted.n[k]);
        cr_assert_eq(memcmp(cpu.params[k], counted.params[k], cpu.n[k] * sizeof(float)), 0,
                     "scenario %d: the trained parameters differ from the CPU backend's", k);
        free(cpu.params[k]);
        free(counted.params[k]);
    }
}

/* ---- the config key ---------------------------------------------------------------------- */

Test(backend, config_key_is_checked_against_the_registry, .init = setup) {
    ct_config c;
    ct_config_defaults(&c);
    cr_assert_str_eq(c.runtime.backend, "cpu");
    cr_assert_eq(ct_config_validate(&c), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_config_apply_override(&c, "runtime.backend=cuda"), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_config_validate(&c), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "runtime.backend: unknown backend \"cuda\"; registered: cpu"), "%s",
              ct_last_error());
    cr_assert_eq(ct_config_apply_override(&c, "runtime.backend="), CT_EINVAL, "an empty name is refused");
    cr_assert_eq(ct_config_apply_override(&c, "runtime.backend=counting"), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_config_validate(&c), CT_EINVAL, "not registered yet");
    cr_assert_eq(ct_backend_register(&counting), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_config_validate(&c), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_config_apply_json(&c, "{\"runtime\": {\"backend\": \"cpu\"}}", "test.json"), CT_OK, "%s",
                 ct_last_error());
    cr_assert_str_eq(c.runtime.backend, "cpu");
}

static void write_shard(const char *name, size_t n, uint32_t seed) {
    int32_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)((i * 2654435761u + seed) % 61);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    cr_assert_eq(ct_shard_write(path, t, n, 64), CT_OK, "%s", ct_last_error());
    free(t);
}

Test(backend, a_run_selects_the_configured_backend, .init = make_tmpdir, .fini = cleanup) {
    setup();
    write_shard("train_000.bin", 4096, 1);
    write_shard("val_000.bin", 1024, 2);
    char data[128], run[128];
    snprintf(data, sizeof data, "data.dir=%s", tmpdir);
    snprintf(run, sizeof run, "run.dir=%s/run", tmpdir);
    const char *keys[] = {"model.n_layer=2",
                          "model.d_model=16",
                          "model.n_head=2",
                          "model.seq_len=16",
                          "model.vocab_size=64",
                          "train.batch_size=2",
                          "train.steps=2",
                          "run.resume=false",
                          "runtime.backend=counting",
                          data,
                          run};
    ct_config c;
    ct_config_defaults(&c);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert_eq(ct_config_apply_override(&c, keys[i]), CT_OK, "%s: %s", keys[i], ct_last_error());
    cr_assert_eq(ct_backend_register(&counting), CT_OK, "%s", ct_last_error());
    ct_world *w;
    cr_assert_eq(ct_world_create(&w, &(ct_layout){0, 1, 1, 1}), CT_OK, "%s", ct_last_error());
    ct_trainer *tr;
    cr_assert_eq(ct_trainer_create(&tr, &c, w), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_backend_get(), &counting, "the trainer selected runtime.backend");
    reset_calls();
    ct_step_stats st;
    cr_assert_eq(ct_trainer_step(tr, &st), CT_OK, "%s", ct_last_error());
    cr_assert_gt(atomic_load(&calls[OP_matmul_forward]), 0);
    cr_assert_gt(atomic_load(&calls[OP_adamw_kernel]), 0);
    ct_trainer_free(tr);
    ct_world_free(w);
    ct_backend_set(NULL);
}
