/* log.c: stderr logging, the monotonic clock and numbers written as JSON. */
#include "core.h"
#include <math.h>
#include <stdarg.h>
#include <time.h>

void ct_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

double ct_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *ct_json_number(char *out, size_t cap, double v, const char *fmt) {
    if (!isfinite(v)) snprintf(out, cap, "null");
    else
        snprintf(out, cap, fmt, v);
    return out;
}
