/* trainer.c: the training state and its transitions: build or resume, one optimizer step
 * with gradient accumulation, evaluation, and checkpoint save/restore. The trainer state in
 * a checkpoint is: step, AdamW moments and step count, data position, and the config. */
#include "core/core.h"
#include "model/model.h"
#include "data/loader.h"
#include "train/checkpoint.h"
#include "offload/policy.h"
#include "ops/backend.h"
#include "train/optim.h"
#include "train/multimodal.h"
#include "train/trainer_internal.h"
#include "train/hf.h"
#include "parallel/zero3.h"
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

static ct_status open_loaders(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    int B = c->train.batch_size, T = ct_config_train_seq_len(c);
    CT_TRY(ct_loader_open(&tr->train, c->data.dir, "train", B, T, (uint64_t)c->train.seed, 1));
    CT_TRY(ct_loader_open(&tr->val, c->data.dir, "val", B, T, (uint64_t)c->train.seed, 0));
    CT_TRY(ct_loader_check_vocab(tr->train, c->model.vocab_size));
    CT_TRY(ct_loader_check_vocab(tr->val, c->model.vocab_size));
    CT_TRY(ct_shard_tokenizer_read(c->data.dir, &tr->tokenizer));
    int V = ct_loader_vocab_size(tr->train);
    if (tr->tokenizer.file[0] && c->model.vocab_size > V && ct_trainer_is_leader(tr))
        ct_log("note: model.vocab_size = %d, but %s's tokenizer %s has %d tokens: the %d rows past them are "
               "never a target; model.vocab_size=%d saves their share of the head",
               c->model.vocab_size, c->data.dir, tr->tokenizer.name, V, c->model.vocab_size - V, V);
    return CT_OK;
}

/* The checkpoint sees whole tensors under their one-process names; the stream moves each
 * between them and this rank's pieces. */
static ct_status build_ckpt_view(ct_trainer *tr) {
    CT_TRY(ct_ckpt_stream_create(&tr->stream, &tr->cfg, tr->world, tr->model, tr->dp, tr->opt));
    const ct_model *table = tr->stream.table;
    if (!(tr->ckpt_tensors = ct_calloc(ct_model_num_tensors(table) * sizeof *tr->ckpt_tensors,
                                       "the checkpoint table")))
        return CT_ENOMEM;
    ct_model_ckpt_table(table, tr->ckpt_tensors);
    tr->view = (ct_ckpt_view){.tensors = tr->ckpt_tensors,
                              .n_tensors = ct_model_num_tensors(table),
                              .num_params = ct_model_num_params_full(table),
                              .io = ct_ckpt_stream_io(&tr->stream),
                              .moments = 1};
    return CT_OK;
}

/* A count the trainer state stores as a decimal string, read whole and within max. */
static ct_status json_u64(const cJSON *obj, const char *key, uint64_t max, uint64_t *out, const char *where) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(it))
        return ct_fail(CT_ECORRUPT, "%s/trainer.json: trainer state lacks '%s'", where, key);
    if (!ct_parse_u64(it->valuestring, max, out))
        return ct_fail(CT_ECORRUPT,
                       "%s/trainer.json: trainer state '%s' = \"%s\" is not a whole number in [0, %" PRIu64 "]",
                       where, key, it->valuestring, max);
    return CT_OK;
}

/* Names the first model or MoE key whose stored value differs from cfg's in out (*found = 1),
 * or sets *found = 0. */
static ct_status first_model_difference(const ct_config *stored, const ct_config *cfg, char *out, size_t cap,
                                        int *found) {
    cJSON *a = ct_config_json(stored), *b = a ? ct_config_json(cfg) : NULL;
    static const char *sections[] = {"model", "moe", "image"};
    ct_status s = b ? CT_OK : ct_fail(CT_ENOMEM, "out of memory comparing the stored config");
    *found = 0;
    for (int k = 0; k < 3 && s == CT_OK && !*found; k++) {
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(a, sections[k]);
        for (const cJSON *it = sa ? sa->child : NULL; it && !*found; it = it->next) {
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b,
                                                                                                   sections[k]),
                                                                  it->string);
            if (other && cJSON_Compare(it, other, 1)) continue;
            char *va = cJSON_PrintUnformatted(it), *vb = other ? cJSON_PrintUnformatted(other) : NULL;
            snprintf(out, cap, "%s.%s = %s, but the config asks for %s", sections[k], it->string, va ? va : "?",
                     vb ? vb : "?");
            cJSON_free(va);
            cJSON_free(vb);
            *found = 1;
        }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return s;
}

