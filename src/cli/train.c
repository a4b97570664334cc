/* train.c: `cetus train [-c config.json] [key=value ...]`. */
#include "cli/cli.h"
#include "core/core.h"
#include "parallel/comm.h"
#include "train/trainer.h"
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

/* Threads per rank: all cores for one process; under an MPI launcher the cores are shared
 * among the node's ranks and threads are not pinned (ranks would pile onto core 0). */
static void start_threads(const ct_config *cfg) {
    if (!ct_launch_mpi()) { ct_runtime_init(cfg->runtime.threads, cfg->runtime.pin); return; }
    int threads = cfg->runtime.threads;
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (threads == 0) {
        ct_runtime_init(0, 0);
        int per_node = local ? atoi(local) : 1;
        threads = ct_runtime_threads() / (per_node > 0 ? per_node : 1);
        if (threads < 1) threads = 1;
    }
    ct_runtime_init(threads, 0);
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
        ct_launch_report("cetus train: ");
        return 2;
    }
    ct_layout want = {cfg.parallel.data, cfg.parallel.tensor, 1, cfg.parallel.expert};
    ct_world *world;
    if (ct_world_init(&world, &want) != CT_OK) {
        ct_launch_report("cetus train: ");
        return 2;
    }
    start_threads(&cfg);
    ct_trainer *tr;
    s = ct_trainer_create(&tr, &cfg, world);
    if (s == CT_OK) {
        s = ct_trainer_run(tr);
        ct_trainer_free(tr);
    }
    if (s != CT_OK && ct_world_size(world) > 1) { /* end every rank, with this one's message */
        char msg[1100];
        snprintf(msg, sizeof msg, "cetus train: error: %s", ct_last_error());
        ct_world_abort(world, s == CT_EINVAL ? 2 : 1, msg);
    }
    ct_world_free(world);
    if (s != CT_OK) {
        fprintf(stderr, "cetus train: error: %s\n", ct_last_error());
        return s == CT_EINVAL ? 2 : 1;
    }
    return 0;
}
