/* dp.c: data parallelism: bucketed gradient reduction overlapped with backward (each
 * bucket's reduction handed to the progress engine as soon as the model reports it
 * final), ZeRO stages 0/1/2 over the flat parameter buffer and stage 3 per bucket (each
 * bucket split near-evenly over its axis; the parameters' gathers in zero3.c), the sharded
 * gradient norm and the parameter gather. With pipeline stages, the tied wte of the first and last stage is summed
 * between them before its reduction, so are the copies of shared block weights
 * (model.share_layers) used on several stages, and the gradient norm adds every stage's
 * squares. */
#include "core/core.h"
#include "model/model.h"
#include "parallel/dp.h"
#include "parallel/progress.h"
#include "parallel/zero3.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

typedef struct bucket {
    struct ct_dp *dp;
    ct_axis axis; /* DATA, or EXPERT_DATA for experts split over an expert group */
    size_t offset, count;
    ct_split *split; /* stages 2 and 3: this bucket's floats per shard (stage 3: near-even over
                      * the bucket, which is one unit of the model) */
    int tied;        /* the tied wte of a first or last pipeline stage: summed with the other
                      * stage's copy in ct_dp_finish, then reduced */
    int deferred;    /* reduced in ct_dp_finish, after the sums over the pipeline stages (the
                      * tied wte, or shared block weights used on several stages) */
    ct_request req;
} bucket;

struct ct_dp {
    ct_world *w;
    ct_model *m;
    int zero, ranks, me, armed, n_buckets, failed;
    int tied;                /* index of the tied bucket, or -1 */
    ct_stage_shared *shared; /* shared block weights used on several stages */
    int n_shared;
    float *zeros;       /* what a stage without a copy of some shared weights adds */
    ct_axis shard_axis; /* ZeRO shards: over the data ranks, or with experts split over an
                           * expert group over the expert-data ranks (who hold equal copies) */
    int shard_ranks, shard_me;
    ct_status status;
    ct_progress *prog; /* drives the buckets' reductions while backward computes */
    ct_split *shards;  /* the flat parameter buffer split over the data ranks */
    bucket *buckets;   /* [n_buckets]: at most one per tensor, allocated once */
    ct_zero3 *z3;      /* stage 3: the parameters' gathers */
};

int ct_dp_ranks(const ct_dp *dp) { return dp->ranks; }
ct_axis ct_dp_shard_axis(const ct_dp *dp) { return dp->shard_axis; }

static const bucket *bucket_at(const ct_dp *dp, size_t at);
ct_axis ct_dp_part_axis(const ct_dp *dp, size_t at) {
    const bucket *b = dp->zero == 3 && dp->ranks > 1 ? bucket_at(dp, at) : NULL;
    return b ? b->axis : dp->shard_axis;
}

void ct_dp_shard(const ct_dp *dp, size_t *lo, size_t *hi) {
    CT_ASSERT(dp->zero < 3 || dp->ranks == 1); /* stage 3 owns a slice of each unit: ct_dp_owned_ranges */
    if (dp->zero == 0) {
        *lo = 0;
        *hi = ct_model_num_params(dp->m);
        return;
    }
    *lo = ct_split_offset(dp->shards, dp->shard_me);
    *hi = *lo + ct_split_count(dp->shards, dp->shard_me);
}

/* Stage 2: the part of [offset, offset + count) in each rank's shard. */
static ct_status bucket_split(ct_dp *dp, bucket *b) {
    if (dp->zero == 3) return ct_split_create_even(&b->split, dp->w, b->axis, b->count);
    size_t counts[1024];
    CT_ASSERT(dp->ranks <= 1024);
    for (int r = 0; r < dp->ranks; r++) {
        size_t lo = ct_split_offset(dp->shards, r), hi = lo + ct_split_count(dp->shards, r);
        size_t a = b->offset > lo ? b->offset : lo, e = b->offset + b->count < hi ? b->offset + b->count : hi;
        counts[r] = e > a ? e - a : 0;
    }
    return ct_split_create(&b->split, dp->w, CT_AXIS_DATA, counts);
}

/* Stages 2 and 3: this rank's part of bucket b, [b->offset + *off, + *cnt) (its coordinate on
 * the bucket's axis: the data ranks, or for spread experts those holding the same ones). */
