/* plan.h: the planner: for a training config on a world of N ranks and the hardware they run
 * on, what each rank holds (per memory tier, by kind of state), the work and the bytes each
 * parallel axis moves per step, and a predicted step time; without allocating the model.
 * Memory comes from the tables the engine itself builds for that rank's layout
 * (ct_model_create_layout), its activation sizes, ZeRO 3's residency walk and the offload
 * policy, so a prediction tracks what a run allocates. Time is a model: GEMMs at the rates
 * measured (or given) by shape, memory-bound work at the memory bandwidth, collectives as
 * rings over the links, with the overlaps the engine schedules (gradient reductions behind
 * backward, ZeRO 3 gathers and offload prefetch one unit ahead, the pipeline's bubble). */
#ifndef CT_PLAN_H
#define CT_PLAN_H

#include "parallel/comm.h"
#include "plan/hardware.h"
#include "spec/model_spec.h"
#include "train/config.h"

/* Kinds of memory a rank holds, and the tiers they are held in. */
typedef enum ct_plan_kind {
    CT_PK_PARAMS,  /* weights (at ZeRO 3: the slices plus the units gathered at once) */
    CT_PK_GRADS,   /* gradients */
    CT_PK_MOMENTS, /* AdamW's first and second moments (this rank's shard) */
    CT_PK_ACTS,    /* activations of the micro-batches in flight (with recomputation) */
    CT_PK_COMM,    /* communication buffers: pipeline boundaries, shared and tied sums */
    CT_PK_SLOTS,   /* offload's compute slots offloaded blocks run from */
    CT_PK_STAGING, /* offload staging: the buffers disk-held moments stream through */
    CT_PK_INIT,    /* initialisation: the whole stage drawn before it is placed or sharded
                     * (transient, before the first step; counts in the resident peak) */
    CT_PK_COUNT
} ct_plan_kind;
typedef enum ct_plan_tier { CT_PT_COMPUTE, CT_PT_HOST, CT_PT_DISK, CT_PT_COUNT } ct_plan_tier;

const char *ct_plan_kind_name(ct_plan_kind k);
const char *ct_plan_tier_name(ct_plan_tier t);

/* Bytes each axis sends from one rank per optimizer step. */
typedef enum ct_plan_axis { CT_PA_DATA, CT_PA_TENSOR, CT_PA_PIPELINE, CT_PA_EXPERT, CT_PA_COUNT } ct_plan_axis;

enum { CT_PLAN_OPT_RUNS = 32 };

/* One pipeline stage's ranks (all its data, tensor and expert ranks hold the same sizes). */
typedef struct ct_plan_stage {
    int first, end;                         /* blocks [first, end) */
    int group;                              /* the hardware group its devices are in */
    double bytes[CT_PK_COUNT][CT_PT_COUNT]; /* steady state during a step */
    double compute_peak;                    /* what metrics.jsonl reports as compute_peak_mb (bytes) */
    double resident_peak;                   /* the process's peak resident memory (peak_rss_mb) */
    double flops;                           /* per step on one rank of this stage */
    double sent[CT_PA_COUNT];               /* bytes per step */
    /* seconds per step on one rank: forward and backward compute (GEMMs, other work), the
     * optimizer, and communication left exposed (not hidden behind compute) per axis and
     * for offload and ZeRO 3 gathers */
    double gemm_s, other_s, optim_s, exposed_s[CT_PA_COUNT], offload_s, gather_s;
    double busy_s; /* one micro-batch's forward + backward (the pipeline's unit of time) */
    /* activations of one micro-batch in flight, by block: kept blocks each their own (the
     * largest kept_max), recomputed blocks one shared buffer, the rest (block inputs,
     * scratch, the head's logits, pipeline and tensor buffers) */
    int kept, recomputed;
    double kept_total, kept_max, shared, acts_rest, in_flight; /* in_flight: micro-batches held */
    /* ZeRO 1 and 2: each data rank's moments are its contiguous shard of the stage's flat
     * buffer, so where they live differs by rank when offload places units apart: the
     * placement as runs of one tier (n_opt < 0: more runs than kept; taken as even) */
    int n_opt;
    double opt_lo[CT_PLAN_OPT_RUNS], opt_n[CT_PLAN_OPT_RUNS], params_n;
    unsigned char opt_tier[CT_PLAN_OPT_RUNS];
} ct_plan_stage;

typedef struct ct_plan {
    ct_layout layout;
    int world, zero, micro, accum, rows, shard_ranks; /* rows: sequences per data rank per micro-batch set */
    int seq_len, recomputed, stage_blocks[CT_MAX_STAGES];
    char offload[512]; /* the placement, described */
    int n_stages;
    ct_plan_stage stage[CT_MAX_STAGES];
    double params_total; /* the logical model's parameters */
    double tokens_per_step, flops_per_step, step_s, tokens_per_s, bubble, mfu;
    double host_per_node; /* the most host memory a node's ranks hold */
    double disk_per_node;
    double base_rss;   /* the process's own resident memory (libraries, MPI) */
    double leader_rss; /* rank 0's (it also loads the tokenizer) */
} ct_plan;

/* Plans cfg on `world` ranks of hw (hw's devices in order are the ranks, pipeline stage
 * outermost: the last stages on the last groups); a rank's own memory before any model is
 * the hardware's process_mib (0 if not given). Fails with a clear message for a layout
 * that does not fit the world or the model (listing what fits) or a hardware file with fewer
 * devices than ranks. */
ct_status ct_plan_make(ct_plan *p, const ct_config *cfg, int world, const ct_hardware *hw);
/* The rank's stage: ranks are laid out pipeline x data x tensor (tensor innermost). */
int ct_plan_stage_of(const ct_plan *p, int rank);
/* One rank's predicted peaks (bytes): its stage's, with its own shard of the moments. */
void ct_plan_rank_peaks(const ct_plan *p, int rank, double *compute_peak, double *resident_peak);
/* Whether every rank fits its device's memory and every node's ranks its host memory; when
 * not, why into why[cap] ("stage 0 needs 41.2 GiB of 32 GiB device memory: moments 24.1 GiB
 * ..."). */
int ct_plan_fits(const ct_plan *p, const ct_hardware *hw, char *why, size_t cap);
/* The state that dominates a stage's compute tier: its kind. */
ct_plan_kind ct_plan_dominant(const ct_plan_stage *s);

/* The plan as one JSON object (see docs/planner.md), and as text for people. */
char *ct_plan_json(const ct_plan *p, const ct_hardware *hw); /* ct_free it */
void ct_plan_print(const ct_plan *p, const ct_hardware *hw, FILE *out);

/* ---- search ---- */

typedef struct ct_plan_choice {
    ct_plan plan;
    char keys[512]; /* the config keys that select it, e.g. "parallel.data=4 parallel.zero=1" */
} ct_plan_choice;

/* Enumerates layouts of cfg's model on `world` ranks of hw (data, tensor, pipeline, expert,
 * ZeRO stage, micro-batches, recomputation, offload policy automatic at the device's memory,
 * stages balanced by the groups' speeds) that fit memory_limit per device (0: the hardware's),
 * best predicted tokens/s first: into best[max], returning how many fit. rejected[cap] gets a
 * summary of why the others did not ("12 layouts: tensor 8 does not divide 12 heads; 30
 * layouts: over device memory (least needed 40.1 GiB: moments)"). */
int ct_plan_search(const ct_config *cfg, int world, const ct_hardware *hw, double memory_limit,
                   ct_plan_choice *best, int max, char *rejected, size_t cap);

#endif
