/* optim.c: AdamW, gradient clipping and the learning-rate schedule. The moments may be cut
 * into segments placed in compute memory, host memory or on disk (offload): compute and
 * host segments update in place; disk segments stream through two host buffers, the next
 * read and the last written back while one updates. The per-element update is the ops'
 * AdamW kernel (ct_adamw_kernel); this file is the policy around it: which runs, with which
 * weight decay, clipping and step. Each element's arithmetic is the same wherever it lives,
 * so placement never changes a result. */
#include "core/core.h"
#include "model/model.h"
#include "ops/ops.h"
#include "train/optim.h"
#include <math.h>
#include <string.h>

enum { PIECE = CT_ADAMW_PIECE };

/* A run of the moments' range in one place: compute or host memory (m, v point at it), or
 * the disk (at file bytes [at, at + 2 n floats): m then v). */
typedef struct segment {
    size_t lo, n;
    ct_place place;
    float *m, *v;
    size_t at;
} segment;

struct ct_adamw {
    size_t lo, n; /* moments cover the flat parameter range [lo, lo + n) */
    float *m, *v; /* all of it, when no part is placed off the compute tier */
    segment *segs;
    int n_segs;
    ct_store *store;   /* the disk segments' file (not owned) */
    float *staging[2]; /* host: [2 * piece] each (m, then v), double buffered */
    size_t piece;      /* floats of m (and of v) a staging buffer holds: PIECE, or less when
                        * every disk segment is smaller */
    int64_t t;
};

ct_status ct_adamw_create(ct_adamw **out, size_t num_params) {
    return ct_adamw_create_range(out, 0, num_params);
}

size_t ct_adamw_range_lo(const ct_adamw *o) { return o->lo; }
size_t ct_adamw_range_n(const ct_adamw *o) { return o->n; }

ct_status ct_adamw_create_range(ct_adamw **out, size_t lo, size_t num_params) {
    return ct_adamw_create_placed(out, lo, num_params, NULL, 0, NULL);
}

/* The segments of owned range [lo, hi): the placed ranges clipped to it, compute in the
 * gaps (appended to o->segs, which has room). */
static void cut_segments(ct_adamw *o, size_t lo, size_t hi, const ct_place_range *ranges, int count) {
    size_t at = lo;
    for (int i = 0; i <= count; i++) {
        size_t a = i < count ? ranges[i].lo : hi, e = i < count ? ranges[i].lo + ranges[i].n : hi;
        a = a < lo ? lo : a > hi ? hi : a;
        e = e < a ? a : e > hi ? hi : e;
        CT_ASSERT(a >= at); /* sorted, not overlapping */
        if (a > at) o->segs[o->n_segs++] = (segment){at, a - at, CT_PLACE_COMPUTE, NULL, NULL, 0};
        if (i < count && e > a) o->segs[o->n_segs++] = (segment){a, e - a, ranges[i].place, NULL, NULL, 0};
        at = e > at ? e : at;
    }
}

/* Memory (or file room) for each segment; zeroed moments everywhere. */
static ct_status place_segments(ct_adamw *o) {
    size_t disk_at = 0;
    for (int i = 0; i < o->n_segs; i++) {
        segment *g = &o->segs[i];
        if (g->place == CT_PLACE_DISK) {
            if (!o->store) return ct_fail(CT_EINVAL, "optimizer state placed on disk without offload.dir");
            g->at = disk_at;
            disk_at += 2 * g->n * sizeof(float);
            continue;
        }
        ct_tier tier = g->place == CT_PLACE_HOST ? CT_TIER_HOST : CT_TIER_COMPUTE;
        g->m = ct_alloc_in(tier, 2 * g->n * sizeof(float), "AdamW moments");
        if (!g->m) return CT_ENOMEM;
        g->v = g->m + g->n;
        ct_zero_lazily(g->m, 2 * g->n * sizeof(float));
    }
    if (!disk_at) return CT_OK;
    for (int i = 0; i < o->n_segs; i++)
        if (o->segs[i].place == CT_PLACE_DISK && o->segs[i].n > o->piece) o->piece = o->segs[i].n;
    if (o->piece > PIECE) o->piece = PIECE;
    for (int b = 0; b < 2; b++) {
        o->staging[b] = ct_alloc_in(CT_TIER_HOST, 2 * o->piece * sizeof(float), "AdamW moments staging");
        if (!o->staging[b]) return CT_ENOMEM;
        memset(o->staging[b], 0, 2 * o->piece * sizeof(float));
    }
    /* the file starts as zero moments */
    ct_ticket t = 0;
    for (int i = 0; i < o->n_segs; i++) {
        const segment *g = &o->segs[i];
        for (size_t done = 0; g->place == CT_PLACE_DISK && done < 2 * g->n; done += 2 * o->piece) {
            size_t n = 2 * g->n - done < 2 * o->piece ? 2 * g->n - done : 2 * o->piece;
            t = ct_store_write(o->store, g->at + done * sizeof(float), o->staging[0], n * sizeof(float));
        }
    }
    return ct_store_wait(o->store, t);
}

