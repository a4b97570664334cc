/* gpt_offload.c: blocks whose parameters or gradients live off the compute tier.
 *
 * The flat parameter and gradient buffers stay the home of every tensor. An offloaded
 * block's home range is host memory (its bytes counted in the host tier, not the compute
 * tier) or the disk: the whole pages of the range are remapped from a file per rank
 * (offload.dir/model_rank_R.bin, one page-aligned region per range) and dropped from memory
 * after each use, so they are read back from the file (through the page cache) when next
 * touched. Everything that reads or writes the home (the optimizer, data parallelism,
 * checkpoints) therefore works unchanged.
 *
 * Computing a block needs its parameters on the compute tier: two compute slots take turns;
 * while block l computes, the I/O thread copies the next block's parameters (l+1 in
 * forward, l-1 in backward) into the other slot and, for the disk, drops the home pages it
 * read. An offloaded block's gradients go through one compute slot: loaded before its
 * backward (backward adds into them), written back home as soon as the block's backward
 * ends, before the gradient hook reports them final. The same floats are computed in the
 * same order as without offload, so results are bit-identical. */
#define _GNU_SOURCE /* fallocate */
#include "core/core.h"
#include "model/model.h"
#include "model/gpt_internal.h"
#include "core/store.h"
#include "ops/ops.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct ct_model_offload {
    unsigned char *param_place, *grad_place; /* [n_layer]: ct_place */
    ct_store *io;                            /* the copying thread */
    int fd;                                  /* the disk tier's file, or -1 */
    char path[1100];
    float *pslot[2], *gslot; /* compute tier: [slot_n] each */
    size_t slot_n;
    int pslot_layer[2]; /* the block each parameter slot holds, or -1 */
    ct_ticket pslot_ready[2];
    size_t moved[2]; /* bytes moved out of the compute tier: host, disk */
    size_t *file_at; /* [2 * n_layer]: each disk range's region (params, grads) */
    size_t file_end;
    int grads_host;             /* the gradient buffer was allocated in the host tier */
    int placed;                 /* setup charged the embeddings and head: 1 weights, 2 gradients too */
    unsigned char *moved_range; /* [2 * n_layer]: placed (accounting moved) */
};

/* The tier a kind's buffer was allocated in, and the one a place counts in (-1: disk). */
static int buffer_tier(const ct_model_offload *o, int grads) {
    return !grads || o->grads_host ? CT_TIER_HOST : CT_TIER_COMPUTE; /* parameters: ct_gpt_offload_place */
}
static int place_tier(ct_place p) {
    return p == CT_PLACE_COMPUTE ? CT_TIER_COMPUTE : p == CT_PLACE_HOST ? CT_TIER_HOST : -1;
}

static const char *kind_name(int grads) { return grads ? "gradients" : "parameters"; }

static float *home(ct_model *m, int grads) { return grads ? m->table.grads : m->table.params; }

/* Remaps the whole pages of home range [lo, lo + n) of block l from a new region of the
 * file (which then holds their current values), so dropping them keeps the data. */
