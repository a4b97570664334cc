/* tool_moe_dump.c: runs one MoE layer (src/model/moe.h) forward and backward on a tiny
 * configuration and dumps everything an independent reference needs to check it
 * (tests/tools/torch_moe.py): configuration, parameters, input, the output-gradient weights, and
 * cetus's output, losses, statistics, routing and every gradient.
 *
 * Usage: tool_moe_dump OUT.bin ROUTING K CAPACITY [noise] [perturb]
 *   ROUTING   top1 | top2 | topk | prototype;  K  moe.top_k
 *   CAPACITY  a capacity factor (e.g. 0.75, small enough to drop tokens) or "dropless"
 *   noise     training with router noise (std 0.7, seed 0x5eed0000cafe)
 *   perturb   adds 1e-3 to one router gradient entry before writing (the check must fail)
 *
 * Objective: L = sum(y * w) + loss_scale * (aux_coef * aux + z_coef * z), loss_scale = 0.5;
 * backward runs with dy = w and that loss_scale.
 * Dump format (little endian), records until end of file: u32 name_len, name, u32 dtype
 * (0 = float32, 1 = int32), u32 ndim, u32 shape[ndim], prod(shape) elements.
 * Records: "cfg" int32 [N, C, E, F, k, routing, dropless, training, seed_lo, seed_hi],
 *   "fcfg" float32 [capacity_factor, aux_coef, z_coef, router_noise, loss_scale],
 *   "x" [N, C], "w" [N, C], "router_w", "fc_w", "fc_b", "proj_w", "proj_b" (shapes as in
 *   moe.h), "y" [N, C], "loss", "aux", "z", "dropped" [1], "capacity" int32 [1],
 *   "load" [E], "kept" int32 [E], "expert", "row" int32 [N, k], "gate" [N, k],
 *   "grad.router_w", ..., "grad.proj_b", "grad.x" [N, C]. */
#include "core/core.h"
#include "model/model.h"
#include "model/moe.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dump.h"

enum { N = 24, C = 8, E = 6, F = 12 };
static const uint64_t SEED = 0x5eed0000cafeull;

static void put_f(const char *name, const float *v, int d0, int d1) {
    int shape[2] = {d0, d1};
    put(name, 0, d1 ? 2 : 1, shape, v);
}

static void put_i(const char *name, const int32_t *v, int d0, int d1) {
    int shape[2] = {d0, d1};
    put(name, 1, d1 ? 2 : 1, shape, v);
}

static void put_params(const char *prefix, const ct_moe_params *p) {
    char name[64];
    int s2[2], s3[3];
    snprintf(name, sizeof name, "%srouter_w", prefix);
    s2[0] = C;
    s2[1] = E;
    put(name, 0, 2, s2, p->router_w);
    snprintf(name, sizeof name, "%sfc_w", prefix);
    s3[0] = E;
    s3[1] = C;
    s3[2] = F;
    put(name, 0, 3, s3, p->fc_w);
    snprintf(name, sizeof name, "%sfc_b", prefix);
    s2[0] = E;
    s2[1] = F;
    put(name, 0, 2, s2, p->fc_b);
    snprintf(name, sizeof name, "%sproj_w", prefix);
    s3[0] = E;
    s3[1] = F;
    s3[2] = C;
    put(name, 0, 3, s3, p->proj_w);
    snprintf(name, sizeof name, "%sproj_b", prefix);
    s2[0] = E;
    s2[1] = C;
    put(name, 0, 2, s2, p->proj_b);
}

static void fill(ct_rng *r, float *v, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) v[i] = scale * ct_rng_normal(r);
}

