/* config.c: the table of configuration keys and the JSON / key=value readers over it. */
#include "core/core.h"
#include "model/model.h"
#include "model/moe.h"
#include "train/config.h"
#include "parallel/dp.h"
#include "parallel/zero3.h"
#include "offload/policy.h"
#include "ops/backend.h"
#include "train/pipeline.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

typedef enum { K_INT, K_I64, K_FLOAT, K_F32, K_BOOL, K_STR, K_ROUTING, K_SHARE } key_type;

typedef struct key_def {
    const char *name;
    key_type type;
    size_t offset;
    double min, max; /* inclusive range for numbers */
    const char *def; /* default, as text */
    const char *help;
} key_def;

#define F(field) offsetof(ct_config, field)
static const key_def keys[] = {
    {"model.n_layer", K_INT, F(model.n_layer), 1, 4096, "4", "decoder blocks"},
    {"model.d_model", K_INT, F(model.d_model), 1, 1 << 16, "256", "channels"},
    {"model.n_head", K_INT, F(model.n_head), 1, 4096, "4", "attention heads (must divide d_model)"},
    {"model.seq_len", K_INT, F(model.seq_len), 1, 1 << 20, "128", "context length (position table size)"},
    {"model.vocab_size", K_INT, F(model.vocab_size), 1, 1 << 24, "50257", "vocabulary size (GPT-2 BPE: 50257)"},
    {"model.moe_every", K_INT, F(model.moe_every), 0, 4096, "0",
     "0: dense; n: every n-th block's feed-forward is MoE (blocks n-1, 2n-1, ...)"},
    {"model.share_layers", K_SHARE, F(model.share_layers), 0, 4096, "none",
     "cross-layer weight sharing (a pseudo model for Pseudo-to-Real): none, all (one set of block weights), or g: groups of g consecutive blocks share one set per kind (dense, MoE)"},
    {"image.patch", K_INT, F(model.image.patch), 0, 4096, "0",
     "multimodal: pixels per side of an image patch (0 = text only)"},
    {"image.height", K_INT, F(model.image.height), 0, 1 << 16, "64",
     "multimodal: image canvas height in pixels (a multiple of image.patch)"},
    {"image.width", K_INT, F(model.image.width), 0, 1 << 16, "64",
     "multimodal: image canvas width in pixels (a multiple of image.patch)"},
    {"moe.n_experts", K_INT, F(model.moe.n_experts), 1, 1 << 20, "8", "experts per MoE layer"},
    {"moe.top_k", K_INT, F(model.moe.top_k), 0, 1 << 20, "2",
     "experts per token (prototype routing: number of groups)"},
    {"moe.routing", K_ROUTING, F(model.moe.routing), 0, 0, "top2",
     "top1 | top2 | topk | prototype (k groups, top-1 in each)"},
    {"moe.d_hidden", K_INT, F(model.moe.d_hidden), 1, 1 << 24, "1024", "hidden size of each expert's MLP"},
    {"moe.capacity_factor", K_F32, F(model.moe.capacity_factor), -1e9, 1e9, "1.25",
     "expert capacity = factor * tokens * k / experts; beyond it tokens are dropped"},
    {"moe.dropless", K_BOOL, F(model.moe.dropless), 0, 1, "false", "compute every routed token (no capacity)"},
    {"moe.aux_coef", K_F32, F(model.moe.aux_coef), -1e9, 1e9, "0.01", "weight of the load-balancing loss"},
    {"moe.z_coef", K_F32, F(model.moe.z_coef), -1e9, 1e9, "0.001", "weight of the router z-loss"},
    {"moe.router_noise", K_F32, F(model.moe.router_noise), -1e9, 1e9, "0",
     "std of Gaussian noise on router logits while training"},
    {"train.batch_size", K_INT, F(train.batch_size), 1, 1 << 20, "8", "micro-batch rows per forward/backward"},
    {"train.seq_len", K_INT, F(train.seq_len), 0, 1 << 20, "0",
     "training context length (0 = model.seq_len; at most model.seq_len)"},
    {"train.grad_accum", K_INT, F(train.grad_accum), 1, 1 << 20, "1",
     "micro-batches accumulated per optimizer step"},
    {"train.steps", K_INT, F(train.steps), 1, 1e9, "600", "optimizer steps in total"},
    {"train.precision", K_STR, F(train.precision), 0, 8, "fp32",
     "fp32, or bf16: the matrix products take bf16 inputs and accumulate in fp32 (oneDNN); weights, gradients, AdamW state, norms, softmax, loss and checkpoints stay fp32"},
    {"train.lr", K_FLOAT, F(train.lr), 1e-12, 10, "2e-3", "peak learning rate"},
    {"train.lr_min", K_FLOAT, F(train.lr_min), 0, 10, "1e-4", "learning rate at the end of the cosine decay"},
    {"train.warmup_steps", K_INT, F(train.warmup_steps), 0, 1e9, "30", "linear warmup steps"},
    {"train.weight_decay", K_FLOAT, F(train.weight_decay), 0, 10, "0.1",
     "AdamW decoupled weight decay (matrices and embeddings only)"},
    {"train.beta1", K_FLOAT, F(train.beta1), 0, 0.999999, "0.9", "AdamW beta1"},
    {"train.beta2", K_FLOAT, F(train.beta2), 0, 0.999999999, "0.95", "AdamW beta2"},
    {"train.eps", K_FLOAT, F(train.eps), 1e-30, 1, "1e-8", "AdamW epsilon"},
    {"train.grad_clip", K_FLOAT, F(train.grad_clip), 0, 1e9, "1.0",
     "clip the global gradient norm to this (0 = off)"},
    {"train.seed", K_I64, F(train.seed), 0, 9.2e18, "1337", "seed for initialisation and data order"},
    {"train.log_interval", K_INT, F(train.log_interval), 1, 1e9, "10",
     "steps between progress lines when not on a terminal"},
    {"train.eval_interval", K_INT, F(train.eval_interval), 0, 1e9, "100",
     "steps between validation evaluations (0 = only at the end)"},
    {"train.eval_batches", K_INT, F(train.eval_batches), 1, 1e9, "20",
     "validation micro-batches per evaluation, their windows spread evenly over the whole split"},
    {"train.final_eval", K_INT, F(train.final_eval), 0, 1, "1",
     "1: when the run reaches train.steps, evaluate on the whole validation split"},
    {"train.sample_interval", K_INT, F(train.sample_interval), 0, 1e9, "100",
     "steps between printed samples (0 = only at the end)"},
    {"train.sample_tokens", K_INT, F(train.sample_tokens), 0, 1e6, "64", "tokens per printed sample"},
    {"train.eval_captions", K_INT, F(train.eval_captions), 0, 1e6, "64",
     "multimodal: validation scenes captioned greedily at each evaluation for the exact-match rate"},
    {"train.ckpt_interval", K_INT, F(train.ckpt_interval), 0, 1e9, "200",
     "steps between checkpoints (0 = only at the end)"},
    {"train.ckpt_keep", K_INT, F(train.ckpt_keep), 1, 1e6, "2", "checkpoints kept in run.dir/ckpt"},
    {"train.on_nonfinite", K_STR, F(train.on_nonfinite), 0, 8, "stop",
     "a step whose loss or gradient norm is not finite, or whose loss explodes (train.loss_spike): stop (exit with an error) or skip (drop its update and go on; 8 in a row stop); either way the step and its batch's data position go to run.dir/anomalies.jsonl"},
    {"train.loss_spike", K_FLOAT, F(train.loss_spike), 0, 1e9, "3",
     "a step's loss explodes when over this multiple of the mean of the last 16 accepted losses of its kind of batch (text, caption; before any, ln(vocab_size), a uniform guess); 0 = only non-finite values count"},
    {"delink.step", K_INT, F(delink.step), 0, 1e9, "0",
     "Pseudo-to-Real: at this step the shared (pseudo) model is delinked into the real one with independent blocks and training goes on (0 = never; needs model.share_layers)"},
    {"delink.layers", K_INT, F(delink.layers), 0, 4096, "0",
     "blocks of the real model (0 = model.n_layer: the same function as the pseudo model)"},
    {"delink.optimizer", K_STR, F(delink.optimizer), 0, 16, "reset",
     "AdamW state at delinking: reset (zero moments, step count 0; docs/benchmarks.md compares the two) or carry (each block takes the shared weights' moments and step count)"},
    {"data.dir", K_STR, F(data.dir), 0, 0, "data/pydocs", "token shards written by `cetus prepare`"},
    {"data.scenes", K_STR, F(data.scenes), 0, 0, "none",
     "multimodal: captioned scene shards written by `cetus prepare --scenes` (none = text only); needs image.patch"},
    {"data.text_ratio", K_FLOAT, F(data.text_ratio), 0, 1, "0.25",
     "multimodal: the share of micro-batches that are text language modelling (the rest caption scenes), spread evenly over the run"},
    {"run.dir", K_STR, F(run.dir), 0, 0, "runs/default",
     "where checkpoints, metrics.jsonl and the TensorBoard events go"},
    {"run.resume", K_BOOL, F(run.resume), 0, 1, "true",
     "continue from the latest checkpoint in run.dir if one exists"},
    {"run.stop_at_step", K_INT, F(run.stop_at_step), 0, 1e9, "0",
     "end this invocation at this step with a checkpoint, to continue later (0 = run to train.steps)"},
    {"run.tensorboard", K_BOOL, F(run.tensorboard), 0, 1, "true",
     "also write the metrics as a TensorBoard event file, run.dir/events.out.tfevents.* (`tensorboard --logdir` on run.dir or its parent)"},
    {"parallel.data", K_INT, F(parallel.data), 0, 1 << 20, "0",
     "data-parallel ranks (0 = every rank of the mpirun world)"},
    {"parallel.tensor", K_INT, F(parallel.tensor), 1, 1 << 10, "1",
     "tensor-parallel ranks (Megatron: heads, MLP and vocabulary split); must divide n_head, 4*d_model and vocab_size"},
    {"parallel.expert", K_INT, F(parallel.expert), 1, 1 << 20, "1",
     "expert-parallel group: MoE experts spread over this many data ranks (must divide parallel.data and moe.n_experts)"},
    {"parallel.pipeline", K_INT, F(parallel.pipeline), 1, CT_MAX_STAGES, "1",
     "pipeline stages: the blocks are split into this many consecutive stages (at most model.n_layer)"},
    {"parallel.micro_batches", K_INT, F(parallel.micro_batches), 0, 16383, "0",
     "pipeline micro-batches per batch; must divide each data rank's rows (0 = the largest divisor up to 4 x pipeline)"},
    {"parallel.schedule", K_STR, F(parallel.schedule), 0, 16, "1f1b",
     "pipeline schedule: 1f1b (at most pipeline micro-batches in flight) or gpipe (all forwards, then all backwards)"},
    {"parallel.stages", K_STR, F(parallel.stages), 0, 256, "auto",
     "blocks per pipeline stage, e.g. \"5,3\" (auto = balanced by compute, the head counting on the last stage)"},
    {"parallel.overlap", K_STR, F(parallel.overlap), 0, 16, "auto",
     "how gradient reductions overlap backward: thread (a progress thread), poll (between products), auto (thread when the data ranks span several nodes or for ZeRO 2)"},
    {"parallel.timeout", K_FLOAT, F(parallel.timeout), 0, 1e7, "600",
     "seconds a rank may wait in a collective without progress before every rank is aborted, naming the late ranks (0 = never)"},
    {"parallel.zero", K_INT, F(parallel.zero), 0, 3, "0",
     "ZeRO stage: 0 replicated, 1 optimizer state sharded, 2 gradients too, 3 parameters too (each unit gathered just before its use)"},
    {"parallel.zero_keep", K_INT, F(parallel.zero_keep), 0, 1 << 20, "1",
     "ZeRO 3: the uses at the end of forward whose parameters stay gathered for backward, which starts with them (the head, then blocks from the last); 0 gathers every unit again in backward"},
    {"memory.compute_budget", K_STR, F(memory.compute_budget), 0, 32, "0",
     "bytes the compute tier (where the model computes) may hold, e.g. 512M or 2G (binary units; 0 = no budget); allocations past it fail with a message"},
    {"memory.recompute", K_STR, F(memory.recompute), 0, 256, "none",
     "blocks that keep only their input and recompute their activations in backward (bit-identical, one more forward of them): none, all, or ranges like 0-5,8"},
    {"offload.dir", K_STR, F(offload.dir), 0, 1024, "auto",
     "directory of the disk tier's files, one per rank (auto = run.dir/offload)"},
    {"offload.optimizer", K_STR, F(offload.optimizer), 0, 256, "none",
     "where the AdamW moments live: none (compute), host, disk, or per unit like all:host,0-11:disk (units: block ranges, embed, head, all); the update of offloaded moments runs on the host, unit by unit, overlapped with the disk I/O"},
    {"offload.params", K_STR, F(offload.params), 0, 256, "none",
     "where each block's parameters live: none (compute), host, disk, or per block like 0-5:disk,6-11:host; offloaded blocks compute from two compute slots the next block is prefetched into"},
    {"offload.grads", K_STR, F(offload.grads), 0, 256, "none",
     "where each block's gradients live (as offload.params); written home as soon as final"},
    {"offload.policy", K_STR, F(offload.policy), 0, 16, "manual",
     "manual (offload.params, .grads, .optimizer) or auto: the least offload that fits memory.compute_budget (optimizer state first, then blocks' weights and gradients, dense blocks before MoE); prints its choice and the predicted peak"},
    {"offload.tier", K_STR, F(offload.tier), 0, 16, "host",
     "where offload.policy = auto puts what it offloads: host or disk"},
    {"runtime.threads", K_INT, F(runtime.threads), 0, 4096, "0", "compute threads (0 = all cores)"},
    {"runtime.pin", K_BOOL, F(runtime.pin), 0, 1, "true", "pin compute thread i to core i"},
    {"runtime.backend", K_STR, F(runtime.backend), 0, 32, "cpu",
     "the backend the ops run on, by name: cpu (OpenBLAS + OpenMP) or another registered one; see docs/backends.md"},
    {"runtime.gemm", K_STR, F(runtime.gemm), 0, 16, "auto",
     "the CPU backend's matrix products: auto (each shape class on the faster of OpenBLAS and oneDNN, timed on this machine once and cached), openblas or onednn"},
};
#undef F
#define N_KEYS (sizeof keys / sizeof keys[0])

