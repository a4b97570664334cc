/* test_plan_hw.c: the hardware file (parsing, strict refusals naming the key, save and load
 * back), the GEMM rate look-up, and a calibration of this machine on one rank. */
#include <criterion/criterion.h>
#include "ops/ops.h"
#include "core/core.h"
#include "plan/calibrate.h"
#include "plan/hardware.h"
#include <math.h>
#include <string.h>

#define TMPDIR_TEMPLATE "/tmp/cetus_hw_XXXXXX"
#include "tmpdir.h"

/* A valid file of two groups; %s is spliced into the first group's keys (after "count"). */
#define GROUP0_HEAD "{\"name\": \"v100\", \"count\": 16, "
#define GROUP0_TAIL \
    "\"per_node\": 8, \"memory_gib\": 32, \"host_memory_gib\": 768, \"matmul_tflops\": 15.7, " \
    "\"matmul_tflops_bf16\": 125, \"memory_gbps\": 900, \"host_link_gbps\": 12, \"disk_read_gbps\": 2, " \
    "\"disk_write_gbps\": 1, \"intra_gbps\": 150, \"intra_latency_us\": 5, \"inter_gbps\": 12.5, " \
    "\"inter_latency_us\": 10, \"cores\": 40, " \
    "\"gemm\": [{\"m\": 512, \"n\": 512, \"k\": 512, \"gflops\": 180.0}, " \
    "{\"m\": 4096, \"n\": 4096, \"k\": 4096, \"gflops\": 14000}]}"
#define GROUP1 \
    "{\"name\": \"cpu\", \"count\": 4, \"per_node\": 2, \"memory_gib\": 64, \"host_memory_gib\": 128, " \
    "\"matmul_tflops\": 1, \"memory_gbps\": 100, \"host_link_gbps\": 100, \"disk_read_gbps\": 1, " \
    "\"disk_write_gbps\": 0.5, \"intra_gbps\": 20, \"intra_latency_us\": 2, \"inter_gbps\": 10, " \
    "\"inter_latency_us\": 20}"

static const char *valid = "{\"name\": \"test rig\", \"groups\": [" GROUP0_HEAD GROUP0_TAIL ", " GROUP1 "]}";

static void close_to(double got, double want) {
    cr_assert(fabs(got - want) <= 1e-12 * fabs(want), "%.17g vs %.17g", got, want);
}