static void *must(void *p) {
    if (!p) {
        fprintf(stderr, "tool_moe_dump: %s\n", ct_last_error());
        exit(1);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s OUT.bin top1|top2|topk|prototype K CAPACITY|dropless "
                "[noise] [perturb]\n",
                argv[0]);
        return 2;
    }
    ct_moe_config cfg = {
        .n_experts = E, .d_hidden = F, .top_k = atoi(argv[3]), .aux_coef = 0.3f, .z_coef = 0.05f};
    int noise = 0, perturb = 0;
    for (int i = 5; i < argc; i++) {
        noise |= strcmp(argv[i], "noise") == 0;
        perturb |= strcmp(argv[i], "perturb") == 0;
    }
    cfg.router_noise = noise ? 0.7f : 0.0f;
    if (strcmp(argv[4], "dropless") == 0) cfg.dropless = 1;
    else
        cfg.capacity_factor = strtof(argv[4], NULL);
    if (ct_moe_routing_parse(argv[2], &cfg.routing) != CT_OK || ct_moe_config_check(&cfg, C) != CT_OK) {
        fprintf(stderr, "tool_moe_dump: %s\n", ct_last_error());
        return 2;
    }
    int k = cfg.top_k;
    float loss_scale = 0.5f;
    ct_rng r;
    ct_rng_seed(&r, 1234);
    float *pbuf = must(ct_alloc(sizeof(float) * ct_moe_params_size(&cfg, C), "params"));
    float *gbuf = must(ct_calloc(sizeof(float) * ct_moe_params_size(&cfg, C), "grads"));
    float *abuf = must(ct_alloc(sizeof(float) * ct_moe_acts_size(&cfg, N, C), "acts"));
    float *sbuf = must(ct_alloc(sizeof(float) * ct_moe_scratch_size(&cfg, N, C), "scratch"));
    ct_moe_params p, g;
    ct_moe_acts a;
    ct_moe_scratch s;
    ct_moe_params_layout(&p, pbuf, &cfg, C);
    ct_moe_params_layout(&g, gbuf, &cfg, C);
    ct_moe_acts_layout(&a, abuf, &cfg, N, C);
    ct_moe_scratch_layout(&s, sbuf, &cfg, N, C);
    fill(&r, p.router_w, (size_t)C * E, 0.6f);
    fill(&r, p.fc_w, (size_t)E * C * F, 0.4f);
    fill(&r, p.fc_b, (size_t)E * F, 0.2f);
    fill(&r, p.proj_w, (size_t)E * F * C, 0.3f);
    fill(&r, p.proj_b, (size_t)E * C, 0.2f);
    static float x[N * C], w[N * C], y[N * C], dx[N * C];
    fill(&r, x, N * C, 1.0f);
    fill(&r, w, N * C, 1.0f);

    ct_moe_stats st;
    float loss = ct_moe_forward(&cfg, &p, &a, x, y, N, C, SEED, noise, &st);
    ct_moe_backward(&cfg, &p, &g, &a, x, w, dx, &s, N, C, loss_scale);
    if (perturb) g.router_w[5] += 1e-3f;

    dump_out = fopen(argv[1], "wb");
    if (!dump_out) {
        perror(argv[1]);
        return 1;
    }
    int32_t icfg[10] = {N,
                        C,
                        E,
                        F,
                        k,
                        (int32_t)cfg.routing,
                        cfg.dropless,
                        noise,
                        (int32_t)(uint32_t)SEED,
                        (int32_t)(uint32_t)(SEED >> 32)};
    float fcfg[5] = {cfg.capacity_factor, cfg.aux_coef, cfg.z_coef, cfg.router_noise, loss_scale};
    put_i("cfg", icfg, 10, 0);
    put_f("fcfg", fcfg, 5, 0);
    put_f("x", x, N, C);
    put_f("w", w, N, C);
    put_params("", &p);
    put_f("y", y, N, C);
    put_f("loss", &loss, 1, 0);
    put_f("aux", &st.aux, 1, 0);
    put_f("z", &st.z, 1, 0);
    put_f("dropped", &st.dropped, 1, 0);
    put_i("capacity", &st.capacity, 1, 0);
    put_f("load", st.load, E, 0);
    put_i("kept", st.kept, E, 0);
    put_i("expert", a.expert, N, k);
    put_i("row", a.row, N, k);
    put_f("gate", a.gate, N, k);
    put_params("grad.", &g);
    put_f("grad.x", dx, N, C);
    if (fclose(dump_out) != 0) {
        perror(argv[1]);
        return 1;
    }
    printf("%s k=%d %s%s: capacity %d, dropped %.3f, aux %.5f, z %.5f\n", argv[2], k, argv[4],
           noise ? " noise" : "", st.capacity, (double)st.dropped, (double)st.aux, (double)st.z);
    ct_free(pbuf);
    ct_free(gbuf);
    ct_free(abuf);
    ct_free(sbuf);
    return 0;
}
