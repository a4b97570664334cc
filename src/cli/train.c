/* train.c: `cetus train [-c config.json] [key=value ...]`. */
#include "cli/cli.h"
#include "train/commands.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void train_help(void) {
    printf("usage: cetus train [-c config.json] [key=value ...]\n\n"
           "Trains a GPT model. With no arguments: the default model on the corpus prepared by\n"
           "`cetus prepare` (data/pydocs). Settings come from the defaults, then the JSON file\n"
           "({\"model\": {\"n_layer\": 6}, \"train\": {\"lr\": 6e-4}}), then key=value arguments.\n"
           "A run resumes from the latest checkpoint in run.dir unless run.resume=false.\n\n"
           "keys (default, meaning):\n");
    ct_config_print_keys(stdout);
}

int cmd_train(int argc, char **argv) {
    ct_run *run;
    if (ct_run_create(&run) != CT_OK) {
        fprintf(stderr, "cetus train: %s\n", ct_last_error());
        return 1;
    }
    ct_status s = CT_OK;
    for (int i = 1; i < argc && s == CT_OK; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            ct_run_free(run);
            train_help();
            return 0;
        }
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cetus train: %s needs a file\n", argv[i]);
                ct_run_free(run);
                return 2;
            }
            s = ct_run_load(run, argv[++i]);
        } else {
            s = ct_run_set(run, argv[i]);
        }
    }
    if (s != CT_OK) { /* a bad setting: refused before MPI starts */
        ct_run_report_refusal("cetus train: ");
        ct_run_free(run);
        return 2;
    }
    s = ct_run_train(run); /* reports its own failures */
    ct_run_free(run);
    return s == CT_OK ? 0 : s == CT_EINVAL ? 2 : 1;
}
