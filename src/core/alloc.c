/* alloc.c: the pluggable allocator. All large buffers go through ct_alloc so tests can inject
 * failures and later memory tiers can supply their own memory. */
#define _DEFAULT_SOURCE /* madvise */
#include "core.h"
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *default_alloc(size_t bytes, void *ctx) {
    (void)ctx;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}
static void default_free(void *p, void *ctx) { (void)ctx; free(p); }

static ct_allocator current = {default_alloc, default_free, NULL};

void ct_set_allocator(const ct_allocator *a) {
    if (a) current = *a;
    else current = (ct_allocator){default_alloc, default_free, NULL};
}

void *ct_alloc(size_t bytes, const char *what) {
    void *p = current.alloc(bytes, current.ctx);
    if (!p) ct_fail(CT_ENOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

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

void ct_zero_lazily(void *p, size_t bytes) {
    uintptr_t a, e, q = (uintptr_t)p;
    inner_pages(p, bytes, &a, &e);
    if (e == a || !lazy_ok()) { memset(p, 0, bytes); return; }
    memset(p, 0, a - q);
    memset((void *)e, 0, q + bytes - e);
    if (madvise((void *)a, e - a, MADV_DONTNEED) != 0) memset((void *)a, 0, e - a);
}

void *ct_calloc(size_t bytes, const char *what) {
    void *p = ct_alloc(bytes, what);
    if (!p) return p;
    if (bytes >= ((size_t)1 << 20)) ct_zero_lazily(p, bytes);
    else memset(p, 0, bytes);
    return p;
}

void ct_free(void *p) {
    if (p) current.free(p, current.ctx);
}
