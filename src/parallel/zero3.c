/* zero3.c: ZeRO stage 3's parameter gathers (see zero3.h): the model's units as runs of
 * the parts data parallelism reduces (blocks sharing weights name the same parts), each
 * part gathered over its own axis and split, the next use's gathers in flight during the
 * current one, and the pages outside this rank's slice given back after a use. */
#include "core/core.h"
#include "parallel/zero3.h"
#include <stdint.h>
#include <string.h>

enum { ABSENT, GATHERING, PRESENT };
enum { MAX_USE_PARTS = 8 }; /* a use: the head's parts and the embeddings'; a block: at most 2 */

/* One part: its range, split and axis (borrowed from dp), and where its gather stands. */
typedef struct weight_set {
    ct_zero3_part part;
    int me; /* this rank's coordinate on the part's axis */
    int state, kept;
    double started; /* when its gather started */
    ct_request req;
} weight_set;

struct ct_zero3 {
    ct_world *w;
    ct_model *m;
    int units, n_sets;
    weight_set *sets;
    int *unit_first, *unit_end; /* [units]: unit u's parts are sets [first, end) */
    int tied;                   /* the head's use also needs the embeddings' parts (one stage holds both) */
    unsigned char *keep;        /* [units]: forward leaves the unit's parts gathered for backward */
    int next;                   /* the unit the pass announced it uses next, or -1 */
    double bytes, wait_s;       /* gathered into this rank; waited for */
    double busy_s;              /* the gathers' durations, start to completion seen */
    long gathers;
};

static float *params(ct_zero3 *z) { return ct_model_params(z->m); }

/* This rank's slice of set s: [lo + off, lo + off + cnt). */
static void slice(const weight_set *s, size_t *off, size_t *cnt) {
    *off = ct_split_offset(s->part.split, s->me);
    *cnt = ct_split_count(s->part.split, s->me);
}

/* Gives back the pages of set s outside this rank's slice (they read as zeros until the next
 * gather writes them). */
static void release(ct_zero3 *z, weight_set *s) {
    size_t off, cnt;
    slice(s, &off, &cnt);
    float *p = params(z) + s->part.lo;
    ct_pages_release(p, off * sizeof(float));
    ct_pages_release(p + off + cnt, (s->part.n - off - cnt) * sizeof(float));
    s->state = ABSENT;
    s->kept = 0;
}

static ct_status start(ct_zero3 *z, weight_set *s) {
    if (s->state != ABSENT) return CT_OK;
    size_t off, cnt;
    slice(s, &off, &cnt);
    float *p = params(z) + s->part.lo;
    CT_TRY(ct_comm_allgatherv_start(z->w, s->part.split, p + off, p, &s->req));
    s->state = GATHERING;
    s->started = ct_now();
    z->bytes += (double)(s->part.n - cnt) * sizeof(float);
    z->gathers++;
    return CT_OK;
}

static void completed(ct_zero3 *z, weight_set *s) {
    s->state = PRESENT;
    z->busy_s += ct_now() - s->started;
}

static ct_status finish(ct_zero3 *z, weight_set *s) {
    if (s->state != GATHERING) return CT_OK;
    int done = 0;
    CT_TRY(ct_comm_test(z->w, &s->req, &done));
    if (!done) {
        double t0 = ct_now();
        CT_TRY(ct_comm_wait(z->w, &s->req));
        z->wait_s += ct_now() - t0;
    }
    completed(z, s);
    return CT_OK;
}

/* The sets unit u's use reads: its own parts and, for the head on a stage with the tied
 * embeddings, the embeddings'. Returns how many. */
static int use_sets(const ct_zero3 *z, int u, int out[MAX_USE_PARTS]) {
    int n = 0;
    if (u < 0 || u >= z->units) return 0;
    for (int i = z->unit_first[u]; i < z->unit_end[u] && n < MAX_USE_PARTS; i++) out[n++] = i;
    if (u == z->units - 1 && z->tied)
        for (int i = z->unit_first[0]; i < z->unit_end[0] && n < MAX_USE_PARTS; i++) out[n++] = i;
    return n;
}

static int needed_next(const ct_zero3 *z, int set) {
    int next[MAX_USE_PARTS], n = use_sets(z, z->next, next);
    for (int i = 0; i < n; i++)
        if (next[i] == set) return 1;
    return 0;
}