Test(plan_hw, parses_a_valid_file) {
    ct_hardware hw;
    cr_assert_eq(ct_hw_parse(&hw, valid, "rig.json"), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(hw.name, "test rig");
    cr_assert_eq(hw.n_groups, 2);
    const ct_hw_group *g = &hw.groups[0];
    cr_assert_str_eq(g->name, "v100");
    cr_assert_eq(g->count, 16);
    cr_assert_eq(g->per_node, 8);
    cr_assert_eq(g->cores, 40);
    close_to(g->memory_bytes, 32.0 * 1073741824.0);
    close_to(g->host_bytes, 768.0 * 1073741824.0);
    close_to(g->matmul_flops, 15.7e12);
    close_to(g->matmul_bf16, 125e12);
    close_to(g->memory_bw, 900e9);
    close_to(g->disk_write_bw, 1e9);
    close_to(g->intra_latency, 5e-6);
    close_to(g->inter_bw, 12.5e9);
    cr_assert_eq(g->n_gemm, 2);
    cr_assert_eq(g->gemm[1].m, 4096);
    close_to(g->gemm[0].flops, 180e9);
    const ct_hw_group *c = &hw.groups[1];
    cr_assert_eq(c->matmul_bf16, 0);
    cr_assert_eq(c->cores, 0);
    cr_assert_eq(c->n_gemm, 0);
    cr_assert_eq(ct_hw_devices(&hw), 20);
    cr_assert_eq(ct_hw_group_of(&hw, 0), &hw.groups[0]);
    cr_assert_eq(ct_hw_group_of(&hw, 15), &hw.groups[0]);
    cr_assert_eq(ct_hw_group_of(&hw, 16), &hw.groups[1]);
    cr_assert_eq(ct_hw_group_of(&hw, 19), &hw.groups[1]);
    cr_assert_null(ct_hw_group_of(&hw, 20));
    cr_assert_null(ct_hw_group_of(&hw, -1));
}

/* The real-valued fields of g, matmul_bf16 fourth. */
#define N_FIELDS 12
static void fields(const ct_hw_group *g, double out[N_FIELDS]) {
    const double v[N_FIELDS] = {g->memory_bytes, g->host_bytes,    g->matmul_flops, g->matmul_bf16,
                                g->memory_bw,    g->host_bw,       g->disk_read_bw, g->disk_write_bw,
                                g->intra_bw,     g->intra_latency, g->inter_bw,     g->inter_latency};
    memcpy(out, v, sizeof v);
}

static void same_group(const ct_hw_group *a, const ct_hw_group *b) {
    cr_assert_str_eq(a->name, b->name);
    cr_assert_eq(a->count, b->count);
    cr_assert_eq(a->per_node, b->per_node);
    cr_assert_eq(a->cores, b->cores);
    double x[N_FIELDS], y[N_FIELDS];
    fields(a, x), fields(b, y);
    for (int i = 0; i < N_FIELDS; i++) close_to(x[i], y[i]);
    cr_assert_eq(a->n_gemm, b->n_gemm);
    for (int i = 0; i < a->n_gemm; i++) {
        cr_assert_eq(a->gemm[i].m, b->gemm[i].m);
        cr_assert_eq(a->gemm[i].n, b->gemm[i].n);
        cr_assert_eq(a->gemm[i].k, b->gemm[i].k);
        close_to(a->gemm[i].flops, b->gemm[i].flops);
    }
}

Test(plan_hw, save_then_load_gives_the_same, .init = make_tmpdir, .fini = cleanup) {
    ct_hardware a, b;
    cr_assert_eq(ct_hw_parse(&a, valid, "rig.json"), CT_OK, "%s", ct_last_error());
    a.groups[1].disk_read_bw = 1.0 / 3.0 * 1e9; /* not a short decimal */
    a.groups[1].intra_latency = 1.234567890123e-6;
    char path[256];
    snprintf(path, sizeof path, "%s/sub/hw.json", tmpdir);
    cr_assert_neq(ct_hw_save(&a, path), CT_OK, "a missing directory was accepted");
    snprintf(path, sizeof path, "%s/hw.json", tmpdir);
    cr_assert_eq(ct_hw_save(&a, path), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_hw_load(&b, path), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(a.name, b.name);
    cr_assert_eq(a.n_groups, b.n_groups);
    for (int g = 0; g < a.n_groups; g++) same_group(&a.groups[g], &b.groups[g]);
    /* an invalid structure is refused and the file left as it was */
    a.groups[0].memory_bw = 0;
    cr_assert_eq(ct_hw_save(&a, path), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "memory_gbps"), "%s", ct_last_error());
    cr_assert_eq(ct_hw_load(&b, path), CT_OK, "%s", ct_last_error());
    close_to(b.groups[0].memory_bw, 900e9);
}

/* The valid file with the first group's keys edited: `extra` spliced in, `drop` removed. */
static ct_status parse_edited(const char *extra, const char *drop) {
    char text[4096];
    snprintf(text, sizeof text,
             "{\"name\": \"test rig\", \"groups\": [" GROUP0_HEAD "%s" GROUP0_TAIL ", " GROUP1 "]}", extra);
    if (drop) {
        char *at = strstr(text, drop);
        cr_assert_not_null(at, "%s", drop);
        memmove(at, at + strlen(drop), strlen(at + strlen(drop)) + 1);
    }
    ct_hardware hw;
    memset(&hw, 0x5a, sizeof hw);
    ct_hardware before = hw;
    ct_status s = ct_hw_parse(&hw, text, "rig.json");
    if (s != CT_OK) cr_assert_eq(memcmp(&hw, &before, sizeof hw), 0, "a refused parse changed the result");
    return s;
}

static void refused(const char *extra, const char *drop, const char *key, const char *also) {
    cr_assert_eq(parse_edited(extra, drop), CT_EINVAL, "accepted: %s / %s", extra, drop ? drop : "");
    const char *e = ct_last_error();
    cr_assert(strstr(e, "rig.json"), "no file: %s", e);
    cr_assert(strstr(e, key), "no key %s: %s", key, e);
    if (also) cr_assert(strstr(e, also), "no '%s': %s", also, e);
}

Test(plan_hw, bad_groups_are_refused_naming_the_key) {
    cr_assert_eq(parse_edited("", NULL), CT_OK, "%s", ct_last_error());
    refused("", "\"memory_gbps\": 900, ", "memory_gbps", "missing");
    refused("", "\"per_node\": 8, ", "per_node", "missing");
    refused("\"memory_gib\": null, ", "\"memory_gib\": 32, ", "memory_gib", "group 0 (\"v100\")");
    refused("\"colour\": 3, ", NULL, "colour", "unknown");
    refused("\"count\": 3, ", NULL, "count", "twice");
    refused("\"disk_read_gbps\": \"fast\", ", "\"disk_read_gbps\": 2, ", "disk_read_gbps", "not a number");
    refused("\"intra_gbps\": 0, ", "\"intra_gbps\": 150, ", "intra_gbps", "> 0");
    refused("\"inter_latency_us\": -3, ", "\"inter_latency_us\": 10, ", "inter_latency_us", NULL);
    refused("\"matmul_tflops\": 1e300, ", "\"matmul_tflops\": 15.7, ", "matmul_tflops", NULL);
    refused("\"matmul_tflops_bf16\": 0, ", "\"matmul_tflops_bf16\": 125, ", "matmul_tflops_bf16", NULL);
    refused("\"per_node\": 32, ", "\"per_node\": 8, ", "per_node", "count");
    refused("\"per_node\": 0, ", "\"per_node\": 8, ", "per_node", NULL);
    refused("\"per_node\": 2.5, ", "\"per_node\": 8, ", "per_node", "whole");
    refused("\"cores\": -1, ", "\"cores\": 40, ", "cores", NULL);
    refused("\"name\": \"\", ", "\"name\": \"v100\", ", "name", "group 0");
}

/* GROUP1 with its count replaced, or with a "gemm" array appended. */
static ct_status parse_cpu_group(const char *count, const char *gemm) {
    char group[2048], text[8192];
    snprintf(group, sizeof group, "%s", GROUP1);
    if (count) {
        char *c = strstr(group, "\"count\": 4");
        char rest[2048];
        snprintf(rest, sizeof rest, "%s", c + strlen("\"count\": 4"));
        snprintf(c, sizeof group - (size_t)(c - group), "\"count\": %s%s", count, rest);
    }
    if (gemm) {
        size_t n = strlen(group);
        snprintf(group + n - 1, sizeof group - n + 1, ", \"gemm\": %s}", gemm);
    }
    snprintf(text, sizeof text, "{\"name\": \"r\", \"groups\": [%s]}", group);
    ct_hardware hw;
    return ct_hw_parse(&hw, text, "rig.json");
}

static void refused_cpu(const char *count, const char *gemm, const char *key, const char *also) {
    cr_assert_eq(parse_cpu_group(count, gemm), CT_EINVAL, "accepted: %s %s", count ? count : "",
                 gemm ? gemm : "");
    const char *e = ct_last_error();
    cr_assert(strstr(e, "rig.json") && strstr(e, "group 0 (\"cpu\")"), "no file or group: %s", e);
    cr_assert(strstr(e, key), "no key %s: %s", key, e);
    if (also) cr_assert(strstr(e, also), "no '%s': %s", also, e);
}

Test(plan_hw, bad_counts_and_gemm_tables_are_refused) {
    cr_assert_eq(parse_cpu_group("4", "[{\"m\": 1, \"n\": 2, \"k\": 3, \"gflops\": 4}]"), CT_OK, "%s",
                 ct_last_error());
    refused_cpu("0", NULL, "count", NULL);
    refused_cpu("1", NULL, "per_node", "count");
    refused_cpu("1e12", NULL, "count", NULL);
    refused_cpu("\"4\"", NULL, "count", "not a number");
    refused_cpu(NULL, "[]", "gemm", "1 to 32");
    refused_cpu(NULL, "{\"m\": 1}", "gemm", NULL);
    refused_cpu(NULL, "[3]", "gemm[0]", "object");
    refused_cpu(NULL, "[{\"m\": 1, \"n\": 2, \"k\": 3}]", "gflops", "gemm[0]");
    refused_cpu(
        NULL, "[{\"m\": 1, \"n\": 2, \"k\": 3, \"gflops\": 4}, {\"m\": 0, \"n\": 2, \"k\": 3, \"gflops\": 4}]",
        "\"m\"", "gemm[1]");
    refused_cpu(NULL, "[{\"m\": 1, \"n\": 2.5, \"k\": 3, \"gflops\": 4}]", "\"n\"", "whole");
    refused_cpu(NULL, "[{\"m\": 1, \"n\": 2, \"k\": 3, \"gflops\": -4}]", "gflops", NULL);
    refused_cpu(NULL, "[{\"m\": 1, \"n\": 2, \"k\": 3, \"gflops\": 4, \"shape\": 1}]", "shape", "unknown");
    char big[4096] = "[";
    for (int i = 0; i < 33; i++)
        strcat(big, i ? ", {\"m\": 1, \"n\": 1, \"k\": 1, \"gflops\": 1}"
                      : "{\"m\": 1, \"n\": 1, \"k\": 1, \"gflops\": 1}");
    strcat(big, "]");
    refused_cpu(NULL, big, "gemm", "32");
}

static void refused_text(const char *text, const char *what) {
    ct_hardware hw;
    cr_assert_eq(ct_hw_parse(&hw, text, "rig.json"), CT_EINVAL, "accepted: %s", text);
    cr_assert(strstr(ct_last_error(), "rig.json") && strstr(ct_last_error(), what), "no '%s': %s", what,
              ct_last_error());
}

Test(plan_hw, bad_files_are_refused) {
    refused_text("{\"name\": \"x\", \"groups\": [" GROUP1 "]", "malformed");
    refused_text("{\"name\": \"x\", \"groups\": [" GROUP1 "]} x", "malformed");
    refused_text("[1, 2]", "object");
    refused_text("{\"groups\": [" GROUP1 "]}", "name");
    refused_text("{\"name\": \"x\"}", "groups");
    refused_text("{\"name\": \"x\", \"groups\": []}", "groups");
    refused_text("{\"name\": \"x\", \"groups\": {}}", "groups");
    refused_text("{\"name\": \"x\", \"groups\": [" GROUP1 "], \"nodes\": 3}", "nodes");
    refused_text("{\"name\": \"x\", \"groups\": [3]}", "group 0");
    char text[8192] = "{\"name\": \"x\", \"groups\": [";
    for (int i = 0; i < CT_HW_MAX_GROUPS + 1; i++) strcat(strcat(text, i ? ", " : ""), GROUP1);
    strcat(text, "]}");
    refused_text(text, "groups");
    char name[300];
    memset(name, 'a', sizeof name);
    name[sizeof name - 1] = 0;
    snprintf(text, sizeof text, "{\"name\": \"%s\", \"groups\": [" GROUP1 "]}", name);
    refused_text(text, "name");
}

Test(plan_hw, load_checks_the_file, .init = make_tmpdir, .fini = cleanup) {
    ct_hardware hw;
    char path[256];
    snprintf(path, sizeof path, "%s/none.json", tmpdir);
    cr_assert_eq(ct_hw_load(&hw, path), CT_EIO);
    cr_assert(strstr(ct_last_error(), path), "%s", ct_last_error());
    cr_assert_eq(ct_hw_load(&hw, tmpdir), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "regular"), "%s", ct_last_error());
    snprintf(path, sizeof path, "%s/big.json", tmpdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(valid, f);
    for (int i = 0; i < (1 << 20); i++) fputc(' ', f);
    fclose(f);
    cr_assert_eq(ct_hw_load(&hw, path), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "at most"), "%s", ct_last_error());
    snprintf(path, sizeof path, "%s/nul.json", tmpdir);
    f = fopen(path, "w");
    fputs(valid, f);
    fputc(0, f);
    fputs("junk", f);
    fclose(f);
    cr_assert_eq(ct_hw_load(&hw, path), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "NUL"), "%s", ct_last_error());
    snprintf(path, sizeof path, "%s/ok.json", tmpdir);
    f = fopen(path, "w");
    fputs(valid, f);
    fclose(f);
    cr_assert_eq(ct_hw_load(&hw, path), CT_OK, "%s", ct_last_error());
    cr_assert_eq(hw.n_groups, 2);
}