/* The stored config must describe the same model. */
static ct_status check_same_model(const ct_trainer *tr, const cJSON *state, const char *where) {
    ct_config stored;
    ct_config_defaults(&stored);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(state, "config");
    char *text = cfg ? cJSON_PrintUnformatted(cfg) : NULL;
    ct_status s = text  ? ct_config_apply_json(&stored, text, where)
                  : cfg ? ct_fail(CT_ENOMEM, "%s: out of memory reading the config", where)
                        : ct_fail(CT_ECORRUPT, "%s: no config", where);
    cJSON_free(text);
    CT_TRY(s);
    char diff[512];
    int differs;
    CT_TRY(first_model_difference(&stored, &tr->cfg, diff, sizeof diff, &differs));
    if (differs)
        return ct_fail(CT_EINVAL,
                       "%s holds a model with %s; use the checkpoint's settings, another "
                       "run.dir, or run.resume=false",
                       where, diff);
    if (stored.train.batch_size != tr->cfg.train.batch_size || stored.train.seed != tr->cfg.train.seed)
        ct_log("warning: %s was trained with batch_size %d and seed %lld; continuing with %d and %lld "
               "changes the data order",
               where, stored.train.batch_size, stored.train.seed, tr->cfg.train.batch_size, tr->cfg.train.seed);
    return CT_OK;
}

/* A checkpoint continues only on shards of the tokenizer it was trained with. */
static ct_status check_same_tokenizer(const ct_trainer *tr, const cJSON *state, const char *where) {
    ct_shard_tokenizer was;
    char a[128], b[128];
    CT_TRY(ct_shard_tokenizer_from_state(state, where, &was));
    if (ct_shard_tokenizer_same(&was, &tr->tokenizer)) return CT_OK;
    return ct_fail(CT_EINVAL,
                   "%s was trained on ids of the tokenizer %s, but data.dir %s holds ids of %s: prepare the "
                   "data with the checkpoint's tokenizer, or start a new run.dir",
                   where, ct_shard_tokenizer_describe(&was, a, sizeof a), tr->cfg.data.dir,
                   ct_shard_tokenizer_describe(&tr->tokenizer, b, sizeof b));
}

static ct_status resume(ct_trainer *tr, const char *dir) {
    cJSON *state = NULL;
    CT_TRY(ct_checkpoint_read_state(dir, &state)); /* the model shape first, for a clear message */
    ct_status s = check_same_model(tr, state, dir);
    if (s == CT_OK) s = check_same_tokenizer(tr, state, dir);
    cJSON_Delete(state);
    CT_TRY(s);
    tr->stream.put_status = CT_OK;
    CT_TRY(ct_checkpoint_load(dir, &tr->view, &state)); /* each rank takes its pieces */
    if (tr->stream.put_status != CT_OK) {
        cJSON_Delete(state);
        return tr->stream.put_status;
    }
    ct_status settled = ct_model_offload_settle(tr->model);
    if (settled == CT_OK && tr->cfg.parallel.zero == 3) settled = ct_dp_gather_params(tr->dp); /* new slices */
    if (settled != CT_OK) {
        cJSON_Delete(state);
        return settled;
    }
    uint64_t step = 0, adam_t = 0, epoch = 0, index = 0;
    /* steps fit an int64; an epoch past 2^32 is not one a run reaches */
    s = json_u64(state, "step", INT64_MAX, &step, dir);
    if (s == CT_OK) s = json_u64(state, "adam_steps", INT64_MAX, &adam_t, dir);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(state, "data");
    if (s == CT_OK) s = json_u64(data, "epoch", UINT32_MAX, &epoch, dir);
    if (s == CT_OK) s = json_u64(data, "index", INT64_MAX, &index, dir);
    if (s == CT_OK) s = ct_mm_load_state(tr, state, dir);
    cJSON_Delete(state);
    CT_TRY(s);
    tr->step = (int64_t)step;
    ct_adamw_set_steps(tr->opt, (int64_t)adam_t);
    CT_TRY(ct_loader_set_pos(tr->train, (ct_loader_pos){epoch, index}));
    ct_log("resumed from %s at step %" PRId64, dir, tr->step);
    return CT_OK;
}

