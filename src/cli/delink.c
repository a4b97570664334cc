/* delink.c: `cetus delink IN OUT [--layers L] [--optimizer carry|reset]`: the checkpoint of a
 * shared-weight (pseudo) model becomes the checkpoint of the real model, with independent
 * blocks, in the run directory OUT. */
#include "cli/cli.h"
#include "train/commands.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void delink_help(void) {
    printf("usage: cetus delink IN OUT [--layers L] [--optimizer carry|reset]\n\n"
           "Pseudo-to-Real: IN (a checkpoint or run directory) holds a model whose blocks share weights\n"
           "(model.share_layers). Writes OUT/ckpt/step_N (N: IN's step), the real model with L independent\n"
           "blocks (default: the same depth, which computes exactly IN's function), each a copy of the\n"
           "weights it used. IN is only read.\n\n"
           "  --layers L            blocks of the real model (at least one per group of shared weights)\n"
           "  --optimizer reset     zero AdamW moments and step count (default: measured to reach a\n"
           "                        lower loss, see docs/benchmarks.md)\n"
           "  --optimizer carry     each block starts with the shared weights' moments and step count\n\n"
           "Then train on with IN's settings and the real depth, sharing off:\n"
           "  cetus train -c CONFIG run.dir=OUT model.share_layers=none model.n_layer=L\n"
           "(or do it all in one run with delink.step=N; see `cetus train --help`).\n");
}

static int parse_args(int argc, char **argv, const char **pos, int *layers, const char **optimizer) {
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") || !strcmp(argv[i], "--optimizer")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cetus delink: %s needs a value (see --help)\n", argv[i]);
                return 2;
            }
            if (argv[i][2] == 'o') {
                *optimizer = argv[++i];
                continue;
            }
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 1 || v > 4096) {
                fprintf(stderr, "cetus delink: --layers '%s': expected a whole number from 1 to 4096\n",
                        argv[i]);
                return 2;
            }
            *layers = (int)v;
            continue;
        }
        if (npos == 2 || argv[i][0] == '-') {
            fprintf(stderr, "cetus delink: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
        pos[npos++] = argv[i];
    }
    if (npos != 2) {
        fprintf(stderr, "cetus delink: needs IN and OUT (see --help)\n");
        return 2;
    }
    return 0;
}

int cmd_delink(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            delink_help();
            return 0;
        }
    const char *pos[2] = {NULL, NULL}, *optimizer = "reset";
    int layers = 0, rc = parse_args(argc, argv, pos, &layers, &optimizer);
    if (rc) return rc;
    char in[1100];
    ct_delink_result r;
    ct_status s = ct_checkpoint_resolve(pos[0], in, sizeof in);
    if (s == CT_OK) s = ct_delink_into_run(in, pos[1], layers, optimizer, &r);
    if (s != CT_OK) {
        fprintf(stderr, "cetus delink: error: %s\n", ct_last_error());
        return s == CT_EINVAL ? 2 : 1;
    }
    printf(
        "delinked %s (%d blocks sharing %d set%s of weights) into %s: %d independent blocks, AdamW state %s\n"
        "continue with: cetus train <your settings> run.dir=%s model.share_layers=none model.n_layer=%d\n",
        in, r.pseudo_layers, r.weight_sets, r.weight_sets == 1 ? "" : "s", r.ckpt, r.layers,
        strcmp(optimizer, "reset") ? "carried" : "reset", pos[1], r.layers);
    return 0;
}
