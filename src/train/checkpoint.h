/* checkpoint.h: saving and loading training checkpoints: model weights, AdamW moments and
 * the trainer's state, written crash-safely and verified completely before any byte reaches
 * the caller's buffers; streamed tensor by tensor, from flat buffers or the caller's
 * callbacks, so the whole state is never assembled in one buffer.
 *
 * A checkpoint is a directory DIR holding
 *   model.safetensors      the weights under the caller's (layout-free) names, e.g.
 *                          "wte.weight", "h.0.attn.c_attn.weight"; __metadata__ has
 *                          "format": "pt" so Hugging Face tools accept it
 *   optimizer.safetensors  AdamW moments "<name>.exp_avg" (all tensors, in view order),
 *                          then "<name>.exp_avg_sq"; absent in a weights-only checkpoint
 *   config.json, vocab.json, merges.txt, tokenizer.json
 *                          side files the caller hands in (ct_ckpt_view.files): the Hugging
 *                          Face config and tokenizer files (train/hf.h); only these names
 *   trainer.json           {"format": "cetus-checkpoint", "version": 1,
 *                           "files": {"model.safetensors": {"bytes": N, "xxh64": "<hex>"},
 *                                     "optimizer.safetensors": {...},
 *                                     "config.json": {...}, ...},
 *                           "trainer": <the caller's state, stored as given>,
 *                           "xxh64": "<hex>"}
 *                          where the last xxh64 is the XXH64 of the unformatted JSON of the
 *                          object without that key, so a changed byte is caught here too.
 * and the parent directory holds "latest", a one-line file with the name of the newest
 * checkpoint directory saved there.
 *
 * Save writes everything into "DIR.tmp-<pid>" (each file fsynced; trainer.json last, so its
 * presence marks a complete directory), renames an existing DIR to "DIR.old-<pid>", renames
 * the new one to DIR, removes the old one and then replaces "latest" atomically. If the
 * process dies between the two renames, DIR is missing and load finds the complete new copy
 * (DIR.tmp-*, preferred) or the old one (DIR.old-*) instead; the next save cleans up.
 * Only the files named above are ever deleted: a directory with other files is left aside.
 *
 * Numbers in the trainer state are JSON doubles: store 64-bit values (RNG words, seeds,
 * token positions past 2^53) as strings.
 */
#ifndef CT_CHECKPOINT_H
#define CT_CHECKPOINT_H

#include "core/core.h"
#include <cjson/cJSON.h>

/* One named tensor (inside the view's flat buffers when it has no io). */
typedef struct ct_ckpt_tensor {
    const char *name;
    int ndim; /* 0 to 4 */
    int shape[4];
    size_t offset; /* in floats, into params / adam_m / adam_v (unused with io) */
    size_t numel;  /* == prod(shape[0..ndim)) */
} ct_ckpt_tensor;

/* Tensor-by-tensor access to the caller's state, for a model too large or too sharded to
 * hold in one buffer (e.g. over MPI ranks: get gathers one full tensor, put takes this
 * rank's slice). Tensor i is view.tensors[i]; buffer b is 0 = weights, 1 = AdamW exp_avg,
 * 2 = exp_avg_sq. */
typedef struct ct_ckpt_io {
    /* Save: sets *data to tensor i's full logical floats (numel) of buffer b, valid until
     * the next call. Called exactly in this order: b = 0 for i = 0..n-1 (model.safetensors),
     * then, when the view has moments, b = 1 for every i, then b = 2 for every i
     * (optimizer.safetensors). A failing get fails the save, whose status is get's. A save
     * that fails (in get, writing a file, or before the first get) stops calling get: a
     * caller whose get runs collectives counts its calls and, when the save fails, finishes
     * the sequence itself so that every rank takes part in the same collectives. */
    ct_status (*get)(void *ctx, size_t i, int b, const float **data);
    /* Load: after every check of the files passed, receives tensor i's stored logical floats
     * of buffer b (same numbering and order as get), each (i, b) once; data is valid only
     * during the call. A load that fails makes no call at all. */
    void (*put)(void *ctx, size_t i, int b, const float *data);
    void *ctx;
} ct_ckpt_io;

/* A side file saved beside the tensors: name is one of CT_CKPT_SIDE_NAMES, data holds its
 * bytes. Recorded in trainer.json's "files" with its size and XXH64, which every load and
 * check verifies. */
#define CT_CKPT_SIDE_NAMES "config.json", "vocab.json", "merges.txt", "tokenizer.json"
typedef struct ct_ckpt_file {
    const char *name;
    const void *data;
    size_t bytes;
} ct_ckpt_file;

