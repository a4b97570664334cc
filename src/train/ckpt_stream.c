/* ckpt_stream.c: the trainer's side of layout-free checkpoints. A checkpoint holds every
 * tensor whole, under its one-process name; a rank holds a piece of it (its tensor-parallel
 * part and, for AdamW moments under ZeRO, only its data shard of that part). Saving streams
 * tensor by tensor: for each one, the data ranks' shards are all-gathered into this rank's
 * part, the tensor (or, for experts, the expert) ranks' parts into the whole tensor, and the leader's writer takes it, so
 * no rank ever holds more than one tensor beyond its own state. With pipeline stages, a
 * tensor is assembled on the stage that holds it and sent to the leader (the tied wte is
 * saved from the first stage). Loading: every rank reads the (verified) files and copies
 * out its own piece; both stages holding the tied wte take it. */
#include "core/core.h"
#include "model/model.h"
#include "train/config.h"
#include "train/ckpt_stream.h"
#include <string.h>

/* Which stage saves each of the one-process table's tensors (the first holder: the tied
 * wte is saved from the first stage), and where this rank holds it. */
static ct_status map_tensors(ct_ckpt_stream *cs, const ct_model *m) {
    int blocks[CT_MAX_STAGES], P = ct_model_stages(m), first, end;
    CT_TRY(ct_config_stage_blocks(cs->cfg, blocks));
    ct_model_stage_layers(m, &first, &end);
    for (size_t i = 0; i < cs->n; i++) {
        const ct_tensor_info *t = ct_model_tensor(cs->table, i), *mine = ct_model_find_tensor(m, t->name);
        cs->local[i] = mine ? (int)(mine - ct_model_tensor(m, 0)) : -1;
        int layer = -1, stage = 0;
        if (sscanf(t->name, "h.%d.", &layer) != 1) layer = -1;
        if (!strncmp(t->name, "ln_f.", 5)) stage = P - 1;
        for (int s = 0, l0 = 0; layer >= 0 && s < P; l0 += blocks[s++])
            if (layer >= l0 && layer < l0 + blocks[s]) stage = s;
        cs->owner[i] = stage;
    }
    return CT_OK;
}

ct_status ct_ckpt_stream_create(ct_ckpt_stream *cs, const ct_config *cfg, ct_world *world, ct_model *model,
                                ct_dp *dp, ct_adamw *opt) {
    *cs = (ct_ckpt_stream){
        .cfg = cfg, .world = world, .model = model, .dp = dp, .opt = opt, .leader = ct_world_rank(world) == 0};
    CT_TRY(ct_model_table_only(&cs->table, ct_model_get_config(cs->model)));
    cs->n = ct_model_num_tensors(cs->table);
    if (!(cs->local = ct_calloc(cs->n * sizeof *cs->local, "the checkpoint table")) ||
        !(cs->owner = ct_calloc(cs->n * sizeof *cs->owner, "the checkpoint table")))
        return CT_ENOMEM;
    CT_TRY(map_tensors(cs, cs->model));
    size_t most = 1;
    for (size_t i = 0; i < cs->n; i++)
        if (ct_model_tensor(cs->table, i)->full_numel > most) most = ct_model_tensor(cs->table, i)->full_numel;
    /* every rank's part (together a whole tensor), and the whole tensor reassembled */
    cs->full = ct_alloc_in(CT_TIER_HOST, 2 * most * sizeof(float), "checkpoint streaming buffers");
    if (!cs->full) return CT_ENOMEM;
    cs->parts = cs->full + most;
    return CT_OK;
}

void ct_ckpt_stream_free(ct_ckpt_stream *cs) {
    ct_free(cs->full);
    ct_model_free(cs->table);
    ct_free(cs->local);
    ct_free(cs->owner);
    memset(cs, 0, sizeof *cs);
}

/* This rank's share of b's values of flat [a, a + n) into out [n]: parameters (b = 0, from
 * the model) or moments (1: exp_avg, 2: exp_avg_sq, wherever the optimizer placed them). */
static ct_status read_share(ct_ckpt_stream *cs, int b, size_t a, size_t n, float *out) {
    if (b > 0) return ct_adamw_read(cs->opt, b, a, n, out);
    memcpy(out, ct_model_params(cs->model) + a, n * sizeof(float));
    return CT_OK;
}

/* This rank's part of tensor t's values b into out [numel], from the data shards: the
 * moments (ZeRO 1 to 3) and, at stage 3, the parameters too. */
static ct_status gather_part(ct_ckpt_stream *cs, const ct_tensor_info *t, int b, float *out) {
    size_t first = t->offset, end = t->offset + t->numel;
    ct_axis axis = ct_dp_part_axis(cs->dp, first);
    int ranks = ct_world_axis_size(cs->world, axis);
    if (ranks == 1 || cs->cfg->parallel.zero == 0) /* every moment is here */
        return read_share(cs, b, first, t->numel, out);
    size_t counts[1024];
    if (ranks > 1024) return ct_fail(CT_EINVAL, "checkpoint: more than 1024 data ranks");
    for (int r = 0; r < ranks; r++) {
        size_t a, e;
        ct_dp_owned_part(cs->dp, r, first, end, &a, &e);
        counts[r] = e - a;
    }
    int me = ct_world_coord(cs->world, axis);
    size_t a, e; /* this rank's piece lands at out + (a - first) */
    ct_dp_owned_part(cs->dp, me, first, end, &a, &e);
    if (counts[me]) CT_TRY(read_share(cs, b, a, counts[me], out + (a - first)));
    ct_split *split;
    CT_TRY(ct_split_create(&split, cs->world, axis, counts));
    ct_status s = ct_comm_allgatherv(cs->world, split, counts[me] ? out + (a - first) : out, out);
    ct_split_free(split);
    return s;
}

