/* commands.h: what the train layer offers the `cetus` subcommands beyond include/cetus.h:
 * the run configuration (ct_config, its keys and files: train/config.h), rebuilding a
 * model and its config from a checkpoint, evaluation over a split or the caption scenes,
 * upcycling a dense checkpoint to MoE, delinking a pseudo model into a run directory,
 * importing a Hugging Face GPT-2 and verifying a checkpoint without a model. The CLI includes this header and the public one,
 * never the train files' own headers. Implemented in restore.c, evaluate.c, upcycle.c,
 * delink.c, hf_import.c, ckpt_verify.c and run.c. */
#ifndef CT_COMMANDS_H
#define CT_COMMANDS_H

#include "cetus.h"
#include "train/caption_eval.h"
#include "train/config.h"

/* The run config stored in a checkpoint directory (its trainer.json). */
ct_status ct_checkpoint_read_config(const char *ckpt_dir, ct_config *out);
/* The model of a checkpoint directory with its weights (verified; no optimizer state
 * needed), and (cfg_out, may be NULL) the config it was trained with. */
ct_status ct_model_from_checkpoint(ct_model **out, const char *ckpt_dir, ct_config *cfg_out);

/* The tokenizer a checkpoint was trained with: its tokenizer.json when it carries one (a
 * trained vocabulary), else GPT-2's; and the refusal (CT_EINVAL naming both) when data_dir's
 * shards hold another tokenizer's ids. */
ct_status ct_checkpoint_tokenizer_load(const char *ckpt_dir, ct_tokenizer **out);
ct_status ct_checkpoint_check_data_tokenizer(const char *ckpt_dir, const char *data_dir);

/* Mean loss of m over `batches` batches of B rows of data's validation split, their windows
 * spread evenly over it (ct_loader_spread; batches <= 0 or more than there are: every
 * complete batch); *tokens counts the distinct targets scored.
 * Prints progress on stderr when it is a terminal. */
ct_status ct_eval_split(ct_model *m, const ct_config *cfg, const char *data, int batches, int B, double *loss,
                        long *tokens);
/* The bytes of text that the targets of `batches` batches of B x T windows of data's
 * validation split decode to with tok (spread as ct_eval_split and ct_trainer_evaluate
 * spread them; batches <= 0: every complete batch), the end-of-text token counting none;
 * *targets counts the targets. Bits per byte = mean loss * targets / (bytes * ln 2): the
 * measure that compares models across tokenizers. */
ct_status ct_eval_target_bytes(const char *data, int B, int T, int batches, const ct_tokenizer *tok,
                               uint64_t *bytes, uint64_t *targets);

/* Caption loss, token accuracy and greedy exact matches of m over the first `captions`
 * validation scenes of the scene shards in scenes (0: all), in batches of B. */
ct_status ct_eval_captions(ct_model *m, const ct_config *cfg, const char *scenes, int captions, int B,
                           ct_caption_tally *t);

/* Sparse upcycling: reads the dense checkpoint in_ckpt and writes
 * out_run_dir/ckpt/step_00000000, which `cetus train` with the same target config (run.dir =
 * out_run_dir) resumes. Every expert of an MoE block starts as a copy of that block's dense
 * MLP, the router small and random, everything else copied; the optimizer state starts
 * fresh at step 0. The target must match the dense model's shape, put MoE blocks somewhere
 * (model.moe_every > 0) and give experts the dense MLP's size (moe.d_hidden = 4 * d_model). */
ct_status ct_upcycle(const char *in_ckpt, const ct_config *target, const char *out_run_dir);

/* ct_delink_checkpoint of in_ckpt into run_dir/ckpt/step_N (N: in_ckpt's step), creating
 * run_dir/ckpt; reports what it did in *out. */
typedef struct ct_delink_result {
    char ckpt[1300];   /* the checkpoint written */
    int pseudo_layers; /* blocks of the pseudo model */
    int weight_sets;   /* sets of block weights they shared */
    int layers;        /* blocks of the real model */
} ct_delink_result;
ct_status ct_delink_into_run(const char *in_ckpt, const char *run_dir, int layers, const char *optimizer,
                             ct_delink_result *out);

/* cetus import: the Hugging Face GPT-2 directory hf_dir (config.json and a float32
 * model.safetensors: GPT-2's tensor names, with or without the "transformer." prefix,
 * Conv1D weights [in, out], lm_head.weight absent or equal to wte) becomes the new run
 * directory run_dir: cetus.json (its run config, cetus's defaults with the imported model)
 * and ckpt/step_00000000 (the weights, zero AdamW moments). A config field cetus's model does
 * not compute (another activation, layer norm epsilon, n_inner, attention scaling,
 * cross-attention) and a tensor missing, misshapen or unexpected are refused by name before
 * anything is written; the run directory appears whole or not at all (hf_import.c). */
typedef struct ct_import_result {
    ct_config cfg;   /* the run's config, as in cetus.json */
    char ckpt[1300]; /* the checkpoint written */
    size_t tensors, params;
} ct_import_result;
ct_status ct_hf_import(const char *hf_dir, const char *run_dir, ct_import_result *out);

/* What ct_checkpoint_verify found in a good checkpoint. */
typedef struct ct_ckpt_report {
    size_t tensors; /* of the model, each in model.safetensors (and twice in the optimizer file) */
    size_t params;  /* the model's parameters */
    int optimizer;  /* 1: optimizer.safetensors was there and checked too */
    char step[32];  /* the trainer state's step; "" when it has none */
} ct_ckpt_report;

/* Checks checkpoint directory dir without building a model or reading weights into one:
 * trainer.json (its checksum and the stored config), the size and checksums of each file,
 * that model.safetensors holds exactly the tensors, names and shapes the config's model has
 * (and optimizer.safetensors their AdamW moments), and that every value is finite. The
 * first problem is the error, naming the file (and tensor). */
ct_status ct_checkpoint_verify(const char *dir, ct_ckpt_report *r);
/* The name of the checkpoint root/latest points at (which must be complete), into name. */
ct_status ct_checkpoint_latest_name(const char *root, char *name, size_t cap);

/* After ct_run_set or ct_run_load refused a setting: prints ct_last_error() behind prefix,
 * once per job (rank 0 when started by mpirun). */
void ct_run_report_refusal(const char *prefix);

#endif
