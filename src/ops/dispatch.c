/* dispatch.c: the registry of backends, the current one, and the ct_* entry points of ops.h,
 * each a call through the current backend's table. */
#include "core/core.h"
#include "ops/backend.h"
#include <stdatomic.h>
#include <string.h>

enum { MAX_BACKENDS = 8 };

static const ct_backend *registry[MAX_BACKENDS] = {&ct_backend_cpu};
static int registered = 1;
static _Atomic(const ct_backend *) current = &ct_backend_cpu;

/* Relaxed: the backend is set between passes, and the threads that run ops (OpenMP teams,
 * the offload I/O thread) are handed their work through locks or barriers after that. */
static inline const ct_backend *now(void) { return atomic_load_explicit(&current, memory_order_relaxed); }

#define CT_DISPATCH(ret, op, params, args) \
    ret ct_##op params { CT_BACKEND_RETURN(ret, now()->op args); }
CT_BACKEND_OPS(CT_DISPATCH)
#undef CT_DISPATCH

const ct_backend *ct_backend_find(const char *name) {
    for (int i = 0; name && i < registered; i++)
        if (!strcmp(registry[i]->name, name)) return registry[i];
    return NULL;
}

const char *ct_backend_names(char *buf, size_t cap) {
    size_t used = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < registered && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", registry[i]->name);
    return buf;
}

ct_status ct_backend_register(const ct_backend *b) {
    if (!b || !b->name || !b->name[0]) return ct_fail(CT_EINVAL, "a backend needs a name");
    const ct_backend *same = ct_backend_find(b->name);
    if (same == b) return CT_OK;
    if (same) return ct_fail(CT_EINVAL, "backend \"%s\" is registered already (another table)", b->name);
#define CT_CHECK_OP(ret, op, params, args) \
    if (!b->op) \
        return ct_fail(CT_EINVAL, "backend \"%s\" lacks the op %s: a backend fills every entry", b->name, #op);
    CT_BACKEND_OPS(CT_CHECK_OP)
#undef CT_CHECK_OP
    if (registered == MAX_BACKENDS)
        return ct_fail(CT_EINVAL, "backend \"%s\": the registry is full (%d backends)", b->name, MAX_BACKENDS);
    registry[registered++] = b;
    return CT_OK;
}

ct_status ct_backend_check(const char *name) {
    if (ct_backend_find(name)) return CT_OK;
    char names[256];
    return ct_fail(CT_EINVAL, "unknown backend \"%s\"; registered: %s", name ? name : "(null)",
                   ct_backend_names(names, sizeof names));
}

ct_status ct_backend_select(const char *name) {
    CT_TRY(ct_backend_check(name));
    ct_backend_set(ct_backend_find(name));
    return CT_OK;
}

void ct_backend_set(const ct_backend *b) { atomic_store(&current, b ? b : &ct_backend_cpu); }

const ct_backend *ct_backend_get(void) { return now(); }