static const key_def *find_key(const char *name) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

static ct_status unknown_key(const char *name, const char *source) {
    /* suggest keys sharing the section */
    char section[64] = "";
    const char *dot = strchr(name, '.');
    if (dot && (size_t)(dot - name) < sizeof section) memcpy(section, name, (size_t)(dot - name));
    char hint[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < N_KEYS && used < sizeof hint - 64; i++)
        if (section[0] && strncmp(keys[i].name, section, strlen(section)) == 0 &&
            keys[i].name[strlen(section)] == '.')
            used += (size_t)snprintf(hint + used, sizeof hint - used, "%s%s", used ? ", " : "", keys[i].name);
    return ct_fail(CT_EINVAL, "%s: unknown key '%s'%s%s (see `cetus train --help`)", source, name,
                   used ? "; keys in this section: " : "", hint);
}

static ct_status set_number(ct_config *c, const key_def *k, double v, const char *text, const char *source) {
    void *dst = (char *)c + k->offset;
    if (!isfinite(v) || v < k->min || v > k->max)
        return ct_fail(CT_EINVAL, "%s: %s = %s is out of range: allowed %g to %g (%s)", source, k->name, text,
                       k->min, k->max, k->help);
    if ((k->type == K_INT || k->type == K_I64 || k->type == K_BOOL || k->type == K_SHARE) && v != floor(v))
        return ct_fail(CT_EINVAL, "%s: %s = %s must be a whole number (%s)", source, k->name, text, k->help);
    switch (k->type) {
    case K_INT:
    case K_BOOL:
    case K_SHARE: *(int *)dst = (int)v; break;
    case K_I64: *(long long *)dst = (long long)v; break;
    case K_FLOAT: *(double *)dst = v; break;
    case K_F32: *(float *)dst = (float)v; break;
    case K_STR:
    case K_ROUTING: break;
    }
    return CT_OK;
}

