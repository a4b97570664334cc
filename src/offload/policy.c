/* policy.c: offload placements: parsing the per-unit list and mapping units to the model's
 * flat ranges (see policy.h). */
#include "core/core.h"
#include "offload/policy.h"
#include <stdio.h>
#include <string.h>

const char *ct_place_name(ct_place p) {
    return p == CT_PLACE_DISK ? "disk" : p == CT_PLACE_HOST ? "host" : "compute";
}

static int parse_tier(const char *s, size_t n, ct_place *out) {
    static const ct_place all[] = {CT_PLACE_COMPUTE, CT_PLACE_HOST, CT_PLACE_DISK};
    for (int i = 0; i < 3; i++)
        if (strlen(ct_place_name(all[i])) == n && !strncmp(s, ct_place_name(all[i]), n)) { *out = all[i]; return 1; }
    return 0;
}

/* Units [*a, *b] named by s[0..n): a block range, one block, embed, head or all. */
static int parse_units(const char *s, size_t n, int L, int *a, int *b) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (!strcmp(buf, "all")) { *a = 0; *b = L + 1; return 1; }
    if (!strcmp(buf, "embed")) { *a = *b = 0; return 1; }
    if (!strcmp(buf, "head")) { *a = *b = L + 1; return 1; }
    int x, y, used = 0;
    if (sscanf(buf, "%d-%d%n", &x, &y, &used) == 2 && used == (int)n && x >= 0 && x <= y && y < L) {
        *a = 1 + x;
        *b = 1 + y;
        return 1;
    }
    if (sscanf(buf, "%d%n", &x, &used) == 1 && used == (int)n && x >= 0 && x < L) { *a = *b = 1 + x; return 1; }
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
            return ct_fail(CT_EINVAL, "%s = \"%s\": expected none, host, disk, or entries UNITS:TIER separated by "
                           "commas (UNITS: a block range within 0-%d, embed, head or all; TIER: compute, host or "
                           "disk), e.g. \"all:host,0-%d:disk\"", key, text, L - 1, L / 2 > 0 ? L / 2 - 1 : 0);
        int all = a == 0 && b == L + 1;
        if (blocks_only && !all && (a == 0 || b == L + 1) && p != CT_PLACE_COMPUTE)
            return ct_fail(CT_EINVAL, "%s = \"%s\": the embeddings and the head stay on the compute tier (they are "
                           "used at both ends of every pass); place blocks, e.g. \"0-%d:%s\"", key, text, L - 1,
                           ct_place_name(p));
        for (int u = a; u <= b; u++)
            if (!blocks_only || (u > 0 && u <= L)) units[u] = p;
        at += len + (end ? 1 : 0);
    }
    return CT_OK;
}

/* The unit of tensor i: the embeddings before the first block, the head after the last. */
static int unit_of(const ct_model *m, size_t i, int L) {
    const ct_tensor_info *t = ct_model_tensor(m, i);
    int l;
    if (sscanf(t->name, "h.%d.", &l) == 1) return 1 + l;
    for (size_t j = 0; j < i; j++) /* a block came before: the head */
        if (!strncmp(ct_model_tensor(m, j)->name, "h.", 2)) return L + 1;
    return strncmp(t->name, "ln_f", 4) ? 0 : L + 1;
}

int ct_offload_ranges(const ct_model *m, const ct_place *units, ct_place_range *out) {
    int L = ct_model_get_config(m)->n_layer, count = 0, last = -1;
    for (size_t i = 0; i < ct_model_num_tensors(m); i++) {
        const ct_tensor_info *t = ct_model_tensor(m, i);
        int u = unit_of(m, i, L);
        if (units[u] == CT_PLACE_COMPUTE) { last = -1; continue; }
        if (u == last) { out[count - 1].n += t->numel; continue; }
        out[count++] = (ct_place_range){t->offset, t->numel, units[u]};
        last = u;
    }
    return count;
}