static ct_status map_to_file(ct_model *m, int grads, int l, size_t lo, size_t n) {
    ct_model_offload *o = m->off;
    float *p = home(m, grads) + lo;
    size_t skip, len, page = (size_t)sysconf(_SC_PAGESIZE);
    ct_page_interior(p, n * sizeof(float), &skip, &len);
    size_t at = o->file_at[2 * l + grads] = (o->file_end + page - 1) / page * page;
    if (!len) return CT_OK;
    o->file_end = at + len;
    if (ftruncate(o->fd, (off_t)o->file_end) != 0)
        return ct_fail(CT_EIO, "offload: growing %s to %zu bytes: %s", o->path, o->file_end, strerror(errno));
    for (size_t done = 0; done < len;) {
        ssize_t w = pwrite(o->fd, (char *)p + skip + done, len - done, (off_t)(at + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return ct_fail(CT_EIO, "offload: writing %s: %s", o->path, strerror(errno));
        done += (size_t)w;
    }
    void *mapped = mmap((char *)p + skip, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, o->fd,
                        (off_t)at);
    if (mapped == MAP_FAILED) return ct_fail(CT_EIO, "offload: mapping %s: %s", o->path, strerror(errno));
    return CT_OK;
}

/* Gives a disk range's whole pages back to anonymous memory, with the file's values (before
 * the buffer is freed or reused). It runs while freeing, so it cannot fail: a chunk of pages
 * at a time goes through a buffer on the stack. */
static void unmap_from_file(ct_model *m, int grads, size_t lo, size_t n) {
    float *p = home(m, grads) + lo;
    size_t skip, len, page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char copy[1 << 16];
    ct_page_interior(p, n * sizeof(float), &skip, &len);
    CT_ASSERT(page <= sizeof copy);
    size_t step = sizeof copy / page * page;
    for (char *at = (char *)p + skip, *end = at + len; at < end; at += step) {
        size_t k = (size_t)(end - at) < step ? (size_t)(end - at) : step;
        memcpy(copy, at, k);
        mmap(at, k, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        memcpy(at, copy, k);
    }
}

static ct_status open_file(ct_model *m, const char *dir, int rank) {
    ct_model_offload *o = m->off;
    CT_TRY(ct_mkdirs(dir));
    snprintf(o->path, sizeof o->path, "%s/model_rank_%d.bin", dir, rank);
    o->fd = open(o->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (o->fd < 0) return ct_fail(CT_EIO, "offload.dir: cannot create %s: %s", o->path, strerror(errno));
    return CT_OK;
}

/* Places block l's range of one kind: accounting, and the file for the disk. */
static ct_status place_block(ct_model *m, int l, int grads, ct_place place) {
    size_t lo, n;
    ct_gpt_table_block_range(m, l, &lo, &n);
    if (place == CT_PLACE_DISK) CT_TRY(map_to_file(m, grads, l, lo, n));
    char what[64];
    snprintf(what, sizeof what, "block %d's %s", l, kind_name(grads));
    if (!ct_tier_charge(n * sizeof(float), buffer_tier(m->off, grads), place_tier(place), what))
        return CT_ENOMEM;
    if (place != CT_PLACE_COMPUTE) m->off->moved[place == CT_PLACE_DISK] += n * sizeof(float);
    m->off->moved_range[2 * l + grads] = 1;
    if (place == CT_PLACE_DISK) ct_pages_drop(home(m, grads) + lo, n * sizeof(float));
    return CT_OK;
}

static ct_status check_units(const ct_model *m, const ct_place *units, int grads) {
    int L = m->cfg.n_layer;
    if (units[0] != CT_PLACE_COMPUTE || units[L + 1] != CT_PLACE_COMPUTE)
        return ct_fail(CT_EINVAL,
                       "offload.%s: the embeddings and the head stay on the compute tier (they are "
                       "used at both ends of every pass); place blocks (e.g. \"0-%d:host\")",
                       kind_name(grads), L - 1);
    return CT_OK;
}

/* Floats of the flat buffers outside every block (embeddings, head). */
static size_t outside_blocks(const ct_model *m) {
    size_t inside = 0;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        size_t lo, n;
        ct_gpt_table_block_range(m, l, &lo, &n);
        inside += n;
    }
    return m->table.n_params - inside;
}

static ct_status setup(ct_model *m, const ct_place *params, const ct_place *grads, const char *dir, int rank) {
    ct_model_offload *o = m->off;
    int any_disk = 0, any_param = 0, any_grad = 0;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        size_t lo, n;
        ct_gpt_table_block_range(m, l, &lo, &n);
        o->param_place[l] = (unsigned char)params[1 + l];
        o->grad_place[l] = (unsigned char)grads[1 + l];
        any_disk |= params[1 + l] == CT_PLACE_DISK || grads[1 + l] == CT_PLACE_DISK;
        any_param |= params[1 + l] != CT_PLACE_COMPUTE;
        any_grad |= grads[1 + l] != CT_PLACE_COMPUTE;
        if ((params[1 + l] != CT_PLACE_COMPUTE || grads[1 + l] != CT_PLACE_COMPUTE) && n > o->slot_n)
            o->slot_n = n;
    }
    if (any_disk) CT_TRY(open_file(m, dir, rank));
    CT_TRY(ct_store_open(&o->io, NULL, rank, 0));
    ct_store_set_copy(o->io, ct_copy); /* prefetches through the backend's copy between tiers */
    for (int s = 0; s < 2 && any_param; s++)
        if (!(o->pslot[s] = ct_alloc_in(CT_TIER_COMPUTE, o->slot_n * sizeof(float),
                                        "offloaded parameters' compute slot")))
            return CT_ENOMEM;
    if (any_grad && !(o->gslot = ct_alloc_in(CT_TIER_COMPUTE, o->slot_n * sizeof(float),
                                             "offloaded gradients' compute slot")))
        return CT_ENOMEM;
    /* the embeddings' and the head's weights (and gradients) compute */
    if (!ct_tier_charge(outside_blocks(m) * sizeof(float), CT_TIER_HOST, CT_TIER_COMPUTE,
                        "the embeddings and head"))
        return CT_ENOMEM;
    o->placed = 1;
    if (o->grads_host && !ct_tier_charge(outside_blocks(m) * sizeof(float), CT_TIER_HOST, CT_TIER_COMPUTE,
                                         "the embeddings' and head's gradients"))
        return CT_ENOMEM;
    o->placed = 2;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        CT_TRY(place_block(m, l, 0, (ct_place)o->param_place[l]));
        if (o->grad_place[l] != CT_PLACE_COMPUTE || o->grads_host)
            CT_TRY(place_block(m, l, 1, (ct_place)o->grad_place[l]));
    }
    return CT_OK;
}

void ct_gpt_offload_free(ct_model *m) {
    ct_model_offload *o = m->off;
    if (!o) return;
    ct_store_close(o->io);
    for (int l = m->layout.l0; o->moved_range && l < m->layout.l1; l++)
        for (int g = 0; g < 2; g++) { /* the accounting returns to the buffers' tiers */
            ct_place p = (ct_place)(g ? o->grad_place[l] : o->param_place[l]);
            if (!o->moved_range[2 * l + g]) continue;
            size_t lo, n;
            ct_gpt_table_block_range(m, l, &lo, &n);
            if (p == CT_PLACE_DISK) unmap_from_file(m, g, lo, n);
            ct_tier_move(n * sizeof(float), place_tier(p), buffer_tier(o, g));
        }
    if (o->placed >= 1) ct_tier_move(outside_blocks(m) * sizeof(float), CT_TIER_COMPUTE, CT_TIER_HOST);
    if (o->placed >= 2 && o->grads_host)
        ct_tier_move(outside_blocks(m) * sizeof(float), CT_TIER_COMPUTE, CT_TIER_HOST);
    ct_free(o->pslot[0]);
    ct_free(o->pslot[1]);
    ct_free(o->gslot);
    if (o->fd >= 0) {
        close(o->fd);
        unlink(o->path);
    }
    ct_free(o->param_place);
    ct_free(o->grad_place);
    ct_free(o->file_at);
    ct_free(o->moved_range);
    ct_free(o);
    m->off = NULL;
}

ct_status ct_gpt_offload_place(ct_model *m) {
    if (m->base) m = m->base;
    if (m->placed || m->off) return CT_OK;
    size_t floats = m->sharded[0] ? m->sharded[0] : m->table.n_params;
    if (!ct_tier_charge(floats * sizeof(float), CT_TIER_HOST, CT_TIER_COMPUTE,
                        m->sharded[0] ? "model parameters (this rank's shards and the gathered units)"
                                      : "model parameters"))
        return CT_ENOMEM;
    m->placed = 1;
    m->placed_floats = floats;
    return CT_OK;
}

ct_status ct_model_set_sharded(ct_model *m, size_t param_floats, size_t grad_floats) {
    if (m->base || m->pass.acts || m->off || m->placed || m->table.grads)
        return ct_fail(CT_EINVAL, "sharded parameters must be set once, before the model's first pass, its "
                                  "views and offload");
    m->sharded[0] = param_floats < m->table.n_params ? param_floats : m->table.n_params;
    m->sharded[1] = grad_floats < m->table.n_params ? grad_floats : m->table.n_params;
    return CT_OK;
}

void ct_gpt_offload_unplace(ct_model *m) {
    if (m->placed) ct_tier_move(m->placed_floats * sizeof(float), CT_TIER_COMPUTE, CT_TIER_HOST);
    if (m->sharded[1] && m->table.grads)
        ct_tier_move(m->sharded[1] * sizeof(float), CT_TIER_COMPUTE, CT_TIER_HOST);
    m->placed = 0;
}

ct_status ct_model_set_offload(ct_model *m, const ct_place *params, const ct_place *grads, const char *dir,
                               int rank) {
    if (m->base || m->pass.acts || m->off || m->placed)
        return ct_fail(CT_EINVAL, "offload must be set once, before the model's first pass and its views");
    CT_TRY(check_units(m, params, 0));
    CT_TRY(check_units(m, grads, 1));
    int any = 0;
    for (int l = m->layout.l0; l < m->layout.l1; l++)
        any |= params[1 + l] != CT_PLACE_COMPUTE || grads[1 + l] != CT_PLACE_COMPUTE;
    if (!any) return ct_gpt_offload_place(m);
    if (ct_model_unique_blocks(&m->cfg) < m->cfg.n_layer)
        return ct_fail(CT_EINVAL,
                       "offload.params / offload.grads with model.share_layers: blocks sharing weights "
                       "use one copy, which stays on the compute tier; offload the optimizer state instead "
                       "(offload.optimizer)");
    if (!(m->off = ct_calloc(sizeof *m->off, "the model's offload state"))) return CT_ENOMEM;
    if (!m->table.grads) { /* allocated in the host tier: only what stays on the compute tier counts there */
        if (ct_gpt_table_alloc(m, 1, CT_TIER_HOST) != CT_OK) {
            ct_free(m->off);
            m->off = NULL;
            return CT_ENOMEM;
        }
        m->off->grads_host = 1;
    }
    m->off->fd = -1;
    m->off->pslot_layer[0] = m->off->pslot_layer[1] = -1;
    size_t L = (size_t)m->cfg.n_layer;
    int tables = (m->off->param_place = ct_calloc(L, "the offload tables")) &&
                 (m->off->grad_place = ct_calloc(L, "the offload tables")) &&
                 (m->off->file_at = ct_calloc(2 * L * sizeof *m->off->file_at, "the offload tables")) &&
                 (m->off->moved_range = ct_calloc(2 * L, "the offload tables"));
    ct_status s = tables ? setup(m, params, grads, dir, rank) : CT_ENOMEM;
    if (s != CT_OK) ct_gpt_offload_free(m);
    return s;
}

size_t ct_model_offloaded_bytes(const ct_model *m, ct_place place) {
    if (!m->off || place == CT_PLACE_COMPUTE) return 0;
    return m->off->moved[place == CT_PLACE_DISK];
}

/* Starts copying block l's parameters into slot s (dropping the disk pages it read). */
static void prefetch(ct_model *m, int l, int s) {
    ct_model_offload *o = m->off;
    size_t lo, n;
    ct_gpt_table_block_range(m, l, &lo, &n);
    o->pslot_layer[s] = l;
    o->pslot_ready[s] = ct_store_copy(o->io, o->pslot[s], m->table.params + lo, n * sizeof(float));
    if (o->param_place[l] == CT_PLACE_DISK)
        o->pslot_ready[s] = ct_store_release(o->io, m->table.params + lo, n * sizeof(float));
}

ct_status ct_gpt_offload_enter(ct_model *m, int l, int next) {
    ct_model_offload *o = m->base ? m->base->off : m->off;
    if (!o || o->param_place[l] == CT_PLACE_COMPUTE) return CT_OK;
    ct_model *owner = m->base ? m->base : m;
    int s = o->pslot_layer[0] == l ? 0 : o->pslot_layer[1] == l ? 1 : -1;
    if (s < 0) { /* not prefetched: into the slot the previous block is not using */
        s = o->pslot_layer[0] < 0 ? 0 : 1;
        prefetch(owner, l, s);
    }
    CT_TRY(ct_store_wait(o->io, o->pslot_ready[s]));
    size_t lo, n;
    ct_gpt_table_block_range(m, l, &lo, &n);
    ct_gpt_table_bind_block(m, l, &m->table.blocks[l], o->pslot[s], lo);
    /* under ZeRO 3 the next block's gather into its home may still be in flight: it is copied
     * to a slot when it is entered */
    if (next >= m->layout.l0 && next < m->layout.l1 && o->param_place[next] != CT_PLACE_COMPUTE &&
        o->pslot_layer[1 - s] != next && !owner->hooks.params)
        prefetch(owner, next, 1 - s);
    return CT_OK;
}

void ct_gpt_offload_grads_in(ct_model *m, int l) {
    ct_model_offload *o = m->base ? m->base->off : m->off;
    if (!o || o->grad_place[l] == CT_PLACE_COMPUTE) return;
    size_t lo, n;
    ct_gpt_table_block_range(m, l, &lo, &n);
    ct_copy(o->gslot, m->table.grads + lo, n * sizeof(float));
    ct_gpt_table_bind_block(m, l, &m->table.block_grads[l], o->gslot, lo);
}

void ct_gpt_offload_grads_out(ct_model *m, int l) {
    ct_model_offload *o = m->base ? m->base->off : m->off;
    if (!o || o->grad_place[l] == CT_PLACE_COMPUTE) return;
    size_t lo, n;
    ct_gpt_table_block_range(m, l, &lo, &n);
    ct_copy(m->table.grads + lo, o->gslot, n * sizeof(float));
    if (o->grad_place[l] == CT_PLACE_DISK) ct_pages_drop(m->table.grads + lo, n * sizeof(float));
}

/* Zeroes [a, e) of block l's disk-placed gradients without touching its pages: the whole
 * pages inside are dropped and punched to zeros in the file, the edges written. */
static void zero_disk_span(ct_model *m, int l, size_t a, size_t e) {
    ct_model_offload *o = m->off;
    size_t lo, n, skip, len;
    ct_gpt_table_block_range(m, l, &lo, &n);
    float *home = m->table.grads + lo;
    ct_page_interior(home, n * sizeof(float), &skip, &len);
    char *mapped = (char *)home + skip, *from = (char *)(m->table.grads + a),
         *to = (char *)(m->table.grads + e);
    size_t in_skip, in_len;
    ct_page_interior(from, (size_t)(to - from), &in_skip, &in_len);
    char *p0 = from + in_skip, *p1 = p0 + in_len;
    if (p0 < mapped) p0 = mapped;
    if (p1 > mapped + len) p1 = mapped + len;
    if (p1 <= p0) {
        memset(from, 0, (size_t)(to - from));
        return;
    }
    memset(from, 0, (size_t)(p0 - from));
    memset(p1, 0, (size_t)(to - p1));
    ct_pages_drop(p0, (size_t)(p1 - p0));
    off_t at = (off_t)(o->file_at[2 * l + 1] + (size_t)(p0 - mapped));
    if (fallocate(o->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, (off_t)(p1 - p0)) != 0)
        memset(p0, 0, (size_t)(p1 - p0)); /* no hole punching here: write the zeros */
}

/* Zeroes n floats of memory (not file-backed): written with keep, else given back. */
static void zero_plain(float *p, size_t n, int keep) {
    if (keep) memset(p, 0, n * sizeof(float));
    else
        ct_zero_lazily(p, n * sizeof(float));
}

void ct_model_zero_grad_range(ct_model *m, size_t lo, size_t n, int keep) {
    ct_model_offload *o = m->off;
    size_t at = lo, end = lo + n;
    float *g = m->table.grads;
    for (int l = m->layout.l0; o && l < m->layout.l1 && at < end; l++) {
        size_t b_lo, b_n;
        ct_gpt_table_block_range(m, l, &b_lo, &b_n);
        size_t a = b_lo > at ? b_lo : at, e = b_lo + b_n < end ? b_lo + b_n : end;
        if (o->grad_place[l] != CT_PLACE_DISK || e <= a) continue;
        zero_plain(g + at, a - at, keep);
        zero_disk_span(m, l, a, e);
        at = e;
    }
    zero_plain(g + at, end - at, keep);
}

int ct_gpt_offload_zero_grad(ct_model *m) {
    if (!m->off || !m->table.grads) return 0;
    ct_model_zero_grad_range(m, 0, m->table.n_params, 1);
    return 1;
}

ct_status ct_model_offload_settle(ct_model *m) {
    ct_model_offload *o = m->off;
    if (!o) return CT_OK;
    CT_TRY(ct_store_wait(o->io, o->pslot_ready[0] > o->pslot_ready[1] ? o->pslot_ready[0] : o->pslot_ready[1]));
    o->pslot_layer[0] = o->pslot_layer[1] = -1; /* the parameters changed */
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        size_t lo, n;
        ct_gpt_table_block_range(m, l, &lo, &n);
        if (o->param_place[l] == CT_PLACE_DISK) ct_pages_drop(m->table.params + lo, n * sizeof(float));
        if (o->grad_place[l] == CT_PLACE_DISK) ct_pages_drop(m->table.grads + lo, n * sizeof(float));
    }
    return CT_OK;
}

void ct_model_offload_drop(ct_model *m, size_t lo, size_t n) {
    ct_model_offload *o = m->base ? m->base->off : m->off;
    if (!o) return;
    for (int l = m->layout.l0; l < m->layout.l1; l++) {
        size_t a, k;
        ct_gpt_table_block_range(m, l, &a, &k);
        size_t s = a > lo ? a : lo, e = a + k < lo + n ? a + k : lo + n;
        if (e <= s) continue;
        if (o->param_place[l] == CT_PLACE_DISK) ct_pages_drop(m->table.params + s, (e - s) * sizeof(float));
        if (o->grad_place[l] == CT_PLACE_DISK) ct_pages_drop(m->table.grads + s, (e - s) * sizeof(float));
    }
}

void ct_model_offload_times(const ct_model *m, double *busy_s, double *wait_s) {
    *busy_s = *wait_s = 0.0;
    if (m->off) ct_store_times(m->off->io, busy_s, wait_s);
}