/* Sets key k from its textual form (defaults and key=value overrides). */
static ct_status set_from_text(ct_config *c, const key_def *k, const char *text, const char *source) {
    if (k->type == K_STR) {
        size_t n = strlen(text), cap = k->max > 0 ? (size_t)k->max : 512; /* the field's size */
        if (n == 0 || n >= cap)
            return ct_fail(CT_EINVAL, "%s: %s must be non-empty and under %zu bytes", source, k->name, cap);
        memcpy((char *)c + k->offset, text, n + 1);
        return CT_OK;
    }
    if (k->type == K_ROUTING) {
        ct_status s = ct_moe_routing_parse(text, (ct_moe_routing *)((char *)c + k->offset));
        return s == CT_OK ? CT_OK : ct_fail_context(s, "%s", source);
    }
    if (k->type == K_SHARE && (!strcmp(text, "all") || !strcmp(text, "none"))) {
        *(int *)((char *)c + k->offset) = !strcmp(text, "all") ? CT_SHARE_ALL : 0;
        return CT_OK;
    }
    if (k->type == K_BOOL) {
        int b = -1;
        if (!strcmp(text, "true") || !strcmp(text, "1")) b = 1;
        if (!strcmp(text, "false") || !strcmp(text, "0")) b = 0;
        if (b < 0)
            return ct_fail(CT_EINVAL, "%s: %s = '%s': expected true or false (%s)", source, k->name, text,
                           k->help);
        return set_number(c, k, b, text, source);
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno)
        return ct_fail(CT_EINVAL, "%s: %s = '%s' is not a number (%s)", source, k->name, text, k->help);
    return set_number(c, k, v, text, source);
}