static void own_slice(const ct_dp *dp, const bucket *b, size_t *off, size_t *cnt) {
    int me = ct_world_coord(dp->w, b->axis);
    *off = ct_split_offset(b->split, me);
    *cnt = ct_split_count(b->split, me);
}

/* Stages 2 and 3: a reduced bucket's sums for other ranks are not needed here: give back
 * their pages at once, so the gradient buffer's resident part stays near this rank's
 * shard (the bucket's split says which part of it is this rank's). */
static void release_reduced(ct_dp *dp, const bucket *b) {
    size_t off, cnt;
    own_slice(dp, b, &off, &cnt);
    float *g = ct_model_grads(dp->m) + b->offset;
    ct_pages_release(g, off * sizeof(float));
    ct_pages_release(g + off + cnt, (b->count - off - cnt) * sizeof(float));
}

/* On the driving thread, when a bucket's reduction completed. */
static void bucket_done(void *ctx) {
    bucket *b = ctx;
    if (b->dp->zero >= 2) release_reduced(b->dp, b);
}

static void on_progress(void *ctx) {
    ct_dp *dp = ctx;
    if (dp->armed) ct_progress_poll(dp->prog);
    ct_zero3_poll(dp->z3);
}

static ct_status start_bucket(ct_dp *dp, bucket *b) {
    float *g = ct_model_grads(dp->m) + b->offset;
    if (dp->zero >= 2) {
        size_t off, cnt;
        own_slice(dp, b, &off, &cnt);
        float *recv = g + off;
        CT_TRY(ct_comm_reduce_scatterv_start(dp->w, b->split, g, recv, &b->req));
    } else {
        CT_TRY(ct_comm_allreduce_start(dp->w, b->axis, g, b->count, &b->req));
    }
    return ct_progress_add(dp->prog, &b->req, bucket_done, b);
}

/* The model reports [offset, offset + count) final: start every bucket inside it. */
static void on_grads_ready(size_t offset, size_t count, void *ctx) {
    ct_dp *dp = ctx;
    if (!dp->armed || dp->status != CT_OK) return;
    int started = 0;
    for (int i = 0; i < dp->n_buckets && dp->status == CT_OK; i++) {
        bucket *b = &dp->buckets[i];
        if (b->offset < offset || b->offset + b->count > offset + count) continue;
        started++;
        if (!b->deferred) dp->status = start_bucket(dp, b); /* the others wait for ct_dp_finish */
    }
    CT_ASSERT(started > 0 || dp->status != CT_OK);
    ct_progress_poll(dp->prog);
}

/* The buckets are exactly the ranges the model reports: find them once with a dry run of
 * the table (final norm, blocks, embeddings all tile the buffer). */
static ct_status record_bucket(ct_dp *dp, size_t offset, size_t count, ct_axis axis) {
    bucket *b = &dp->buckets[dp->n_buckets++];
    memset(b, 0, sizeof *b);
    b->dp = dp;
    b->axis = axis;
    b->offset = offset;
    b->count = count;
    return dp->zero >= 2 ? bucket_split(dp, b) : CT_OK;
}

static ct_status make_buckets(ct_dp *dp) {
    const ct_model *m = dp->m;
    size_t n = ct_model_num_tensors(m), start = 0;
    /* a bucket begins at tensor 0 (embeddings), at each block's ln_1.weight and at ln_f;
     * experts split over an expert group are a bucket of their own, reduced over the data
     * ranks that hold the same experts; so is a pipeline stage's tied wte */
    int split_experts = ct_model_expert_ranks(m) > 1, staged = ct_model_stages(m) > 1;
    dp->tied = -1;
    if (!(dp->buckets = ct_calloc((n ? n : 1) * sizeof *dp->buckets, "the gradient buckets"))) return CT_ENOMEM;
    for (size_t i = 1; i <= n; i++) {
        const ct_tensor_info *t = i < n ? ct_model_tensor(m, i) : NULL, *prev = ct_model_tensor(m, i - 1);
        int expert = split_experts && t && t->split_expert;
        int prev_expert = split_experts && prev->split_expert;
        int tied = staged && t && !strcmp(t->name, "wte.weight"),
            prev_tied = staged && !strcmp(prev->name, "wte.weight");
        int boundary = !t || strstr(t->name, ".ln_1.weight") || !strcmp(t->name, "ln_f.weight") ||
                       expert != prev_expert || tied || prev_tied;
        if (!boundary) continue;
        const ct_tensor_info *a = ct_model_tensor(m, start);
        if (prev_tied) dp->tied = dp->n_buckets;
        CT_TRY(record_bucket(dp, a->offset, prev->offset + prev->numel - a->offset,
                             prev_expert ? CT_AXIS_EXPERT_DATA : CT_AXIS_DATA));
        bucket *b = &dp->buckets[dp->n_buckets - 1];
        b->tied = b->deferred = prev_tied;
        for (int k = 0; k < dp->n_shared; k++) {
            const ct_stage_shared *sh = &dp->shared[k];
            if (sh->held && b->offset >= sh->offset && b->offset < sh->offset + sh->count) b->deferred = 1;
        }
        start = i;
    }
    return CT_OK;
}

