/* tool_tp_check.c: checks the tensor-parallel model against a one-process model of the same
 * seed, on every rank, under mpirun with parallel.tensor = the world size:
 *   - each rank's parameters are its part of the one-process model's (bit for bit);
 *   - the loss of a forward with targets, and every full logits row, agree within TOL;
 *   - after backward, each rank's gradient of every tensor equals its part of the
 *     one-process gradient within TOL (max abs difference over max abs value), for a dense
 *     model and one with MoE blocks (which every tensor rank holds whole);
 *   - a prefix-LM mask takes the same path.
 * Usage: tool_tp_check [TOL]. Prints "tp check ok" and the worst differences on rank 0. */
#include "core/core.h"
#include "model/model.h"
#include "mpi_check.h"
#include "parallel/comm.h"
#include <math.h>
#include <string.h>

static double run_case(const ct_model_config *cfg, int prefix, double tol) {
    enum { B = 2, T = 12 };
    ct_model *whole, *part;
    ok_or_abort(ct_model_create(&whole, cfg, 7), "one-process model");
    ok_or_abort(ct_model_create_parallel(&part, cfg, 7, W), "tensor-parallel model");
    int R = ct_model_tensor_ranks(part), r = ct_model_tensor_rank(part);
    check(R == ct_world_size(W), "the model's tensor ranks are not the world");
    float *buf = malloc(ct_model_num_params(whole) * sizeof(float));
    check(buf != NULL, "out of memory");
    for (size_t i = 0; i < ct_model_num_tensors(part); i++) { /* parameters: exact parts */
        const ct_tensor_info *t = ct_model_tensor(part, i), *u = ct_model_tensor(whole, i);
        ct_tensor_take_part(t, r, R, ct_model_params(whole) + u->offset, buf);
        check(memcmp(buf, ct_model_params(part) + t->offset, t->numel * sizeof(float)) == 0, t->name);
    }
    int32_t tok[B * T], tgt[B * T], pre[B] = {5, 0};
    ct_rng rng;
    ct_rng_seed(&rng, 11);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)ct_rng_below(&rng, (uint64_t)cfg->vocab_size);
        tgt[i] = i % 7 == 3 ? -1 : (int32_t)ct_rng_below(&rng, (uint64_t)cfg->vocab_size);
    }
    ct_model_set_training(whole, 1, 99);
    ct_model_set_training(part, 1, 99);
    float lw, lp;
    double worst = 0.0;
    ok_or_abort(ct_model_forward(whole, tok, tgt, prefix ? pre : NULL, B, T, &lw), "forward");
    ok_or_abort(ct_model_forward(part, tok, tgt, prefix ? pre : NULL, B, T, &lp), "parallel forward");
    check(fabsf(lw - lp) <= tol * fabsf(lw), "loss differs");
    float *row = malloc((size_t)cfg->vocab_size * sizeof(float));
    for (int n = 0; n < B * T; n += 5) {
        ok_or_abort(ct_model_logits_row(part, n, row), "logits row");
        double d = rel_diff(row, ct_model_logits(whole) + (size_t)n * cfg->vocab_size, (size_t)cfg->vocab_size);
        check(d <= tol, "a logits row differs");
    }
    ok_or_abort(ct_model_backward(whole, 0.5f), "backward");
    ok_or_abort(ct_model_backward(part, 0.5f), "parallel backward");
    for (size_t i = 0; i < ct_model_num_tensors(part); i++) {
        const ct_tensor_info *t = ct_model_tensor(part, i), *u = ct_model_tensor(whole, i);
        ct_tensor_take_part(t, r, R, ct_model_grads(whole) + u->offset, buf);
        worst = fmax(worst, check_close(t->name, ct_model_grads(part) + t->offset, buf, t->numel, tol));
    }
    free(row);
    free(buf);
    ct_model_free(whole);
    ct_model_free(part);
    return worst;
}

int main(int argc, char **argv) {
    double tol = check_init(argc, argv, CT_AXIS_TENSOR, 1e-4);
    ct_model_config dense, moe;
    check_models(&dense, &moe, 2);
    double d1 = run_case(&dense, 0, tol), d2 = run_case(&dense, 1, tol), d3 = run_case(&moe, 0, tol);
    if (ct_world_rank(W) == 0)
        printf("tp check ok: %d tensor ranks; worst gradient difference dense %.2g, prefix-LM %.2g, "
               "MoE %.2g\n",
               ct_world_size(W), d1, d2, d3);
    ct_world_free(W);
    return 0;
}