void ct_config_defaults(ct_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_KEYS; i++) {
        ct_status s = set_from_text(c, &keys[i], keys[i].def, "defaults");
        CT_ASSERT(s == CT_OK);
    }
}

static ct_status apply_json_value(ct_config *c, const char *name, const cJSON *item, const char *source) {
    const key_def *k = find_key(name);
    if (!k) return unknown_key(name, source);
    if (k->type == K_SHARE && cJSON_IsString(item)) return set_from_text(c, k, item->valuestring, source);
    if (k->type == K_STR || k->type == K_ROUTING) {
        if (!cJSON_IsString(item))
            return ct_fail(CT_EINVAL, "%s: %s must be a string (%s)", source, name, k->help);
        return set_from_text(c, k, item->valuestring, source);
    }
    if (k->type == K_BOOL) {
        if (!cJSON_IsBool(item))
            return ct_fail(CT_EINVAL, "%s: %s must be true or false (%s)", source, name, k->help);
        return set_number(c, k, cJSON_IsTrue(item) ? 1 : 0, cJSON_IsTrue(item) ? "true" : "false", source);
    }
    if (!cJSON_IsNumber(item)) return ct_fail(CT_EINVAL, "%s: %s must be a number (%s)", source, name, k->help);
    char text[64];
    snprintf(text, sizeof text, "%.17g", item->valuedouble);
    return set_number(c, k, item->valuedouble, text, source);
}

