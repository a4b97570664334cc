/* policy.c: offload placements: parsing the per-unit list and mapping units to the model's
 * flat ranges (see policy.h). */
#include "core/core.h"
#include "model/model.h"
#include "offload/policy.h"
#include <stdio.h>
#include <string.h>

const char *ct_place_name(ct_place p) {
    return p == CT_PLACE_DISK ? "disk" : p == CT_PLACE_HOST ? "host" : "compute";
}

static int parse_tier(const char *s, size_t n, ct_place *out) {
    static const ct_place all[] = {CT_PLACE_COMPUTE, CT_PLACE_HOST, CT_PLACE_DISK};
    for (int i = 0; i < 3; i++)
        if (strlen(ct_place_name(all[i])) == n && !strncmp(s, ct_place_name(all[i]), n)) {
            *out = all[i];
            return 1;
        }
    return 0;
}

/* Units [*a, *b] named by s[0..n): a block range, one block, embed, head or all. */
static int parse_units(const char *s, size_t n, int L, int *a, int *b) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (!strcmp(buf, "all")) {
        *a = 0;
        *b = L + 1;
        return 1;
    }
    if (!strcmp(buf, "embed")) {
        *a = *b = 0;
        return 1;
    }
    if (!strcmp(buf, "head")) {
        *a = *b = L + 1;
        return 1;
    }
    int x, y, used = 0;
    if (sscanf(buf, "%d-%d%n", &x, &y, &used) == 2 && used == (int)n && x >= 0 && x <= y && y < L) {
        *a = 1 + x;
        *b = 1 + y;
        return 1;
    }
    if (sscanf(buf, "%d%n", &x, &used) == 1 && used == (int)n && x >= 0 && x < L) {
        *a = *b = 1 + x;
        return 1;
    }
    return 0;
}

ct_status ct_offload_parse(const char *text, const char *key, int L, int blocks_only, ct_place *units) {
    ct_place whole = CT_PLACE_COMPUTE;
    int simple = !strcmp(text, "none") || parse_tier(text, strlen(text), &whole);
    for (int u = 0; u < L + 2; u++) units[u] = blocks_only && (u == 0 || u == L + 1) ? CT_PLACE_COMPUTE : whole;
    if (simple) return CT_OK;
    for (const char *at = text; *at;) {
        const char *end = strchr(at, ','), *colon;
        size_t len = end ? (size_t)(end - at) : strlen(at);
        int a, b;
        ct_place p;
        colon = memchr(at, ':', len);
        if (!colon || !parse_units(at, (size_t)(colon - at), L, &a, &b) ||
            !parse_tier(colon + 1, len - (size_t)(colon + 1 - at), &p))
            return ct_fail(
                CT_EINVAL,
                "%s = \"%s\": expected none, host, disk, or entries UNITS:TIER separated by "
                "commas (UNITS: a block range within 0-%d, embed, head or all; TIER: compute, host or "
                "disk), e.g. \"all:host,0-%d:disk\"",
                key, text, L - 1, L / 2 > 0 ? L / 2 - 1 : 0);
        int all = a == 0 && b == L + 1;
        if (blocks_only && !all && (a == 0 || b == L + 1) && p != CT_PLACE_COMPUTE)
            return ct_fail(CT_EINVAL,
                           "%s = \"%s\": the embeddings and the head stay on the compute tier (they are "
                           "used at both ends of every pass); place blocks, e.g. \"0-%d:%s\"",
                           key, text, L - 1, ct_place_name(p));
        for (int u = a; u <= b; u++)
            if (!blocks_only || (u > 0 && u <= L)) units[u] = p;
        at += len + (end ? 1 : 0);
    }
    return CT_OK;
}

/* The table index of the first block tensor of m (this stage's). */
static size_t first_block(const ct_model *m) {
    size_t i = 0;
    while (i < ct_model_num_tensors(m) && strncmp(ct_model_tensor(m, i)->name, "h.", 2)) i++;
    return i;
}