/* Tensor t whole on this rank, from its parts on the stage's ranks (a collective over the
 * stage's data and tensor or expert ranks). */
static ct_status assemble(ct_ckpt_stream *cs, const ct_tensor_info *t, int b, const float **data) {
    int rank, R;
    ct_model_tensor_part(cs->model, t, &rank, &R);
    float *part = cs->parts;
    if (b == 0 && cs->cfg->parallel.zero < 3) part = ct_model_params(cs->model) + t->offset;
    else
        CT_TRY(gather_part(cs, t, b, part));
    if (R == 1) {
        *data = part;
        return CT_OK;
    }
    float *all = cs->full; /* every part, then reordered into cs->parts */
    ct_axis axis = t->split_expert ? CT_AXIS_EXPERT : CT_AXIS_TENSOR;
    CT_TRY(ct_comm_allgather(cs->world, axis, part, all, t->numel));
    for (int r = 0; r < R; r++) ct_tensor_put_part(t, r, R, all + (size_t)r * t->numel, cs->parts);
    *data = cs->parts;
    return CT_OK;
}

/* Another stage's tensor reaches the leader by a point-to-point message from the rank of
 * that stage with the leader's data and tensor coordinates. */
static ct_status hand_over(ct_ckpt_stream *cs, int owner, size_t numel, const float **data) {
    enum { TAG = 32766 };
    ct_world *w = cs->world;
    int leader = cs->leader, me = ct_world_coord(w, CT_AXIS_PIPELINE);
    int sender = me == owner && ct_world_peer(w, CT_AXIS_PIPELINE, 0) == 0;
    if (!leader && !sender) return CT_OK;
    ct_request r;
    if (sender) CT_TRY(ct_comm_send_start(w, CT_AXIS_PIPELINE, 0, TAG, *data, numel, &r));
    else
        CT_TRY(ct_comm_recv_start(w, CT_AXIS_PIPELINE, owner, TAG, cs->parts, numel, &r));
    CT_TRY(ct_comm_wait(w, &r));
    if (leader) *data = cs->parts;
    return CT_OK;
}

static ct_status stream_get(void *ctx, size_t i, int b, const float **data) {
    ct_ckpt_stream *cs = ctx;
    CT_ASSERT(cs->calls == (size_t)b * cs->n + i); /* the documented order, on every rank */
    cs->calls++;
    *data = cs->parts;
    int owner = cs->owner[i], stage = ct_model_stage(cs->model);
    if (stage == owner) CT_TRY(assemble(cs, ct_model_tensor(cs->model, (size_t)cs->local[i]), b, data));
    if (owner == 0) return CT_OK;
    return hand_over(cs, owner, ct_model_tensor(cs->table, i)->full_numel, data);
}

static void stream_put(void *ctx, size_t i, int b, const float *data) {
    ct_ckpt_stream *cs = ctx;
    if (cs->local[i] < 0) return; /* another stage's */
    const ct_tensor_info *t = ct_model_tensor(cs->model, (size_t)cs->local[i]);
    int rank, R;
    ct_model_tensor_part(cs->model, t, &rank, &R);
    if (b == 0 && cs->cfg->parallel.zero < 3) {
        ct_tensor_take_part(t, rank, R, data, ct_model_params(cs->model) + t->offset);
        return;
    }
    size_t a, e, first = t->offset;
    ct_dp_owned_part(cs->dp, ct_world_coord(cs->world, ct_dp_part_axis(cs->dp, first)), first, first + t->numel,
                     &a, &e);
    if (e <= a) return;
    ct_tensor_take_part(t, rank, R, data, cs->parts);
    if (b == 0) { /* stage 3: this rank's slice of the parameters alone */
        memcpy(ct_model_params(cs->model) + a, cs->parts + (a - first), (e - a) * sizeof(float));
        return;
    }
    if (ct_adamw_write(cs->opt, b, a, e - a, cs->parts + (a - first)) != CT_OK && cs->put_status == CT_OK)
        cs->put_status = ct_fail_context(CT_EIO, "restoring the optimizer state");
}

const ct_ckpt_io *ct_ckpt_stream_io(ct_ckpt_stream *cs) {
    cs->io = (ct_ckpt_io){stream_get, stream_put, cs};
    return &cs->io;
}

ct_status ct_ckpt_stream_finish(ct_ckpt_stream *cs, int with_moments) {
    size_t n = cs->n, total = n * (with_moments ? 3 : 1);
    ct_status s = CT_OK;
    while (cs->calls < total) {
        const float *data;
        ct_status r = stream_get(cs, cs->calls % n, (int)(cs->calls / n), &data);
        if (s == CT_OK) s = r;
    }
    cs->calls = 0;
    return s;
}