static ct_status apply_object(ct_config *c, const cJSON *obj, const char *prefix, const char *source) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        char name[128];
        snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", it->string);
        if (cJSON_IsObject(it)) CT_TRY(apply_object(c, it, name, source));
        else
            CT_TRY(apply_json_value(c, name, it, source));
    }
    return CT_OK;
}

ct_status ct_config_apply_json(ct_config *c, const char *json, const char *source) {
    const char *err_at = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &err_at, 1);
    if (!root) {
        int line = 1;
        for (const char *p = json; err_at && p < err_at; p++) line += *p == '\n';
        return ct_fail(CT_EINVAL, "%s: malformed JSON near line %d", source, line);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ct_fail(CT_EINVAL, "%s: the configuration must be a JSON object", source);
    }
    ct_status s = apply_object(c, root, "", source);
    cJSON_Delete(root);
    return s;
}

ct_status ct_config_load_file(ct_config *c, const char *path) {
    char *text;
    CT_TRY(ct_read_file(path, &text, NULL));
    ct_status s = ct_config_apply_json(c, text, path);
    ct_free(text);
    return s;
}

ct_status ct_config_apply_override(ct_config *c, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return ct_fail(CT_EINVAL, "argument '%s': expected key=value, e.g. train.lr=3e-4", kv);
    char name[128];
    size_t n = (size_t)(eq - kv);
    if (n >= sizeof name) return ct_fail(CT_EINVAL, "argument '%s': key too long", kv);
    memcpy(name, kv, n);
    name[n] = 0;
    const key_def *k = find_key(name);
    if (!k) return unknown_key(name, "command line");
    return set_from_text(c, k, eq + 1, "command line");
}