/* The unit of tensor i: a block's own, else the embeddings before the stage's blocks (at
 * table index first) and the head after them (a last stage holds ln_f and the head's wte
 * copy without the embeddings). */
static int unit_of(const ct_model *m, size_t i, size_t first, int L) {
    const ct_tensor_info *t = ct_model_tensor(m, i);
    int l;
    if (sscanf(t->name, "h.%d.", &l) == 1) return 1 + l;
    return i > first || !strncmp(t->name, "ln_f", 4) ? L + 1 : 0;
}

int ct_offload_ranges(const ct_model *m, const ct_place *units, ct_place_range *out) {
    int L = ct_model_get_config(m)->n_layer, count = 0, last = -1;
    size_t first = first_block(m);
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info *t = ct_model_tensor(m, i);
        int u = unit_of(m, i, first, L);
        if (units[u] == CT_PLACE_COMPUTE) {
            last = -1;
            continue;
        }
        if (u == last) {
            out[count - 1].n += t->numel;
            continue;
        }
        out[count++] = (ct_place_range){t->offset, t->numel, units[u]};
        last = u;
    }
    return count;
}

/* Floats of each unit of m into n [n_layer + 2]. */
static void unit_sizes(const ct_model *m, size_t *n) {
    int L = ct_model_get_config(m)->n_layer;
    memset(n, 0, ((size_t)L + 2) * sizeof *n);
    size_t first = first_block(m);
    for (size_t i = 0; i < ct_model_num_tensors(m); i++)
        n[unit_of(m, i, first, L)] += ct_model_tensor(m, i)->numel;
}

/* The compute tier's peak for a placement: the state kept there, the slots offloaded
 * blocks compute from, and the fixed part (with ZeRO 3's sharded weights and gradients:
 * params and grads are ignored, the fixed part holds them). */
static size_t predict(int L, const size_t *n, const ct_place *params, const ct_place *grads,
                      const ct_place *opt, double share, size_t fixed, int sharded) {
    size_t bytes = fixed, pmax = 0, gmax = 0;
    for (int u = 0; u < L + 2; u++) {
        if (opt[u] == CT_PLACE_COMPUTE) bytes += (size_t)(2.0 * (double)n[u] * sizeof(float) * share);
        if (sharded) continue;
        if (params[u] == CT_PLACE_COMPUTE) bytes += n[u] * sizeof(float);
        else if (n[u] > pmax)
            pmax = n[u];
        if (grads[u] == CT_PLACE_COMPUTE) bytes += n[u] * sizeof(float);
        else if (n[u] > gmax)
            gmax = n[u];
    }
    return bytes + (2 * pmax + gmax) * sizeof(float);
}

