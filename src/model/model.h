/* model.h: the model's interface to the layers above it (parallel, offload, train): the
 * parallel constructors and the tensor table with each tensor's split, pipeline stages and
 * micro-batch views, recomputation and offload placement, the hooks data parallelism and
 * pipelines drive, MoE statistics and delinking a shared-weight model. The calls a library
 * user needs (create, forward, backward, parameters) are in include/cetus.h; the model's
 * config-only arithmetic is in spec/model_spec.h. Implemented by gpt.c (table, views,
 * stages), gpt_pass.c (passes, hooks), gpt_tp.c (tensor parts), gpt_offload.c (placement),
 * share.c (delink) and parallel/model_comm.c (the constructors on a ct_world). */
#ifndef CT_MODEL_H
#define CT_MODEL_H

#include "cetus.h"
#include "core/store.h"
#include "spec/model_spec.h"

/* What a forward reports (views into the acts; valid until the next forward on them). */
typedef struct ct_moe_stats {
    float aux;           /* load-balancing loss E * sum_i f_i P_i (prototype: group mean) */
    float z;             /* router z-loss mean_n logsumexp(logits_n)^2 */
    float loss;          /* aux_coef * aux + z_coef * z: what forward returns */
    float dropped;       /* fraction of the N*k assignments dropped by capacity */
    int capacity;        /* per-expert capacity used (N when dropless) */
    const float *load;   /* [E] fraction of assignments routed to each expert (pre-drop) */
    const int32_t *kept; /* [E] rows computed per expert */
} ct_moe_stats;

/* ---- parallel layouts ---- */

/* A tensor-parallel model (Megatron-style) over the world's tensor axis: attention heads
 * and MLP hidden units split (QKV and c_fc column-parallel, both c_proj row-parallel), the
 * token embedding / tied head split by vocabulary rows with a parallel cross-entropy that
 * never gathers the logits; norms, position embeddings and MoE layers stay whole on every
 * rank. Each rank holds the same values a one-process model of the same seed holds in its
 * part. Forward, backward and ct_model_logits_row are collective over the tensor ranks.
 * With a tensor axis of size 1 this is ct_model_create. */
typedef struct ct_world ct_world;
ct_status ct_model_create_parallel(ct_model **out, const ct_model_config *cfg, uint64_t seed, ct_world *world);
/* The tensor-parallel size that fits a model: heads, 4*d_model and vocab_size divisible by
 * it. On failure the message names the key at fault and the sizes that fit. */
ct_status ct_model_check_tensor_split(const ct_model_config *cfg, int ranks);
int ct_model_tensor_rank(const ct_model *m);
int ct_model_tensor_ranks(const ct_model *m);
/* Expert parallelism: with an expert axis of P > 1 ranks in the world, each MoE layer's
 * experts are spread over the P ranks of the expert group (moe.n_experts divisible by P),
 * tokens travel to their experts by all-to-all, and the expert tensors are split over
 * that axis (split_expert). The part a rank holds of a tensor: */
int ct_model_expert_rank(const ct_model *m);
int ct_model_expert_ranks(const ct_model *m);

/* Parameter table: one entry per named tensor (Hugging Face GPT-2 names, e.g.
 * "h.0.attn.c_attn.weight"), all views into one contiguous float buffer. */
typedef struct ct_tensor_info {
    const char *name;
    int ndim;
    int shape[4];      /* this rank's part (the whole tensor without tensor parallelism) */
    size_t offset;     /* in floats, into the parameter buffer */
    size_t numel;      /* prod(shape) */
    int decay;         /* 1 if AdamW weight decay applies (matrices, embeddings) */
    int full_shape[4]; /* the logical tensor, as a one-process model holds it */
    size_t full_numel;
    int split_dim;    /* -1: every tensor rank holds it whole; d: dimension d is split */
    int split_parts;  /* dimension split_dim is this many equal parts, each split evenly over
                        * the tensor ranks (3 for the fused Q|K|V projection, else 1) */
    int split_expert; /* 1: split over the expert-parallel ranks (an MoE layer's stacked
                        * experts, dimension 0), not over the tensor ranks */
    int tied_copy;    /* 1: the last pipeline stage's copy of the tied wte.weight (the first
                        * stage holds the original; the gradient norm counts it once) */
} ct_tensor_info;
/* Tensor parallelism: rank r of R holds, of each split tensor, the r-th of R equal pieces of
 * every part along split_dim. These copy between the logical tensor full [full_numel] and
 * rank r's piece part [numel]. */
