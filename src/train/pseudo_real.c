/* pseudo_real.c: ct_train_run, the whole of `cetus train` on a world. Without delink.step it
 * is one trainer. With it, Pseudo-to-Real in one run: the shared-weight (pseudo) model
 * trains until delink.step, saving as ckpt/pseudo_step_N; at that step its checkpoint is
 * delinked into ckpt/step_N, the real model's, from which a new trainer resumes and trains
 * to train.steps. Every phase resumes: a run directory whose latest checkpoint is the real
 * model's goes straight to the real phase. */
#include "core/core.h"
#include "parallel/comm.h"
#include "train/commands.h"
#include "train/trainer.h"
#include "train/trainer_internal.h"
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

static ct_status run_trainer(const ct_config *cfg, ct_world *world) {
    ct_trainer *tr;
    CT_TRY(ct_trainer_create(&tr, cfg, world));
    ct_status s = ct_trainer_run(tr);
    ct_trainer_free(tr);
    return s;
}

/* *real = 1 when run.dir's latest checkpoint (resumed from) holds a model without sharing.
 * A checkpoint that cannot be read is an error here, as it is to the trainer resuming it. */
static ct_status latest_is_real(const ct_config *cfg, int *real) {
    char root[1100], latest[1100];
    *real = 0;
    snprintf(root, sizeof root, "%s/ckpt", cfg->run.dir);
    int found = 0;
    if (!cfg->run.resume) return CT_OK;
    CT_TRY(ct_checkpoint_find_resume(root, 0, latest, sizeof latest, &found));
    if (!found) return CT_OK;
    ct_config stored;
    CT_TRY(ct_checkpoint_read_config(latest, &stored));
    *real = stored.model.share_layers == 0;
    return CT_OK;
}

/* The pseudo phase up to delink.step; *dir gets its checkpoint there (empty if the run
 * stopped before, as run.stop_at_step asks). */
static ct_status run_pseudo(const ct_config *cfg, ct_world *world, char *dir, size_t cap) {
    ct_trainer *tr;
    dir[0] = 0;
    CT_TRY(ct_trainer_create(&tr, cfg, world));
    snprintf(tr->ckpt_prefix, sizeof tr->ckpt_prefix, "pseudo_step_");
    tr->stop_step = cfg->delink.step;
    ct_status s = ct_trainer_run(tr);
    if (s == CT_OK && tr->step >= cfg->delink.step) {
        ct_trainer_ckpt_dir(tr, tr->step, dir, cap);
        if (access(dir, F_OK) != 0) s = ct_trainer_save(tr); /* resumed at the step: saved before */
    }
    ct_trainer_free(tr);
    return s;
}

/* The switch, on the leader: the pseudo checkpoint delinked into the real one. */
static ct_status delink(const ct_config *cfg, const ct_config *real, const char *pseudo_dir) {
    char out[1200];
    const char *slash = strrchr(pseudo_dir, '/');
    snprintf(out, sizeof out, "%.*s/%s", (int)(slash - pseudo_dir), pseudo_dir, slash + 1 + strlen("pseudo_"));
    double t0 = ct_now();
    CT_TRY(ct_delink_checkpoint(pseudo_dir, out, cfg->delink.layers, cfg->delink.optimizer));
    printf(
        "delink: %d blocks sharing %d set%s of weights became %d independent blocks (AdamW state %s) in %.1fs: "
        "%s -> %s\n",
        cfg->model.n_layer, ct_model_unique_blocks(&cfg->model),
        ct_model_unique_blocks(&cfg->model) == 1 ? "" : "s", real->model.n_layer,
        !strcmp(cfg->delink.optimizer, "reset") ? "reset" : "carried", ct_now() - t0, pseudo_dir, out);
    fflush(stdout);
    return CT_OK;
}

ct_status ct_train_run(const ct_config *cfg, ct_world *world) {
    if (cfg->delink.step == 0) return run_trainer(cfg, world);
    ct_config real = *cfg;
    CT_TRY(ct_model_delink_config(&cfg->model, cfg->delink.layers, &real.model));
    real.delink.step = real.delink.layers = 0;
    real.run.resume = 1; /* from the delinked checkpoint */
    int real_phase;
    CT_TRY(latest_is_real(cfg, &real_phase));
    if (!real_phase) {
        char dir[1200];
        CT_TRY(run_pseudo(cfg, world, dir, sizeof dir));
        if (!dir[0]) return CT_OK; /* stopped before the switch */
        ct_status s = ct_world_rank(world) == 0 ? delink(cfg, &real, dir) : CT_OK;
        CT_TRY(ct_world_agree(world, s, "delinking"));
    }
    return run_trainer(&real, world);
}