ct_status ct_adamw_create_placed(ct_adamw **out, size_t lo, size_t num_params, const ct_place_range *ranges,
                                 int count, ct_store *store) {
    ct_place_range owned = {lo, num_params, CT_PLACE_COMPUTE};
    return ct_adamw_create_owned(out, &owned, 1, ranges, count, store);
}

ct_status ct_adamw_create_owned(ct_adamw **out, const ct_place_range *owned, int n_owned,
                                const ct_place_range *ranges, int count, ct_store *store) {
    CT_ASSERT(n_owned >= 1);
    ct_adamw *o = ct_calloc(sizeof *o, "the optimizer");
    if (!o) return CT_ENOMEM;
    size_t lo = owned[0].lo, num_params = owned[0].n;
    o->lo = lo;
    o->n = owned[n_owned - 1].lo + owned[n_owned - 1].n - lo;
    o->store = store;
    ct_status s = CT_OK;
    if (count == 0 && n_owned == 1) {
        o->m = ct_calloc_in(CT_TIER_COMPUTE, num_params * sizeof(float), "AdamW first moments");
        o->v = ct_calloc_in(CT_TIER_COMPUTE, num_params * sizeof(float), "AdamW second moments");
        if (!o->m || !o->v) s = CT_ENOMEM;
        else if (!(o->segs = ct_calloc(sizeof *o->segs, "the optimizer's segments")))
            s = CT_ENOMEM;
        else
            o->segs[o->n_segs++] = (segment){lo, num_params, CT_PLACE_COMPUTE, o->m, o->v, 0};
    } else if (!(o->segs = ct_calloc((size_t)n_owned * (2 * (size_t)count + 1) * sizeof *o->segs,
                                     "the optimizer's segments"))) {
        s = CT_ENOMEM;
    } else {
        for (int i = 0; i < n_owned; i++) {
            CT_ASSERT(i == 0 || owned[i].lo >= owned[i - 1].lo + owned[i - 1].n);
            cut_segments(o, owned[i].lo, owned[i].lo + owned[i].n, ranges, count);
        }
        s = place_segments(o);
    }
    if (s != CT_OK) {
        ct_adamw_free(o);
        return s;
    }
    *out = o;
    return CT_OK;
}

void ct_adamw_free(ct_adamw *o) {
    if (!o) return;
    if (o->m || o->v) {
        ct_free(o->m);
        ct_free(o->v);
    } /* one compute segment over both */
    else
        for (int i = 0; o->segs && i < o->n_segs; i++) ct_free(o->segs[i].m);
    ct_free(o->staging[0]);
    ct_free(o->staging[1]);
    ct_free(o->segs);
    ct_free(o);
}

float *ct_adamw_m(ct_adamw *o) { return o->m; }
float *ct_adamw_v(ct_adamw *o) { return o->v; }
int64_t ct_adamw_steps(const ct_adamw *o) { return o->t; }
void ct_adamw_set_steps(ct_adamw *o, int64_t t) { o->t = t; }