static ct_status check_batch_split(const ct_config *cfg, int ranks) {
    if (cfg->train.batch_size % ranks != 0)
        return ct_fail(CT_EINVAL,
                       "train.batch_size = %d is not divisible by the %d data-parallel ranks "
                       "(parallel.data): each rank takes an equal share of every micro-batch; use a "
                       "multiple of %d",
                       cfg->train.batch_size, ranks, ranks);
    return CT_OK;
}

static ct_status check_micro_batches(const ct_config *cfg, int rows) {
    int m = ct_config_micro_batches(cfg, rows);
    if (cfg->parallel.pipeline == 1 || rows % m == 0) return CT_OK;
    char fits[256] = "";
    size_t used = 0;
    for (int d = 1; d <= rows && used < sizeof fits - 16; d++)
        if (rows % d == 0)
            used += (size_t)snprintf(fits + used, sizeof fits - used, "%s%d", used ? ", " : "", d);
    return ct_fail(CT_EINVAL,
                   "parallel.micro_batches = %d does not divide the %d rows each data rank takes of "
                   "train.batch_size = %d; micro-batch counts that fit: %s",
                   m, rows, cfg->train.batch_size, fits);
}

static ct_status offload_model(ct_trainer *tr);

/* ZeRO 3: the compute tier counts this rank's slices and the units in use, not the whole
 * parameter and gradient buffers (tr->sharded_bytes, which the offload policy reads too). */
static ct_status shard_model(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    int ranks = ct_world_axis_size(tr->world, CT_AXIS_DATA);
    if (c->parallel.zero != 3 || ranks == 1) return CT_OK;
    int experts = c->parallel.expert > 1 && c->model.moe_every > 0
                      ? ct_world_axis_size(tr->world, CT_AXIS_EXPERT_DATA)
                      : ranks;
    size_t params, grads;
    ct_zero3_resident(tr->model, ranks, experts, c->parallel.zero_keep, c->train.grad_accum, &params, &grads);
    tr->sharded_bytes = (params + grads) * sizeof(float);
    return ct_model_set_sharded(tr->model, params, grads);
}

static ct_status build_model(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    int blocks[CT_MAX_STAGES];
    CT_TRY(ct_config_stage_blocks(c, blocks));
    CT_TRY(ct_model_create_staged(&tr->model, &c->model, (uint64_t)c->train.seed, tr->world, blocks));
    int *layers = ct_alloc((size_t)c->model.n_layer * sizeof *layers, "the recomputation mask");
    if (!layers) return CT_ENOMEM;
    ct_status s = ct_config_recompute_layers(c, layers);
    if (s == CT_OK) s = ct_model_set_recompute(tr->model, layers);
    ct_free(layers);
    if (s == CT_OK) s = shard_model(tr);
    return s == CT_OK ? offload_model(tr) : s;
}

/* The pipeline schedule, after data parallelism (it chains the model's progress hook). */
static ct_status build_pipeline(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    if (ct_model_stages(tr->model) == 1) return CT_OK;
    ct_schedule schedule;
    CT_TRY(ct_schedule_parse(c->parallel.schedule, &schedule));
    if (!(tr->pipe_busy = ct_calloc((size_t)ct_model_stages(tr->model) * sizeof *tr->pipe_busy,
                                    "the pipeline stage times")))
        return CT_ENOMEM;
    return ct_pipe_create(&tr->pipe, tr->world, tr->model, schedule, ct_config_micro_batches(c, tr->rows),
                          tr->rows, ct_config_train_seq_len(c));
}

/* offload.dir, resolved. */
static void offload_dir(const ct_config *c, char *dir, size_t cap) {
    if (strcmp(c->offload.dir, "auto")) snprintf(dir, cap, "%s", c->offload.dir);
    else
        snprintf(dir, cap, "%s/offload", c->run.dir);
}

/* Activation bytes the compute tier holds in a step, and a margin for the buffers beside
 * them (ring scratch, losses), for the automatic policy. */
