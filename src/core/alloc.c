/* alloc.c: the pluggable allocator and the memory tiers' accounting. Every allocation of
 * the library goes through ct_alloc (host tier), ct_alloc_in (a tier named), ct_realloc or
 * ct_strdup, so tests can inject failures and the compute tier can hold a byte budget: each
 * buffer carries a 64-byte header with its size and tier, counted in and out. */
#define _DEFAULT_SOURCE /* madvise */
#include "core.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *default_alloc(size_t bytes, void *ctx) {
    (void)ctx;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}
static void default_free(void *p, void *ctx) {
    (void)ctx;
    free(p);
}

static ct_allocator current = {default_alloc, default_free, NULL};

void ct_set_allocator(const ct_allocator *a) {
    if (a) current = *a;
    else
        current = (ct_allocator){default_alloc, default_free, NULL};
}

enum { HEADER = 64 };
typedef struct header {
    size_t bytes;
    int tier;
} header;

static atomic_size_t in_use[CT_TIER_COUNT], peak[CT_TIER_COUNT];
static size_t budget; /* compute tier; 0: none */

void ct_tier_set_budget(size_t bytes) { budget = bytes; }
size_t ct_tier_budget(void) { return budget; }
size_t ct_tier_in_use(ct_tier t) { return atomic_load(&in_use[t]); }
size_t ct_tier_peak(ct_tier t) { return atomic_load(&peak[t]); }
void ct_tier_reset_peak(void) {
    for (int t = 0; t < CT_TIER_COUNT; t++) atomic_store(&peak[t], atomic_load(&in_use[t]));
}

const char *ct_format_bytes(size_t bytes, char *buf, size_t cap) {
    if (bytes >= ((size_t)1 << 30)) snprintf(buf, cap, "%.2f GiB", (double)bytes / (double)(1u << 30));
    else
        snprintf(buf, cap, "%.1f MiB", (double)bytes / (double)(1u << 20));
    return buf;
}

/* Counts bytes into tier t; refuses (0) past the compute budget. */
static int count_in(ct_tier t, size_t bytes, const char *what) {
    size_t now = atomic_fetch_add(&in_use[t], bytes) + bytes;
    if (t == CT_TIER_COMPUTE && budget && now > budget) {
        atomic_fetch_sub(&in_use[t], bytes);
        char b[32], n[32], u[32], was[32];
        ct_fail(CT_ENOMEM,
                "memory.compute_budget = %s: allocating %s for %s would bring the compute tier to %s "
                "(%s in use); offload state to the host or disk (offload.*), recompute activations "
                "(memory.recompute) or raise the budget",
                ct_format_bytes(budget, b, sizeof b), ct_format_bytes(bytes, n, sizeof n), what,
                ct_format_bytes(now, u, sizeof u), ct_format_bytes(now - bytes, was, sizeof was));
        return 0;
    }
    for (size_t p = atomic_load(&peak[t]); now > p && !atomic_compare_exchange_weak(&peak[t], &p, now);) {}
    return 1;
}

void *ct_alloc_in(ct_tier tier, size_t bytes, const char *what) {
    CT_ASSERT(tier >= 0 && tier < CT_TIER_COUNT);
    if (!count_in(tier, bytes, what)) return NULL;
    char *p = current.alloc(bytes + HEADER, current.ctx);
    if (!p) {
        atomic_fetch_sub(&in_use[tier], bytes);
        ct_fail(CT_ENOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
        return NULL;
    }
    *(header *)p = (header){bytes, tier};
    return p + HEADER;
}

void *ct_alloc(size_t bytes, const char *what) { return ct_alloc_in(CT_TIER_HOST, bytes, what); }

/* The whole pages inside [p, p + bytes): [*a, *e), empty when none. */
static void inner_pages(void *p, size_t bytes, uintptr_t *a, uintptr_t *e) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), q = (uintptr_t)p;
    *a = (q + page - 1) & ~(page - 1);
    *e = (q + bytes) & ~(page - 1);
    if (*e < *a) *e = *a;
}

/* Only the default allocator's memory is known to be anonymous and private. */
static int lazy_ok(void) { return current.alloc == default_alloc; }

void ct_pages_release(void *p, size_t bytes) {
    uintptr_t a, e;
    if (!lazy_ok()) return;
    inner_pages(p, bytes, &a, &e);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

void ct_pages_drop(void *p, size_t bytes) {
    uintptr_t a, e;
    inner_pages(p, bytes, &a, &e);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

void ct_page_interior(void *p, size_t bytes, size_t *skip, size_t *len) {
    uintptr_t a, e;
    inner_pages(p, bytes, &a, &e);
    *skip = (size_t)(a - (uintptr_t)p);
    *len = (size_t)(e - a);
}

void ct_tier_move(size_t bytes, int from, int to) {
    if (from >= 0) atomic_fetch_sub(&in_use[from], bytes);
    if (to >= 0) {
        size_t now = atomic_fetch_add(&in_use[to], bytes) + bytes;
        for (size_t p = atomic_load(&peak[to]); now > p && !atomic_compare_exchange_weak(&peak[to], &p, now);) {
        }
    }
}

int ct_tier_charge(size_t bytes, int from, int to, const char *what) {
    if (to == CT_TIER_COMPUTE) {
        if (!count_in(CT_TIER_COMPUTE, bytes, what)) return 0;
        if (from >= 0) atomic_fetch_sub(&in_use[from], bytes);
        return 1;
    }
    ct_tier_move(bytes, from, to);
    return 1;
}

void ct_zero_lazily(void *p, size_t bytes) {
    uintptr_t a, e, q = (uintptr_t)p;
    inner_pages(p, bytes, &a, &e);
    if (e == a || !lazy_ok()) {
        memset(p, 0, bytes);
        return;
    }
    memset(p, 0, a - q);
    memset((void *)e, 0, q + bytes - e);
    if (madvise((void *)a, e - a, MADV_DONTNEED) != 0) memset((void *)a, 0, e - a);
}

void *ct_calloc_in(ct_tier tier, size_t bytes, const char *what) {
    void *p = ct_alloc_in(tier, bytes, what);
    if (!p) return p;
    if (bytes >= ((size_t)1 << 20)) ct_zero_lazily(p, bytes);
    else
        memset(p, 0, bytes);
    return p;
}

void *ct_calloc(size_t bytes, const char *what) { return ct_calloc_in(CT_TIER_HOST, bytes, what); }

void *ct_realloc(void *p, size_t bytes, const char *what) {
    if (!p) return ct_alloc(bytes, what);
    const header *h = (const header *)((char *)p - HEADER);
    size_t old = h->bytes;
    void *q = ct_alloc_in((ct_tier)h->tier, bytes, what); /* both counted while copying */
    if (!q) return NULL;
    memcpy(q, p, old < bytes ? old : bytes);
    ct_free(p);
    return q;
}

char *ct_strdup(const char *s, const char *what) {
    size_t n = strlen(s) + 1;
    char *p = ct_alloc(n, what);
    if (p) memcpy(p, s, n);
    return p;
}

void ct_free(void *p) {
    if (!p) return;
    char *base = (char *)p - HEADER;
    const header *h = (const header *)base;
    atomic_fetch_sub(&in_use[h->tier], h->bytes);
    current.free(base, current.ctx);
}
