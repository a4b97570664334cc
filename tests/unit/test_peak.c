/* test_peak.c: the measured FLOP peak: a plausible fp32 figure at the processor's widest
 * width, bf16 only where the processor has it; the cache (under XDG_CACHE_HOME) is written
 * once and read back, keeps the highest of a machine's figures, and ignores entries of other
 * machines and damaged lines. */
#include <criterion/criterion.h>
#include "core/core.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMPDIR_TEMPLATE "/tmp/cetus_peak_XXXXXX"
#include "tmpdir.h"

TestSuite(peak, .init = make_tmpdir, .fini = cleanup);

Test(peak, measures_a_plausible_fp32_peak) {
    ct_peak p;
    ct_peak_measure(&p, 1);
    cr_assert_eq(p.threads, 1);
    cr_assert_gt(p.fp32, 1e9, "%.3g FLOP/s", p.fp32); /* any processor of the last decade */
    cr_assert_lt(p.fp32, 1e13, "%.3g FLOP/s", p.fp32);
    cr_assert(!strcmp(p.width, "avx512") || !strcmp(p.width, "avx2") || !strcmp(p.width, "scalar"), "%s",
              p.width);
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) cr_assert_eq(p.bf16, 0.0);
    else
        cr_assert_gt(p.bf16, 1e9);
}

static char cache_file[1200];

static void use_cache_in_tmpdir(void) {
    setenv("XDG_CACHE_HOME", tmpdir, 1);
    snprintf(cache_file, sizeof cache_file, "%s/cetus/peak", tmpdir);
}

/* The machine's key: the first line's text before its tab. */
static void first_key(char *key, size_t cap) {
    FILE *f = fopen(cache_file, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(key, (int)cap, f));
    fclose(f);
    *strchr(key, '\t') = 0;
}

Test(peak, caches_and_keeps_the_highest) {
    use_cache_in_tmpdir();
    ct_peak a, b;
    ct_peak_get(&a);
    cr_assert_gt(a.fp32, 0.0);
    char key[600];
    first_key(key, sizeof key);
    FILE *f = fopen(cache_file, "a");
    cr_assert_not_null(f);
    fprintf(f, "%s\t%d %.6g %.6g %s\n", key, a.threads, a.fp32 * 3, a.bf16 * 3, a.width); /* a quieter day */
    fprintf(f, "%s\t%d %.6g 0 avx2\n", "another|machine|1|2", a.threads, a.fp32 * 100);
    fprintf(f, "%s\tgarbage\n", key);
    fclose(f);
    ct_peak_get(&b); /* read, not measured: exactly the highest figure */
    char want[64], got[64];
    snprintf(want, sizeof want, "%.6g", a.fp32 * 3);
    snprintf(got, sizeof got, "%.6g", b.fp32);
    cr_assert_str_eq(got, want);
    snprintf(want, sizeof want, "%.6g", a.bf16 * 3);
    snprintf(got, sizeof got, "%.6g", b.bf16);
    cr_assert_str_eq(got, want);
    cr_assert_eq(b.threads, a.threads);
    unsetenv("XDG_CACHE_HOME");
}
