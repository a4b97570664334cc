/* test_core.c: the core helpers: RNG determinism, atomic writes, error messages, allocator. */
#include <criterion/criterion.h>
#include "core/core.h"
#include <string.h>
#include <unistd.h>

Test(core, rng_is_deterministic_and_uniform) {
    ct_rng a, b;
    ct_rng_seed(&a, 42);
    ct_rng_seed(&b, 42);
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = ct_rng_u64(&a);
        cr_assert_eq(x, ct_rng_u64(&b));
    }
    for (int i = 0; i < 10000; i++) sum += ct_rng_uniform(&a);
    cr_assert(sum / 10000 > 0.48 && sum / 10000 < 0.52, "mean %f", sum / 10000);
    for (int i = 0; i < 1000; i++) cr_assert_lt(ct_rng_below(&a, 7), 7u);
}

Test(core, atomic_write_replaces_or_leaves_intact) {
    char dir[] = "/tmp/cetus_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    ct_atomic_file *f;
    cr_assert_eq(ct_atomic_open(&f, path), CT_OK);
    cr_assert_eq(ct_atomic_write(f, "hello", 5), CT_OK);
    cr_assert_eq(ct_atomic_commit(f), CT_OK);
    /* an aborted second write leaves the first content */
    cr_assert_eq(ct_atomic_open(&f, path), CT_OK);
    cr_assert_eq(ct_atomic_write(f, "XXXXXXXX", 8), CT_OK);
    ct_atomic_abort(f);
    char *buf;
    size_t n;
    cr_assert_eq(ct_read_file(path, &buf, &n), CT_OK);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(buf, "hello");
    ct_free(buf);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_neq(access(tmp, F_OK), 0, "temp file left behind");
    unlink(path);
    rmdir(dir);
}

Test(core, errors_name_the_file) {
    char *buf;
    cr_assert_eq(ct_read_file("/nonexistent/x.json", &buf, NULL), CT_EIO);
    cr_assert(strstr(ct_last_error(), "/nonexistent/x.json") != NULL, "%s", ct_last_error());
    ct_fail(CT_EINVAL, "inner");
    ct_fail_context(CT_EINVAL, "outer");
    cr_assert_str_eq(ct_last_error(), "outer: inner");
}

static int allocs_left;
static void *failing_alloc(size_t n, void *ctx) {
    (void)ctx;
    return allocs_left-- > 0 ? malloc(n) : NULL;
}
static void plain_free(void *p, void *ctx) {
    (void)ctx;
    free(p);
}

Test(core, allocator_failure_is_reported) {
    ct_allocator a = {failing_alloc, plain_free, NULL};
    allocs_left = 1;
    ct_set_allocator(&a);
    void *p = ct_alloc(16, "first");
    void *q = ct_alloc(16, "second buffer");
    ct_set_allocator(NULL);
    cr_assert_not_null(p);
    cr_assert_null(q);
    cr_assert(strstr(ct_last_error(), "second buffer") != NULL, "%s", ct_last_error());
    ct_free(p);
}

Test(core, realloc_and_strdup_count_and_report_failure) {
    size_t host = ct_tier_in_use(CT_TIER_HOST), compute = ct_tier_in_use(CT_TIER_COMPUTE);
    char *s = ct_strdup("hello", "a greeting");
    cr_assert_str_eq(s, "hello");
    cr_assert_eq(ct_tier_in_use(CT_TIER_HOST), host + 6);
    s = ct_realloc(s, 4096, "a longer greeting");
    cr_assert_str_eq(s, "hello", "the contents move along");
    cr_assert_eq(ct_tier_in_use(CT_TIER_HOST), host + 4096);
    float *c = ct_realloc(ct_alloc_in(CT_TIER_COMPUTE, 16, "x"), 64, "activations");
    cr_assert_eq(ct_tier_in_use(CT_TIER_COMPUTE), compute + 64, "it stays in its tier");
    ct_allocator a = {failing_alloc, plain_free, NULL};
    allocs_left = 0;
    ct_set_allocator(&a);
    char *t = ct_realloc(s, 1 << 20, "the grown buffer");
    char *u = ct_strdup("x", "the copied name");
    ct_set_allocator(NULL);
    cr_assert_null(t);
    cr_assert_null(u);
    cr_assert(strstr(ct_last_error(), "the copied name"), "%s", ct_last_error());
    cr_assert_str_eq(s, "hello", "a failed realloc leaves the buffer as it was");
    cr_assert_eq(ct_tier_in_use(CT_TIER_HOST), host + 4096);
    ct_free(s);
    ct_free(c);
    cr_assert_eq(ct_tier_in_use(CT_TIER_HOST), host);
    cr_assert_eq(ct_tier_in_use(CT_TIER_COMPUTE), compute);
}

Test(core, compute_budget_refuses_past_it_and_counts_frees) {
    size_t base = ct_tier_in_use(CT_TIER_COMPUTE);
    ct_tier_set_budget(base + (3u << 20));
    void *a = ct_alloc_in(CT_TIER_COMPUTE, 2u << 20, "two");
    cr_assert_not_null(a);
    cr_assert_eq(ct_tier_in_use(CT_TIER_COMPUTE), base + (2u << 20));
    void *b = ct_alloc_in(CT_TIER_COMPUTE, 2u << 20, "activations");
    cr_assert_null(b, "past the budget");
    cr_assert(strstr(ct_last_error(), "memory.compute_budget = ") && strstr(ct_last_error(), "for activations"),
              "%s", ct_last_error());
    void *h = ct_alloc_in(CT_TIER_HOST, 8u << 20, "offloaded state"); /* the host tier has no budget */
    cr_assert_not_null(h);
    ct_free(a);
    cr_assert_eq(ct_tier_in_use(CT_TIER_COMPUTE), base);
    void *c = ct_alloc_in(CT_TIER_COMPUTE, 2u << 20, "after a free");
    cr_assert_not_null(c);
    cr_assert(ct_tier_peak(CT_TIER_COMPUTE) >= base + (2u << 20));
    ct_free(c);
    ct_free(h);
    ct_tier_set_budget(0);
}

Test(core, whole_numbers_parse_strictly) {
    uint64_t v = 7;
    cr_assert(ct_parse_u64("0", 10, &v) && v == 0);
    cr_assert(ct_parse_u64("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    cr_assert(ct_parse_u64("9223372036854775807", INT64_MAX, &v) && v == (uint64_t)INT64_MAX);
    const char *bad[] = {"",
                         "-1",
                         "+4",
                         " 4",
                         "4 ",
                         "4abc",
                         "0x10",
                         "1e3",
                         "18446744073709551616",
                         "99999999999999999999999",
                         "9223372036854775808"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        v = 7;
        cr_assert(!ct_parse_u64(bad[i], INT64_MAX, &v), "\"%s\" parsed as %llu", bad[i], (unsigned long long)v);
        cr_assert_eq(v, 7, "\"%s\" wrote the result", bad[i]);
    }
    cr_assert(!ct_parse_u64("11", 10, &v), "past the maximum");
}