ct_status ct_offload_auto(const ct_model *m, size_t budget, size_t fixed, size_t sharded_bytes, double share,
                          ct_place tier, ct_place *params, ct_place *grads, ct_place *opt, size_t *predicted) {
    int sharded = sharded_bytes > 0;
    fixed += sharded_bytes;
    const ct_model_config *c = ct_model_get_config(m);
    int L = c->n_layer, first, end;
    ct_model_stage_layers(m, &first, &end);
    size_t *n = ct_calloc(((size_t)L + 2) * sizeof *n, "the offload policy");
    if (!n) return CT_ENOMEM;
    unit_sizes(m, n);
    for (int u = 0; u < L + 2; u++) params[u] = grads[u] = opt[u] = CT_PLACE_COMPUTE;
    size_t need = predict(L, n, params, grads, opt, share, fixed, sharded);
    while (need > budget) { /* the optimizer state first, the largest unit first */
        int best = -1;
        for (int u = 0; u < L + 2; u++)
            if (opt[u] == CT_PLACE_COMPUTE && n[u] && (best < 0 || n[u] > n[best])) best = u;
        if (best < 0) break;
        opt[best] = tier;
        need = predict(L, n, params, grads, opt, share, fixed, sharded);
    }
    int shared = ct_model_unique_blocks(c) < L; /* shared weights stay on the compute tier */
    for (int moe = 0; moe < 2 && need > budget && !shared && !sharded; moe++) /* then blocks, dense first */
        for (int l = first; l < end && need > budget; l++) {
            if ((c->moe_every > 0 && (l + 1) % c->moe_every == 0) != moe) continue;
            params[1 + l] = grads[1 + l] = tier;
            size_t with = predict(L, n, params, grads, opt, share, fixed, sharded);
            need = with;
        }
    size_t most = 0;
    for (int u = 0; u < L + 2; u++) most = n[u] > most ? n[u] : most;
    ct_free(n);
    *predicted = need;
    char b[32], w[32], f[32], z[32], u1[32];
    if (need > budget && sharded)
        return ct_fail(CT_ENOMEM,
                       "memory.compute_budget = %s: at parallel.zero = 3, even with all optimizer state "
                       "offloaded the compute tier needs %s (activations and buffers %s; this rank's slices of "
                       "the weights and gradients and the units gathered at once %s, the largest unit %s); "
                       "use more data ranks, tensor parallelism, memory.recompute, a smaller "
                       "train.batch_size, or raise the budget",
                       ct_format_bytes(budget, b, sizeof b), ct_format_bytes(need, w, sizeof w),
                       ct_format_bytes(fixed - sharded_bytes, f, sizeof f),
                       ct_format_bytes(sharded_bytes, z, sizeof z),
                       ct_format_bytes(most * sizeof(float), u1, sizeof u1));
    if (need > budget)
        return ct_fail(
            CT_ENOMEM,
            "memory.compute_budget = %s: even with every block's weights and gradients and all "
            "optimizer state offloaded the compute tier needs %s (activations and buffers %s, the "
            "embeddings and head, two blocks' slots); lower train.batch_size, use memory.recompute or "
            "pipeline stages, or raise the budget",
            ct_format_bytes(budget, b, sizeof b), ct_format_bytes(need, w, sizeof w),
            ct_format_bytes(fixed, f, sizeof f));
    return CT_OK;
}

/* Appends "what of UNITS on TIER" for each tier that kind uses. */
static size_t describe_kind(int L, const ct_place *units, const char *what, char *buf, size_t cap,
                            size_t used) {
    static const ct_place tiers[] = {CT_PLACE_HOST, CT_PLACE_DISK};
    for (int k = 0; k < 2; k++) {
        int count = 0;
        for (int u = 0; u < L + 2; u++) count += units[u] == tiers[k];
        if (!count || used >= cap) continue;
        used += (size_t)snprintf(buf + used, cap - used, "%s%s of ", used ? "; " : "", what);
        if (count == L + 2) used += (size_t)snprintf(buf + used, cap - used, "all units");
        for (int u = 0, first = 1; count < L + 2 && u < L + 2 && used < cap; u++) {
            if (units[u] != tiers[k]) continue;
            int v = u;
            while (v + 1 < L + 1 && u >= 1 && units[v + 1] == tiers[k]) v++;
            if (u == 0) used += (size_t)snprintf(buf + used, cap - used, "%sembeddings", first ? "" : ", ");
            else if (u == L + 1)
                used += (size_t)snprintf(buf + used, cap - used, "%shead", first ? "" : ", ");
            else if (v > u)
                used += (size_t)snprintf(buf + used, cap - used, "%sblocks %d-%d", first ? "" : ", ", u - 1,
                                         v - 1);
            else
                used += (size_t)snprintf(buf + used, cap - used, "%sblock %d", first ? "" : ", ", u - 1);
            first = 0;
            u = v;
        }
        if (used < cap) used += (size_t)snprintf(buf + used, cap - used, " on %s", ct_place_name(tiers[k]));
    }
    return used;
}

void ct_offload_describe(int L, const ct_place *params, const ct_place *grads, const ct_place *opt, char *buf,
                         size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    used = describe_kind(L, opt, "moments", buf, cap, used);
    used = describe_kind(L, params, "weights", buf, cap, used);
    used = describe_kind(L, grads, "gradients", buf, cap, used);
    if (!used) snprintf(buf, cap, "nothing offloaded");
}