static size_t fixed_bytes(const ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    int P = ct_model_stages(tr->model), s = ct_model_stage(tr->model), micro = 1, slots = 1;
    if (P > 1) {
        micro = ct_config_micro_batches(c, tr->rows);
        slots = !strcmp(c->parallel.schedule, "gpipe") || P - s > micro ? micro : P - s;
    }
    return ct_model_acts_bytes_for(tr->model, tr->rows / micro, ct_config_train_seq_len(c)) * (size_t)slots +
           ((size_t)4 << 20);
}

/* Where each unit's weights, gradients and moments live: as offload.params / .grads /
 * .optimizer say, or as the automatic policy chooses for memory.compute_budget. */
static ct_status plan_offload(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    int L = c->model.n_layer;
    size_t units = (size_t)L + 2;
    if (!(tr->plan = ct_alloc(3 * units * sizeof *tr->plan, "the offload plan"))) return CT_ENOMEM;
    ct_place *params = tr->plan, *grads = params + units, *opt = grads + units;
    if (strcmp(c->offload.policy, "auto")) {
        CT_TRY(ct_offload_parse(c->offload.params, "offload.params", L, 1, params));
        CT_TRY(ct_offload_parse(c->offload.grads, "offload.grads", L, 1, grads));
        return ct_offload_parse(c->offload.optimizer, "offload.optimizer", L, 0, opt);
    }
    ct_place tier = !strcmp(c->offload.tier, "disk") ? CT_PLACE_DISK : CT_PLACE_HOST;
    int shards = c->parallel.zero
                     ? ct_world_axis_size(tr->world, c->parallel.expert > 1 && c->model.moe_every > 0
                                                         ? CT_AXIS_EXPERT_DATA
                                                         : CT_AXIS_DATA)
                     : 1;
    size_t budget = ct_tier_budget() ? ct_tier_budget() : SIZE_MAX;
    CT_TRY(ct_offload_auto(tr->model, budget, fixed_bytes(tr), tr->sharded_bytes, 1.0 / shards, tier, params,
                           grads, opt, &tr->predicted_peak));
    if (c->parallel.zero == 2)
        for (size_t u = 0; u < units; u++) grads[u] = CT_PLACE_COMPUTE; /* ZeRO 2 shards them already */
    return CT_OK;
}

/* Places the blocks' parameters and gradients as planned. */
static ct_status offload_model(ct_trainer *tr) {
    const ct_config *c = &tr->cfg;
    size_t units = (size_t)c->model.n_layer + 2;
    CT_TRY(plan_offload(tr));
    char dir[1100];
    offload_dir(c, dir, sizeof dir);
    return ct_model_set_offload(tr->model, tr->plan, tr->plan + units, dir, ct_world_rank(tr->world));
}

/* Bytes of the disk-placed ranges inside the owned ranges, for m and v. */
static size_t disk_bytes(const ct_place_range *owned, int n_owned, const ct_place_range *ranges, int count) {
    size_t disk = 0;
    for (int k = 0; k < n_owned; k++) {
        size_t lo = owned[k].lo, hi = lo + owned[k].n;
        for (int i = 0; i < count; i++) {
            size_t a = ranges[i].lo > lo ? ranges[i].lo : lo,
                   e = ranges[i].lo + ranges[i].n < hi ? ranges[i].lo + ranges[i].n : hi;
            if (ranges[i].place == CT_PLACE_DISK && e > a) disk += 2 * (e - a) * sizeof(float);
        }
    }
    return disk;
}

/* The optimizer for this rank's shard (ranges owned [n_owned]), its moments placed as
 * offload.optimizer says (disk-placed ones in a store file under offload.dir). */
static ct_status build_optimizer(ct_trainer *tr, const ct_place_range *owned, int n_owned) {
    const ct_config *c = &tr->cfg;
    int L = c->model.n_layer;
    const ct_place *units = tr->plan + 2 * ((size_t)L + 2);
    ct_place_range *ranges = ct_alloc(((size_t)L + 2) * sizeof *ranges, "the optimizer's placement");
    ct_status s = ranges ? CT_OK : CT_ENOMEM;
    int count = s == CT_OK ? ct_offload_ranges(tr->model, units, ranges) : 0;
    size_t disk = s == CT_OK ? disk_bytes(owned, n_owned, ranges, count) : 0;
    if (s == CT_OK && disk) {
        char dir[1100];
        offload_dir(c, dir, sizeof dir);
        s = ct_store_open(&tr->store, dir, ct_world_rank(tr->world), disk);
    }
    if (s == CT_OK) s = ct_adamw_create_owned(&tr->opt, owned, n_owned, ranges, count, tr->store);
    ct_free(ranges);
    return s;
}