void ct_tensor_take_part(const ct_tensor_info *t, int rank, int ranks, const float *full, float *part);
void ct_tensor_put_part(const ct_tensor_info *t, int rank, int ranks, const float *part, float *full);

/* This rank's index and the number of ranks tensor t is split over (0 and 1 if whole). */
void ct_model_tensor_part(const ct_model *m, const ct_tensor_info *t, int *rank, int *ranks);
const ct_tensor_info *ct_model_tensor(const ct_model *m, size_t i);
const ct_tensor_info *ct_model_find_tensor(const ct_model *m, const char *name);
size_t ct_model_num_params_full(const ct_model *m); /* the logical model's */

/* ---- pipeline stages, views, recomputation, offload ---- */

/* Pipeline parallelism: with a pipeline axis of P stages in the world, stage s holds a
 * contiguous run of blocks (ct_model_stage_layers); the first stage also the embeddings,
 * the last ln_f and the head with its own copy of the tied wte.weight (keep the two copies'
 * gradients summed). A stage runs on the previous stage's output x_in [B, T, C] (the first
 * on tokens) and produces its output (the last: logits and the loss from targets); backward
 * takes dL/d(output) dy (the last: from its loss) and leaves dL/d(x_in). ct_model_forward /
 * ct_model_backward are the one-stage case. */
/* ct_model_create_parallel with the stages' block counts given (stage_blocks[P], summing to
 * n_layer, each >= 1) instead of planned (NULL). */
ct_status ct_model_create_staged(ct_model **out, const ct_model_config *cfg, uint64_t seed, ct_world *world,
                                 const int *stage_blocks);
/* The one-process model's tensor table alone (names and shapes; no parameters): for
 * walking every tensor from any rank. It cannot run. */
ct_status ct_model_table_only(ct_model **out, const ct_model_config *cfg);
/* Shared block weights (model.share_layers) used by blocks on several pipeline stages: each
 * such stage holds a copy (the owner's stage the original, later ones marked tied_copy)
 * and the copies' gradients must be summed over the pipeline axis before the optimizer
 * step. ct_model_stage_shared lists those weight sets into out [n_layer], in the same
 * order on every stage: the owner block, whether this stage holds a copy (held), where
 * (offset, in floats) and its floats on this rank (count; the same on every stage, so a
 * stage without a copy can take part in the sum with zeros). Returns how many. */
typedef struct ct_stage_shared {
    int owner, held;
    size_t offset, count;
} ct_stage_shared;
int ct_model_stage_shared(const ct_model *m, ct_stage_shared *out);
/* This stage's blocks: [*first, *end). */
void ct_model_stage_layers(const ct_model *m, int *first, int *end);
int ct_model_stage(const ct_model *m);
int ct_model_stages(const ct_model *m);
ct_status ct_model_forward_stage(ct_model *m, const int32_t *tokens, const int32_t *targets,
                                 const int32_t *prefix_len, const float *x_in, int B, int T, float *loss);
const float *ct_model_stage_output(const ct_model *m); /* [B, T, C] (not the last stage) */
ct_status ct_model_backward_stage(ct_model *m, float grad_scale, const float *dy);
const float *ct_model_stage_input_grad(const ct_model *m); /* [B, T, C] (not the first) */
/* A view of m for another micro-batch in flight (pipeline schedules): it shares m's
 * parameters, gradients (allocated now if needed; backward through any view accumulates
 * into them) and hooks, and has activations (and a training mode, set per view) of its
 * own, so several forwards can wait for their backwards. Free views before m. */
