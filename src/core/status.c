/* status.c: the thread-local last-error message behind ct_status, and ct_panic. */
#include "core.h"
#include <stdarg.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *ct_last_error(void) { return last_error; }

const char *ct_status_name(ct_status s) {
    switch (s) {
    case CT_OK: return "OK";
    case CT_EINVAL: return "EINVAL";
    case CT_EIO: return "EIO";
    case CT_ECORRUPT: return "ECORRUPT";
    case CT_ENOMEM: return "ENOMEM";
    }
    return "UNKNOWN";
}

ct_status ct_fail(ct_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

ct_status ct_fail_context(ct_status code, const char *fmt, ...) {
    char prefix[256], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    memcpy(last_error, prefix, n);
    last_error[n] = ':';
    last_error[n + 1] = ' ';
    size_t room = sizeof last_error - n - 3;
    size_t k = strnlen(old, room);
    memcpy(last_error + n + 2, old, k);
    last_error[n + 2 + k] = 0;
    return code;
}

void ct_panic(const char *file, int line, const char *what) {
    fprintf(stderr, "cetus: internal error at %s:%d: assertion failed: %s\n", file, line, what);
    fflush(stderr);
    abort();
}