static ct_status build_parallel(ct_trainer *tr) {
    ct_overlap overlap;
    CT_TRY(ct_overlap_parse(tr->cfg.parallel.overlap, &overlap));
    CT_TRY(ct_dp_create(&tr->dp, tr->world, tr->model, tr->cfg.parallel.zero, tr->cfg.parallel.zero_keep,
                        overlap));
    ct_place_range *owned = ct_alloc((size_t)ct_dp_max_owned_ranges(tr->dp) * sizeof *owned,
                                     "the optimizer's shard");
    if (!owned) return CT_ENOMEM;
    ct_status s = build_optimizer(tr, owned, ct_dp_owned_ranges(tr->dp, owned));
    ct_free(owned);
    return s;
}

int ct_trainer_is_leader(const ct_trainer *tr) { return ct_world_rank(tr->world) == 0; }

ct_status ct_trainer_create(ct_trainer **out, const ct_config *cfg, ct_world *world) {
    CT_TRY(ct_config_validate(cfg));
    CT_TRY(ct_model_check_fits(cfg, "the config"));
    int ranks = ct_world_axis_size(world, CT_AXIS_DATA);
    CT_TRY(check_batch_split(cfg, ranks));
    CT_TRY(check_micro_batches(cfg, cfg->train.batch_size / ranks));
    size_t budget;
    CT_TRY(ct_config_compute_budget(cfg, &budget));
    ct_tier_set_budget(budget);
    CT_TRY(ct_backend_select(cfg->runtime.backend));
    CT_TRY(ct_gemm_configure(cfg->runtime.gemm, cfg->train.precision));
    ct_trainer *tr = ct_calloc(sizeof *tr, "the trainer");
    if (!tr) return CT_ENOMEM;
    tr->cfg = *cfg;
    tr->world = world;
    ct_loss_guard_init(&tr->guard, cfg, ct_world_rank(world) == 0);
    tr->rows = cfg->train.batch_size / ranks;
    tr->row0 = ct_world_coord(world, CT_AXIS_DATA) * tr->rows;
    snprintf(tr->ckpt_root, sizeof tr->ckpt_root, "%s/ckpt", cfg->run.dir);
    snprintf(tr->ckpt_prefix, sizeof tr->ckpt_prefix, "step_");
    ct_status s = open_loaders(tr);
    if (s == CT_OK) s = ct_mm_open(tr);
    if (s == CT_OK) s = build_model(tr);
    if (s == CT_OK) s = build_parallel(tr);
    if (s == CT_OK) s = build_pipeline(tr);
    if (s == CT_OK) s = build_ckpt_view(tr);
    if (s == CT_OK) {
        char latest[1024];
        int found = 0;
        if (cfg->run.resume)
            s = ct_checkpoint_find_resume(tr->ckpt_root, ct_trainer_is_leader(tr), latest, sizeof latest,
                                          &found);
        if (s == CT_OK && found) s = resume(tr, latest);
    }
    if (s != CT_OK) {
        ct_trainer_free(tr);
        return s;
    }
    *out = tr;
    return CT_OK;
}

void ct_trainer_free(ct_trainer *tr) {
    if (!tr) return;
    ct_loader_close(tr->train);
    ct_loader_close(tr->val);
    ct_mm_close(tr);
    ct_adamw_free(tr->opt);
    ct_store_close(tr->store);
    ct_pipe_free(tr->pipe); /* gives the progress hook back to the data parallelism */
    ct_dp_free(tr->dp);
    ct_model_free(tr->model);
    ct_ckpt_stream_free(&tr->stream);
    ct_free(tr->ckpt_tensors);
    ct_free(tr->pipe_busy);
    ct_free(tr->plan);
    ct_free(tr->inputs);
    ct_free(tr);
}