/* The caller's state: a tensor table and either
 *  - io == NULL: flat buffers of num_params floats holding each tensor at its offset;
 *    adam_m and adam_v are both set (weights + AdamW moments) or both NULL (weights only);
 *  - io != NULL: the tensors come from io->get (save) and go to io->put (load); params,
 *    adam_m, adam_v and num_params are not used and offsets are not checked (names, shapes
 *    and numel are); moments = 1 when the checkpoint has/needs the optimizer file.
 * files[0..n_files) are side files a save writes (a load ignores the fields and verifies
 * the side files trainer.json records).
 * Callers that initialise the first six fields positionally get io = NULL. */
typedef struct ct_ckpt_view {
    const ct_ckpt_tensor *tensors;
    size_t n_tensors;
    size_t num_params;
    float *params;
    float *adam_m;
    float *adam_v;
    const ct_ckpt_io *io;
    int moments;
    const ct_ckpt_file *files;
    size_t n_files;
} ct_ckpt_view;

/* Saves v (and the moments when present) and trainer_state (may be NULL: stored as {})
 * into dir as described above, then points parent/latest at it. Refuses to replace an
 * existing dir that is not a checkpoint (has no trainer.json). On failure an existing
 * checkpoint at dir is left as it was. */
ct_status ct_checkpoint_save(const char *dir, const ct_ckpt_view *v, const cJSON *trainer_state);

/* Loads weights, and the moments when v has them, into v's buffers (or through v->io's
 * put). Every file is verified first (trainer.json's own checksum, size and XXH64 of each
 * safetensors file, structure, every name and shape against v, no extra tensors, every
 * value finite: weights and moments alike); on any failure nothing is written to the
 * buffers (no put) and the message names the file, the tensor and expected vs found shape
 * (or the first NaN or Inf's index).
 * If trainer_state != NULL it receives a copy of the stored state (free with cJSON_Delete). */
ct_status ct_checkpoint_load(const char *dir, const ct_ckpt_view *v, cJSON **trainer_state);

/* Loads only the weights (generate, eval): no optimizer file is needed and v's moment
 * pointers (or v->moments: put sees only b = 0) are ignored. path is a checkpoint
 * directory, or a .safetensors file, which is then checked on its own (structure, embedded
 * checksum, names and shapes). */
ct_status ct_checkpoint_load_weights(const char *path, const ct_ckpt_view *v);

/* Verifies dir exactly as ct_checkpoint_load would and hands nothing over (v->io's put is
 * never called; it may be a no-op): trainer.json, each file's size and checksums, the
 * structure, every name and shape against v, finite values. The optimizer file is checked
 * against v's tensors when trainer.json records one (*has_optim = 1), whatever v->moments
 * says. dir itself must exist: no fallback to what an interrupted save left. */
ct_status ct_checkpoint_check(const char *dir, const ct_ckpt_view *v, int *has_optim);

/* Reads only the stored trainer state (e.g. its config, to build the model before loading
 * weights), after the same discovery and trainer.json checks as a load. Free the copy with
 * cJSON_Delete. */
ct_status ct_checkpoint_read_state(const char *dir, cJSON **trainer_state);

/* Resolves parent/latest to "parent/<name>" in out. Fails when there is no pointer, it is
 * malformed, or no complete checkpoint of that name can be found. */
ct_status ct_checkpoint_latest(const char *parent, char *out, size_t cap);

/* Where a run resumes, in its checkpoint directory root (run.dir/ckpt): the checkpoint
 * `latest` names (strictly, as ct_checkpoint_latest), or the newest complete checkpoint by
 * name when a save died before moving the pointer to it or before writing it at all;
 * *found = 0 (and CT_OK) when there is none or no root, so the run starts fresh. With speak
 * (one rank of a job): says which on stderr, and first removes what saves, swaps and
 * removals killed part way left behind (".tmp-", ".old-", ".del-" siblings of processes
 * that no longer run), counting them in the message, but keeps a complete one whose
 * checkpoint is missing (a load falls back to it). */
ct_status ct_checkpoint_find_resume(const char *root, int speak, char *out, size_t cap, int *found);

/* Removes checkpoint directory dir (pruning): renamed out of the way first, then the files a
 * checkpoint holds and the directory (kept, with a message, if it holds anything else). */
void ct_checkpoint_remove(const char *dir);

#endif /* CT_CHECKPOINT_H */
