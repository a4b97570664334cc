/* upcycle.c: `cetus upcycle IN OUT [-c config.json] [key=value ...]`: a dense checkpoint
 * becomes the step-0 checkpoint of an MoE run in OUT. */
#include "cli/cli.h"
#include "train/commands.h"
#include <stdio.h>
#include <string.h>

static void upcycle_help(void) {
    printf("usage: cetus upcycle IN OUT [-c config.json] [key=value ...]\n\n"
           "Turns the dense checkpoint IN (a checkpoint or run directory) into the step-0 checkpoint\n"
           "of an MoE run in the run directory OUT: every expert starts as a copy of its block's\n"
           "dense MLP, routers start small and random, AdamW state starts fresh. The MoE settings\n"
           "(model.moe_every, moe.*) come from -c and key=value on top of IN's config; moe.d_hidden\n"
           "defaults to the dense MLP's 4 * d_model. Continue with the same settings:\n"
           "  cetus train -c moe.json run.dir=OUT\n");
}

int cmd_upcycle(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            upcycle_help();
            return 0;
        }
    char dir[1100];
    ct_config cfg;
    ct_status s = CT_OK;
    int have_cfg = 0;
    for (int i = 1; i < argc && s == CT_OK; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cetus upcycle: %s needs a file\n", argv[i]);
                return 2;
            }
            i++;
            continue;
        }
        if (strchr(argv[i], '=')) continue;
        if (npos == 2) {
            fprintf(stderr, "cetus upcycle: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
        pos[npos++] = argv[i];
    }
    if (npos != 2) {
        fprintf(stderr, "cetus upcycle: needs IN and OUT (see --help)\n");
        return 2;
    }
    s = ct_checkpoint_resolve(pos[0], dir, sizeof dir);
    if (s == CT_OK) s = ct_checkpoint_read_config(dir, &cfg);
    if (s == CT_OK) {
        have_cfg = 1;
        cfg.model.moe.d_hidden = 4 * cfg.model.d_model;
    }
    for (int i = 1; i < argc && s == CT_OK; i++) {
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) s = ct_config_load_file(&cfg, argv[++i]);
        else if (strchr(argv[i], '='))
            s = ct_config_apply_override(&cfg, argv[i]);
    }
    if (s == CT_OK) s = ct_config_validate(&cfg);
    if (s == CT_OK) {
        ct_runtime_init(cfg.runtime.threads, 0);
        s = ct_upcycle(dir, &cfg, pos[1]);
    }
    if (s != CT_OK) {
        fprintf(stderr, "cetus upcycle: %s%s\n", have_cfg ? "error: " : "", ct_last_error());
        return s == CT_EINVAL ? 2 : 1;
    }
    printf("upcycled %s into %s/ckpt/step_00000000: %d experts in every %d-th block\n", dir, pos[1],
           cfg.model.moe.n_experts, cfg.model.moe_every);
    return 0;
}
