/* gpt_internal.h: the ct_model struct, by concern, and the helpers the model's files offer
 * each other: gpt.c (life, layout), gpt_table.c (the parameter table), gpt_pass.c (passes,
 * hooks), gpt_tp.c (the collectives of a split model), gpt_offload.c (placement). */
#ifndef CT_GPT_INTERNAL_H
#define CT_GPT_INTERNAL_H

#include "model/model.h"
#include "model/block.h"
#include "model/model_comm.h"

#define MAX_NAME 48

typedef struct ct_model_offload ct_model_offload;

/* The model's state by concern. Each part is created, written and freed by the file named
 * beside it (the pass writes into the table's gradient buffer, its output); the others
 * read what they need of it (the layout and the table, mostly). */

/* Where this rank stands (gpt.c sets it at creation; read-only after): its pipeline stage's
 * blocks [l0, l1) (the first stage embeds, the last holds ln_f and the head with its own
 * copy of the tied wte; one stage: all of it), and its tensor and expert coordinates
 * (ranks == 1 without them). */
typedef struct gpt_layout {
    int stage, stages, l0, l1, has_embed, has_head;
    int stage_first[CT_MAX_STAGES + 1]; /* every stage's first block; [stages] = n_layer */
    int tp_rank, tp_ranks;
    int ep_rank, ep_ranks;
} gpt_layout;

/* The parameter table and the flat buffers it indexes (gpt_table.c allocates them;
 * gpt_offload.c maps offloaded blocks' ranges to files or moves them between tiers). */
typedef struct gpt_table {
    ct_tensor_info *tensors;
    char (*names)[MAX_NAME];
    size_t n_tensors, n_params;
    float *params, *grads;
    ct_block_params *blocks, *block_grads;
    size_t *layer_first;                   /* index of the first tensor of the weights block l uses (with
                          * shared weights: another block's, see holds) */
    unsigned char *holds;                  /* [n_layer]: block l added its weights to this table (it owns
                           * them, or is this stage's first user of shared ones) */
    size_t wte, wpe, lnf_w, lnf_b;         /* offsets */
    size_t img_w, img_b, img_row, img_col; /* image patch embedding offsets (image.patch > 0) */
    size_t embed_tensors;                  /* tensors before the first block: wte, wpe and the image's */
    size_t lnf_first;                      /* table index of ln_f.weight (head stage) */
} gpt_table;

/* What a pass keeps (gpt_pass.c): its inputs, the activations laid out for the last
 * (B, T), the loss, the logits' state, recomputation and the MoE statistics. */
typedef struct gpt_pass {
    const float *image_src; /* the caller's patches for the next forwards (ct_model_set_image) */
    int image_patches;      /* their count per row: 0 = text only */
    int n_patches;          /* image positions of the last forward */
    float *patch_in;        /* [B, n_patches, P * P] copy of the last forward's patches */
    size_t patch_cap;
    float *acts;
    size_t acts_cap;
    int B, T, threads;
    ct_block_acts *block_acts;
    ct_block_scratch scratch;
    float *res; /* [L+1, N, C] residual stream at block boundaries */
    float *lnf, *lnf_mean, *lnf_rstd, *logits, *lse, *dres;
    int32_t *tokens, *targets, *prefix; /* copies of the last forward's inputs [B*T] */
    size_t ints_cap;
    int has_targets, counted, prefix_set;
    int training;
    uint64_t noise_seed;
    float aux_loss;
    int logits_are_grads; /* backward overwrote the logits with their gradient */
    int logits_last;      /* forwards without targets compute each row's last logits only */
    int logits_partial;   /* the last forward did so: other rows hold nothing */
    /* activation recomputation: recompute[l] = 1 keeps only block l's input (its residual
     * stream entry) and recomputes the rest in backward, in one buffer shared by all such
     * blocks; their MoE statistics are kept from the forward (owned by the base model;
     * NULL: none) */
    unsigned char *recompute;
    ct_moe_stats *moe_snap; /* [n_layer], per pass state */
    float *snap_load;       /* [n_layer, E] */
    int32_t *snap_kept;     /* [n_layer, E] */
    /* the expert side of each MoE block under expert parallelism */
    ct_moe_ep_acts *ep_acts; /* [n_layer] */
    void *ep_buf;
    size_t ep_buf_cap;
} gpt_pass;

/* The callbacks the layers above set (gpt_pass.c calls them). */
typedef struct gpt_hooks {
    ct_grad_ready_fn grad;
    void *grad_ctx;
    ct_progress_fn progress;
    void *progress_ctx;
    ct_params_fn params; /* ZeRO 3: brings a unit's weights before a use, releases them after */
    void *params_ctx;
} gpt_hooks;

/* The collectives of a split model (gpt_tp.c): tensor-parallel sums and gathers, the
 * expert group's exchanges. */
typedef struct gpt_tp {
    ct_model_comm comm;    /* the collectives it is handed (zero: one process) */
    ct_block_comm block;   /* what the blocks use: ranks and the sum */
    ct_moe_group ep_group; /* what an MoE block with experts spread uses */
    ct_status status;      /* first failed collective of this pass (later ones are skipped) */
    float *buf;            /* [(ranks + 2) * N] for the parallel cross-entropy */
    size_t buf_cap;
} gpt_tp;

