/* model_comm.h: the communication a model is handed. A model that is split over ranks
 * (tensor parallelism: heads, MLP units and vocabulary rows; expert parallelism: experts;
 * pipeline stages: blocks) needs its coordinates on those axes and a few collectives; it
 * gets them as this table, filled by the layer that owns the ranks (parallel/model_comm.c
 * over MPI), so the model itself knows no transport. Every collective is called in the
 * same order on every member of its axis, and returns the first failure. */
#ifndef CT_MODEL_COMM_H
#define CT_MODEL_COMM_H

#include "cetus.h"
#include <stddef.h>

typedef struct ct_model_comm {
    int tp_rank, tp_ranks; /* the tensor axis: this rank's part of the split tensors */
    int ep_rank, ep_ranks; /* the expert axis: which experts this rank holds */
    int stage, stages;     /* the pipeline axis: which blocks this rank holds */
    /* Over the tensor ranks: buf [n] summed in place on every rank; send [n] from every
     * rank gathered into recv [tp_ranks * n] in rank order. */
    ct_status (*tp_sum)(void *ctx, float *buf, size_t n);
    ct_status (*tp_gather)(void *ctx, const float *send, float *recv, size_t n);
    /* Over the expert ranks: per_peer sizes exchanged with every member (send [p * per_peer],
     * block c to rank c), and rows of floats by all-to-all (send_counts, recv_counts [p]). */
    ct_status (*ep_sizes)(void *ctx, const size_t *send, size_t *recv, size_t per_peer);
    ct_status (*ep_alltoallv)(void *ctx, const float *send, const size_t *send_counts, float *recv,
                              const size_t *recv_counts);
    void *ctx;
} ct_model_comm;

/* A model over the given ranks (comm NULL: one process holds everything) with the stages'
 * block counts stage_blocks [comm->stages] (summing to n_layer, each >= 1), or NULL for the
 * compute-balanced plan (ct_model_plan_stages). ct_model_create_staged (parallel/) calls it
 * with the world's table. */
ct_status ct_model_create_comm(ct_model **out, const ct_model_config *cfg, uint64_t seed,
                               const ct_model_comm *comm, const int *stage_blocks);
/* The table a rank on that layout would hold (names, shapes, offsets, its pipeline stage,
 * tensor and expert parts), without parameters, gradients or activations: for planning
 * memory and work (the collectives of layout are never called). It cannot run. */
ct_status ct_model_create_layout(ct_model **out, const ct_model_config *cfg, const ct_model_comm *layout,
                                 const int *stage_blocks);

#endif
