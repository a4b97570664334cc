/* tool_pp_check.c: checks pipeline stages of the model against a one-process model of the
 * same seed, under mpirun with parallel.pipeline = the world size (or one process):
 *   - each stage holds the one-process model's blocks [s*L/P, (s+1)*L/P) (the first also
 *     the embeddings, the last ln_f and a copy of the tied wte), with the same values;
 *   - a forward through the stages (outputs sent on by point-to-point messages) gives the
 *     one-process loss, and a backward (input gradients sent back) gives every tensor's
 *     gradient; the tied wte's gradient is the sum of the first and last stages' parts;
 *   - for a dense model and one with MoE blocks, within TOL;
 *   - GPipe over 3 micro-batches, each on a view of the stage model (shared parameters and
 *     gradients, activations of its own): all forwards, then all backwards in reverse,
 *     give the one-process model's gradients accumulated over the same micro-batches;
 *   - more stages than blocks is refused.
 * Usage: tool_pp_check [TOL]. Prints "pp check ok" on rank 0. */
#include "core/core.h"
#include "model/model.h"
#include "mpi_check.h"
#include <string.h>

enum { B = 2, T = 12 };

static void send_to(int peer, int tag, const float *x, size_t n) {
    ct_request r;
    ok_or_abort(ct_comm_send_start(W, CT_AXIS_PIPELINE, peer, tag, x, n, &r), "send");
    ok_or_abort(ct_comm_wait(W, &r), "send");
}

static void recv_from(int peer, int tag, float *x, size_t n) {
    ct_request r;
    ok_or_abort(ct_comm_recv_start(W, CT_AXIS_PIPELINE, peer, tag, x, n, &r), "receive");
    ok_or_abort(ct_comm_wait(W, &r), "receive");
}

static double run_case(const ct_model_config *cfg, double tol) {
    ct_model *whole, *stage;
    ok_or_abort(ct_model_create(&whole, cfg, 7), "one-process model");
    ok_or_abort(ct_model_create_parallel(&stage, cfg, 7, W), "stage model");
    int s = ct_model_stage(stage), P = ct_model_stages(stage);
    size_t NC = (size_t)B * T * cfg->d_model;
    for (size_t i = 0; i < ct_model_num_tensors(stage); i++) { /* parameters: exact copies */
        const ct_tensor_info *t = ct_model_tensor(stage, i), *u = ct_model_find_tensor(whole, t->name);
        check(u && u->numel == t->numel, t->name);
        check(!memcmp(ct_model_params(stage) + t->offset, ct_model_params(whole) + u->offset,
                      t->numel * sizeof(float)),
              "a stage's parameters differ");
    }
    int32_t tok[B * T], tgt[B * T];
    ct_rng rng;
    ct_rng_seed(&rng, 11);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)ct_rng_below(&rng, (uint64_t)cfg->vocab_size);
        tgt[i] = i % 7 == 3 ? -1 : (int32_t)ct_rng_below(&rng, (uint64_t)cfg->vocab_size);
    }
    float lw, lp = 0.0f, *x = ct_alloc(NC * sizeof(float), "boundary");
    check(x != NULL, "out of memory");
    ok_or_abort(ct_model_forward(whole, tok, tgt, NULL, B, T, &lw), "forward");
    if (s > 0) recv_from(s - 1, 1, x, NC);
    ok_or_abort(ct_model_forward_stage(stage, tok, s == P - 1 ? tgt : NULL, NULL, s > 0 ? x : NULL, B, T, &lp),
                "stage forward");
    if (s < P - 1) send_to(s + 1, 1, ct_model_stage_output(stage), NC);
    ok_or_abort(ct_model_backward(whole, 0.5f), "backward");
    if (s < P - 1) recv_from(s + 1, 2, x, NC);
    ok_or_abort(ct_model_backward_stage(stage, 0.5f, s < P - 1 ? x : NULL), "stage backward");
    if (s > 0) send_to(s - 1, 2, ct_model_stage_input_grad(stage), NC);
    if (s == P - 1) check(fabsf(lw - lp) <= tol * fabsf(lw), "loss differs");
    /* the tied weight: the first stage adds the last stage's head part to its own */
    const ct_tensor_info *wte = ct_model_find_tensor(stage, "wte.weight");
    float *g = ct_model_grads(stage);
    if (P > 1 && wte && s == P - 1) send_to(0, 3, g + wte->offset, wte->numel);
    if (P > 1 && wte && s == 0) {
        float *head = ct_alloc(wte->numel * sizeof(float), "head part");
        recv_from(P - 1, 3, head, wte->numel);
        for (size_t i = 0; i < wte->numel; i++) g[wte->offset + i] += head[i];
        ct_free(head);
    }
    double worst = 0.0;
    for (size_t i = 0; i < ct_model_num_tensors(stage); i++) {
        const ct_tensor_info *t = ct_model_tensor(stage, i), *u = ct_model_find_tensor(whole, t->name);
        if (P > 1 && s == P - 1 && t == wte) continue; /* its part was added on the first stage */
        worst = fmax(worst,
                     check_close(t->name, g + t->offset, ct_model_grads(whole) + u->offset, t->numel, tol));
    }
    ct_free(x);
    ct_model_free(whole);
    ct_model_free(stage);
    return worst;
}