static ct_status ensure_batch_buffers(ct_trainer *tr) {
    if (tr->inputs) return CT_OK;
    size_t n = (size_t)tr->rows * ct_config_train_seq_len(&tr->cfg);
    tr->inputs = ct_alloc(2 * n * sizeof(int32_t), "batch buffers");
    if (!tr->inputs) return CT_ENOMEM;
    tr->targets = tr->inputs + n;
    return CT_OK;
}

ct_status ct_trainer_step(ct_trainer *tr, ct_step_stats *st) {
    const ct_config *c = &tr->cfg;
    CT_TRY(ensure_batch_buffers(tr));
    double t0 = ct_now(), loss_sum = 0.0, aux_sum = 0.0, pipe_wait = 0.0, pipe_s = 0.0, kind_sum[2] = {0, 0};
    int kind_n[2] = {0, 0}; /* caption, text micro-batches */
    double positions = 0.0;
    uint64_t sent0[CT_AXIS_COUNT];
    for (int a = 0; a < CT_AXIS_COUNT; a++) sent0[a] = ct_world_counter(tr->world, a).bytes;
    int accum = c->train.grad_accum, T = ct_config_train_seq_len(c);
    float scale = 1.0f / (float)(accum * ct_dp_ranks(tr->dp)); /* the reduced sum is the mean */
    ct_loader_pos pos = ct_loader_get_pos(tr->train);          /* where the step's batch starts */
    ct_dp_zero_grad(tr->dp);
    for (int micro = 0; micro < accum; micro++) {
        float loss, aux;
        uint64_t noise_seed = ((uint64_t)c->train.seed * 0x2545F4914F6CDD1DULL) ^ ((uint64_t)tr->step << 20) ^
                              (uint64_t)micro;
        int text = ct_mm_is_text(tr, micro);
        if (!text) {
            CT_TRY(ct_mm_caption_micro(tr, scale, noise_seed, micro == accum - 1, &loss, &aux));
        } else if (tr->pipe) {
            CT_TRY(ct_loader_next_rows(tr->train, tr->row0, tr->rows, tr->inputs, tr->targets));
            double p0 = ct_now();
            CT_TRY(ct_pipe_train(tr->pipe, tr->inputs, tr->targets, scale, noise_seed, tr->row0, tr->dp,
                                 micro == accum - 1, &loss, &aux));
            pipe_s += ct_now() - p0;
            pipe_wait += ct_pipe_wait_s(tr->pipe);
        } else {
            CT_TRY(ct_loader_next_rows(tr->train, tr->row0, tr->rows, tr->inputs, tr->targets));
            ct_model_set_training(tr->model, 1, noise_seed ^ ((uint64_t)tr->row0 << 40));
            CT_TRY(ct_model_forward(tr->model, tr->inputs, tr->targets, NULL, tr->rows, T, &loss));
            ct_dp_arm(tr->dp, micro == accum - 1);
            CT_TRY(ct_model_backward(tr->model, scale));
            aux = ct_model_aux_loss(tr->model);
        }
        loss_sum += loss;
        aux_sum += aux;
        kind_sum[text] += loss;
        kind_n[text]++;
        positions += (double)c->train.batch_size * (text ? T : ct_caption_loader_seq_len(tr->cap_train));
    }
    ct_model_set_training(tr->model, 0, 0);
    CT_TRY(ct_dp_finish(tr->dp));
    if (tr->pipe) { /* every stage's computing time in the schedule, to the leader */
        float busy = (float)(pipe_s - pipe_wait);
        CT_TRY(ct_comm_allgather(tr->world, CT_AXIS_PIPELINE, &busy, tr->pipe_busy, 1));
    }
    float loss = (float)(loss_sum / accum), aux = (float)(aux_sum / accum), kind_loss[2];
    CT_TRY(ct_dp_mean(tr->dp, &loss));
    CT_TRY(ct_dp_mean(tr->dp, &aux));
    for (int k = 0; k < 2; k++) { /* every rank runs the same kinds: the means pair up */
        kind_loss[k] = kind_n[k] ? (float)(kind_sum[k] / kind_n[k]) : NAN;
        if (kind_n[k]) CT_TRY(ct_dp_mean(tr->dp, &kind_loss[k]));
    }
    ct_lr_schedule sched = {(float)c->train.lr, (float)c->train.lr_min, c->train.warmup_steps, c->train.steps};
    ct_adamw_config ac = {(float)c->train.beta1, (float)c->train.beta2, (float)c->train.eps,
                          (float)c->train.weight_decay, (float)c->train.grad_clip};
    float lr = ct_lr_at(&sched, tr->step);
    float norm;
    CT_TRY(ct_dp_grad_norm(tr->dp, &norm));
    ct_guard_step judged = {tr->step, loss, {kind_loss[0], kind_loss[1]}, norm, pos, c->train.batch_size};
    int skip;
    CT_TRY(ct_loss_guard_judge(&tr->guard, &judged, &skip));
    loss = judged.loss;
    if (!skip) CT_TRY(ct_adamw_update(tr->opt, tr->model, lr, ct_clip_scale(norm, &ac), &ac));
    CT_TRY(ct_dp_gather_params(tr->dp));
    CT_TRY(ct_model_offload_settle(tr->model));
    tr->step++;
    double bytes = 0.0, expert_bytes = 0.0; /* every axis but the world's (checkpoint checks) */
    for (int a = 0; a < CT_AXIS_WORLD; a++) {
        double sent = (double)(ct_world_counter(tr->world, a).bytes - sent0[a]);
        bytes += sent;
        if (a == CT_AXIS_EXPERT) expert_bytes = sent;
    }
    if (st)
        *st = (ct_step_stats){loss,
                              aux,
                              lr,
                              norm,
                              kind_loss[0],
                              kind_loss[1],
                              positions,
                              ct_now() - t0,
                              bytes,
                              expert_bytes,
                              pipe_s,
                              tr->pipe ? tr->pipe_busy : NULL,
                              ct_model_stages(tr->model),
                              skip};
    return CT_OK;
}

