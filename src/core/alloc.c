/* alloc.c: the pluggable allocator. All large buffers go through ct_alloc so tests can inject
 * failures and later memory tiers can supply their own memory. */
#include "core.h"
#include <string.h>

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

void *ct_calloc(size_t bytes, const char *what) {
    void *p = ct_alloc(bytes, what);
    if (p) memset(p, 0, bytes);
    return p;
}

void ct_free(void *p) {
    if (p) current.free(p, current.ctx);
}
