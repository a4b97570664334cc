/* config.h: the run configuration: every key with its type, default, allowed range and help,
 * read from a JSON file (nested objects: {"model": {"n_layer": 4}}) and from key=value
 * overrides ("train.lr=3e-4"). Unknown keys and out-of-range values are errors that name the
 * key, the value and what is allowed. */
#ifndef CT_CONFIG_H
#define CT_CONFIG_H

#include "cetus.h"
#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct ct_config {
    ct_model_config model;
    struct {
        int batch_size; /* micro-batch rows B */
        int seq_len;    /* training context T; 0 = model.seq_len */
        int grad_accum; /* micro-batches per optimizer step */
        int steps;      /* optimizer steps in total */
        double lr, lr_min;
        int warmup_steps;
        double weight_decay, beta1, beta2, eps, grad_clip;
        long long seed;
        int log_interval, eval_interval, eval_batches, final_eval;
        int sample_interval, sample_tokens;
        int ckpt_interval, ckpt_keep;
        int eval_captions;    /* validation scenes whose greedy captions are matched exactly */
        char on_nonfinite[8]; /* "stop" or "skip": a step whose loss is not finite or explodes */
        double loss_spike;    /* explodes: over this multiple of its kind's recent mean (0 = off) */
        char precision[8];    /* "fp32" or "bf16": the matrix products' inputs (ops/ops.h) */
    } train;
    struct {
        int step;           /* Pseudo-to-Real: delink the shared model at this step (0 = never) */
        int layers;         /* blocks of the real model (0 = model.n_layer) */
        char optimizer[16]; /* "carry" or "reset": the AdamW state the real model starts with */
    } delink;
    struct {
        char dir[512];     /* token shards from `cetus prepare` */
        char scenes[512];  /* captioned scene shards from `cetus prepare --scenes` ("none") */
        double text_ratio; /* with scenes: the share of micro-batches that are text */
    } data;
    struct {
        char dir[512];    /* checkpoints and metrics.jsonl */
        int resume;       /* continue from run.dir's latest checkpoint if there is one */
        int stop_at_step; /* end this invocation (with a checkpoint) at this step; 0 = never */
        int tensorboard;  /* write run.dir/events.out.tfevents.* beside metrics.jsonl */
    } run;
    struct {
        int data;          /* data-parallel ranks; 0 = all ranks left by the other axes */
        int tensor;        /* tensor-parallel ranks */
        int expert;        /* expert-parallel group size, carved from the data ranks */
        int pipeline;      /* pipeline stages */
        int micro_batches; /* pipeline micro-batches per batch (0: chosen, see config.c) */
        char schedule[16]; /* "1f1b" or "gpipe": see src/train/pipeline.h */
        char stages[256];  /* blocks per stage, e.g. "5,3" ("auto" = balanced by compute) */
        int zero;          /* ZeRO stage 0, 1, 2 or 3 */
        int zero_keep;     /* stage 3: uses at the end of forward left gathered for backward */
        char overlap[16];  /* "auto", "thread" or "poll": see src/parallel/dp.h */
        double timeout;    /* seconds without progress in a wait before the watchdog aborts */
    } parallel;
    struct {
        char compute_budget[32]; /* bytes the compute tier may hold: "0" (no budget), "512M", "2G" */
        char recompute[256];     /* blocks whose activations are recomputed in backward: "none",
                              * "all" or ranges like "0-5,8" */
    } memory;
    struct {
        char dir[1024];      /* the disk tier's files ("auto": run.dir/offload) */
        char optimizer[256]; /* where the AdamW moments live, per unit: see offload/policy.h */
        char params[256];    /* where each block's parameters live (blocks only) */
        char grads[256];     /* where each block's gradients live (blocks only) */
        char policy[16];     /* "manual" (the three keys above) or "auto" (fit memory.compute_budget) */
        char tier[16];       /* where "auto" offloads to: "host" or "disk" */
    } offload;
    struct {
        int threads; /* 0 = all cores */
        int pin;
        char backend[32]; /* the registered backend the ops run on (ops/backend.h) */
        char gemm[16];    /* the CPU backend's product library: "auto", "openblas", "onednn" */
    } runtime;
} ct_config;

void ct_config_defaults(ct_config *c);
/* Applies a JSON document (file contents); `source` names it in messages. */
ct_status ct_config_apply_json(ct_config *c, const char *json, const char *source);
ct_status ct_config_load_file(ct_config *c, const char *path);
/* Applies one "key=value" override. */
ct_status ct_config_apply_override(ct_config *c, const char *kv);
/* Cross-key checks (model shape, batch layout); run after all sources are applied. */
ct_status ct_config_validate(const ct_config *c);
/* The training context length: train.seq_len, or model.seq_len when that is 0. */
int ct_config_train_seq_len(const ct_config *c);
/* Blocks per pipeline stage, blocks[parallel.pipeline]: parallel.stages parsed and checked,
 * or the compute-balanced plan. */
ct_status ct_config_stage_blocks(const ct_config *c, int *blocks);
/* Pipeline micro-batches per batch for a data rank's `rows` sequences: parallel.micro_batches,
 * or the largest divisor of the rows up to 4 x the stages. */
int ct_config_micro_batches(const ct_config *c, int rows);
/* memory.compute_budget in bytes (0: none), checked. */
ct_status ct_config_compute_budget(const ct_config *c, size_t *bytes);
/* memory.recompute as a mask layers[model.n_layer] (1: recomputed), checked. */
ct_status ct_config_recompute_layers(const ct_config *c, int *layers);
/* The whole configuration as a JSON object ({"model": {"n_layer": 4, ...}, ...}); NULL when
 * out of memory. Free it with cJSON_Delete. */
cJSON *ct_config_json(const ct_config *c);
/* Prints every key with its default and help. */
void ct_config_print_keys(FILE *out);

#endif
