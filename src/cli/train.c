/* train.c: `cetus train [-c config.json] [key=value ...]`. */
#include "cli/cli.h"
#include "core/core.h"
#include "train/trainer.h"
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
    ct_config cfg;
    ct_config_defaults(&cfg);
    ct_status s = CT_OK;
    for (int i = 1; i < argc && s == CT_OK; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { train_help(); return 0; }
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) { fprintf(stderr, "cetus train: %s needs a file\n", argv[i]); return 2; }
            s = ct_config_load_file(&cfg, argv[++i]);
        } else {
            s = ct_config_apply_override(&cfg, argv[i]);
        }
    }
    if (s == CT_OK) s = ct_config_validate(&cfg);
    if (s != CT_OK) {
        fprintf(stderr, "cetus train: %s\n", ct_last_error());
        return 2;
    }
    ct_runtime_init(cfg.runtime.threads, cfg.runtime.pin);
    ct_trainer *tr;
    s = ct_trainer_create(&tr, &cfg);
    if (s == CT_OK) {
        s = ct_trainer_run(tr);
        ct_trainer_free(tr);
    }
    if (s != CT_OK) {
        fprintf(stderr, "cetus train: error: %s\n", ct_last_error());
        return s == CT_EINVAL ? 2 : 1;
    }
    return 0;
}