size_t ct_adamw_bytes(const ct_adamw *o, ct_place place) {
    size_t n = 0;
    for (int i = 0; i < o->n_segs; i++)
        if (o->segs[i].place == place) n += 2 * o->segs[i].n * sizeof(float);
    return n;
}

/* Copies moments (which: 1 m, 2 v) of flat [at, at + n) out of (write 0) or into (1) the
 * segments; disk segments through the store, waited for. */
static ct_status move_moments(ct_adamw *o, int which, size_t at, size_t n, float *buf, int write) {
    CT_ASSERT(at >= o->lo && at + n <= o->lo + o->n && (which == 1 || which == 2));
    ct_ticket t = 0;
    for (int i = 0; i < o->n_segs; i++) {
        const segment *g = &o->segs[i];
        size_t a = at > g->lo ? at : g->lo, e = at + n < g->lo + g->n ? at + n : g->lo + g->n;
        if (e <= a) continue;
        float *out = buf + (a - at);
        size_t bytes = (e - a) * sizeof(float);
        if (g->place != CT_PLACE_DISK) {
            float *mine = (which == 1 ? g->m : g->v) + (a - g->lo);
            if (write) memcpy(mine, out, bytes);
            else
                memcpy(out, mine, bytes);
            continue;
        }
        size_t off = g->at + ((which == 2 ? g->n : 0) + (a - g->lo)) * sizeof(float);
        t = write ? ct_store_write(o->store, off, out, bytes) : ct_store_read(o->store, off, out, bytes);
    }
    return t ? ct_store_wait(o->store, t) : CT_OK;
}

ct_status ct_adamw_read(ct_adamw *o, int which, size_t at, size_t n, float *dst) {
    return move_moments(o, which, at, n, dst, 0);
}

ct_status ct_adamw_write(ct_adamw *o, int which, size_t at, size_t n, const float *src) {
    return move_moments(o, which, at, n, (float *)src, 1);
}

float ct_grad_norm(const float *g, size_t n) { return (float)sqrt(ct_sum_squares(g, n)); }

float ct_clip_scale(float norm, const ct_adamw_config *c) {
    return c->grad_clip > 0.0f && norm > c->grad_clip ? c->grad_clip / norm : 1.0f;
}

/* What one update needs besides the moments. */
typedef struct step_args {
    float *params;
    const float *grads;
    ct_model *model;
    float lr, clip_scale, bc1, bc2;
    const ct_adamw_config *c;
} step_args;

/* The update of flat [lo, lo + n) with its moments at m, v (indexed from lo), tensor by
 * tensor (weight decay is per tensor). */
static void update_span(const step_args *a, size_t lo, size_t n, float *m, float *v) {
    size_t hi = lo + n;
    for (size_t i = 0; i < ct_model_num_tensors(a->model); i++) {
        const ct_tensor_info *t = ct_model_tensor(a->model, i);
        size_t s = t->offset > lo ? t->offset : lo, e = t->offset + t->numel < hi ? t->offset + t->numel : hi;
        if (s >= e) continue;
        ct_adamw_hparams h = {a->lr,         t->decay ? a->c->weight_decay : 0.0f,
                              a->clip_scale, a->c->beta1,
                              a->c->beta2,   a->c->eps,
                              a->bc1,        a->bc2};
        ct_adamw_kernel(a->params + s, a->grads + s, m + (s - lo), v + (s - lo), e - s, &h);
    }
}

typedef struct piece {
    int seg;
    size_t at, n;
} piece;

/* The piece after p (the first when p.seg < 0), or seg -1 at the end. */
static piece next_piece(const ct_adamw *o, piece p) {
    if (p.seg >= 0 && p.at + p.n < o->segs[p.seg].n) {
        size_t at = p.at + p.n, left = o->segs[p.seg].n - at;
        return (piece){p.seg, at, left < o->piece ? left : o->piece};
    }
    for (int i = p.seg + 1; i < o->n_segs; i++)
        if (o->segs[i].place == CT_PLACE_DISK)
            return (piece){i, 0, o->segs[i].n < o->piece ? o->segs[i].n : o->piece};
    return (piece){-1, 0, 0};
}