ct_status ct_trainer_evaluate(ct_trainer *tr, int batches, ct_eval_result *out) {
    CT_TRY(ensure_batch_buffers(tr));
    uint64_t B = (uint64_t)tr->cfg.train.batch_size, W = ct_loader_num_windows(tr->val),
             T = (uint64_t)ct_config_train_seq_len(&tr->cfg);
    uint64_t fit = W / B; /* complete batches in the split */
    int whole = batches <= 0 || (uint64_t)batches >= fit;
    if (whole) batches = fit ? (int)fit : 1; /* fewer windows than a batch: they repeat */
    CT_TRY(ct_loader_spread(tr->val, (uint64_t)batches * B));
    double sum = 0.0;
    for (int n = 0; n < batches; n++) {
        float loss;
        CT_TRY(ct_loader_next_rows(tr->val, tr->row0, tr->rows, tr->inputs, tr->targets));
        if (tr->pipe) CT_TRY(ct_pipe_eval(tr->pipe, tr->inputs, tr->targets, &loss));
        else
            CT_TRY(ct_model_forward(tr->model, tr->inputs, tr->targets, NULL, tr->rows, (int)T, &loss));
        sum += loss;
    }
    uint64_t windows = (uint64_t)batches * B < W ? (uint64_t)batches * B : W;
    *out = (ct_eval_result){(float)(sum / batches), windows * T, W * T, batches, whole};
    return ct_dp_mean(tr->dp, &out->loss);
}

cJSON *ct_trainer_state_json(const ct_config *cfg, int64_t step, int64_t adam_steps, ct_loader_pos pos) {
    cJSON *st = cJSON_CreateObject(), *data = NULL, *config = NULL;
    char a[32], b[32], e[32], i[32];
    snprintf(a, sizeof a, "%" PRId64, step);
    snprintf(b, sizeof b, "%" PRId64, adam_steps);
    snprintf(e, sizeof e, "%" PRIu64, pos.epoch);
    snprintf(i, sizeof i, "%" PRIu64, pos.index);
    int ok = st && cJSON_AddStringToObject(st, "step", a) && cJSON_AddStringToObject(st, "adam_steps", b) &&
             (data = cJSON_AddObjectToObject(st, "data")) && cJSON_AddStringToObject(data, "epoch", e) &&
             cJSON_AddStringToObject(data, "index", i) && (config = ct_config_json(cfg)) &&
             cJSON_AddItemToObject(st, "config", config);
    if (ok) return st;
    cJSON_Delete(config); /* made, but not taken into st */
    cJSON_Delete(st);
    return NULL;
}