/* Pseudo-to-Real: sharing and the switch to the real model. */
/* Multimodal: scenes need the image tower; pipeline stages do not take images yet. */
static ct_status check_scenes(const ct_config *c) {
    if (!strcmp(c->data.scenes, "none")) return CT_OK;
    if (c->model.image.patch == 0)
        return ct_fail(CT_EINVAL,
                       "data.scenes = %s needs a model with image input: set image.patch (e.g. 8) and "
                       "image.height / image.width to the scenes' canvas",
                       c->data.scenes);
    if (c->parallel.pipeline > 1)
        return ct_fail(CT_EINVAL,
                       "data.scenes with parallel.pipeline = %d: image input through pipeline stages is "
                       "not supported yet; use data and tensor parallelism",
                       c->parallel.pipeline);
    return CT_OK;
}

static ct_status check_delink(const ct_config *c) {
    int shared = c->model.share_layers != 0;
    if (shared && (strcmp(c->offload.params, "none") || strcmp(c->offload.grads, "none")))
        return ct_fail(CT_EINVAL,
                       "offload.params / offload.grads with model.share_layers: blocks sharing weights "
                       "use one copy, which stays on the compute tier; offload the optimizer state instead");
    if (strcmp(c->delink.optimizer, "carry") && strcmp(c->delink.optimizer, "reset"))
        return ct_fail(CT_EINVAL, "delink.optimizer = \"%s\": allowed \"carry\" or \"reset\"",
                       c->delink.optimizer);
    if (c->delink.step == 0) return CT_OK;
    if (!shared)
        return ct_fail(CT_EINVAL,
                       "delink.step = %d without model.share_layers: only a model whose blocks share "
                       "weights can be delinked; set model.share_layers (e.g. all) or delink.step = 0",
                       c->delink.step);
    if (c->delink.step >= c->train.steps)
        return ct_fail(CT_EINVAL, "delink.step = %d: must come before train.steps = %d", c->delink.step,
                       c->train.steps);
    ct_model_config real;
    ct_status s = ct_model_delink_config(&c->model, c->delink.layers, &real);
    if (s != CT_OK) return ct_fail_context(s, "delink.layers = %d", c->delink.layers);
    ct_config after = *c;
    after.model = real;
    return ct_config_stage_blocks(&after, (int[CT_MAX_STAGES]){0});
}