struct ct_model {
    ct_model_config cfg;
    gpt_layout layout;
    gpt_table table;
    gpt_pass pass;
    gpt_hooks hooks;
    gpt_tp tp;
    ct_model_offload *off; /* offloaded blocks (gpt_offload.c; the base model's; NULL: none) */
    int placed;            /* the parameters are counted on the compute tier (all of them;
                              * with offload, the offload state counts its ranges instead);
                              * gpt_offload.c */
    size_t placed_floats;  /* how many floats of parameters that charged */
    size_t sharded[2];     /* ZeRO 3: floats of parameters [0] and gradients [1] resident at
                              * most (this rank's shards and the units gathered or being
                              * reduced); the compute tier counts these, not the whole buffers
                              * (0: whole); gpt_offload.c */
    ct_model *base;        /* a micro-batch view: the model whose parameters, gradients and
                              * hooks it shares (NULL for a model of its own) */
};

/* Collectives over the tensor ranks for the passes: on failure they record the error in
 * m->tp.status and later calls return at once; a pass begins with ct_gpt_tp_begin and
 * reports the first failure at its end with ct_gpt_tp_end (what: "parallel forward"). */
void ct_gpt_tp_begin(ct_model *m);
ct_status ct_gpt_tp_end(ct_model *m, const char *what);
void ct_gpt_tp_sum(ct_model *m, float *buf, size_t n);
/* Mean cross-entropy over this rank's vocabulary columns logits [N, V/ranks], whole-vocab
 * log-sum-exp into lse [N]; counted rows in *counted. */
float ct_gpt_tp_crossentropy(ct_model *m, const float *logits, float *lse, const int32_t *targets, int N,
                             int *counted);
/* The expert group's exchanges for ct_moe_group (ctx: the model), sticky like the sums. */
ct_status ct_gpt_tp_ep_alltoall(void *ctx, const float *send, const size_t *send_counts, float *recv,
                                const size_t *recv_counts);
ct_status ct_gpt_tp_ep_sizes(void *ctx, const size_t *send, size_t *recv, size_t per_peer);
/* The first vocabulary row this rank holds. */
int ct_gpt_tp_vocab_lo(const ct_model *m);

/* Each part's life, in the file that owns it; gpt.c composes them. create: allocates the
 * part's tables (zeroed; on failure the caller frees what was made with the part's free);
 * view: resets a part copied from a base model to what a micro-batch view owns. */
ct_status ct_gpt_table_create(gpt_table *t, const ct_model_config *cfg);
void ct_gpt_table_free(gpt_table *t); /* the tables, parameters and gradients */
/* Allocates the parameters (grads 0) or the gradients (1, zeroed) in tier and binds the
 * block views onto them. */
ct_status ct_gpt_table_alloc(ct_model *m, int grads, ct_tier tier);
ct_status ct_gpt_pass_create(gpt_pass *p, int n_layer);
ct_status ct_gpt_pass_view(gpt_pass *p, ct_model *view);
void ct_gpt_pass_free(gpt_pass *p, int owns_settings);       /* settings: the recomputation plan */
void ct_gpt_tp_init(ct_model *m, const ct_model_comm *comm); /* after the layout is set */
void ct_gpt_tp_view(ct_model *v);
void ct_gpt_tp_free(gpt_tp *t);

/* The model whose hooks apply: the base of a view, else m. */
static inline const ct_model *ct_gpt_owner(const ct_model *m) { return m->base ? m->base : m; }

/* Table (gpt_table.c): fills m's tensor table for its stage's blocks (the buffers sized by
 * the caller). */
void ct_gpt_table_build(ct_model *m);
/* Points block views at base (the parameter or the gradient buffer) using the table. */
void ct_gpt_table_bind_blocks(const ct_model *m, ct_block_params *views, float *base);
/* Points block l's view v at its tensors held at `at`, which holds flat [lo, ...). */
void ct_gpt_table_bind_block(const ct_model *m, int l, ct_block_params *v, float *at, size_t lo);
/* Offload (gpt_offload.c): before block l computes (next: the block expected after it, to
 * prefetch), around its backward for its gradients, and freeing. */
ct_status ct_gpt_offload_enter(ct_model *m, int l, int next);
void ct_gpt_offload_grads_in(ct_model *m, int l);
void ct_gpt_offload_grads_out(ct_model *m, int l);
void ct_gpt_offload_free(ct_model *m);
/* Counts the parameters on the compute tier, once (at the first pass unless offload placed
 * them): fails past the compute budget. */
ct_status ct_gpt_offload_place(ct_model *m);
/* Returns the placement's accounting (and ZeRO 3's charge for the gradients) to the host
 * tier before the buffers are freed. */
void ct_gpt_offload_unplace(ct_model *m);
/* Zeroes the gradients when some live on disk (1), else leaves them (0). */
int ct_gpt_offload_zero_grad(ct_model *m);
/* Tensors of block l's weights in the table (its attention half and its feed-forward). */
int ct_gpt_table_block_tensors(const ct_model *m, int l);
/* Block l's flat range [*lo, *lo + *n) (the same in the parameters and the gradients). */
void ct_gpt_table_block_range(const ct_model *m, int l, size_t *lo, size_t *n);

#endif