static ct_status on_get(ct_zero3 *z, int u, int next) {
    int mine[MAX_USE_PARTS], ahead[MAX_USE_PARTS], n = use_sets(z, u, mine), k = use_sets(z, next, ahead);
    for (int i = 0; i < n; i++) CT_TRY(start(z, &z->sets[mine[i]]));
    for (int i = 0; i < k; i++) CT_TRY(start(z, &z->sets[ahead[i]])); /* moves while u computes */
    for (int i = 0; i < n; i++) CT_TRY(finish(z, &z->sets[mine[i]]));
    z->next = next;
    return CT_OK;
}

static void on_put(ct_zero3 *z, int u, int forward) {
    int mine[MAX_USE_PARTS], n = use_sets(z, u, mine);
    for (int i = 0; i < n; i++) {
        weight_set *s = &z->sets[mine[i]];
        if (forward && z->keep[u]) s->kept = 1;
        if (s->state != PRESENT || (forward && s->kept) || needed_next(z, mine[i])) continue;
        release(z, s);
    }
}

static ct_status hook(void *ctx, ct_use_event event, int unit, int next) {
    ct_zero3 *z = ctx;
    if (event == CT_USE_GET) return on_get(z, unit, next);
    on_put(z, unit, event == CT_USE_PUT_FORWARD);
    return CT_OK;
}

void ct_zero3_poll(ct_zero3 *z) {
    for (int i = 0; z && i < z->n_sets; i++) {
        weight_set *s = &z->sets[i];
        int done = 0;
        if (s->state == GATHERING && ct_comm_test(z->w, &s->req, &done) == CT_OK && done) completed(z, s);
    }
}

/* Each unit's run of parts: those inside its range (the parts tile the units). */
static ct_status map_units(ct_zero3 *z) {
    for (int u = 0; u < z->units; u++) {
        size_t lo, n;
        ct_model_unit_range(z->m, u, &lo, &n);
        z->unit_first[u] = z->unit_end[u] = 0;
        for (int i = 0; n && i < z->n_sets; i++) {
            const ct_zero3_part *p = &z->sets[i].part;
            if (p->lo < lo || p->lo + p->n > lo + n) continue;
            if (z->unit_end[u] == 0) z->unit_first[u] = i;
            z->unit_end[u] = i + 1;
        }
        if (n && z->unit_end[u] - z->unit_first[u] > MAX_USE_PARTS / 2)
            return ct_fail(CT_EINVAL, "ZeRO 3: unit %d spans %d parts (at most %d)", u,
                           z->unit_end[u] - z->unit_first[u], MAX_USE_PARTS / 2);
    }
    return CT_OK;
}

/* The last `keep` uses of forward: the head, then the blocks from the last. */
static void mark_kept(ct_zero3 *z, int keep) {
    int first, end;
    size_t lo, n;
    ct_model_stage_layers(z->m, &first, &end);
    ct_model_unit_range(z->m, z->units - 1, &lo, &n);
    int k = 0;
    if (n && k < keep) z->keep[z->units - 1] = 1, k++;
    for (int l = end - 1; l >= first && k < keep; l--, k++) z->keep[1 + l] = 1;
}

ct_status ct_zero3_check_keep(int keep, int n_layer) {
    if (keep < 0 || keep > n_layer + 1)
        return ct_fail(CT_EINVAL,
                       "parallel.zero_keep = %d: allowed 0 to %d (the uses at the end of forward that stay "
                       "gathered for backward: the head, then blocks from the last)",
                       keep, n_layer + 1);
    return CT_OK;
}