/* The trainer state for a checkpoint into *out. */
static ct_status trainer_state(const ct_trainer *tr, cJSON **out) {
    cJSON *st = ct_trainer_state_json(&tr->cfg, tr->step, ct_adamw_steps(tr->opt),
                                      ct_loader_get_pos(tr->train));
    cJSON *tok = st ? ct_shard_tokenizer_json(&tr->tokenizer) : NULL;
    if (tok) cJSON_AddItemToObject(st, "tokenizer", tok);
    if (!st || !tok || !ct_mm_save_state(tr, st)) {
        cJSON_Delete(st);
        return ct_fail(CT_ENOMEM, "out of memory building the trainer state");
    }
    *out = st;
    return CT_OK;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Removes one checkpoint directory (ct_checkpoint_remove: out of the way first). */
static void remove_checkpoint(const char *root, const char *name) {
    char path[2048];
    if (snprintf(path, sizeof path, "%s/%s", root, name) < (int)sizeof path) ct_checkpoint_remove(path);
}

/* Keeps the newest train.ckpt_keep checkpoints of this trainer's kind (names sort by step). */
static ct_status prune_checkpoints(const ct_trainer *tr) {
    DIR *d = opendir(tr->ckpt_root);
    if (!d) return CT_OK;
    char *names[1024];
    size_t n = 0;
    size_t k = strlen(tr->ckpt_prefix);
    ct_status s = CT_OK;
    for (struct dirent *e; s == CT_OK && n < 1024 && (e = readdir(d));) {
        if (strncmp(e->d_name, tr->ckpt_prefix, k) || strchr(e->d_name, '.')) continue;
        if ((names[n] = ct_strdup(e->d_name, "checkpoint names"))) n++;
        else
            s = CT_ENOMEM;
    }
    closedir(d);
    if (s == CT_OK) qsort(names, n, sizeof names[0], compare_names);
    for (size_t i = 0; i < n; i++) {
        if (s == CT_OK && i + (size_t)tr->cfg.train.ckpt_keep < n) remove_checkpoint(tr->ckpt_root, names[i]);
        ct_free(names[i]);
    }
    return s;
}

ct_status ct_trainer_save(ct_trainer *tr) {
    char dir[1100];
    ct_trainer_ckpt_dir(tr, tr->step, dir, sizeof dir);
    ct_status s = CT_OK;
    if (ct_trainer_is_leader(tr) && (s = ct_mkdirs(tr->ckpt_root)) == CT_OK) {
        /* the others take part in each tensor's gathers */
        cJSON *state = NULL;
        s = trainer_state(tr, &state);
        if (s == CT_OK)
            s = ct_hf_checkpoint_save(dir, &tr->view, state, &tr->cfg.model,
                                      tr->tokenizer.file[0] ? tr->tokenizer.file : NULL);
        cJSON_Delete(state);
        if (s == CT_OK) s = prune_checkpoints(tr);
    }
    ct_status g = ct_ckpt_stream_finish(&tr->stream, 1);
    if (g == CT_OK) g = ct_model_offload_settle(tr->model);
    return ct_dp_agree(tr->dp, s != CT_OK ? s : g, "saving a checkpoint");
}

int64_t ct_trainer_step_index(const ct_trainer *tr) { return tr->step; }

void ct_trainer_ckpt_dir(const ct_trainer *tr, int64_t step, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s%08" PRId64, tr->ckpt_root, tr->ckpt_prefix, step);
}

void ct_trainer_offload_times(const ct_trainer *tr, double *busy_s, double *wait_s) {
    double b = 0.0, w = 0.0;
    ct_model_offload_times(tr->model, busy_s, wait_s);
    if (tr->store) ct_store_times(tr->store, &b, &w);
    *busy_s += b;
    *wait_s += w;
}

size_t ct_trainer_acts_bytes(const ct_trainer *tr) {
    return tr->pipe ? ct_pipe_acts_bytes(tr->pipe) : ct_model_acts_bytes(tr->model);
}
ct_model *ct_trainer_model(ct_trainer *tr) { return tr->model; }
