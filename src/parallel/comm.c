/* comm.c: the collectives of comm.h as step machines over nonblocking MPI calls: ring
 * reduce-scatter / all-gather / all-reduce and pairwise all-to-all over point-to-point
 * messages, broadcast and barrier over MPI_Ibcast / MPI_Ibarrier; ct_comm_test advances
 * them, ct_comm_wait waits for them with a test-yield-sleep backoff. */
#include "parallel/world.h"
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

enum {
    OP_NONE,
    OP_ALLREDUCE,
    OP_REDUCE_SCATTER,
    OP_ALLGATHER,
    OP_ALLTOALL,
    OP_BCAST,
    OP_BARRIER,
    OP_SEND,
    OP_RECV
};
#define DONE ((size_t)-1)

static int mod(long a, int p) {
    long m = a % p;
    return (int)(m < 0 ? m + p : m);
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ---- request life ---------------------------------------------------------------------- */

static int group_size(const ct_world *w, const ct_request *r) { return w->axis_size[r->axis]; }
static int group_rank(const ct_world *w, const ct_request *r) { return w->coord[r->axis]; }

/* A fresh request; a collective's tag comes from the axis's sequence, which every member
 * advances in step (point-to-point messages bring their own and leave it alone, since only
 * the two ends take part). */
static void begin_request(ct_world *w, ct_request *r, int op, ct_axis axis) {
    CT_ASSERT(axis >= 0 && axis < CT_AXIS_COUNT);
    memset(r, 0, sizeof *r);
    r->mpi[0] = r->mpi[1] = MPI_REQUEST_NULL;
    r->op = op;
    r->axis = axis;
    r->slot = -1;
    r->seg = w->segment;
    w->counter[axis].calls++;
}

static void begin(ct_world *w, ct_request *r, int op, ct_axis axis) {
    begin_request(w, r, op, axis);
    r->seq = w->seq[axis]++;
    r->tag = (int)(r->seq % 32768u);
}

static ct_status finish(ct_world *w, ct_request *r) {
    ct_world_release_scratch(w, r->slot);
    ct_free(r->segs);
    r->segs = NULL;
    r->slot = -1;
    r->op = OP_NONE;
    return CT_OK;
}

/* Drops whatever is still in flight (after an error) and ends the request. */
static void drop(ct_world *w, ct_request *r) {
    if (r->mpi[1] != MPI_REQUEST_NULL) MPI_Cancel(&r->mpi[1]);
    for (int i = 0; i < 2; i++)
        if (r->mpi[i] != MPI_REQUEST_NULL) MPI_Request_free(&r->mpi[i]);
    for (long i = r->step; r->segs && i < r->steps; i++) {
        if (r->op == OP_RECV) MPI_Cancel(&r->segs[i]);
        if (r->segs[i] != MPI_REQUEST_NULL) MPI_Request_free(&r->segs[i]);
    }
    finish(w, r);
}

static ct_status fail(ct_world *w, ct_request *r, int rc, const char *what) {
    drop(w, r);
    return ct_world_mpi_error(w, r->axis, rc, what);
}

static ct_status claim(ct_world *w, ct_request *r, size_t floats) {
    ct_status s = ct_world_claim_scratch(w, floats, &r->slot, &r->tmp);
    if (s != CT_OK) finish(w, r);
    return s;
}

/* ---- rings ----------------------------------------------------------------------------- */

/* Block b of the buffer a ring works on: the split's shards, near-even pieces of n for an
 * all-reduce, or p equal blocks of n. */
static void block(const ct_request *r, int p, int b, size_t *off, size_t *cnt) {
    if (r->split) {
        *off = r->split->offset[b];
        *cnt = r->split->count[b];
    } else if (r->op == OP_ALLREDUCE) {
        size_t base = r->n / (size_t)p, rem = r->n % (size_t)p, ub = (size_t)b;
        *cnt = base + (ub < rem);
        *off = ub * base + min_size(ub, rem);
    } else {
        *off = (size_t)b * r->n;
        *cnt = r->n;
    }
}

static size_t seg_len(size_t cnt, size_t seg0, size_t seg) {
    return cnt > seg0 ? min_size(seg, cnt - seg0) : 0;
}

/* One ring step: send slen floats from sbuf to the right neighbour, receive rlen floats
 * into rbuf from the left one, then (reductions) dst[i] = rbuf[i] + local[i]. */
typedef struct ring_step {
    const float *sbuf, *local;
    float *rbuf, *dst;
    size_t slen, rlen;
} ring_step;

/* Step `step` of segment j. Reduce-scatter step s (0 <= s < p-1): send block me-s-1 (the
 * partial sum made at step s-1, or local data at s = 0), receive block me-s-2 and add the
 * local part; after p-1 steps block me is complete. All-gather step s: pass block me-s on,
 * receive block me-s-1. An all-reduce runs both per segment, reducing in place. */
static void ring_plan(const ct_world *w, const ct_request *r, long step, ring_step *st) {
    int p = group_size(w, r), me = group_rank(w, r);
    long k = p - 1, s;
    size_t j;
    int gather;
    if (r->op == OP_ALLREDUCE) {
        j = (size_t)(step / (2 * k));
        s = step % (2 * k);
        gather = s >= k;
        if (gather) s -= k;
    } else {
        j = (size_t)(step / k);
        s = step % k;
        gather = r->op == OP_ALLGATHER;
    }
    size_t seg0 = j * r->seg, so, sc, ro, rc;
    block(r, p, gather ? mod(me - s, p) : mod(me - s - 1, p), &so, &sc);
    block(r, p, gather ? mod(me - s - 1, p) : mod(me - s - 2, p), &ro, &rc);
    st->slen = seg_len(sc, seg0, r->seg);
    st->rlen = seg_len(rc, seg0, r->seg);
    so += seg0;
    ro += seg0;
    float *out = r->recv;
    const float *in = r->send;
    st->local = NULL;
    st->dst = NULL;
    if (gather) {
        st->sbuf = out + so;
        st->rbuf = out + ro;
    } else if (r->op == OP_ALLREDUCE) {
        st->sbuf = out + so;
        st->rbuf = r->tmp;
        st->local = st->dst = out + ro;
    } else {
        st->sbuf = s == 0 ? in + so : r->tmp + (size_t)((s - 1) % 2) * r->seg;
        st->rbuf = r->tmp + (size_t)(s % 2) * r->seg;
        st->local = in + ro;
        st->dst = s == k - 1 ? out + seg0 : st->rbuf;
    }
}

static ct_status post_ring(ct_world *w, ct_request *r) {
    ring_step st;
    for (; r->step < r->steps; r->step++) {
        ring_plan(w, r, r->step, &st);
        if (st.slen || st.rlen) break;
    }
    if (r->step >= r->steps) return finish(w, r);
    int p = group_size(w, r), me = group_rank(w, r), rc;
    MPI_Comm comm = w->comm[r->axis];
    if (st.rlen) {
        rc = MPI_Irecv(st.rbuf, (int)st.rlen, MPI_FLOAT, mod(me - 1, p), r->tag, comm, &r->mpi[1]);
        if (rc != MPI_SUCCESS) return fail(w, r, rc, "MPI_Irecv");
    }
    if (st.slen) {
        rc = MPI_Isend(st.sbuf, (int)st.slen, MPI_FLOAT, mod(me + 1, p), r->tag, comm, &r->mpi[0]);
        if (rc != MPI_SUCCESS) return fail(w, r, rc, "MPI_Isend");
        w->counter[r->axis].bytes += st.slen * sizeof(float);
    }
    return CT_OK;
}

static void complete_ring(const ct_world *w, ct_request *r) {
    ring_step st;
    ring_plan(w, r, r->step, &st);
    if (st.dst)
        for (size_t i = 0; i < st.rlen; i++) st.dst[i] = st.rbuf[i] + st.local[i];
    r->step++;
}

/* Steps of a ring over blocks of at most max_block floats: (p-1) per segment, twice for
 * an all-reduce; reductions borrow `tmp_segs` segments of scratch. */
static ct_status start_ring(ct_world *w, ct_request *r, int passes, int tmp_segs) {
    int p = group_size(w, r);
    size_t segs = (r->max_block + r->seg - 1) / r->seg;
    r->steps = (long)(segs * (size_t)(p - 1) * (size_t)passes);
    if (r->steps == 0) return finish(w, r);
    if (tmp_segs) {
        r->seg = min_size(r->seg, r->max_block);
        CT_TRY(claim(w, r, r->seg * (size_t)tmp_segs));
    }
    return post_ring(w, r);
}

/* ---- all-to-all ------------------------------------------------------------------------ */

/* Pairwise exchange: step k sends to me+k and receives from me-k in messages of at most
 * seg floats; a message shorter than seg floats (possibly empty) ends each direction, so
 * a count that disagrees with the peer is reported instead of hanging. r->n is the unit
 * in bytes; NULL counts mean max_block units for every peer. */
static size_t a2a_count(const ct_request *r, int recv, int c) {
    const size_t *counts = recv ? r->recv_counts : r->send_counts;
    return (counts ? counts[c] : r->max_block) * r->n;
}

static size_t a2a_offset(const ct_request *r, int recv, int c) {
    size_t off = 0;
    for (int i = 0; i < c; i++) off += a2a_count(r, recv, i);
    return off;
}

static ct_status post_a2a(ct_world *w, ct_request *r) {
    int p = group_size(w, r), me = group_rank(w, r), rc;
    size_t chunk = r->seg * sizeof(float);
    while (r->step < p && r->sent == DONE && r->received == DONE) {
        r->step++;
        r->sent = r->received = 0;
    }
    if (r->step >= p) return finish(w, r);
    int dst = mod(me + r->step, p), src = mod(me - r->step, p);
    MPI_Comm comm = w->comm[r->axis];
    r->expect = DONE;
    if (r->received != DONE) {
        size_t len = min_size(chunk, a2a_count(r, 1, src) - r->received);
        char *at = (char *)r->recv + a2a_offset(r, 1, src) + r->received;
        r->expect = len;
        rc = MPI_Irecv(at, (int)len, MPI_BYTE, src, r->tag, comm, &r->mpi[1]);
        if (rc != MPI_SUCCESS) return fail(w, r, rc, "MPI_Irecv");
    }
    if (r->sent != DONE) {
        size_t len = min_size(chunk, a2a_count(r, 0, dst) - r->sent);
        const char *at = (const char *)r->send + a2a_offset(r, 0, dst) + r->sent;
        rc = MPI_Isend(at, (int)len, MPI_BYTE, dst, r->tag, comm, &r->mpi[0]);
        if (rc != MPI_SUCCESS) return fail(w, r, rc, "MPI_Isend");
        w->counter[r->axis].bytes += len;
        r->sent = len < chunk ? DONE : r->sent + len;
    }
    return CT_OK;
}

static ct_status a2a_mismatch(ct_world *w, ct_request *r, int src, const char *got) {
    size_t want = a2a_count(r, 1, src) / r->n;
    int axis = r->axis;
    drop(w, r);
    return ct_fail(CT_EINVAL,
                   "all-to-all on the %s group: coordinate %d sent %s, but "
                   "recv_counts[%d] = %zu on coordinate %d",
                   ct_axis_name(axis), src, got, src, want, w->coord[axis]);
}

static ct_status complete_a2a(ct_world *w, ct_request *r, const MPI_Status *st) {
    if (r->expect == DONE) return CT_OK;
    int p = group_size(w, r), src = mod(group_rank(w, r) - r->step, p), got = 0;
    MPI_Get_count(st, MPI_BYTE, &got);
    r->received += (size_t)got;
    if ((size_t)got == r->seg * sizeof(float)) return CT_OK;
    if (r->received != a2a_count(r, 1, src)) {
        char what[64];
        snprintf(what, sizeof what, "%zu elements", r->received / r->n);
        return a2a_mismatch(w, r, src, what);
    }
    r->received = DONE;
    return CT_OK;
}

/* ---- broadcast and barrier ------------------------------------------------------------- */

static ct_status post_coll(ct_world *w, ct_request *r) {
    if (r->step >= r->steps) return finish(w, r);
    MPI_Comm comm = w->comm[r->axis];
    int rc;
    if (r->op == OP_BARRIER) {
        rc = MPI_Ibarrier(comm, &r->mpi[0]);
    } else {
        size_t at = (size_t)r->step * r->seg, len = min_size(r->seg, r->n - at);
        rc = MPI_Ibcast((float *)r->recv + at, (int)len, MPI_FLOAT, r->root, comm, &r->mpi[0]);
        if (group_rank(w, r) == r->root) w->counter[r->axis].bytes += len * sizeof(float);
    }
    if (rc != MPI_SUCCESS) return fail(w, r, rc, r->op == OP_BARRIER ? "MPI_Ibarrier" : "MPI_Ibcast");
    return CT_OK;
}

/* ---- progress and waiting -------------------------------------------------------------- */

/* Point-to-point: the message goes as segments of w->segment floats, every one posted at
 * the start (MPI keeps messages of one tag in order), on the axis's own point-to-point
 * communicator (so user tags never meet the collectives' tags). Each completed segment
 * counts as movement for ct_comm_wait, so a waiter keeps polling while data flows instead
 * of napping between the pieces of one large message (which both ends must drive), and a
 * sender never has to test its request for the rest to go. */
static ct_status post_p2p(ct_world *w, ct_request *r) {
    r->segs = ct_alloc((size_t)r->steps * sizeof *r->segs, "the segments of a message");
    if (!r->segs) {
        finish(w, r);
        return CT_ENOMEM;
    }
    MPI_Comm comm = w->p2p[r->axis];
    for (long i = 0; i < r->steps; i++) {
        size_t at = (size_t)i * r->seg, len = min_size(r->seg, r->n - at);
        int rc;
        if (r->op == OP_SEND) {
            rc = MPI_Isend((const float *)r->send + at, (int)len, MPI_FLOAT, r->root, r->tag, comm,
                           &r->segs[i]);
            w->counter[r->axis].bytes += len * sizeof(float);
        } else {
            rc = MPI_Irecv((float *)r->recv + at, (int)len, MPI_FLOAT, r->root, r->tag, comm, &r->segs[i]);
        }
        if (rc != MPI_SUCCESS) {
            r->steps = i; /* drop what was posted */
            return fail(w, r, rc, r->op == OP_SEND ? "MPI_Isend" : "MPI_Irecv");
        }
    }
    return CT_OK;
}

/* Completes the segments that arrived, in order. */
static ct_status progress_p2p(ct_world *w, ct_request *r, int *done, int *moved) {
    while (r->step < r->steps) {
        int flag = 0, rc = MPI_Test(&r->segs[r->step], &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return fail(w, r, rc, "waiting for a message");
        if (!flag) break;
        r->step++;
        *moved = 1;
    }
    if (r->step == r->steps) finish(w, r);
    *done = r->op == OP_NONE;
    return CT_OK;
}

static ct_status post(ct_world *w, ct_request *r) {
    switch (r->op) {
    case OP_ALLREDUCE:
    case OP_REDUCE_SCATTER:
    case OP_ALLGATHER: return post_ring(w, r);
    case OP_ALLTOALL: return post_a2a(w, r);
    case OP_BCAST:
    case OP_BARRIER: return post_coll(w, r);
    case OP_SEND:
    case OP_RECV: break; /* posted whole at the start */
    }
    return CT_OK;
}

/* Completes every step whose messages arrived; *moved = 1 if any did. */
static ct_status progress(ct_world *w, ct_request *r, int *done, int *moved) {
    *moved = 0;
    if (r->op == OP_SEND || r->op == OP_RECV) return progress_p2p(w, r, done, moved);
    while (r->op != OP_NONE) {
        int flag = 0;
        MPI_Status st[2];
        int rc = MPI_Testall(2, r->mpi, &flag, st);
        if (rc == MPI_ERR_IN_STATUS && r->op == OP_ALLTOALL && st[1].MPI_ERROR == MPI_ERR_TRUNCATE)
            return a2a_mismatch(w, r, mod(group_rank(w, r) - r->step, group_size(w, r)), "more elements");
        if (rc != MPI_SUCCESS) return fail(w, r, rc, "waiting for a message");
        if (!flag) break;
        *moved = 1;
        if (r->op == OP_ALLTOALL) CT_TRY(complete_a2a(w, r, &st[1]));
        else if (r->op == OP_BCAST || r->op == OP_BARRIER)
            r->step++;
        else
            complete_ring(w, r);
        if (r->op != OP_NONE) CT_TRY(post(w, r));
    }
    *done = r->op == OP_NONE;
    return CT_OK;
}

/* Runs call with the world's lock held and returns its status. */
#define LOCKED(w, call) \
    do { \
        pthread_mutex_lock(&(w)->lock); \
        ct_status locked_status_ = (call); \
        pthread_mutex_unlock(&(w)->lock); \
        return locked_status_; \
    } while (0)

static ct_status test_moved(ct_world *w, ct_request *req, int *done, int *moved) {
    LOCKED(w, progress(w, req, done, moved));
}

ct_status ct_comm_test(ct_world *w, ct_request *req, int *done) {
    int moved;
    return test_moved(w, req, done, &moved);
}

ct_status ct_comm_test_moved(ct_world *w, ct_request *req, int *done, int *moved) {
    return test_moved(w, req, done, moved);
}

static void sleep_ns(long ns) {
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* Timer slack of this thread: Linux rounds every sleep up by it (50 us by default), which
 * would dwarf the short naps; lowered to 1 us while ct_comm_wait sleeps. */
static long set_slack(long ns) {
#ifdef PR_SET_TIMERSLACK
    long old = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, (unsigned long)ns, 0, 0, 0);
    return old;
#else
    (void)ns;
    return 0;
#endif
}

/* Next nap: doubling up to 128 us; a wait that has lasted longer (a straggler) sleeps up
 * to 1/16 of the time waited so far, at most 1 ms, so long waits cost ~1% of a core while
 * adding at most ~6% to the wait. */
static long next_nap(long nap, double idle) {
    long cap = (long)(idle * 1e9 / 16);
    if (cap < 128000) cap = 128000;
    if (cap > 1000000) cap = 1000000;
    return 2 * nap < cap ? 2 * nap : cap;
}

static const char *op_name(int op) {
    static const char *const names[] = {"request",   "all-reduce", "reduce-scatter", "all-gather", "all-to-all",
                                        "broadcast", "barrier",    "send",           "receive"};
    return op >= 0 && op < (int)(sizeof names / sizeof *names) ? names[op] : "request";
}

_Noreturn void ct_comm_expired(ct_world *w, const ct_request *req, double waited) {
    ct_watch_report r = {.rank = w->rank, .peer = -1, .waited = waited};
    pthread_mutex_lock(&w->lock); /* the progress thread may be driving req */
    r.axis = req->axis;
    r.seq = req->seq;
    if (req->op == OP_SEND || req->op == OP_RECV) {
        r.peer = ct_world_peer(w, req->axis, req->root);
        r.seq = (unsigned)req->tag;
    }
    snprintf(r.op, sizeof r.op, "%s", op_name(req->op));
    pthread_mutex_unlock(&w->lock);
    ct_watchdog_expired(w, &r);
}

/* Polls until w->poll_s after the last progress, yields the core until w->yield_s, then
 * sleeps with next_nap's backoff; back to polling whenever a message arrives. */
ct_status ct_comm_wait(ct_world *w, ct_request *req) {
    double t0 = ct_now(), last = t0;
    long nap = 500, slack = -1;
    for (;;) {
        int done = 0, moved = 0;
        int axis = req->axis; /* req may be reused by another thread once done */
        ct_status s = test_moved(w, req, &done, &moved);
        if (s != CT_OK || done) {
            if (slack >= 0) set_slack(slack);
            pthread_mutex_lock(&w->lock);
            w->counter[axis].wait_s += ct_now() - t0;
            pthread_mutex_unlock(&w->lock);
            return s;
        }
        double now = ct_now();
        if (moved) {
            last = now;
            nap = 500;
        } else if (now - last >= w->yield_s) {
            if (w->timeout_s > 0 && now - last >= w->timeout_s) ct_comm_expired(w, req, now - last);
            if (slack < 0) slack = set_slack(1000);
            nap = next_nap(nap, now - last);
            sleep_ns(nap);
        } else if (now - last >= w->poll_s) {
            sched_yield();
        }
    }
}

/* ---- starting collectives -------------------------------------------------------------- */

static ct_status allreduce_start(ct_world *w, ct_axis axis, float *buf, size_t n, ct_request *req) {
    begin(w, req, OP_ALLREDUCE, axis);
    int p = group_size(w, req);
    if (p == 1 || n == 0) return finish(w, req);
    CT_ASSERT(buf != NULL);
    req->recv = buf;
    req->n = n;
    req->max_block = (n + (size_t)p - 1) / (size_t)p;
    return start_ring(w, req, 2, 1);
}

static ct_status start_reduce_scatter(ct_world *w, ct_request *r, const float *send, float *recv, size_t mine) {
    if (group_size(w, r) == 1) {
        if (mine && send != recv) memcpy(recv, send, mine * sizeof(float));
        return finish(w, r);
    }
    r->send = send;
    r->recv = recv;
    return start_ring(w, r, 1, 2);
}

static ct_status reduce_scatter_start(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n,
                                      ct_request *req) {
    begin(w, req, OP_REDUCE_SCATTER, axis);
    req->n = req->max_block = n;
    return start_reduce_scatter(w, req, send, recv, n);
}

static ct_status reduce_scatterv_start(ct_world *w, const ct_split *s, const float *send, float *recv,
                                       ct_request *req) {
    begin(w, req, OP_REDUCE_SCATTER, s->axis);
    CT_ASSERT(s->p == group_size(w, req));
    req->split = s;
    req->max_block = s->max_count;
    return start_reduce_scatter(w, req, send, recv, s->count[group_rank(w, req)]);
}

static ct_status start_allgather(ct_world *w, ct_request *r, const float *send, float *recv, size_t off,
                                 size_t mine) {
    if (mine && send && send != recv + off) memmove(recv + off, send, mine * sizeof(float));
    if (group_size(w, r) == 1) return finish(w, r);
    r->recv = recv;
    return start_ring(w, r, 1, 0);
}

static ct_status allgather_start(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n,
                                 ct_request *req) {
    begin(w, req, OP_ALLGATHER, axis);
    req->n = req->max_block = n;
    return start_allgather(w, req, send, recv, (size_t)group_rank(w, req) * n, n);
}

static ct_status allgatherv_start(ct_world *w, const ct_split *s, const float *send, float *recv,
                                  ct_request *req) {
    begin(w, req, OP_ALLGATHER, s->axis);
    CT_ASSERT(s->p == group_size(w, req));
    req->split = s;
    req->max_block = s->max_count;
    int me = group_rank(w, req);
    return start_allgather(w, req, send, recv, s->offset[me], s->count[me]);
}

static ct_status broadcast_start(ct_world *w, ct_axis axis, int root, float *buf, size_t n, ct_request *req) {
    begin(w, req, OP_BCAST, axis);
    int p = group_size(w, req);
    if (root < 0 || root >= p) {
        finish(w, req);
        return ct_fail(CT_EINVAL,
                       "broadcast root %d is not a coordinate of the %s group "
                       "(size %d)",
                       root, ct_axis_name(axis), p);
    }
    if (p == 1 || n == 0) return finish(w, req);
    req->root = root;
    req->recv = buf;
    req->n = n;
    req->steps = (long)((n + req->seg - 1) / req->seg);
    return post_coll(w, req);
}

static ct_status p2p_start(ct_world *w, int op, ct_axis axis, int peer, int tag, const float *send, float *recv,
                           size_t n, ct_request *req) {
    begin_request(w, req, op, axis);
    int p = group_size(w, req);
    if (peer < 0 || peer >= p || peer == group_rank(w, req) || tag < 0 || tag > 32767) {
        finish(w, req);
        return ct_fail(CT_EINVAL,
                       "%s on the %s group: peer %d (of %d, this rank is %d) or tag %d is not "
                       "valid (peer another member, tag 0..32767)",
                       op == OP_SEND ? "send" : "receive", ct_axis_name(axis), peer, p, group_rank(w, req),
                       tag);
    }
    if (n == 0) return finish(w, req);
    req->root = peer;
    req->tag = tag;
    req->send = send;
    req->recv = recv;
    req->n = n;
    req->seg = w->segment; /* see post_p2p */
    req->steps = (long)((n + req->seg - 1) / req->seg);
    return post_p2p(w, req);
}

static ct_status start_a2a(ct_world *w, ct_request *r, const void *send, void *recv) {
    int me = group_rank(w, r);
    size_t mine = a2a_count(r, 0, me);
    if (mine != a2a_count(r, 1, me)) {
        finish(w, r);
        return ct_fail(CT_EINVAL,
                       "all-to-all on the %s group: send_counts[%d] = %zu but "
                       "recv_counts[%d] = %zu on the same rank",
                       ct_axis_name(r->axis), me, mine / r->n, me, a2a_count(r, 1, me) / r->n);
    }
    if (mine) memcpy((char *)recv + a2a_offset(r, 1, me), (const char *)send + a2a_offset(r, 0, me), mine);
    if (group_size(w, r) == 1) return finish(w, r);
    r->send = send;
    r->recv = recv;
    r->sent = r->received = DONE; /* step 0 (the local copy) is done */
    return post_a2a(w, r);
}

static ct_status alltoallv_start(ct_world *w, ct_axis axis, const float *send, const size_t *send_counts,
                                 float *recv, const size_t *recv_counts, ct_request *req) {
    begin(w, req, OP_ALLTOALL, axis);
    CT_ASSERT(send_counts && recv_counts);
    req->n = sizeof(float);
    req->send_counts = send_counts;
    req->recv_counts = recv_counts;
    return start_a2a(w, req, send, recv);
}

static ct_status barrier_start(ct_world *w, ct_axis axis, ct_request *req) {
    begin(w, req, OP_BARRIER, axis);
    if (group_size(w, req) == 1) return finish(w, req);
    req->steps = 1;
    return post_coll(w, req);
}

/* The public starts: each under the world's lock. */
ct_status ct_comm_allreduce_start(ct_world *w, ct_axis axis, float *buf, size_t n, ct_request *req) {
    LOCKED(w, allreduce_start(w, axis, buf, n, req));
}

ct_status ct_comm_reduce_scatter_start(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n,
                                       ct_request *req) {
    LOCKED(w, reduce_scatter_start(w, axis, send, recv, n, req));
}

ct_status ct_comm_reduce_scatterv_start(ct_world *w, const ct_split *s, const float *send, float *recv,
                                        ct_request *req) {
    LOCKED(w, reduce_scatterv_start(w, s, send, recv, req));
}

ct_status ct_comm_allgather_start(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n,
                                  ct_request *req) {
    LOCKED(w, allgather_start(w, axis, send, recv, n, req));
}

ct_status ct_comm_allgatherv_start(ct_world *w, const ct_split *s, const float *send, float *recv,
                                   ct_request *req) {
    LOCKED(w, allgatherv_start(w, s, send, recv, req));
}

ct_status ct_comm_broadcast_start(ct_world *w, ct_axis axis, int root, float *buf, size_t n, ct_request *req) {
    LOCKED(w, broadcast_start(w, axis, root, buf, n, req));
}

ct_status ct_comm_alltoallv_start(ct_world *w, ct_axis axis, const float *send, const size_t *send_counts,
                                  float *recv, const size_t *recv_counts, ct_request *req) {
    LOCKED(w, alltoallv_start(w, axis, send, send_counts, recv, recv_counts, req));
}

ct_status ct_comm_barrier_start(ct_world *w, ct_axis axis, ct_request *req) {
    LOCKED(w, barrier_start(w, axis, req));
}

ct_status ct_comm_send_start(ct_world *w, ct_axis axis, int peer, int tag, const float *buf, size_t n,
                             ct_request *req) {
    LOCKED(w, p2p_start(w, OP_SEND, axis, peer, tag, buf, NULL, n, req));
}

ct_status ct_comm_recv_start(ct_world *w, ct_axis axis, int peer, int tag, float *buf, size_t n,
                             ct_request *req) {
    LOCKED(w, p2p_start(w, OP_RECV, axis, peer, tag, NULL, buf, n, req));
}

/* ---- blocking forms -------------------------------------------------------------------- */

ct_status ct_comm_allreduce(ct_world *w, ct_axis axis, float *buf, size_t n) {
    ct_request r;
    CT_TRY(ct_comm_allreduce_start(w, axis, buf, n, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_comm_reduce_scatter(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n) {
    ct_request r;
    CT_TRY(ct_comm_reduce_scatter_start(w, axis, send, recv, n, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_comm_reduce_scatterv(ct_world *w, const ct_split *s, const float *send, float *recv) {
    ct_request r;
    CT_TRY(ct_comm_reduce_scatterv_start(w, s, send, recv, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_comm_allgather(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n) {
    ct_request r;
    CT_TRY(ct_comm_allgather_start(w, axis, send, recv, n, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_comm_allgatherv(ct_world *w, const ct_split *s, const float *send, float *recv) {
    ct_request r;
    CT_TRY(ct_comm_allgatherv_start(w, s, send, recv, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_comm_broadcast(ct_world *w, ct_axis axis, int root, float *buf, size_t n) {
    ct_request r;
    CT_TRY(ct_comm_broadcast_start(w, axis, root, buf, n, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_comm_alltoallv(ct_world *w, ct_axis axis, const float *send, const size_t *send_counts,
                            float *recv, const size_t *recv_counts) {
    ct_request r;
    CT_TRY(ct_comm_alltoallv_start(w, axis, send, send_counts, recv, recv_counts, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_comm_barrier(ct_world *w, ct_axis axis) {
    ct_request r;
    CT_TRY(ct_comm_barrier_start(w, axis, &r));
    return ct_comm_wait(w, &r);
}

static ct_status sizes_start(ct_world *w, ct_axis axis, const size_t *send, size_t *recv, size_t per_peer,
                             ct_request *r) {
    begin(w, r, OP_ALLTOALL, axis);
    r->n = sizeof(size_t);
    r->max_block = per_peer;
    return start_a2a(w, r, send, recv);
}

static ct_status sizes_start_locked(ct_world *w, ct_axis axis, const size_t *send, size_t *recv,
                                    size_t per_peer, ct_request *r) {
    LOCKED(w, sizes_start(w, axis, send, recv, per_peer, r));
}

ct_status ct_comm_alltoall_sizes(ct_world *w, ct_axis axis, const size_t *send, size_t *recv, size_t per_peer) {
    ct_request r;
    CT_TRY(sizes_start_locked(w, axis, send, recv, per_peer, &r));
    return ct_comm_wait(w, &r);
}

ct_status ct_world_agree(ct_world *w, ct_status local, const char *what) {
    if (ct_world_size(w) == 1) return local;
    float failed = local != CT_OK;
    ct_status s = ct_comm_allreduce(w, CT_AXIS_WORLD, &failed, 1);
    if (local != CT_OK) return local;
    if (s != CT_OK) return s;
    return failed > 0.0f ? ct_fail(CT_EIO, "%s failed on another rank (see its message)", what) : CT_OK;
}
