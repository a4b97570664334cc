/* plan.c: `cetus plan`: what a layout needs and how fast it runs, before running it; the
 * search over layouts; and measuring this machine for it (--calibrate). The planner is
 * src/plan/. */
#include "cli/cli.h"
#include "core/core.h"
#include "parallel/comm.h"
#include "plan/calibrate.h"
#include "plan/plan.h"
#include "train/commands.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCAL_HW "hardware/local.json"

static void plan_help(void) {
    printf("usage: cetus plan [-c CONFIG] [key=value ...] --world N [options]\n"
           "       cetus plan --calibrate [--out FILE]      (under mpirun -np 2 to time the links)\n\n"
           "Predicts, without allocating the model, what each rank of a layout holds (per tier:\n"
           "compute, host, disk; by kind: params, grads, moments, activations, comm buffers,\n"
           "offload slots, initialisation staging), the FLOPs and the bytes each axis sends per\n"
           "step, and the step time on the hardware. Settings as for `cetus train`.\n\n"
           "options:\n"
           "  --world N          ranks (devices) to plan for (default: the hardware's devices)\n"
           "  --hardware FILE    the hardware (default " LOCAL_HW ", written by --calibrate);\n"
           "                     see hardware/*.json for the format\n"
           "  --json             print the plan as one JSON object\n"
           "  --search           rank the layouts that fit by predicted tokens/s\n"
           "  --memory SIZE      with --search: memory per device (e.g. 32G; default the hardware's)\n"
           "  --top N            with --search: how many to show (default 5)\n"
           "  --tokens N         also predict the time to train N tokens (e.g. 300e9)\n"
           "  --precision P      fp32 (default: what cetus computes in) or bf16: GEMMs at the\n"
           "                     hardware's 16-bit rate (matmul_tflops_bf16; state stays fp32)\n"
           "  --calibrate        measure this machine (GEMM rates, memory copy, disk, MPI links)\n"
           "  --out FILE         where --calibrate writes (default " LOCAL_HW ")\n");
}

typedef struct plan_args {
    ct_config cfg;
    int world, json, search, top, calibrate;
    double memory, tokens;
    const char *hardware, *out, *precision;
} plan_args;