static void near(double got, double want, double rel) {
    cr_assert(fabs(got - want) <= rel * want, "%g vs %g", got, want);
}

Test(plan_hw, gemm_rate_interpolates_in_log_space_and_clamps) {
    ct_hw_group g;
    memset(&g, 0, sizeof g);
    g.matmul_flops = 5e12;
    cr_assert_eq(ct_hw_gemm_flops(&g, 10, 10, 10), 5e12); /* no table: the large rate */
    /* listed out of order: 1e8 FLOP at 1e11/s, 1e6 FLOP at 1e9/s */
    g.gemm[0] = (ct_gemm_rate){.m = 100, .n = 100, .k = 5000, .flops = 1e11};
    g.gemm[1] = (ct_gemm_rate){.m = 100, .n = 100, .k = 50, .flops = 1e9};
    g.n_gemm = 2;
    near(ct_hw_gemm_flops(&g, 100, 100, 50), 1e9, 1e-12);
    near(ct_hw_gemm_flops(&g, 100, 100, 5000), 1e11, 1e-12);
    near(ct_hw_gemm_flops(&g, 100, 100, 500), 1e10, 1e-12); /* 1e7 FLOP: halfway in log */
    near(ct_hw_gemm_flops(&g, 50, 100, 500), 5e9, 1e-12);
    near(ct_hw_gemm_flops(&g, 1, 1, 1), 1e9, 1e-12);              /* below the table */
    near(ct_hw_gemm_flops(&g, 0, 1, 1), 1e9, 1e-12);              /* degenerate: the smallest */
    near(ct_hw_gemm_flops(&g, 10000, 10000, 10000), 1e11, 1e-12); /* above */
    /* two shapes of one FLOP count are averaged (geometrically) */
    g.gemm[2] = (ct_gemm_rate){.m = 100, .n = 5000, .k = 100, .flops = 4e11};
    g.n_gemm = 3;
    near(ct_hw_gemm_flops(&g, 100, 100, 5000), 2e11, 1e-12);
    near(ct_hw_gemm_flops(&g, 100, 100, 500), sqrt(1e9 * 2e11), 1e-12);
}