/* The shared block weights used on several pipeline stages, and zeros for the sums this
 * stage has no copy for. */
static ct_status find_shared(ct_dp *dp) {
    const ct_model *m = dp->m;
    if (ct_model_stages(m) == 1) return CT_OK;
    if (!(dp->shared = ct_calloc((size_t)ct_model_get_config(m)->n_layer * sizeof *dp->shared,
                                 "the shared weights' gradient sums")))
        return CT_ENOMEM;
    dp->n_shared = ct_model_stage_shared(m, dp->shared);
    size_t most = 0;
    for (int k = 0; k < dp->n_shared; k++)
        if (!dp->shared[k].held && dp->shared[k].count > most) most = dp->shared[k].count;
    if (most && !(dp->zeros = ct_calloc_in(CT_TIER_COMPUTE, most * sizeof(float), "shared gradient sum")))
        return CT_ENOMEM;
    return CT_OK;
}

/* Sums the gradients of each set of shared weights over the pipeline stages (a stage
 * without a copy adds zeros), so that every copy steps alike. */
static ct_status sum_shared(ct_dp *dp) {
    float *g = ct_model_grads(dp->m);
    for (int k = 0; k < dp->n_shared; k++) {
        const ct_stage_shared *sh = &dp->shared[k];
        if (!sh->held) memset(dp->zeros, 0, sh->count * sizeof(float)); /* the sum landed here too */
        CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_PIPELINE, sh->held ? g + sh->offset : dp->zeros, sh->count));
    }
    return CT_OK;
}

ct_status ct_overlap_parse(const char *text, ct_overlap *out) {
    static const char *names[] = {"auto", "thread", "poll"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(text, names[i])) {
            *out = (ct_overlap)i;
            return CT_OK;
        }
    return ct_fail(CT_EINVAL, "parallel.overlap = \"%s\": allowed \"auto\", \"thread\" or \"poll\"", text);
}

int ct_dp_threaded(const ct_dp *dp) { return dp->prog && ct_progress_threaded(dp->prog); }

/* Stage 3: the parameters are gathered in the buckets' parts, over the buckets' axes. */
static ct_status create_zero3(ct_dp *dp, int keep) {
    ct_zero3_part *parts = ct_alloc((size_t)dp->n_buckets * sizeof *parts, "ZeRO 3 parts");
    if (!parts) return CT_ENOMEM;
    for (int i = 0; i < dp->n_buckets; i++)
        parts[i] = (ct_zero3_part){dp->buckets[i].offset, dp->buckets[i].count, dp->buckets[i].axis,
                                   dp->buckets[i].split};
    ct_status s = ct_zero3_create(&dp->z3, dp->w, dp->m, parts, dp->n_buckets, keep);
    ct_free(parts);
    return s;
}

