/* gpt_tp.c: the tensor-parallel parts of the model that are not the block's: which piece
 * of a logical tensor a rank holds, the check of a split against the model's shape, the
 * sticky collectives the passes use, and the vocabulary-parallel cross-entropy:
 *   max_n   = max over ranks of this rank's row maxima       (all-gather of [N])
 *   sum_n   = sum over ranks of sum_v exp(logit - max_n)     (one sum of [2N] with
 *   tgt_n   = the target's logit, from the rank that holds it  the target logits)
 *   loss_n  = max_n + log(sum_n) - tgt_n
 * so no rank ever holds more than its own V/R columns of the logits. */
#include "core/core.h"
#include "model/model.h"
#include "model/gpt_internal.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

/* A split tensor as [outer, parts, part, inner]: rank r holds, for each (outer, part), the
 * contiguous run of piece * inner floats starting at r * piece along the part. */
typedef struct split_geom {
    size_t outer, parts, part, piece, inner;
} split_geom;

static split_geom geometry(const ct_tensor_info *t, int ranks) {
    split_geom g = {1, (size_t)t->split_parts, 0, 0, 1};
    for (int k = 0; k < t->split_dim; k++) g.outer *= (size_t)t->full_shape[k];
    for (int k = t->split_dim + 1; k < t->ndim; k++) g.inner *= (size_t)t->full_shape[k];
    g.part = (size_t)t->full_shape[t->split_dim] / g.parts;
    g.piece = g.part / (size_t)ranks;
    return g;
}

static void copy_part(const ct_tensor_info *t, int rank, int ranks, float *full, float *part, int to_part) {
    if (t->split_dim < 0 || ranks == 1) {
        if (to_part) memcpy(part, full, t->numel * sizeof(float));
        else
            memcpy(full, part, t->numel * sizeof(float));
        return;
    }
    split_geom g = geometry(t, ranks);
    size_t run = g.piece * g.inner;
    for (size_t o = 0; o < g.outer; o++)
        for (size_t p = 0; p < g.parts; p++) {
            float *f = full + ((o * g.parts + p) * g.part + (size_t)rank * g.piece) * g.inner;
            float *q = part + (o * g.parts + p) * run;
            if (to_part) memcpy(q, f, run * sizeof(float));
            else
                memcpy(f, q, run * sizeof(float));
        }
}

void ct_tensor_take_part(const ct_tensor_info *t, int rank, int ranks, const float *full, float *part) {
    copy_part(t, rank, ranks, (float *)full, part, 1);
}

void ct_tensor_put_part(const ct_tensor_info *t, int rank, int ranks, const float *part, float *full) {
    copy_part(t, rank, ranks, full, (float *)part, 0);
}

static int fits(const ct_model_config *c, int r) {
    return c->n_head % r == 0 && (4 * c->d_model) % r == 0 && c->vocab_size % r == 0;
}

ct_status ct_model_check_tensor_split(const ct_model_config *c, int ranks) {
    if (ranks < 1) return ct_fail(CT_EINVAL, "parallel.tensor = %d: must be at least 1", ranks);
    if (fits(c, ranks)) return CT_OK;
    char sizes[256] = "1";
    size_t used = 1;
    for (int r = 2; r <= 64 && used < sizeof sizes; r++)
        if (fits(c, r)) used += (size_t)snprintf(sizes + used, sizeof sizes - used, ", %d", r);
    if (c->n_head % ranks)
        return ct_fail(CT_EINVAL,
                       "parallel.tensor = %d does not divide model.n_head = %d: every "
                       "tensor rank takes an equal share of the heads; tensor sizes that fit this "
                       "model: %s",
                       ranks, c->n_head, sizes);
    if ((4 * c->d_model) % ranks)
        return ct_fail(CT_EINVAL,
                       "parallel.tensor = %d does not divide the MLP width 4 x model.d_model "
                       "= %d; tensor sizes that fit this model: %s",
                       ranks, 4 * c->d_model, sizes);
    int padded = (c->vocab_size + ranks - 1) / ranks * ranks;
    return ct_fail(CT_EINVAL,
                   "parallel.tensor = %d does not divide model.vocab_size = %d: the "
                   "vocabulary is split over the tensor ranks; pad it (model.vocab_size = %d: the "
                   "extra rows are never targets) or use a tensor size that fits: %s",
                   ranks, c->vocab_size, padded, sizes);
}

ct_status ct_gpt_tp_ep_alltoall(void *ctx, const float *send, const size_t *send_counts, float *recv,
                                const size_t *recv_counts) {
    ct_model *m = ctx;
    if (m->tp.status != CT_OK) return m->tp.status;
    return m->tp.status = m->tp.comm.ep_alltoallv(m->tp.comm.ctx, send, send_counts, recv, recv_counts);
}

ct_status ct_gpt_tp_ep_sizes(void *ctx, const size_t *send, size_t *recv, size_t per_peer) {
    ct_model *m = ctx;
    if (m->tp.status != CT_OK) return m->tp.status;
    return m->tp.status = m->tp.comm.ep_sizes(m->tp.comm.ctx, send, recv, per_peer);
}

void ct_gpt_tp_sum(ct_model *m, float *buf, size_t n) {
    if (m->layout.tp_ranks == 1 || m->tp.status != CT_OK) return;
    m->tp.status = m->tp.comm.tp_sum(m->tp.comm.ctx, buf, n);
}