/* GPipe over M micro-batches: every stage forwards all of them (one view each), then
 * backwards them in reverse; the gradients accumulated through the views equal the one-
 * process model's accumulated over the same micro-batches. */
static double run_gpipe(const ct_model_config *cfg, double tol) {
    enum { M = 3 };
    ct_model *whole, *stage, *view[M];
    ok_or_abort(ct_model_create(&whole, cfg, 7), "one-process model");
    ok_or_abort(ct_model_create_parallel(&stage, cfg, 7, W), "stage model");
    for (int k = 0; k < M; k++) ok_or_abort(ct_model_create_view(&view[k], stage), "view");
    int s = ct_model_stage(stage), P = ct_model_stages(stage);
    size_t NC = (size_t)B * T * cfg->d_model;
    int32_t tok[M][B * T], tgt[M][B * T];
    ct_rng rng;
    ct_rng_seed(&rng, 13);
    for (int k = 0; k < M; k++)
        for (int i = 0; i < B * T; i++) {
            tok[k][i] = (int32_t)ct_rng_below(&rng, (uint64_t)cfg->vocab_size);
            tgt[k][i] = (int32_t)ct_rng_below(&rng, (uint64_t)cfg->vocab_size);
        }
    float *x = ct_alloc(NC * sizeof(float), "boundary"), lw = 0.0f, lp = 0.0f, l;
    check(x != NULL, "out of memory");
    for (int k = 0; k < M; k++) {
        ok_or_abort(ct_model_forward(whole, tok[k], tgt[k], NULL, B, T, &l), "forward");
        lw += l;
        ok_or_abort(ct_model_backward(whole, 1.0f / M), "backward");
    }
    for (int k = 0; k < M; k++) { /* all forwards */
        if (s > 0) recv_from(s - 1, 10 + k, x, NC);
        l = 0.0f;
        ok_or_abort(ct_model_forward_stage(view[k], tok[k], s == P - 1 ? tgt[k] : NULL, NULL, s > 0 ? x : NULL,
                                           B, T, &l),
                    "stage forward");
        lp += l;
        if (s < P - 1) send_to(s + 1, 10 + k, ct_model_stage_output(view[k]), NC);
    }
    for (int k = M - 1; k >= 0; k--) { /* then all backwards, last first */
        if (s < P - 1) recv_from(s + 1, 20 + k, x, NC);
        ok_or_abort(ct_model_backward_stage(view[k], 1.0f / M, s < P - 1 ? x : NULL), "stage backward");
        if (s > 0) send_to(s - 1, 20 + k, ct_model_stage_input_grad(view[k]), NC);
    }
    if (s == P - 1) check(fabsf(lw - lp) <= tol * fabsf(lw), "GPipe loss differs");
    double worst = 0.0;
    const float *g = ct_model_grads(stage);
    for (size_t i = 0; i < ct_model_num_tensors(stage); i++) {
        const ct_tensor_info *t = ct_model_tensor(stage, i), *u = ct_model_find_tensor(whole, t->name);
        if (P > 1 && !strcmp(t->name, "wte.weight")) continue; /* split over two stages: above */
        worst = fmax(worst,
                     check_close(t->name, g + t->offset, ct_model_grads(whole) + u->offset, t->numel, tol));
    }
    for (int k = 0; k < M; k++) ct_model_free(view[k]);
    ct_free(x);
    ct_model_free(whole);
    ct_model_free(stage);
    return worst;
}

int main(int argc, char **argv) {
    double tol = check_init(argc, argv, CT_AXIS_PIPELINE, 1e-5);
    int P = ct_world_size(W);
    ct_model_config dense, moe;
    check_models(&dense, &moe, 4);
    double d1 = run_case(&dense, tol), d2 = run_case(&moe, tol);
    double worst[2] = {d1, d2}, d3 = run_gpipe(&moe, tol);
    if (P > 1) { /* more stages than blocks is refused, naming what fits */
        ct_model_config small = dense;
        small.n_layer = P - 1;
        ct_model *m = NULL;
        check(ct_model_create_parallel(&m, &small, 7, W) == CT_EINVAL && m == NULL,
              "more stages than blocks ran");
        check(strstr(ct_last_error(), "every stage needs a block") != NULL, "no stages message");
    }
    ok_or_abort(ct_comm_barrier(W, CT_AXIS_WORLD), "barrier");
    if (ct_world_rank(W) == 0)
        printf("pp check ok: %d stages; worst gradient difference on stage 0: dense %.2g, MoE %.2g, "
               "GPipe over 3 micro-batches %.2g\n",
               P, worst[0], worst[1], d3);
    ct_world_free(W);
    return 0;
}