ct_status ct_model_create_view(ct_model **out, ct_model *m);
/* Activation recomputation: for each block l with layers[l] != 0 (layers [n_layer]; NULL or
 * all zero: none) the forward keeps only the block's input and backward recomputes the
 * block's activations (the same forward again) just before its backward, in one buffer
 * shared by all such blocks. Results are bit-identical; it costs one more forward of those
 * blocks. Set it before the model's first pass and before creating views. */
ct_status ct_model_set_recompute(ct_model *m, const int *layers);
/* Offload: where a block's state lives (ct_place, core/store.h). */
/* Places each block's parameters and gradients: params[u] and grads[u] for the units u
 * (0: embeddings, 1 + l: block l, n_layer + 1: head; embeddings and head must stay on the
 * compute tier). Offloaded blocks compute from two compute slots the next block is
 * prefetched into by an I/O thread; their gradients go through a compute slot and are
 * written home as soon as final. Bit-identical results. rank names the file
 * (dir/model_rank_R.bin). Set it before the first pass and before views. */
ct_status ct_model_set_offload(ct_model *m, const ct_place *params, const ct_place *grads, const char *dir,
                               int rank);
/* After the parameters changed (an optimizer step, a checkpoint load) or were read whole (a
 * save): forgets the prefetched copies and drops the disk ranges' pages from memory. */
ct_status ct_model_offload_settle(ct_model *m);
/* Drops from memory the pages of disk-placed parameters and gradients in flat [lo, lo + n)
 * (the optimizer calls it after updating a piece). */
void ct_model_offload_drop(ct_model *m, size_t lo, size_t n);
/* Seconds (since creation) the offload I/O thread spent moving this model's weights, and
 * the passes spent waiting for it: 1 - wait / busy of the transfers hid behind compute. */
void ct_model_offload_times(const ct_model *m, double *busy_s, double *wait_s);
/* Bytes of parameters and gradients placed at place (host or disk). */
size_t ct_model_offloaded_bytes(const ct_model *m, ct_place place);
/* Bytes of activation buffers a pass of [B, T] needs (what ct_model_acts_bytes will be). */
size_t ct_model_acts_bytes_for(const ct_model *m, int B, int T);
/* Bytes block `layer` holds through a pass of [B, T] (its expert-parallel side included):
 * a kept block its own; recomputed blocks take turns in one buffer, the largest of theirs. */
size_t ct_model_block_acts_bytes(const ct_model *m, int layer, int B, int T);
/* Bytes of activation buffers this model (or view) holds for its last (B, T). */
size_t ct_model_acts_bytes(const ct_model *m);
/* Allocates the gradient buffer now (zeroed) instead of at the first backward. */
ct_status ct_model_ensure_grads(ct_model *m);
/* Generation: with on != 0, forwards without targets compute only each row's last
 * position's logits (the head is most of a small model's work); ct_model_logits_row then
 * answers for those rows only. Forwards with targets are unaffected. */
void ct_model_set_logits_last(ct_model *m, int on);
/* Row n (= b * T + t) of the last forward's logits over the whole vocabulary: out [V]. */
ct_status ct_model_logits_row(ct_model *m, int n, float *out);
/* Pseudo-to-Real: the deep "real" model of `layers` blocks (0: the pseudo model's depth)
 * with independent weights, each block a copy of the weights the pseudo model's blocks
 * share. With the same depth block l takes the weights pseudo block l used, so the real
 * model computes the pseudo model's function exactly; at another depth block l takes the
 * weights of group floor(l * groups / layers), of its own kind. pseudo must be a
 * one-process model with model.share_layers set; the result is one too (parameters only:
 * gradients and activations come lazily). Fails, naming the reason, for a model without
 * sharing, fewer layers than groups, or a group without a block of the kind a layer needs. */
ct_status ct_model_delink(ct_model **out, const ct_model *pseudo, int layers);
/* Training mode turns on MoE router noise, drawn from noise_seed (derive it from the run
 * seed and the step so a replayed step routes identically). Off by default. */