/* Reads (write 0) or writes piece p's m and v from / to staging buffer buf ([2 piece]). */
static ct_ticket move_piece(ct_adamw *o, piece p, float *buf, int write) {
    const segment *g = &o->segs[p.seg];
    size_t m_at = g->at + p.at * sizeof(float), v_at = g->at + (g->n + p.at) * sizeof(float),
           bytes = p.n * sizeof(float);
    if (write) {
        ct_store_write(o->store, m_at, buf, bytes);
        return ct_store_write(o->store, v_at, buf + o->piece, bytes);
    }
    ct_store_read(o->store, m_at, buf, bytes);
    return ct_store_read(o->store, v_at, buf + o->piece, bytes);
}

/* Disk segments piece after piece through two staging buffers: piece k+1's moments are read
 * while k updates, and k's written back while k+1 updates. */
static ct_status update_disk(ct_adamw *o, const step_args *a) {
    ct_ticket loaded[2] = {0, 0}, saved[2] = {0, 0};
    piece p = next_piece(o, (piece){-1, 0, 0});
    if (p.seg >= 0) loaded[0] = move_piece(o, p, o->staging[0], 0);
    for (int k = 0; p.seg >= 0; k ^= 1) {
        piece q = next_piece(o, p);
        if (q.seg >= 0) { /* its buffer's last write-back must be done before the read */
            if (saved[k ^ 1]) CT_TRY(ct_store_wait(o->store, saved[k ^ 1]));
            loaded[k ^ 1] = move_piece(o, q, o->staging[k ^ 1], 0);
        }
        CT_TRY(ct_store_wait(o->store, loaded[k]));
        update_span(a, o->segs[p.seg].lo + p.at, p.n, o->staging[k], o->staging[k] + o->piece);
        ct_model_offload_drop(a->model, o->segs[p.seg].lo + p.at, p.n);
        saved[k] = move_piece(o, p, o->staging[k], 1);
        p = q;
    }
    ct_ticket last = saved[0] > saved[1] ? saved[0] : saved[1];
    return last ? ct_store_wait(o->store, last) : CT_OK;
}

ct_status ct_adamw_update(ct_adamw *o, ct_model *m, float lr, float clip_scale, const ct_adamw_config *c) {
    CT_ASSERT(ct_model_grads(m) != NULL && o->lo + o->n <= ct_model_num_params(m));
    o->t += 1;
    step_args a = {ct_model_params(m),
                   ct_model_grads(m),
                   m,
                   lr,
                   clip_scale,
                   1.0f - powf(c->beta1, (float)o->t),
                   1.0f - powf(c->beta2, (float)o->t),
                   c};
    for (int i = 0; i < o->n_segs; i++) { /* compute and host segments in place, piece by piece */
        const segment *g = &o->segs[i];
        for (size_t at = 0; g->place != CT_PLACE_DISK && at < g->n; at += PIECE) {
            size_t n = g->n - at < PIECE ? g->n - at : PIECE;
            update_span(&a, g->lo + at, n, g->m + at, g->v + at);
            ct_model_offload_drop(m, g->lo + at, n); /* offloaded weights read from disk */
        }
    }
    return update_disk(o, &a);
}

float ct_adamw_step(ct_adamw *o, ct_model *m, float lr, const ct_adamw_config *c) {
    CT_ASSERT(ct_model_grads(m) != NULL && ct_model_num_params(m) == o->n && o->lo == 0);
    float norm = ct_grad_norm(ct_model_grads(m), o->n);
    ct_status s = ct_adamw_update(o, m, lr, ct_clip_scale(norm, c), c);
    CT_ASSERT(s == CT_OK); /* only disk segments can fail, and they are not used here */
    return norm;
}

float ct_lr_at(const ct_lr_schedule *s, int64_t step) {
    if (step < s->warmup_steps) return s->lr_max * (float)(step + 1) / (float)s->warmup_steps;
    if (step >= s->total_steps) return s->lr_min;
    double span = (double)(s->total_steps - s->warmup_steps);
    double progress = span > 0 ? (double)(step - s->warmup_steps) / span : 1.0;
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return s->lr_min + (float)cosine * (s->lr_max - s->lr_min);
}