ct_status ct_zero3_create(ct_zero3 **out, ct_world *w, ct_model *m, const ct_zero3_part *parts, int n_parts,
                          int keep) {
    CT_TRY(ct_zero3_check_keep(keep, ct_model_get_config(m)->n_layer));
    ct_zero3 *z = ct_calloc(sizeof *z, "ZeRO 3 state");
    if (!z) return CT_ENOMEM;
    *z = (ct_zero3){.w = w, .m = m, .units = ct_model_num_units(m), .n_sets = n_parts, .next = -1};
    size_t units = (size_t)z->units;
    ct_status s = (z->sets = ct_calloc((size_t)(n_parts ? n_parts : 1) * sizeof *z->sets, "ZeRO 3 parts")) &&
                          (z->unit_first = ct_calloc(units * sizeof *z->unit_first, "ZeRO 3 parts")) &&
                          (z->unit_end = ct_calloc(units * sizeof *z->unit_end, "ZeRO 3 parts")) &&
                          (z->keep = ct_calloc(units, "ZeRO 3 parts"))
                      ? CT_OK
                      : CT_ENOMEM;
    for (int i = 0; s == CT_OK && i < n_parts; i++)
        z->sets[i] = (weight_set){.part = parts[i], .me = ct_world_coord(w, parts[i].axis), .state = PRESENT};
    if (s == CT_OK) s = map_units(z);
    if (s != CT_OK) {
        ct_zero3_free(z);
        return s;
    }
    size_t e_lo, e_n, h_lo, h_n;
    ct_model_unit_range(m, 0, &e_lo, &e_n);
    ct_model_unit_range(m, z->units - 1, &h_lo, &h_n);
    z->tied = e_n && h_n && ct_model_find_tensor(m, "wte.weight")->offset < h_lo;
    mark_kept(z, keep);
    for (int i = 0; i < z->n_sets; i++) release(z, &z->sets[i]);
    ct_model_set_params_hook(m, hook, z);
    *out = z;
    return CT_OK;
}

ct_status ct_zero3_invalidate(ct_zero3 *z) {
    ct_status s = CT_OK;
    for (int i = 0; i < z->n_sets; i++) {
        weight_set *set = &z->sets[i];
        ct_status f = finish(z, set);
        if (s == CT_OK) s = f;
        release(z, set);
    }
    z->next = -1;
    return s;
}

void ct_zero3_stats(const ct_zero3 *z, double *gathered_bytes, double *busy_s, double *wait_s, long *gathers) {
    *gathered_bytes = z ? z->bytes : 0.0;
    *busy_s = z ? z->busy_s : 0.0;
    *wait_s = z ? z->wait_s : 0.0;
    *gathers = z ? z->gathers : 0;
}

void ct_zero3_free(ct_zero3 *z) {
    if (!z) return;
    for (int i = 0; i < z->n_sets; i++)
        if (z->sets[i].state == GATHERING) (void)ct_comm_wait(z->w, &z->sets[i].req);
    ct_model_set_params_hook(z->m, NULL, NULL);
    ct_free(z->sets);
    ct_free(z->unit_first);
    ct_free(z->unit_end);
    ct_free(z->keep);
    ct_free(z);
}

/* ceil(n / ranks): the largest slice of a near-even split. */
static size_t slice_most(size_t n, int ranks) { return (n + (size_t)ranks - 1) / (size_t)ranks; }

/* The gathered floats beyond this rank's slices while one use runs: the sets of the use, of
 * the next one (in flight) and the kept ones, each set counted once (its non-owned part: at
 * most n - floor(n / ranks)). first[u]: the first unit naming unit u's range (-1: none here);
 * extra[u]: that non-owned part; seen_at[f]: the last instant set f was counted at. */
typedef struct resident_walk {
    int units, tied, instant;
    int *first, *seen_at;
    size_t *extra;
} resident_walk;

/* Counts unit u's use (its set, and the embeddings' for a tied head) once into the instant. */
static size_t hold_use(resident_walk *r, int u) {
    size_t added = 0;
    for (int k = 0; u >= 0 && k < 2; k++) {
        int f = k == 0 ? r->first[u] : u == r->units - 1 && r->tied ? r->first[0] : -1;
        if (f < 0 || r->seen_at[f] == r->instant) continue;
        r->seen_at[f] = r->instant;
        added += r->extra[f];
    }
    return added;
}

/* The most gathered floats over the schedule of one forward and backward: uses in order
 * (embeddings, blocks, head; head, blocks back), the next one prefetched, kept ones held
 * from their forward use to their backward use. */