ct_status ct_dp_create(ct_dp **out, ct_world *w, ct_model *m, int zero_stage, int zero_keep,
                       ct_overlap overlap) {
    if (zero_stage < 0 || zero_stage > 3)
        return ct_fail(CT_EINVAL, "parallel.zero = %d: allowed 0, 1, 2 or 3", zero_stage);
    if (zero_stage == 2 && ct_model_expert_ranks(m) > 1)
        return ct_fail(CT_EINVAL,
                       "parallel.zero = 2 with parallel.expert = %d: not supported yet (the "
                       "dense gradients would need a reduction over the expert group before the "
                       "reduce-scatter); use parallel.zero = 1, which shards over the ranks that hold "
                       "the same experts",
                       ct_model_expert_ranks(m));
    ct_dp *dp = ct_calloc(sizeof *dp, "data parallelism");
    if (!dp) return CT_ENOMEM;
    *dp = (ct_dp){.w = w,
                  .m = m,
                  .zero = zero_stage,
                  .ranks = ct_world_axis_size(w, CT_AXIS_DATA),
                  .me = ct_world_coord(w, CT_AXIS_DATA),
                  .shard_axis = CT_AXIS_DATA};
    if (ct_model_expert_ranks(m) > 1) dp->shard_axis = CT_AXIS_EXPERT_DATA;
    dp->shard_ranks = ct_world_axis_size(w, dp->shard_axis);
    dp->shard_me = ct_world_coord(w, dp->shard_axis);
    ct_status s = ct_split_create_even(&dp->shards, w, dp->shard_axis, ct_model_num_params(m));
    if (s == CT_OK) s = find_shared(dp);
    if (s == CT_OK) s = make_buckets(dp);
    int thread = overlap == CT_OVERLAP_THREAD ||
                 (overlap == CT_OVERLAP_AUTO &&
                  (zero_stage >= 2 || !ct_world_axis_on_one_node(w, CT_AXIS_DATA)));
    if (s == CT_OK) s = ct_progress_create(&dp->prog, w, thread && dp->ranks > 1);
    if (s == CT_OK && zero_stage == 3 && dp->ranks > 1) s = create_zero3(dp, zero_keep);
    if (s != CT_OK) {
        ct_dp_free(dp);
        return s;
    }
    ct_model_set_grad_hook(m, on_grads_ready, dp);
    ct_model_set_progress_hook(m, on_progress, dp);
    *out = dp;
    return CT_OK;
}

void ct_dp_free(ct_dp *dp) {
    if (!dp) return;
    ct_model_set_grad_hook(dp->m, NULL, NULL);
    ct_model_set_progress_hook(dp->m, NULL, NULL);
    ct_zero3_free(dp->z3);
    ct_progress_free(dp->prog);
    for (int i = 0; i < dp->n_buckets; i++) ct_split_free(dp->buckets[i].split);
    ct_free(dp->buckets);
    ct_split_free(dp->shards);
    ct_free(dp->shared);
    ct_free(dp->zeros);
    ct_free(dp);
}

void ct_dp_arm(ct_dp *dp, int reduce) { dp->armed = reduce && dp->ranks > 1; }

void ct_dp_zero_grad(ct_dp *dp) {
    float *g = ct_model_grads(dp->m);
    if (!g || dp->zero < 2 || dp->ranks == 1) {
        ct_model_zero_grad(dp->m);
        return;
    }
    if (dp->zero == 3) { /* each bucket: this rank's part zeroed, the rest given back */
        for (int i = 0; i < dp->n_buckets; i++) {
            const bucket *b = &dp->buckets[i];
            size_t off, cnt;
            own_slice(dp, b, &off, &cnt);
            ct_model_zero_grad_range(dp->m, b->offset, off, 0);
            ct_model_zero_grad_range(dp->m, b->offset + off, cnt, 1);
            ct_model_zero_grad_range(dp->m, b->offset + off + cnt, b->count - off - cnt, 0);
        }
        return;
    }
    size_t lo, hi, n = ct_model_num_params(dp->m);
    ct_dp_shard(dp, &lo, &hi);
    ct_zero_lazily(g, lo * sizeof(float));
    memset(g + lo, 0, (hi - lo) * sizeof(float));
    ct_zero_lazily(g + hi, (n - hi) * sizeof(float));
}

/* The first and the last pipeline stage each hold the tied wte: each adds the other's
 * gradient to its own (a + b on both: the same bits), in pieces through a bounded buffer. */
