/* test_gemm.c: the CPU backend's matrix product on each library and in bf16. Every transpose
 * pattern, padded leading dimensions, alpha and beta (beta = 0 overwrites whatever C held,
 * NaN included) against the product computed in double; the single-thread tile product
 * inside a parallel loop; bf16 against the double product of the bf16-rounded inputs (and
 * visibly off the unrounded one, so the bf16 path really ran); the shape classes; the cached
 * choice: read back for this machine, another machine's entry ignored; bad names refused. */
#include <criterion/criterion.h>
#include "core/core.h"
#include "ops/cpu.h"
#include "ops/gemm.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMPDIR_TEMPLATE "/tmp/cetus_gemm_XXXXXX"
#include "tmpdir.h"

static void use_cache_in_tmpdir(void) {
    make_tmpdir();
    setenv("XDG_CACHE_HOME", tmpdir, 1);
}

TestSuite(gemm, .init = use_cache_in_tmpdir, .fini = cleanup);

static float value(size_t i, unsigned seed) {
    return (float)(((i * 2654435761u + seed) >> 7) % 2001u) / 1000.0f - 1.0f;
}

static float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef struct case_t {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
} case_t;

/* op(X)[r][c] of X stored with leading dimension ld, transposed or not. */
static double at(const float *X, int trans, int ld, int r, int c, int round) {
    float v = trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
    return round ? bf16_round(v) : v;
}

/* The largest |C - ref| over the largest |ref|, ref = alpha op(A) op(B) + beta C0 in double. */
static double error(const case_t *t, const float *A, const float *B, const float *C0, const float *C,
                    int round) {
    double worst = 0.0, scale = 0.0;
    for (int m = 0; m < t->M; m++)
        for (int n = 0; n < t->N; n++) {
            double s = 0.0;
            for (int k = 0; k < t->K; k++)
                s += at(A, t->ta, t->lda, m, k, round) * at(B, t->tb, t->ldb, k, n, round);
            double ref = t->alpha * s + (t->beta != 0.0f ? t->beta * C0[(size_t)m * t->ldc + n] : 0.0);
            double got = C[(size_t)m * t->ldc + n];
            if (!isfinite(got)) return INFINITY;
            worst = fmax(worst, fabs(got - ref)), scale = fmax(scale, fabs(ref));
        }
    return worst / (scale > 0 ? scale : 1.0);
}

/* Runs one case through ct_cpu_gemm; returns its error against the rounded (round = 1) or
 * the plain inputs. */
static double run_case(const case_t *t, int round) {
    int a_rows = t->ta ? t->K : t->M, b_rows = t->tb ? t->N : t->K;
    float *A = malloc(sizeof(float) * (size_t)a_rows * t->lda),
          *B = malloc(sizeof(float) * (size_t)b_rows * t->ldb);
    float *C = malloc(sizeof(float) * (size_t)t->M * t->ldc),
          *C0 = malloc(sizeof(float) * (size_t)t->M * t->ldc);
    for (size_t i = 0; i < (size_t)a_rows * t->lda; i++) A[i] = value(i, 1);
    for (size_t i = 0; i < (size_t)b_rows * t->ldb; i++) B[i] = value(i, 2);
    for (size_t i = 0; i < (size_t)t->M * t->ldc; i++) C0[i] = t->beta != 0.0f ? value(i, 3) : NAN;
    memcpy(C, C0, sizeof(float) * (size_t)t->M * t->ldc);
    ct_cpu_gemm(t->ta, t->tb, t->M, t->N, t->K, t->alpha, A, t->lda, B, t->ldb, t->beta, C, t->ldc);
    double e = error(t, A, B, C0, C, round);
    free(A), free(B), free(C), free(C0);
    return e;
}

/* Every transpose pattern at a small and a larger shape, padded leading dimensions, three
 * (alpha, beta) pairs: the worst error. */
static double worst_over_cases(int round) {
    static const int shapes[2][3] = {{37, 29, 53}, {130, 203, 300}};
    static const float ab[3][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}};
    double worst = 0.0;
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 4; p++)
            for (int v = 0; v < 3; v++) {
                int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = p & 1, tb = p >> 1;
                case_t t = {ta, tb, M, N, K, (ta ? M : K) + 3, (tb ? K : N) + 5, N + 2, ab[v][0], ab[v][1]};
                double e = run_case(&t, round);
                if (e > worst) worst = e;
            }
    return worst;
}

Test(gemm, openblas_matches_double) {
    cr_assert_eq(ct_gemm_configure("openblas", "fp32"), CT_OK);
    double e = worst_over_cases(0);
    cr_assert_lt(e, 1e-5, "openblas: relative error %.3g", e);
}

Test(gemm, onednn_matches_double) {
    cr_assert_eq(ct_gemm_configure("onednn", "fp32"), CT_OK);
    double e = worst_over_cases(0);
    cr_assert_lt(e, 1e-5, "onednn: relative error %.3g", e);
}