void ct_model_set_training(ct_model *m, int training, uint64_t noise_seed);
/* MoE auxiliary losses (aux_coef * aux + z_coef * z, summed over MoE blocks) of the last
 * forward: backward includes their gradients; the loss that forward returns does not. */
float ct_model_aux_loss(const ct_model *m);
/* Statistics of block l's MoE layer in the last forward; EINVAL if block l is dense or on
 * another pipeline stage. */
ct_status ct_model_moe_stats(const ct_model *m, int layer, ct_moe_stats *out);

/* Called during backward whenever a contiguous range of gradients [offset, offset+count)
 * (in floats) is final: the final norm first, then each block from the last to the first,
 * then the embeddings. Data parallelism starts reducing a range while backward goes on. */
typedef void (*ct_grad_ready_fn)(size_t offset, size_t count, void *ctx);
void ct_model_set_grad_hook(ct_model *m, ct_grad_ready_fn fn, void *ctx);
/* The units a model's state is placed, gathered and sharded by (the offload units): 0 the
 * embeddings (with the image tower), 1 + l block l, n_layer + 1 ln_f and the head (its
 * tied wte copy on a last pipeline stage). Unit u's flat range on this stage is
 * [*lo, *lo + *n) (n 0: not here; a block that uses another block's shared weights: theirs).
 * The head's use also needs the embeddings' range when this stage holds both (the tied wte). */
int ct_model_num_units(const ct_model *m); /* n_layer + 2 */
void ct_model_unit_range(const ct_model *m, int unit, size_t *lo, size_t *n);

/* Parameters gathered just in time (ZeRO 3). When set, a pass calls fn(ctx, CT_USE_GET, u,
 * next) before it reads unit u's weights (next: the unit it will use after u, -1 at the end
 * of the pass, so its gather can start now) and fn(ctx, CT_USE_PUT_FORWARD or
 * CT_USE_PUT_BACKWARD, u, -1) after. Forward uses the embeddings, each block, then the head
 * (ln_f and the tied wte); backward the head, then the blocks from the last (the
 * embeddings' backward reads no weight). A failure ends the pass with it. */
typedef enum ct_use_event { CT_USE_GET, CT_USE_PUT_FORWARD, CT_USE_PUT_BACKWARD } ct_use_event;
typedef ct_status (*ct_params_fn)(void *ctx, ct_use_event event, int unit, int next);
void ct_model_set_params_hook(ct_model *m, ct_params_fn fn, void *ctx);
/* Zeroes the gradients of flat [lo, lo + n): with keep the pages stay resident (written),
 * otherwise they are given back and read as zeros; disk-placed gradients are punched from
 * their file either way. (ZeRO 3 keeps only its slices' pages.) */
void ct_model_zero_grad_range(ct_model *m, size_t lo, size_t n, int keep);
/* ZeRO 3: at most param_floats of the parameters and grad_floats of the gradients are
 * resident at once (this rank's shards plus the units in use; the rest of each buffer is
 * address space whose pages are given back): the compute tier counts these instead of the
 * whole buffers. Before the first pass. */
ct_status ct_model_set_sharded(ct_model *m, size_t param_floats, size_t grad_floats);

/* Called between the large products of forward and backward (several times per block), so
 * that reductions started by the grad hook, and pipeline messages, keep moving while the
 * model computes. */
typedef void (*ct_progress_fn)(void *ctx);
void ct_model_set_progress_hook(ct_model *m, ct_progress_fn fn, void *ctx);
void ct_model_get_progress_hook(const ct_model *m, ct_progress_fn *fn, void **ctx);

/* Sums of squares of this rank's gradients in the flat range [lo, hi): of the tensors split
 * over the tensor ranks (sum *split over those ranks), of those split over the expert ranks
 * (sum *expert over them) and of those every rank holds whole; a pipeline stage's sums add
 * over the stages (the head's tied copy is left out: its original counts). */
void ct_model_grad_sq(const ct_model *m, size_t lo, size_t hi, double *split, double *expert, double *whole);
/* Model FLOPs per token for forward+backward (6N + attention), for MFU reporting. */
double ct_model_flops_per_token(const ct_model *m, int T);

#endif