static int bad_usage(const char *msg, const char *arg) {
    fprintf(stderr, "cetus plan: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

/* "32G", "512M", "1.5T", or bytes. */
static int parse_size(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    double unit = *end == 'K'   ? 1024.0
                  : *end == 'M' ? 1048576.0
                  : *end == 'G' ? 1073741824.0
                  : *end == 'T' ? 1099511627776.0
                                : 1.0;
    if (unit > 1.0) end++;
    if (*end == 'i') end++;
    if (*end == 'B') end++;
    *out = v * unit;
    return end != s && *end == 0 && v > 0;
}

/* Parses argv into a; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, plan_args *a) {
    ct_config_defaults(&a->cfg);
    a->top = 5;
    a->hardware = LOCAL_HW;
    a->out = LOCAL_HW;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(o, "-c") || !strcmp(o, "--config") || !strcmp(o, "--world") ||
                    !strcmp(o, "--hardware") || !strcmp(o, "--memory") || !strcmp(o, "--top") ||
                    !strcmp(o, "--tokens") || !strcmp(o, "--out") || !strcmp(o, "--precision");
        if (takes && !v) return bad_usage("this option needs a value", o);
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            plan_help();
            return 0;
        } else if (!strcmp(o, "-c") || !strcmp(o, "--config")) {
            if (ct_config_load_file(&a->cfg, v) != CT_OK) return bad_usage(ct_last_error(), NULL);
        } else if (!strcmp(o, "--world")) {
            a->world = atoi(v);
            if (a->world < 1) return bad_usage("--world needs a number of ranks >= 1", v);
        } else if (!strcmp(o, "--hardware")) {
            a->hardware = v;
        } else if (!strcmp(o, "--precision")) {
            if (strcmp(v, "fp32") && strcmp(v, "bf16")) return bad_usage("--precision: fp32 or bf16", v);
            a->precision = v;
        } else if (!strcmp(o, "--out")) {
            a->out = v;
        } else if (!strcmp(o, "--memory")) {
            if (!parse_size(v, &a->memory)) return bad_usage("--memory needs a size such as 32G", v);
        } else if (!strcmp(o, "--top")) {
            if ((a->top = atoi(v)) < 1) return bad_usage("--top needs a count >= 1", v);
        } else if (!strcmp(o, "--tokens")) {
            if ((a->tokens = strtod(v, NULL)) <= 0) return bad_usage("--tokens needs a count > 0", v);
        } else if (!strcmp(o, "--json")) {
            a->json = 1;
            continue;
        } else if (!strcmp(o, "--search")) {
            a->search = 1;
            continue;
        } else if (!strcmp(o, "--calibrate")) {
            a->calibrate = 1;
            continue;
        } else if (o[0] == '-') {
            return bad_usage("unknown option (see cetus plan --help)", o);
        } else {
            if (ct_config_apply_override(&a->cfg, o) != CT_OK) return bad_usage(ct_last_error(), NULL);
            continue;
        }
        i++;
    }
    return -1;
}

/* `cetus plan --calibrate`: every rank measures; rank 0 writes the file. */
static int calibrate(const plan_args *a) {
    ct_world *w;
    ct_layout want = {0, 1, 1, 1};
    if (ct_world_create(&w, &want) != CT_OK) {
        ct_launch_report("cetus plan: ");
        return 1;
    }
    ct_hardware hw;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s.scratch", a->out);
    /* rank 0 measures the products and copies alone, on every core of the node */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = a->cfg.runtime.threads ? a->cfg.runtime.threads : cores > 0 ? (int)cores : 1;
    ct_runtime_init(threads, 0);
    ct_status s = ct_hw_calibrate(&hw, w, dir, threads);
    if (s == CT_OK && ct_world_rank(w) == 0) {
        char *slash = strrchr(a->out, '/');
        if (slash) {
            char parent[1024];
            snprintf(parent, sizeof parent, "%.*s", (int)(slash - a->out), a->out);
            mkdir(parent, 0755);
        }
        s = ct_hw_save(&hw, a->out);
        if (s == CT_OK) printf("calibrate: wrote %s\n", a->out);
    }
    if (s != CT_OK) fprintf(stderr, "cetus plan: %s\n", ct_last_error());
    ct_world_free(w);
    return s == CT_OK ? 0 : 1;
}

/* Threads a rank of the planned run uses (as `cetus train` starts them), so that the
 * per-thread buffers are sized as the run sizes them. */
static void planned_threads(const plan_args *a, const ct_hardware *hw) {
    const ct_hw_group *g = ct_hw_group_of(hw, 0);
    int threads = a->cfg.runtime.threads, on_node = g->cores > 0             ? a->world
                                                    : a->world < g->per_node ? a->world
                                                                             : g->per_node;
    if (!threads && g->cores > 0) threads = g->cores / (on_node > 0 ? on_node : 1);
    ct_runtime_init(threads > 0 ? threads : 1, 0);
}

static void print_tokens(const ct_plan *p, double tokens) {
    double s = tokens / p->tokens_per_s;
    printf("%.4g tokens: %.4g s = %.2f days\n", tokens, s, s / 86400.0);
}

static int plan_one(const plan_args *a, const ct_hardware *hw) {
    ct_plan *p = ct_alloc(sizeof *p, "the plan");
    if (!p) return 1;
    ct_status s = ct_plan_make(p, &a->cfg, a->world, hw);
    if (s != CT_OK) {
        fprintf(stderr, "cetus plan: %s\n", ct_last_error());
        ct_free(p);
        return 2;
    }
    if (a->json) {
        char *text = ct_plan_json(p, hw);
        if (text) puts(text);
        ct_free(text);
    } else {
        ct_plan_print(p, hw, stdout);
        if (a->tokens > 0) print_tokens(p, a->tokens);
    }
    ct_free(p);
    return 0;
}

static int search(const plan_args *a, const ct_hardware *hw) {
    enum { MAX = 64 };
    int top = a->top < MAX ? a->top : MAX;
    ct_plan_choice *best = ct_alloc(MAX * sizeof *best, "the search's choices");
    char *why = ct_alloc(8192, "the search's rejections");
    if (!best || !why) {
        ct_free(best);
        ct_free(why);
        return 1;
    }
    int n = ct_plan_search(&a->cfg, a->world, hw, a->memory, best, top, why, 8192);
    if (n < 0) fprintf(stderr, "cetus plan: %s\n", ct_last_error());
    else if (n == 0)
        fprintf(stderr, "cetus plan: no layout of %d ranks fits: %s\n", a->world, why);
    for (int i = 0; i < n && i < top; i++) {
        printf("#%d  %.4g tokens/s  step %.4g s  %s\n", i + 1, best[i].plan.tokens_per_s, best[i].plan.step_s,
               best[i].keys);
        if (a->tokens > 0) print_tokens(&best[i].plan, a->tokens);
        if (i == 0 && !a->json) ct_plan_print(&best[i].plan, hw, stdout);
    }
    if (n > 0 && why[0]) printf("rejected: %s\n", why);
    ct_free(best);
    ct_free(why);
    return n > 0 ? 0 : n == 0 ? 1 : 2;
}

/* --precision bf16: every group's products at its 16-bit rate (the measured table is fp32's:
 * dropped). */
static int use_bf16(ct_hardware *hw) {
    for (int i = 0; i < hw->n_groups; i++) {
        ct_hw_group *g = &hw->groups[i];
        if (g->matmul_bf16 <= 0) {
            fprintf(stderr,
                    "cetus plan: --precision bf16: the hardware's group \"%s\" gives no matmul_tflops_bf16\n",
                    g->name);
            return 2;
        }
        g->matmul_flops = g->matmul_bf16;
        g->n_gemm = 0;
    }
    return -1;
}

int cmd_plan(int argc, char **argv) {
    plan_args *a = ct_calloc(sizeof *a, "the plan's arguments");
    if (!a) return 1;
    int rc = parse_args(argc, argv, a);
    if (rc < 0 && a->calibrate) rc = calibrate(a);
    ct_hardware *hw = rc < 0 ? ct_alloc(sizeof *hw, "the hardware") : NULL;
    if (rc < 0 && (!hw || ct_hw_load(hw, a->hardware) != CT_OK)) {
        struct stat st;
        if (!strcmp(a->hardware, LOCAL_HW) && stat(LOCAL_HW, &st) != 0)
            fprintf(stderr,
                    "cetus plan: no hardware file: run `cetus plan --calibrate` first (under mpirun -np 2 "
                    "to time the links), or give --hardware FILE\n");
        else
            fprintf(stderr, "cetus plan: %s\n", ct_last_error());
        rc = 2;
    }
    if (rc < 0 && a->precision && !strcmp(a->precision, "bf16")) rc = use_bf16(hw);
    if (rc < 0 && a->world == 0) a->world = ct_hw_devices(hw);
    if (rc < 0 && ct_config_validate(&a->cfg) != CT_OK) rc = bad_usage(ct_last_error(), NULL);
    if (rc < 0) {
        planned_threads(a, hw);
        rc = a->search ? search(a, hw) : plan_one(a, hw);
    }
    ct_free(hw);
    ct_free(a);
    return rc;
}
