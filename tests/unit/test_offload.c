/* test_offload.c: the offload store: reads, writes and copies served in submission order by
 * its I/O thread, many requests in flight, and a failed read reported with the file. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "core/store.h"
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/cetus-offload-XXXXXX";

static void setup(void) { cr_assert_not_null(mkdtemp(dir)); }
static void teardown(void) { rmdir(dir); }

Test(offload, store_round_trips_in_order, .init = setup, .fini = teardown) {
    enum { N = 1 << 16, PARTS = 100 }; /* more requests than the queue holds */
    ct_store *s;
    cr_assert_eq(ct_store_open(&s, dir, 3, (size_t)PARTS * N * sizeof(float)), CT_OK);
    cr_assert(strstr(ct_store_path(s), "rank_3.bin"));
    cr_assert_eq(access(ct_store_path(s), F_OK), 0);
    float *a = malloc((size_t)PARTS * N * sizeof(float)), *b = calloc((size_t)PARTS * N, sizeof(float));
    for (size_t i = 0; i < (size_t)PARTS * N; i++) a[i] = (float)i * 0.5f;
    ct_ticket t = 0;
    for (int p = 0; p < PARTS; p++) /* written in reverse, read forward: order is submission */
        t = ct_store_write(s, (size_t)(PARTS - 1 - p) * N * sizeof(float), a + (size_t)(PARTS - 1 - p) * N,
                           N * sizeof(float));
    for (int p = 0; p < PARTS; p++)
        t = ct_store_read(s, (size_t)p * N * sizeof(float), b + (size_t)p * N, N * sizeof(float));
    cr_assert_eq(ct_store_wait(s, t), CT_OK);
    cr_assert(!memcmp(a, b, (size_t)PARTS * N * sizeof(float)));
    float c[4] = {0};
    cr_assert_eq(ct_store_wait(s, ct_store_copy(s, c, a + 8, sizeof c)), CT_OK);
    cr_assert_eq(c[3], a[11]);
    double busy, wait;
    ct_store_times(s, &busy, &wait);
    cr_assert(busy > 0.0);
    char path[1100];
    snprintf(path, sizeof path, "%s", ct_store_path(s));
    ct_store_close(s);
    cr_assert_neq(access(path, F_OK), 0, "the file is removed on close");
    free(a);
    free(b);
}

Test(offload, store_reports_a_failed_read, .init = setup, .fini = teardown) {
    ct_store *s;
    cr_assert_eq(ct_store_open(&s, dir, 0, 4096), CT_OK);
    cr_assert_eq(truncate(ct_store_path(s), 100), 0); /* the file lost its tail */
    char buf[4096];
    ct_ticket t = ct_store_read(s, 0, buf, sizeof buf);
    cr_assert_eq(ct_store_wait(s, t), CT_EIO);
    cr_assert(strstr(ct_last_error(), "rank_0.bin") && strstr(ct_last_error(), "unexpected end of file"), "%s",
              ct_last_error());
    cr_assert_eq(ct_store_wait(s, ct_store_copy(s, buf, buf + 1, 1)), CT_EIO, "the failure sticks");
    ct_store_close(s);
    char bad[64];
    snprintf(bad, sizeof bad, "%s/missing/\x01", "/proc/none");
    cr_assert_neq(ct_store_open(&s, bad, 0, 16), CT_OK);
    cr_assert(strstr(ct_last_error(), "/proc/none"), "%s", ct_last_error());
}