static void tp_gather(ct_model *m, const float *send, float *recv, size_t n) {
    if (m->tp.status != CT_OK) return;
    m->tp.status = m->tp.comm.tp_gather(m->tp.comm.ctx, send, recv, n);
}

int ct_gpt_tp_vocab_lo(const ct_model *m) {
    return m->layout.tp_rank * (m->cfg.vocab_size / m->layout.tp_ranks);
}

static ct_status ensure_tp_buf(ct_model *m, int N) {
    size_t need = ((size_t)m->layout.tp_ranks + 2) * (size_t)N;
    if (m->tp.buf && need <= m->tp.buf_cap) return CT_OK;
    ct_free(m->tp.buf);
    m->tp.buf_cap = 0;
    if (!(m->tp.buf = ct_alloc_in(CT_TIER_COMPUTE, need * sizeof(float), "tensor-parallel buffers")))
        return CT_ENOMEM;
    m->tp.buf_cap = need;
    return CT_OK;
}

float ct_gpt_tp_crossentropy(ct_model *m, const float *logits, float *lse, const int32_t *targets, int N,
                             int *counted) {
    int R = m->layout.tp_ranks, V = m->cfg.vocab_size / R, v0 = ct_gpt_tp_vocab_lo(m);
    if (ensure_tp_buf(m, N) != CT_OK) {
        m->tp.status = CT_ENOMEM;
        return 0.0f;
    }
    float *maxima = m->tp.buf, *sums = maxima + (size_t)R * N, *tgt = sums + N;
    ct_rowmax(logits, N, V, sums); /* this rank's maxima, gathered below */
    tp_gather(m, sums, maxima, (size_t)N);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float mx = maxima[n];
        for (int r = 1; r < R; r++) mx = fmaxf(mx, maxima[(size_t)r * N + n]);
        lse[n] = mx;
    }
    ct_crossentropy_partials(logits, targets, N, V, v0, lse, sums, tgt);
    ct_gpt_tp_sum(m, sums, 2 * (size_t)N);
    double total = 0.0; /* in row order, as the one-rank loss */
    int count = 0;
    for (int n = 0; n < N; n++) {
        lse[n] += logf(sums[n]);
        if (targets[n] < 0) continue;
        total += (double)(lse[n] - tgt[n]);
        count++;
    }
    *counted = count;
    return count ? (float)(total / count) : 0.0f;
}

ct_status ct_model_logits_row(ct_model *m, int n, float *out) {
    if (!m->pass.logits || n < 0 || n >= m->pass.B * m->pass.T || m->pass.logits_are_grads ||
        (m->pass.logits_partial && n % m->pass.T != m->pass.T - 1))
        return ct_fail(CT_EINVAL, "logits row %d: no such row in the last forward's logits", n);
    size_t V = (size_t)(m->cfg.vocab_size / m->layout.tp_ranks);
    const float *row = m->pass.logits + (size_t)n * V;
    if (m->layout.tp_ranks == 1) {
        memcpy(out, row, V * sizeof(float));
        return CT_OK;
    }
    return m->tp.comm.tp_gather(m->tp.comm.ctx, row, out, V);
}

void ct_model_grad_sq(const ct_model *m, size_t lo, size_t hi, double *split, double *expert, double *whole) {
    *split = *expert = *whole = 0.0;
    if (!m->table.grads) return;
    for (size_t i = 0; i < m->table.n_tensors; i++) {
        const ct_tensor_info *t = &m->table.tensors[i];
        size_t a = t->offset > lo ? t->offset : lo, e = t->offset + t->numel < hi ? t->offset + t->numel : hi;
        if (e <= a || t->tied_copy) continue;
        double s = ct_sum_squares(m->table.grads + a, e - a);
        if (t->split_dim < 0) *whole += s;
        else if (t->split_expert)
            *expert += s;
        else
            *split += s;
    }
}

static void tp_sum_block(void *ctx, float *buf, size_t n) { ct_gpt_tp_sum(ctx, buf, n); }

/* Between blocks, the progress hook of the model the view belongs to (parallel.overlap). */
static void poll_block(void *ctx) {
    const ct_model *o = ct_gpt_owner(ctx);
    if (o->hooks.progress) o->hooks.progress(o->hooks.progress_ctx);
}

void ct_gpt_tp_init(ct_model *m, const ct_model_comm *comm) {
    if (comm) m->tp.comm = *comm;
    m->tp.block = (ct_block_comm){m->layout.tp_rank, m->layout.tp_ranks, tp_sum_block, poll_block, m};
    m->tp.ep_group = (ct_moe_group){m->layout.ep_rank, m->layout.ep_ranks, ct_gpt_tp_ep_alltoall,
                                    ct_gpt_tp_ep_sizes, m};
}

void ct_gpt_tp_begin(ct_model *m) { m->tp.status = CT_OK; }

ct_status ct_gpt_tp_end(ct_model *m, const char *what) {
    return m->tp.status == CT_OK ? CT_OK : ct_fail_context(m->tp.status, "%s", what);
}

void ct_gpt_tp_view(ct_model *v) {
    v->tp.buf = NULL;
    v->tp.buf_cap = 0;
    v->tp.block.ctx = v; /* its passes record their own collective failures */
    v->tp.ep_group.ctx = v;
}

void ct_gpt_tp_free(gpt_tp *t) {
    ct_free(t->buf);
    t->buf = NULL;
    t->buf_cap = 0;
}
