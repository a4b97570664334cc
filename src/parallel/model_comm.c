/* model_comm.c: the model's communication over MPI: fills the table of model/model_comm.h
 * from a world (its tensor, expert and pipeline axes) and creates split models with it. */
#include "core/core.h"
#include "model/model.h"
#include "model/model_comm.h"
#include "parallel/comm.h"

static ct_status tp_sum(void *ctx, float *buf, size_t n) {
    return ct_comm_allreduce(ctx, CT_AXIS_TENSOR, buf, n);
}

static ct_status tp_gather(void *ctx, const float *send, float *recv, size_t n) {
    return ct_comm_allgather(ctx, CT_AXIS_TENSOR, send, recv, n);
}

static ct_status ep_sizes(void *ctx, const size_t *send, size_t *recv, size_t per_peer) {
    return ct_comm_alltoall_sizes(ctx, CT_AXIS_EXPERT, send, recv, per_peer);
}

static ct_status ep_alltoallv(void *ctx, const float *send, const size_t *send_counts, float *recv,
                              const size_t *recv_counts) {
    return ct_comm_alltoallv(ctx, CT_AXIS_EXPERT, send, send_counts, recv, recv_counts);
}

static ct_model_comm world_comm(ct_world *w) {
    return (ct_model_comm){.tp_rank = ct_world_coord(w, CT_AXIS_TENSOR),
                           .tp_ranks = ct_world_axis_size(w, CT_AXIS_TENSOR),
                           .ep_rank = ct_world_coord(w, CT_AXIS_EXPERT),
                           .ep_ranks = ct_world_axis_size(w, CT_AXIS_EXPERT),
                           .stage = ct_world_coord(w, CT_AXIS_PIPELINE),
                           .stages = ct_world_axis_size(w, CT_AXIS_PIPELINE),
                           .tp_sum = tp_sum,
                           .tp_gather = tp_gather,
                           .ep_sizes = ep_sizes,
                           .ep_alltoallv = ep_alltoallv,
                           .ctx = w};
}

ct_status ct_model_create_staged(ct_model **out, const ct_model_config *cfg, uint64_t seed, ct_world *world,
                                 const int *stage_blocks) {
    if (!world) return ct_model_create_comm(out, cfg, seed, NULL, stage_blocks);
    ct_model_comm comm = world_comm(world);
    return ct_model_create_comm(out, cfg, seed, &comm, stage_blocks);
}

ct_status ct_model_create_parallel(ct_model **out, const ct_model_config *cfg, uint64_t seed, ct_world *world) {
    return ct_model_create_staged(out, cfg, seed, world, NULL);
}