static size_t gathered_peak(resident_walk *r, const int *order, int n_order, int n_forward,
                            const int *kept_at) {
    size_t most = 0;
    for (int i = 0; i < n_order; i++) {
        size_t now = 0;
        r->instant = i;
        for (int j = 0; j < n_forward && j <= i; j++) /* kept: from its forward use until its backward use */
            if (kept_at[j] >= i) now += hold_use(r, order[j]);
        now += hold_use(r, order[i]);
        now += hold_use(r, i + 1 < n_order ? order[i + 1] : -1);
        if (now > most) most = now;
    }
    return most;
}

/* Unit u's range when no earlier unit names the same one (shared block weights count once). */
static size_t distinct_range(const ct_model *m, int u) {
    size_t lo, n, lo2, n2;
    ct_model_unit_range(m, u, &lo, &n);
    for (int v = 0; n && v < u; v++) {
        ct_model_unit_range(m, v, &lo2, &n2);
        if (n2 && lo2 == lo) return 0;
    }
    return n;
}

/* The use order of one forward and backward on this stage, and each forward use's kept
 * span; SIZE_MAX when the walk's tables cannot be allocated (count everything). */
static size_t walk_schedule(const ct_model *m, int ranks, int keep, int first, int end) {
    int units = ct_model_num_units(m), n = 0, cap = 2 * (end - first + 2);
    int *order = ct_alloc(((size_t)cap * 2 + 2 * (size_t)units) * sizeof *order, "ZeRO 3 sizing");
    size_t *extra = ct_alloc((size_t)units * sizeof *extra, "ZeRO 3 sizing");
    if (!order || !extra) {
        ct_free(order);
        ct_free(extra);
        return SIZE_MAX;
    }
    int *kept_at = order + cap, *first_of = kept_at + cap, *seen_at = first_of + units;
    for (int u = 0; u < units; u++) {
        size_t lo, len;
        ct_model_unit_range(m, u, &lo, &len);
        first_of[u] = distinct_range(m, u) ? u : -1;
        for (int v = 0; len && first_of[u] < 0 && v < u; v++) { /* shared weights: the first unit naming them */
            size_t lo2, n2;
            ct_model_unit_range(m, v, &lo2, &n2);
            if (n2 && lo2 == lo) first_of[u] = v;
        }
        extra[u] = len - len / (size_t)ranks;
        seen_at[u] = -1;
    }
    if (first_of[0] >= 0) order[n++] = 0;
    for (int l = first; l < end; l++) order[n++] = 1 + l;
    if (first_of[units - 1] >= 0) order[n++] = units - 1;
    int n_forward = n;
    if (first_of[units - 1] >= 0) order[n++] = units - 1;
    for (int l = end - 1; l >= first; l--) order[n++] = 1 + l;
    for (int j = 0; j < n_forward; j++) { /* the last `keep` forward uses, held to their backward use */
        int from_end = n_forward - 1 - j;
        kept_at[j] = from_end < keep ? n_forward + from_end : -1;
    }
    resident_walk r = {units, first_of[0] == 0 && first_of[units - 1] >= 0, -1, first_of, seen_at, extra};
    size_t most = gathered_peak(&r, order, n, n_forward, kept_at);
    ct_free(order);
    ct_free(extra);
    return most;
}

void ct_zero3_resident(const ct_model *m, int ranks, int expert_ranks, int keep, int accum, size_t *params_out,
                       size_t *grads_out) {
    int units = ct_model_num_units(m), first, end;
    ct_model_stage_layers(m, &first, &end);
    size_t own = 0, block_most = 0, e_n, h_n, lo, total = ct_model_num_params(m);
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) { /* the held ranges tile the table */
        const ct_tensor_info *t = ct_model_tensor(m, i);
        own += slice_most(t->numel, t->split_expert ? expert_ranks : ranks);
    }
    for (int u = 1; u < units - 1; u++) {
        size_t n = distinct_range(m, u);
        if (n > block_most) block_most = n;
    }
    ct_model_unit_range(m, 0, &lo, &e_n);
    ct_model_unit_range(m, units - 1, &lo, &h_n);
    size_t gathered = walk_schedule(m, ranks, keep, first, end);
    size_t p = gathered == SIZE_MAX ? total : own + gathered, g = own + e_n + h_n + 2 * block_most;
    *params_out = p < total ? p : total;
    *grads_out = accum > 1 || g > total ? total : g;
}