ct_status ct_config_validate(const ct_config *c) {
    CT_TRY(ct_model_config_check(&c->model));
    CT_TRY(ct_moe_config_check(&c->model.moe, c->model.d_model)); /* set keys are checked even if unused */
    if (c->train.seq_len > c->model.seq_len)
        return ct_fail(CT_EINVAL,
                       "train.seq_len = %d exceeds model.seq_len = %d, the size of the position "
                       "table; raise model.seq_len or lower train.seq_len",
                       c->train.seq_len, c->model.seq_len);
    if (c->train.lr_min > c->train.lr)
        return ct_fail(CT_EINVAL, "train.lr_min = %g exceeds train.lr = %g", c->train.lr_min, c->train.lr);
    ct_overlap overlap;
    CT_TRY(ct_overlap_parse(c->parallel.overlap, &overlap));
    ct_schedule schedule;
    CT_TRY(ct_schedule_parse(c->parallel.schedule, &schedule));
    int blocks[CT_MAX_STAGES];
    CT_TRY(ct_config_stage_blocks(c, blocks));
    size_t budget;
    CT_TRY(ct_config_compute_budget(c, &budget));
    ct_place *units = ct_alloc(((size_t)c->model.n_layer + 2) * sizeof *units, "checking the offload keys");
    if (!units) return CT_ENOMEM;
    ct_status us = ct_offload_parse(c->offload.optimizer, "offload.optimizer", c->model.n_layer, 0, units);
    int grads_off = 0;
    if (us == CT_OK) us = ct_offload_parse(c->offload.params, "offload.params", c->model.n_layer, 1, units);
    if (us == CT_OK) us = ct_offload_parse(c->offload.grads, "offload.grads", c->model.n_layer, 1, units);
    for (int u = 0; us == CT_OK && u < c->model.n_layer + 2; u++) grads_off |= units[u] != CT_PLACE_COMPUTE;
    ct_free(units);
    CT_TRY(us);
    int is_auto = !strcmp(c->offload.policy, "auto");
    if (!is_auto && strcmp(c->offload.policy, "manual"))
        return ct_fail(CT_EINVAL, "offload.policy = \"%s\": allowed \"manual\" or \"auto\"", c->offload.policy);
    if (strcmp(c->offload.tier, "host") && strcmp(c->offload.tier, "disk"))
        return ct_fail(CT_EINVAL, "offload.tier = \"%s\": allowed \"host\" or \"disk\"", c->offload.tier);
    if (is_auto && (strcmp(c->offload.params, "none") || strcmp(c->offload.grads, "none") ||
                    strcmp(c->offload.optimizer, "none")))
        return ct_fail(CT_EINVAL,
                       "offload.policy = auto chooses offload.params, offload.grads and offload.optimizer "
                       "itself; leave them at none, or use offload.policy = manual");
    if (c->parallel.zero == 3) CT_TRY(ct_zero3_check_keep(c->parallel.zero_keep, c->model.n_layer));
    if (grads_off && c->parallel.zero == 2)
        return ct_fail(CT_EINVAL,
                       "offload.grads with parallel.zero = 2: not supported (ZeRO 2 keeps only its "
                       "shard of the gradients already); use parallel.zero = 1 or offload the optimizer state");
    int *layers = ct_alloc((size_t)c->model.n_layer * sizeof *layers, "checking memory.recompute");
    if (!layers) return CT_ENOMEM;
    ct_status rs = ct_config_recompute_layers(c, layers);
    ct_free(layers);
    CT_TRY(rs);
    CT_TRY(check_delink(c));
    CT_TRY(check_scenes(c));
    if (strcmp(c->train.on_nonfinite, "stop") && strcmp(c->train.on_nonfinite, "skip"))
        return ct_fail(CT_EINVAL, "train.on_nonfinite = \"%s\": allowed \"stop\" or \"skip\"",
                       c->train.on_nonfinite);
    int cores = ct_runtime_cores();
    if (c->runtime.threads > CT_THREADS_PER_CORE_MAX * cores)
        return ct_fail(CT_EINVAL,
                       "runtime.threads = %d: at most %d threads per core, %d on the %d cores here (0: one "
                       "per core)",
                       c->runtime.threads, CT_THREADS_PER_CORE_MAX, CT_THREADS_PER_CORE_MAX * cores, cores);
    ct_status bs = ct_backend_check(c->runtime.backend);
    if (bs != CT_OK) return ct_fail_context(bs, "runtime.backend");
    CT_TRY(ct_gemm_check(c->runtime.gemm, c->train.precision));
    if (c->parallel.expert > 1 && c->model.moe_every > 0) {
        CT_TRY(ct_moe_group_check(&c->model.moe, c->parallel.expert));
        if (c->parallel.zero == 2)
            return ct_fail(CT_EINVAL,
                           "parallel.zero = 2 with parallel.expert = %d: not supported yet; use "
                           "parallel.zero = 1, which shards the optimizer state over the ranks that hold "
                           "the same experts",
                           c->parallel.expert);
    }
    return ct_model_check_tensor_split(&c->model, c->parallel.tensor);
}

ct_status ct_config_stage_blocks(const ct_config *c, int *blocks) {
    int P = c->parallel.pipeline, L = c->model.n_layer;
    if (P > L)
        return ct_fail(CT_EINVAL,
                       "parallel.pipeline = %d stages for model.n_layer = %d blocks: every stage needs "
                       "a block; use at most %d stages",
                       P, L, L);
    if (!strcmp(c->parallel.stages, "auto")) return ct_model_plan_stages(&c->model, P, blocks);
    const char *at = c->parallel.stages;
    int n = 0, sum = 0;
    while (*at) {
        char *end;
        long v = strtol(at, &end, 10);
        if (end == at || v < 1 || v > L || (*end && *end != ','))
            return ct_fail(CT_EINVAL,
                           "parallel.stages = \"%s\": expected block counts >= 1 separated by commas, "
                           "e.g. \"%d,%d\"",
                           c->parallel.stages, L - L / 2, L / 2);
        if (n == P)
            return ct_fail(CT_EINVAL, "parallel.stages = \"%s\" names more than parallel.pipeline = %d stages",
                           c->parallel.stages, P);
        blocks[n++] = (int)v;
        sum += (int)v;
        at = *end ? end + 1 : end;
    }
    if (n != P || sum != L)
        return ct_fail(CT_EINVAL,
                       "parallel.stages = \"%s\": %d stages holding %d blocks, but parallel.pipeline "
                       "= %d and model.n_layer = %d",
                       c->parallel.stages, n, sum, P, L);
    return CT_OK;
}