Test(plan_hw, calibrates_this_machine, .init = make_tmpdir, .fini = cleanup, .timeout = 60) {
    ct_hardware hw;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/scratch", tmpdir);
    cr_assert_eq(ct_hw_calibrate(&hw, NULL, dir, -1), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "threads"), "%s", ct_last_error());
    double t0 = ct_now();
    cr_assert_eq(ct_hw_calibrate(&hw, NULL, dir, 1), CT_OK, "%s", ct_last_error());
    double secs = ct_now() - t0;
    cr_assert_eq(hw.n_groups, 1);
    const ct_hw_group *g = &hw.groups[0];
    cr_assert_str_eq(g->name, "local");
    cr_assert(strstr(hw.name, "this machine"), "%s", hw.name);
    cr_assert_eq(g->count, 1);
    cr_assert_eq(g->per_node, 1);
    cr_assert_geq(g->cores, 1);
    cr_assert_gt(g->matmul_flops, 1e9, "%g", g->matmul_flops);
    if (ct_gemm_check("auto", "bf16") == CT_OK) /* measured where the processor has bf16 */
        cr_assert_gt(g->matmul_bf16, 1e9, "%g", g->matmul_bf16);
    else
        cr_assert_eq(g->matmul_bf16, 0);
    double x[N_FIELDS];
    fields(g, x);
    for (int i = 0; i < N_FIELDS; i++)
        if (i != 3) cr_assert_gt(x[i], 0, "field %d", i); /* all but matmul_bf16 */
    cr_assert_gt(g->n_gemm, 4);
    cr_assert_leq(g->n_gemm, CT_HW_MAX_GEMM);
    for (int i = 0; i < g->n_gemm; i++) cr_assert_gt(g->gemm[i].flops, 0);
    cr_assert_eq(g->intra_bw, g->memory_bw);
    cr_assert_eq(ct_runtime_threads(), 1);
    /* the scratch file is gone, and the result saves and loads */
    char path[300];
    snprintf(path, sizeof path, "%s/hw.json", dir);
    cr_assert_eq(ct_hw_save(&hw, path), CT_OK, "%s", ct_last_error());
    ct_hardware back;
    cr_assert_eq(ct_hw_load(&back, path), CT_OK, "%s", ct_last_error());
    same_group(&hw.groups[0], &back.groups[0]);
    unlink(path);
    cr_assert_eq(rmdir(dir), 0, "the scratch directory is not empty");
    cr_log_info("calibration took %.1f s", secs);
}