Test(gemm, auto_choice_matches_double_and_is_cached) {
    cr_assert_eq(ct_gemm_configure("auto", "fp32"), CT_OK);
    double e = worst_over_cases(0);
    cr_assert_lt(e, 1e-5, "auto: relative error %.3g", e);
    char path[1200], line[2048];
    snprintf(path, sizeof path, "%s/cetus/gemm", tmpdir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no cache at %s", path);
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    char machine[512];
    ct_machine_key(machine, sizeof machine);
    cr_assert(!strncmp(line, machine, strlen(machine)), "cache line %s does not start with %s", line, machine);
}

Test(gemm, bf16_rounds_inputs_and_accumulates_in_fp32) {
    if (!ct_gemm_bf16_supported()) {
        cr_assert_neq(ct_gemm_configure("auto", "bf16"), CT_OK);
        cr_assert(strstr(ct_last_error(), "no bf16 instructions"), "%s", ct_last_error());
        return;
    }
    cr_assert_eq(ct_gemm_configure("auto", "bf16"), CT_OK);
    cr_assert(ct_gemm_is_bf16());
    double rounded = worst_over_cases(1), plain = worst_over_cases(0);
    cr_assert_lt(rounded, 1e-5, "bf16 against the rounded inputs: %.3g", rounded);
    cr_assert_gt(plain, 1e-4, "bf16 too close to the unrounded product (%.3g): did it run in fp32?", plain);
    cr_assert_lt(plain, 2e-2, "bf16 against the unrounded product: %.3g", plain);
    cr_assert_eq(ct_gemm_configure("auto", "fp32"), CT_OK);
}

Test(gemm, tiles_inside_a_parallel_loop) {
    cr_assert_eq(ct_gemm_configure("onednn", "fp32"), CT_OK);
    enum { TASKS = 8, M = 64, N = 48, K = 40 };
    float *A = malloc(sizeof(float) * TASKS * M * K), *B = malloc(sizeof(float) * TASKS * N * K);
    float *C = malloc(sizeof(float) * TASKS * M * N);
    for (size_t i = 0; i < (size_t)TASKS * M * K; i++) A[i] = value(i, 4);
    for (size_t i = 0; i < (size_t)TASKS * N * K; i++) B[i] = value(i, 5);
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < TASKS; t++)
        ct_cpu_gemm_tile(0, 1, M, N, K, 1.0f, A + (size_t)t * M * K, K, B + (size_t)t * N * K, K, 0.0f,
                         C + (size_t)t * M * N, N);
    double worst = 0.0;
    for (int t = 0; t < TASKS; t++) {
        case_t c = {0, 1, M, N, K, K, K, N, 1.0f, 0.0f};
        worst = fmax(worst,
                     error(&c, A + (size_t)t * M * K, B + (size_t)t * N * K, NULL, C + (size_t)t * M * N, 0));
    }
    free(A), free(B), free(C);
    cr_assert_lt(worst, 1e-5, "tiles: relative error %.3g", worst);
}

Test(gemm, classes) {
    cr_assert_eq(ct_gemm_classify(0, 0, 1024, 1536, 384, 0), CT_GEMM_NN);
    cr_assert_eq(ct_gemm_classify(0, 1, 1024, 384, 1536, 0), CT_GEMM_NT);
    cr_assert_eq(ct_gemm_classify(1, 0, 384, 1536, 1024, 0), CT_GEMM_TN);
    cr_assert_eq(ct_gemm_classify(0, 0, 16, 64, 64, 0), CT_GEMM_NN_SMALL);
    cr_assert_eq(ct_gemm_classify(1, 0, 16, 64, 64, 0), CT_GEMM_TN_SMALL);
    cr_assert_eq(ct_gemm_classify(0, 1, 4096, 4096, 4096, 1), CT_GEMM_TILE);
    cr_assert_str_eq(ct_gemm_class_name(CT_GEMM_TILE), "tile");
}

/* A cache line for this machine that names OpenBLAS for NN and oneDNN for the rest is used
 * as it is (nothing measured); one for another machine is ignored. */
Test(gemm, cached_choice_of_this_machine_only) {
    char path[1200], machine[512], libs[256];
    snprintf(path, sizeof path, "%s/cetus/gemm", tmpdir);
    ct_machine_key(machine, sizeof machine);
    ct_gemm_libraries_id(libs, sizeof libs);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/cetus", tmpdir);
    cr_assert_eq(ct_mkdirs(dir), CT_OK);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    int threads = omp_get_max_threads();
    fprintf(f, "Another CPU|25|17|%d|%d|%s\t", threads, threads, libs);
    for (int c = 0; c < CT_GEMM_CLASSES; c++) fprintf(f, "openblas 1.0 0.5 ");
    fprintf(f, "\n%s|%d|%s\t", machine, threads, libs);
    for (int c = 0; c < CT_GEMM_CLASSES; c++) fprintf(f, "%s 11.0 22.0 ", c == 0 ? "openblas" : "onednn");
    fprintf(f, "\n");
    fclose(f);
    cr_assert_eq(ct_gemm_configure("auto", "fp32"), CT_OK);
    char d[768];
    ct_gemm_describe(d, sizeof d);
    cr_assert(strstr(d, "NN openblas (11/22) NT onednn (11/22)"), "%s", d);
    cr_assert(strstr(d, "tile onednn (11/22)"), "%s", d);
    /* the same entry under another machine's name only: measured, a new line appended */
    f = fopen(path, "w");
    fprintf(f, "Another CPU|25|17|%d|%d|%s\t", threads, threads, libs);
    for (int c = 0; c < CT_GEMM_CLASSES; c++) fprintf(f, "openblas 11.0 22.0 ");
    fprintf(f, "\n");
    fclose(f);
    cr_assert_eq(ct_gemm_configure("auto", "fp32"), CT_OK);
    ct_gemm_describe(d, sizeof d);
    cr_assert_null(strstr(d, "(11/22)"), "another machine's cached choice was used: %s", d);
}

Test(gemm, bad_names_refused) {
    cr_assert_eq(ct_gemm_check("mkl", "fp32"), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "runtime.gemm = \"mkl\""), "%s", ct_last_error());
    cr_assert_eq(ct_gemm_check("auto", "fp16"), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "train.precision = \"fp16\": allowed fp32 or bf16"), "%s",
              ct_last_error());
    cr_assert_eq(ct_gemm_check("openblas", "fp32"), CT_OK);
}