ct_status ct_config_compute_budget(const ct_config *c, size_t *bytes) {
    const char *text = c->memory.compute_budget;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    double unit = 1.0;
    switch (*end) {
    case 'K':
    case 'k':
        unit = 1024.0;
        end++;
        break;
    case 'M':
    case 'm':
        unit = 1024.0 * 1024.0;
        end++;
        break;
    case 'G':
    case 'g':
        unit = 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    case 'T':
    case 't':
        unit = 1024.0 * 1024.0 * 1024.0 * 1024.0;
        end++;
        break;
    default: break;
    }
    if (*end == 'i' && end[1] == 'B') end += 2;
    else if (*end == 'B' && unit > 1.0)
        end++;
    if (end == text || *end || errno || !(v >= 0.0) || v * unit > 9e18)
        return ct_fail(CT_EINVAL,
                       "memory.compute_budget = \"%s\": expected bytes with an optional binary unit, "
                       "e.g. 512M, 1.5G or 0 for no budget",
                       text);
    *bytes = (size_t)(v * unit);
    return CT_OK;
}

ct_status ct_config_recompute_layers(const ct_config *c, int *layers) {
    int L = c->model.n_layer;
    const char *text = c->memory.recompute;
    int all = !strcmp(text, "all");
    for (int l = 0; l < L; l++) layers[l] = all;
    if (all || !strcmp(text, "none")) return CT_OK;
    for (const char *at = text; *at;) {
        char *end;
        long a = strtol(at, &end, 10), b = a;
        if (end != at && *end == '-') b = strtol(end + 1, &end, 10);
        if (end == at || a < 0 || b < a || b >= L || (*end && *end != ','))
            return ct_fail(CT_EINVAL,
                           "memory.recompute = \"%s\": expected none, all, or block ranges within "
                           "0-%d such as \"0-%d,%d\"",
                           text, L - 1, L > 2 ? L - 3 : 0, L - 1);
        for (long l = a; l <= b; l++) layers[l] = 1;
        at = *end ? end + 1 : end;
    }
    return CT_OK;
}

int ct_config_train_seq_len(const ct_config *c) {
    return c->train.seq_len > 0 ? c->train.seq_len : c->model.seq_len;
}

cJSON *ct_config_json(const ct_config *c) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    for (size_t i = 0; ok && i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        char section[32];
        const char *dot = strchr(k->name, '.'), *key = dot + 1;
        snprintf(section, sizeof section, "%.*s", (int)(dot - k->name), k->name);
        cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, section), *v = NULL;
        if (!obj && !(obj = cJSON_AddObjectToObject(root, section))) break;
        const void *src = (const char *)c + k->offset;
        switch (k->type) {
        case K_INT: v = cJSON_AddNumberToObject(obj, key, *(const int *)src); break;
        case K_I64: v = cJSON_AddNumberToObject(obj, key, (double)*(const long long *)src); break;
        case K_FLOAT: v = cJSON_AddNumberToObject(obj, key, *(const double *)src); break;
        case K_F32: v = cJSON_AddNumberToObject(obj, key, *(const float *)src); break;
        case K_ROUTING:
            v = cJSON_AddStringToObject(obj, key, ct_moe_routing_name(*(const ct_moe_routing *)src));
            break;
        case K_SHARE:
            if (*(const int *)src > 0) v = cJSON_AddNumberToObject(obj, key, *(const int *)src);
            else
                v = cJSON_AddStringToObject(obj, key, *(const int *)src ? "all" : "none");
            break;
        case K_BOOL: v = cJSON_AddBoolToObject(obj, key, *(const int *)src); break;
        case K_STR: v = cJSON_AddStringToObject(obj, key, (const char *)src); break;
        }
        ok = v != NULL;
    }
    if (ok) return root;
    cJSON_Delete(root);
    return NULL;
}

void ct_config_print_keys(FILE *out) {
    for (size_t i = 0; i < N_KEYS; i++)
        fprintf(out, "  %-22s %-12s %s\n", keys[i].name, keys[i].def, keys[i].help);
}

int ct_config_micro_batches(const ct_config *c, int rows) {
    if (c->parallel.micro_batches > 0) return c->parallel.micro_batches;
    int best = 1;
    for (int m = 1; m <= rows && m <= 4 * c->parallel.pipeline; m++)
        if (rows % m == 0) best = m;
    return best;
}
