/* run.c: ct_run, the few-calls API of cetus.h: a config built from settings and a layout,
 * then the whole of `cetus train` on it: the MPI world, threads per rank, the trainer, and
 * ending every rank on a failure. */
#include "core/core.h"
#include "parallel/comm.h"
#include "train/commands.h"
#include "train/config.h"
#include "train/pipeline.h"
#include "train/preempt.h"
#include "train/trainer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ct_run {
    ct_config cfg;
};

ct_status ct_run_create(ct_run **out) {
    ct_run *r = ct_calloc(sizeof *r, "a run");
    if (!r) return CT_ENOMEM;
    ct_config_defaults(&r->cfg);
    *out = r;
    return CT_OK;
}

void ct_run_free(ct_run *r) { ct_free(r); }

ct_status ct_run_set(ct_run *r, const char *key_value) { return ct_config_apply_override(&r->cfg, key_value); }

ct_status ct_run_load(ct_run *r, const char *json_path) { return ct_config_load_file(&r->cfg, json_path); }

ct_status ct_run_parallel(ct_run *r, ct_parallel p) {
    if (p.data < 0 || p.tensor < 0 || p.pipeline < 0 || p.expert < 0)
        return ct_fail(CT_EINVAL, "parallel layout: sizes must be >= 0 (0 = the default)");
    if (p.micro_batches < 0)
        return ct_fail(CT_EINVAL, "parallel.micro_batches = %d: must be >= 0", p.micro_batches);
    ct_schedule schedule;
    if (p.schedule) CT_TRY(ct_schedule_parse(p.schedule, &schedule));
    if (p.schedule && strlen(p.schedule) >= sizeof r->cfg.parallel.schedule)
        return ct_fail(CT_EINVAL, "parallel.schedule: too long");
    if (p.zero < 0 || p.zero > 3) return ct_fail(CT_EINVAL, "parallel.zero = %d: allowed 0, 1, 2 or 3", p.zero);
    r->cfg.parallel.data = p.data;
    r->cfg.parallel.tensor = p.tensor ? p.tensor : 1;
    r->cfg.parallel.expert = p.expert ? p.expert : 1;
    r->cfg.parallel.pipeline = p.pipeline ? p.pipeline : 1;
    r->cfg.parallel.micro_batches = p.micro_batches;
    if (p.schedule) snprintf(r->cfg.parallel.schedule, sizeof r->cfg.parallel.schedule, "%s", p.schedule);
    r->cfg.parallel.zero = p.zero;
    return CT_OK;
}

/* Threads per rank: all cores for one process; under an MPI launcher the cores are shared
 * among the node's ranks and threads are not pinned (ranks would pile onto core 0). */
static void start_threads(const ct_config *cfg) {
    if (!ct_launch_mpi()) {
        ct_runtime_init(cfg->runtime.threads, cfg->runtime.pin);
        return;
    }
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

/* Before a world exists: rank 0 prints (the others wait so mpirun shows it). */
static ct_status refused(ct_status s) {
    ct_launch_report("cetus: ");
    return s;
}

ct_status ct_run_train(ct_run *r) {
    const ct_config *cfg = &r->cfg;
    ct_status s = ct_config_validate(cfg);
    if (s != CT_OK) return refused(s);
    ct_layout want = {cfg->parallel.data, cfg->parallel.tensor, cfg->parallel.pipeline, cfg->parallel.expert};
    ct_world *world;
    if ((s = ct_world_create(&world, &want)) != CT_OK) return refused(s);
    CT_ASSERT(ct_world_set_timeout(world, cfg->parallel.timeout) == CT_OK); /* range checked by config */
    start_threads(cfg);
    ct_preempt_install(); /* a signal ends the run after a step, with a checkpoint */
    s = ct_train_run(cfg, world);
    ct_preempt_uninstall();
    if (s != CT_OK && ct_world_size(world) > 1) { /* end every rank, with this one's message */
        char msg[1100];
        snprintf(msg, sizeof msg, "error: %s", ct_last_error());
        ct_world_abort(world, s == CT_EINVAL ? 2 : 1, msg);
    }
    ct_world_free(world);
    if (s != CT_OK) fprintf(stderr, "cetus: error: %s\n", ct_last_error());
    return s;
}

void ct_run_report_refusal(const char *prefix) { ct_launch_report(prefix); }