static ct_status sum_tied(ct_dp *dp, const bucket *b) {
    enum { PIECE = 1 << 20, TAG = 32767 };
    int stages = ct_world_axis_size(dp->w, CT_AXIS_PIPELINE), me = ct_world_coord(dp->w, CT_AXIS_PIPELINE);
    int peer = me == 0 ? stages - 1 : 0;
    size_t cap = b->count < PIECE ? b->count : PIECE;
    float *g = ct_model_grads(dp->m) + b->offset,
          *other = ct_alloc_in(CT_TIER_COMPUTE, cap * sizeof(float), "tied gradient");
    if (!other) return CT_ENOMEM;
    ct_status s = CT_OK;
    for (size_t at = 0; at < b->count && s == CT_OK; at += cap) {
        size_t n = b->count - at < cap ? b->count - at : cap;
        ct_request rq, sq;
        s = ct_comm_recv_start(dp->w, CT_AXIS_PIPELINE, peer, TAG, other, n, &rq);
        if (s == CT_OK) s = ct_comm_send_start(dp->w, CT_AXIS_PIPELINE, peer, TAG, g + at, n, &sq);
        if (s == CT_OK) s = ct_comm_wait(dp->w, &rq);
        if (s == CT_OK) s = ct_comm_wait(dp->w, &sq);
        for (size_t i = 0; s == CT_OK && i < n; i++) g[at + i] += other[i];
    }
    ct_free(other);
    return s;
}

ct_status ct_dp_finish(ct_dp *dp) {
    ct_status s = CT_OK;
    if (dp->armed) s = ct_progress_drain(dp->prog);
    if (s == CT_OK) s = dp->status;
    if (s == CT_OK && dp->tied >= 0) s = sum_tied(dp, &dp->buckets[dp->tied]);
    if (s == CT_OK) s = sum_shared(dp);
    for (int i = 0; s == CT_OK && dp->armed && i < dp->n_buckets; i++)
        if (dp->buckets[i].deferred) s = start_bucket(dp, &dp->buckets[i]);
    if (s == CT_OK && dp->armed) s = ct_progress_drain(dp->prog);
    int armed = dp->armed;
    dp->armed = 0;
    dp->status = CT_OK;
    if (s != CT_OK || !armed || dp->zero < 2) return s;
    if (dp->zero == 3) return CT_OK; /* each bucket's completion gave its pages back */
    /* stage 2: other ranks' gradient sums are not needed here: give their pages back */
    size_t lo, hi, n = ct_model_num_params(dp->m);
    float *g = ct_model_grads(dp->m);
    ct_dp_shard(dp, &lo, &hi);
    ct_pages_release(g, lo * sizeof(float));
    ct_pages_release(g + hi, (n - hi) * sizeof(float));
    return CT_OK;
}

/* The bucket holding flat position at (stage 3's units). */
static const bucket *bucket_at(const ct_dp *dp, size_t at) {
    for (int i = 0; i < dp->n_buckets; i++)
        if (at >= dp->buckets[i].offset && at < dp->buckets[i].offset + dp->buckets[i].count)
            return &dp->buckets[i];
    return NULL;
}

void ct_dp_owned_part(const ct_dp *dp, int coord, size_t first, size_t end, size_t *a, size_t *e) {
    size_t lo = 0, hi = ct_model_num_params(dp->m);
    if (dp->zero == 3 && dp->ranks > 1) {
        const bucket *b = bucket_at(dp, first); /* coord: on the bucket's axis (ct_dp_part_axis) */
        CT_ASSERT(b && end <= b->offset + b->count);
        lo = b->offset + ct_split_offset(b->split, coord);
        hi = lo + ct_split_count(b->split, coord);
    } else if (dp->zero > 0) {
        lo = ct_split_offset(dp->shards, coord);
        hi = lo + ct_split_count(dp->shards, coord);
    }
    *a = lo > first ? lo : first;
    *e = hi < end ? hi : end;
    if (*e < *a) *e = *a;
}

int ct_dp_owned_ranges(const ct_dp *dp, ct_place_range *out) {
    if (dp->zero < 3 || dp->ranks == 1) {
        size_t lo = 0, hi = ct_model_num_params(dp->m);
        if (dp->zero > 0) ct_dp_shard(dp, &lo, &hi);
        out[0] = (ct_place_range){lo, hi - lo, CT_PLACE_COMPUTE};
        return 1;
    }
    int n = 0;
    for (int i = 0; i < dp->n_buckets; i++) {
        size_t off, cnt;
        own_slice(dp, &dp->buckets[i], &off, &cnt);
        if (cnt) out[n++] = (ct_place_range){dp->buckets[i].offset + off, cnt, CT_PLACE_COMPUTE};
    }
    return n;
}

int ct_dp_max_owned_ranges(const ct_dp *dp) { return dp->n_buckets > 1 ? dp->n_buckets : 1; }

/* With tensor or expert parallelism: the squares of the split tensors' gradients are summed
 * over the ranks they are split over; those of the tensors every rank holds whole count
 * once. */
static ct_status split_model_norm(ct_dp *dp, size_t lo, size_t hi, float *norm) {
    double split, expert, whole;
    ct_model_grad_sq(dp->m, lo, hi, &split, &expert, &whole);
    float sq[3] = {(float)split, (float)expert, (float)whole};
    if (dp->zero == 2) CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_DATA, sq, 3));
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_TENSOR, &sq[0], 1));
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_EXPERT, &sq[1], 1));
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_PIPELINE, sq, 3)); /* every stage's tensors */
    *norm = sqrtf(sq[0] + sq[1] + sq[2]);
    return CT_OK;
}

/* Stage 3: the squares over this rank's part of every unit, summed over the data ranks (each
 * expert slice lies on one of them too), over the tensor ranks for the split tensors and over
 * the pipeline stages. */
static ct_status owned_norm(ct_dp *dp, float *norm) {
    double sq[3] = {0, 0, 0};
    for (int i = 0; i < dp->n_buckets; i++) { /* experts: each slice on one rank of the data axis */
        size_t off, n;
        own_slice(dp, &dp->buckets[i], &off, &n);
        size_t lo = dp->buckets[i].offset + off;
        double split, expert, whole;
        ct_model_grad_sq(dp->m, lo, lo + n, &split, &expert, &whole);
        sq[0] += split, sq[1] += expert, sq[2] += whole;
    }
    float f[3] = {(float)sq[0], (float)sq[1], (float)sq[2]};
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_DATA, f, 3));
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_TENSOR, &f[0], 1));
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_PIPELINE, f, 3)); /* every stage's tensors */
    *norm = sqrtf(f[0] + f[1] + f[2]);
    return CT_OK;
}

ct_status ct_dp_grad_norm(ct_dp *dp, float *norm) {
    if (dp->zero == 3 && dp->ranks > 1) return owned_norm(dp, norm);
    size_t lo, hi;
    ct_dp_shard(dp, &lo, &hi);
    const float *g = ct_model_grads(dp->m);
    if (ct_model_tensor_ranks(dp->m) > 1 || ct_model_expert_ranks(dp->m) > 1 || ct_model_stages(dp->m) > 1)
        return split_model_norm(dp, dp->zero == 2 ? lo : 0, dp->zero == 2 ? hi : ct_model_num_params(dp->m),
                                norm);
    if (dp->zero < 2) { /* every rank holds the whole reduced gradient */
        *norm = (float)sqrt(ct_sum_squares(g, ct_model_num_params(dp->m)));
        return CT_OK;
    }
    float part = (float)sqrt(ct_sum_squares(g + lo, hi - lo));
    part *= part;
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_DATA, &part, 1));
    *norm = sqrtf(part);
    return CT_OK;
}

ct_status ct_dp_gather_params(ct_dp *dp) {
    if (dp->z3) return ct_zero3_invalidate(dp->z3); /* each unit is gathered when next used */
    if (dp->zero == 0 || dp->shard_ranks == 1) return CT_OK;
    float *p = ct_model_params(dp->m);
    return ct_comm_allgatherv(dp->w, dp->shards, p + ct_split_offset(dp->shards, dp->shard_me), p);
}

void ct_dp_gather_stats(const ct_dp *dp, double *bytes, double *busy_s, double *wait_s, long *gathers) {
    ct_zero3_stats(dp->z3, bytes, busy_s, wait_s, gathers);
}

ct_status ct_dp_mean(ct_dp *dp, float *value) {
    if (dp->ranks == 1) return CT_OK;
    CT_TRY(ct_comm_allreduce(dp->w, CT_AXIS_DATA, value, 1));
    *value /= (float)dp->ranks;
    return CT_OK;
}

ct_status ct_dp_agree(ct_dp *dp, ct_status local, const char *what) {
    return ct_world_agree(dp->w, local, what);
}
