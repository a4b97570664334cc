/* tool_comm_check.c: checks the communication layer (src/parallel/comm.h) under mpirun or
 * as a single process, and measures its waiting. Any failed check ends every rank through
 * ct_world_abort with a message naming the rank, the axis and the collective.
 *
 * Usage: tool_comm_check MODE [args]
 *   check DATA TENSOR [PIPELINE [EXPERT]]
 *       coordinates and group membership on every axis; every collective (all-reduce,
 *       reduce-scatter, all-gather, their uneven forms, broadcast, all-to-all, barrier)
 *       against a locally computed expectation, exactly, at several sizes, with the
 *       default and a small segment; identical bytes on every rank; nonblocking requests
 *       in flight together; point-to-point sends and receives on two tags; the progress engine with and without its helper thread;
 *       byte counters. Rank 0 prints "digest X": a hash of float
 *       all-reduce results, equal from run to run for a fixed layout.
 *   layout DATA TENSOR [PIPELINE [EXPERT]]
 *       only starts the world: prints the layout, or the refusal (exit 2).
 *   idle SECONDS
 *       rank 0 reaches a barrier and an all-reduce SECONDS late; the others report the CPU
 *       time they used waiting, with ct_comm_wait and with MPI's blocking MPI_Barrier, and
 *       fail if ct_comm_wait used more than 20% of the wait.
 *   fatal RANK [DATA TENSOR]  rank RANK ends the run with ct_world_abort; the others wait.
 *   hang DIR        each rank writes its pid to DIR/pid.RANK and waits at a barrier that
 *                   rank 0 reaches only after 60 s (for a test that kills one rank).
 *   stall DIR TIMEOUT [thread]
 *                   parallel.timeout = TIMEOUT; each rank writes its pid to DIR/pid.RANK and
 *                   runs world all-reduces until the watchdog ends the job (a test stops
 *                   one rank); with `thread` they are drained from a progress thread.
 *   bench FLOATS REPS WORK_US
 *       REPS rounds of: compute WORK_US (odd world ranks 2x as long), then an all-reduce
 *       of FLOATS floats over the world, with MPI_Allreduce (blocking, MPI's own wait),
 *       ct ring + spinning on ct_comm_test, and ct ring + ct_comm_wait. Prints the median
 *       round time and the CPU time per rank. */
#include "core/core.h"
#include "parallel/comm.h"
#include "parallel/progress.h"
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static ct_world *W;

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void failf(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ct_world_abort(W, 1, msg);
}

#define CHECK(cond, ...) \
    do { \
        if (!(cond)) failf(__VA_ARGS__); \
    } while (0)
#define TRY(expr) \
    do { \
        if ((expr) != CT_OK) failf("%s: %s", #expr, ct_last_error()); \
    } while (0)

static float *falloc(size_t n) {
    float *p = ct_alloc((n ? n : 1) * sizeof(float), "test buffer");
    CHECK(p, "out of memory");
    return p;
}

/* Small integers: sums are exact in any order, so expectations need no tolerance. */
static float ival(int rank, size_t i, int salt) {
    return (float)((int)(((size_t)rank * 7919u + i * 31u + (size_t)salt * 131u) % 17u) - 8);
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {}
}

static ct_layout parse_layout(int argc, char **argv) {
    ct_layout l = {0, 1, 1, 1};
    int *f[4] = {&l.data, &l.tensor, &l.pipeline, &l.expert};
    for (int i = 0; i < 4 && i < argc; i++) *f[i] = atoi(argv[i]);
    return l;
}

/* ---- coordinates and groups ------------------------------------------------------------ */

static void check_coords(void) {
    const ct_layout *l = ct_world_layout(W);
    int me = ct_world_rank(W), want[CT_AXIS_COUNT];
    ct_layout_coords(l, me, want);
    CHECK(me == (want[CT_AXIS_PIPELINE] * l->data + want[CT_AXIS_DATA]) * l->tensor + want[CT_AXIS_TENSOR],
          "rank %d is not ((pipe * data) + d) * tensor + t", me);
    for (int a = 0; a < CT_AXIS_COUNT; a++) {
        int p = ct_world_axis_size(W, a);
        CHECK(ct_world_coord(W, a) == want[a], "%s coordinate %d, expected %d", ct_axis_name(a),
              ct_world_coord(W, a), want[a]);
        float mine[CT_AXIS_COUNT], *all = falloc((size_t)p * CT_AXIS_COUNT);
        for (int b = 0; b < CT_AXIS_COUNT; b++) mine[b] = (float)ct_world_coord(W, b);
        TRY(ct_comm_allgather(W, a, mine, all, CT_AXIS_COUNT));
        for (int c = 0; c < p; c++) {
            int peer = ct_world_peer(W, a, c), pc[CT_AXIS_COUNT];
            ct_layout_coords(l, peer, pc);
            CHECK(pc[a] == c, "%s group: member %d has coordinate %d", ct_axis_name(a), peer, pc[a]);
            for (int b = 0; b < CT_AXIS_COUNT; b++)
                CHECK(all[c * CT_AXIS_COUNT + b] == (float)pc[b],
                      "%s group: member at %d is "
                      "not world rank %d",
                      ct_axis_name(a), c, peer);
        }
        ct_free(all);
    }
}

/* ---- exact results --------------------------------------------------------------------- */

static int salt_counter;

static void check_allreduce_exact(int a, size_t n) {
    int p = ct_world_axis_size(W, a), salt = ++salt_counter;
    float *buf = falloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = ival(ct_world_rank(W), i, salt);
    TRY(ct_comm_allreduce(W, a, buf, n));
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int c = 0; c < p; c++) want += ival(ct_world_peer(W, a, c), i, salt);
        CHECK(buf[i] == want, "all-reduce on %s, n=%zu: [%zu] = %g, expected %g", ct_axis_name(a), n, i, buf[i],
              want);
    }
    ct_free(buf);
}

static void check_reduce_scatter_exact(int a, size_t n) {
    int p = ct_world_axis_size(W, a), me = ct_world_coord(W, a), salt = ++salt_counter;
    float *send = falloc(n * (size_t)p), *recv = falloc(n);
    for (size_t i = 0; i < n * (size_t)p; i++) send[i] = ival(ct_world_rank(W), i, salt);
    TRY(ct_comm_reduce_scatter(W, a, send, recv, n));
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int c = 0; c < p; c++) want += ival(ct_world_peer(W, a, c), (size_t)me * n + i, salt);
        CHECK(recv[i] == want, "reduce-scatter on %s, n=%zu: [%zu] = %g, expected %g", ct_axis_name(a), n, i,
              recv[i], want);
    }
    ct_free(send);
    ct_free(recv);
}

static void check_allgather_exact(int a, size_t n) {
    int p = ct_world_axis_size(W, a), salt = ++salt_counter;
    float *send = falloc(n), *recv = falloc(n * (size_t)p);
    for (size_t i = 0; i < n; i++) send[i] = ival(ct_world_rank(W), i, salt);
    TRY(ct_comm_allgather(W, a, send, recv, n));
    for (int c = 0; c < p; c++)
        for (size_t i = 0; i < n; i++)
            CHECK(recv[(size_t)c * n + i] == ival(ct_world_peer(W, a, c), i, salt),
                  "all-gather on %s, n=%zu: block %d [%zu] wrong", ct_axis_name(a), n, c, i);
    ct_free(send);
    ct_free(recv);
}

/* Uneven shards (some empty): reduce-scatterv (also in place), then all-gatherv in place. */
static void check_uneven(int a, size_t base) {
    int p = ct_world_axis_size(W, a), me = ct_world_coord(W, a), salt = ++salt_counter;
    size_t *counts = ct_alloc(sizeof(size_t) * (size_t)p, "counts");
    for (int c = 0; c < p; c++) counts[c] = c % 3 == 1 ? 0 : base + (size_t)c * 7;
    ct_split *s;
    TRY(ct_split_create(&s, W, a, counts));
    size_t total = ct_split_total(s), off = ct_split_offset(s, me), mine = ct_split_count(s, me);
    float *send = falloc(total), *out = falloc(total);
    for (size_t i = 0; i < total; i++) send[i] = ival(ct_world_rank(W), i, salt);
    TRY(ct_comm_reduce_scatterv(W, s, send, out + off));
    TRY(ct_comm_reduce_scatterv(W, s, send, send + off)); /* in place: the same bytes */
    CHECK(memcmp(send + off, out + off, mine * sizeof(float)) == 0, "reduce-scatterv in place on %s differs",
          ct_axis_name(a));
    TRY(ct_comm_allgatherv(W, s, out + off, out));
    for (size_t i = 0; i < total; i++) {
        float want = 0;
        for (int c = 0; c < p; c++) want += ival(ct_world_peer(W, a, c), i, salt);
        CHECK(out[i] == want,
              "reduce-scatterv + all-gatherv on %s, total=%zu (mine %zu): "
              "[%zu] = %g, expected %g",
              ct_axis_name(a), total, mine, i, out[i], want);
    }
    ct_split_free(s);
    ct_free(counts);
    ct_free(send);
    ct_free(out);
}

static void check_broadcast(int a, size_t n) {
    int p = ct_world_axis_size(W, a), salt = ++salt_counter;
    float *buf = falloc(n);
    for (int root = 0; root < p; root++) {
        for (size_t i = 0; i < n; i++) buf[i] = ival(ct_world_rank(W), i, salt);
        TRY(ct_comm_broadcast(W, a, root, buf, n));
        for (size_t i = 0; i < n; i++)
            CHECK(buf[i] == ival(ct_world_peer(W, a, root), i, salt),
                  "broadcast on %s from %d, n=%zu: [%zu] wrong", ct_axis_name(a), root, n, i);
    }
    ct_free(buf);
}

/* ---- all-to-all ------------------------------------------------------------------------ */

/* Rank at coordinate src sends count(src, dst) floats to dst, value 1000 src + dst + i/8. */
static size_t a2a_n(int src, int dst, size_t scale) {
    return ((size_t)(src * 3 + dst * 5) % 7) * scale + (size_t)(src == dst);
}

static void check_alltoall(int a, size_t scale) {
    int p = ct_world_axis_size(W, a), me = ct_world_coord(W, a);
    size_t sc[p], rc[p], got[p], stot = 0, rtot = 0;
    for (int c = 0; c < p; c++) {
        sc[c] = a2a_n(me, c, scale);
        rc[c] = a2a_n(c, me, scale);
        stot += sc[c];
        rtot += rc[c];
    }
    TRY(ct_comm_alltoall_sizes(W, a, sc, got, 1));
    for (int c = 0; c < p; c++)
        CHECK(got[c] == rc[c], "all-to-all sizes on %s: from %d got %zu, expected %zu", ct_axis_name(a), c,
              got[c], rc[c]);
    float *send = falloc(stot), *recv = falloc(rtot);
    for (int c = 0, k = 0; c < p; c++)
        for (size_t i = 0; i < sc[c]; i++) send[k++] = 1000.0f * me + c + (float)i / 8;
    TRY(ct_comm_alltoallv(W, a, send, sc, recv, rc));
    for (int c = 0, k = 0; c < p; c++)
        for (size_t i = 0; i < rc[c]; i++, k++)
            CHECK(recv[k] == 1000.0f * c + me + (float)i / 8,
                  "all-to-all on %s: from %d "
                  "[%zu] = %g",
                  ct_axis_name(a), c, i, recv[k]);
    ct_free(send);
    ct_free(recv);
}

/* Coordinate 0 expects one float more from coordinate 1 than it sends: an error naming
 * the counts, not a hang. Everyone else completes. */
static void check_alltoall_mismatch(int a) {
    int p = ct_world_axis_size(W, a), me = ct_world_coord(W, a);
    if (p < 2) return;
    size_t sc[p], rc[p];
    for (int c = 0; c < p; c++) sc[c] = rc[c] = 2;
    if (me == 0) rc[1] = 3;
    float send[2 * p], recv[2 * p + 1];
    memset(send, 0, sizeof send);
    ct_status s = ct_comm_alltoallv(W, a, send, sc, recv, rc);
    if (me == 0) {
        CHECK(s == CT_EINVAL && strstr(ct_last_error(), "recv_counts[1] = 3"),
              "mismatched all-to-all gave %d: %s", (int)s, ct_last_error());
    } else {
        CHECK(s == CT_OK, "all-to-all beside a mismatch failed: %s", ct_last_error());
    }
    TRY(ct_comm_barrier(W, a));
}

/* ---- identical bytes and determinism --------------------------------------------------- */

static uint64_t digest = 1469598103934665603ull;

static void hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) digest = (digest ^ b[i]) * 1099511628211ull;
}

static void random_fill(float *x, size_t n, int salt) {
    ct_rng rng;
    ct_rng_seed(&rng, (uint64_t)ct_world_rank(W) * 1000003u + (uint64_t)salt);
    for (size_t i = 0; i < n; i++) x[i] = ct_rng_normal(&rng) * (1.0f + (float)(i % 5));
}

/* Every member holds the same bytes: all-gather the results and compare. */
static void check_identical(int a, const float *x, size_t n, const char *what) {
    int p = ct_world_axis_size(W, a);
    float *all = falloc(n * (size_t)p);
    TRY(ct_comm_allgather(W, a, x, all, n));
    for (int c = 0; c < p; c++)
        CHECK(memcmp(all + (size_t)c * n, x, n * sizeof(float)) == 0,
              "%s on %s, n=%zu: coordinate %d holds different bytes", what, ct_axis_name(a), n, c);
    ct_free(all);
}

/* Float all-reduce: identical on all ranks, repeatable, close to the double sum, and the
 * same bytes as reduce-scatter over the even split followed by all-gather. */
static void check_allreduce_random(int a, size_t n) {
    int p = ct_world_axis_size(W, a), salt = ++salt_counter;
    float *x = falloc(n), *y = falloc(n), *z = falloc(n);
    random_fill(x, n, salt);
    memcpy(y, x, n * sizeof(float));
    TRY(ct_comm_allreduce(W, a, x, n));
    check_identical(a, x, n, "all-reduce");
    TRY(ct_comm_allreduce(W, a, y, n));
    CHECK(memcmp(x, y, n * sizeof(float)) == 0, "all-reduce on %s, n=%zu: a repeat differs", ct_axis_name(a),
          n);
    random_fill(y, n, salt);
    ct_split *s;
    TRY(ct_split_create_even(&s, W, a, n));
    size_t off = ct_split_offset(s, ct_world_coord(W, a));
    TRY(ct_comm_reduce_scatterv(W, s, y, z + off));
    TRY(ct_comm_allgatherv(W, s, z + off, z));
    CHECK(memcmp(x, z, n * sizeof(float)) == 0,
          "all-reduce on %s, n=%zu differs from "
          "reduce-scatter + all-gather",
          ct_axis_name(a), n);
    ct_split_free(s);
    for (size_t i = 0; i < n; i++) {
        double want = 0;
        for (int c = 0; c < p; c++) {
            ct_rng rng;
            ct_rng_seed(&rng, (uint64_t)ct_world_peer(W, a, c) * 1000003u + (uint64_t)salt);
            float v = 0;
            for (size_t k = 0; k <= i; k++) v = ct_rng_normal(&rng) * (1.0f + (float)(k % 5));
            want += v;
        }
        CHECK(fabs(x[i] - want) <= 1e-5 * (1 + fabs(want)) * p,
              "all-reduce on %s: [%zu] = %g, "
              "expected %g",
              ct_axis_name(a), i, x[i], want);
        if (i >= 8) break; /* the rng replay is quadratic: a prefix suffices */
    }
    hash_bytes(x, n * sizeof(float));
    ct_free(x);
    ct_free(y);
    ct_free(z);
}

/* ---- nonblocking and counters ---------------------------------------------------------- */

static float group_sum(int a, size_t i, int salt) {
    float sum = 0;
    for (int c = 0; c < ct_world_axis_size(W, a); c++) sum += ival(ct_world_peer(W, a, c), i, salt);
    return sum;
}

/* Three requests in flight on three axes, advanced by ct_comm_test, completed in reverse. */
static void check_inflight(void) {
    size_t n = 5000, m = 700, p = (size_t)ct_world_size(W);
    int salt = ++salt_counter, me = ct_world_rank(W);
    float *a = falloc(n), *b = falloc(n), *c = falloc(m), *g = falloc(m * p);
    for (size_t i = 0; i < n; i++) a[i] = b[i] = ival(me, i, salt);
    for (size_t i = 0; i < m; i++) c[i] = ival(me, i, salt + 1);
    ct_request r[3];
    TRY(ct_comm_allreduce_start(W, CT_AXIS_DATA, a, n, &r[0]));
    TRY(ct_comm_allreduce_start(W, CT_AXIS_TENSOR, b, n, &r[1]));
    TRY(ct_comm_allgather_start(W, CT_AXIS_WORLD, c, g, m, &r[2]));
    int done = 0;
    for (int i = 0; i < 3; i++) TRY(ct_comm_test(W, &r[i], &done));
    for (int i = 2; i >= 0; i--) TRY(ct_comm_wait(W, &r[i]));
    for (size_t i = 0; i < n; i++)
        CHECK(a[i] == group_sum(CT_AXIS_DATA, i, salt) && b[i] == group_sum(CT_AXIS_TENSOR, i, salt),
              "all-reduces in flight together: [%zu] wrong", i);
    for (size_t k = 0; k < m * p; k++)
        CHECK(g[k] == ival((int)(k / m), k % m, salt + 1), "all-gather in flight: [%zu] wrong", k);
    ct_free(a);
    ct_free(b);
    ct_free(c);
    ct_free(g);
}

/* The progress engine, with a helper thread and without: reductions on two axes handed
 * over, the main thread meanwhile running a blocking all-reduce on a third; each request's
 * callback once; exact sums after the drain. */
static int progress_done;
static void count_done(void *ctx) {
    (void)ctx;
    __atomic_add_fetch(&progress_done, 1, __ATOMIC_SEQ_CST);
}

static void check_progress_engine(int thread) {
    enum { K = 6 };
    size_t n = 3000;
    int salt = ++salt_counter, me = ct_world_rank(W);
    float *x[K], *y = falloc(n);
    ct_request r[K];
    ct_progress *p;
    TRY(ct_progress_create(&p, W, thread));
    CHECK(ct_progress_threaded(p) == (thread && ct_world_threaded(W) && ct_world_size(W) > 1),
          "progress engine: thread %d granted %d", thread, ct_progress_threaded(p));
    progress_done = 0;
    for (int k = 0; k < K; k++) {
        x[k] = falloc(n + (size_t)k);
        for (size_t i = 0; i < n + (size_t)k; i++) x[k][i] = ival(me, i, salt + k);
        TRY(ct_comm_allreduce_start(W, k % 2 ? CT_AXIS_DATA : CT_AXIS_WORLD, x[k], n + (size_t)k, &r[k]));
        TRY(ct_progress_add(p, &r[k], count_done, NULL));
    }
    for (size_t i = 0; i < n; i++) y[i] = ival(me, i, salt + K);
    TRY(ct_comm_allreduce(W, CT_AXIS_TENSOR, y, n)); /* the main thread's own traffic */
    ct_progress_poll(p);
    TRY(ct_progress_drain(p));
    CHECK(progress_done == K, "progress engine: %d callbacks for %d requests", progress_done, K);
    for (int k = 0; k < K; k++)
        for (size_t i = 0; i < n + (size_t)k; i++)
            CHECK(x[k][i] == group_sum(k % 2 ? CT_AXIS_DATA : CT_AXIS_WORLD, i, salt + k),
                  "progress engine (thread %d): request %d [%zu] wrong", thread, k, i);
    for (size_t i = 0; i < n; i++)
        CHECK(y[i] == group_sum(CT_AXIS_TENSOR, i, salt + K), "progress engine: main all-reduce wrong");
    ct_progress_free(p);
    for (int k = 0; k < K; k++) ct_free(x[k]);
    ct_free(y);
}

/* An all-reduce of n floats sends (n - block(me)) + (n - block(me+1)) floats from each
 * rank (ring reduce-scatter + all-gather): 2(p-1)/p x 4n bytes when p divides n. */
static void check_counters(int a) {
    int p = ct_world_axis_size(W, a), me = ct_world_coord(W, a);
    size_t n = 4096 * (size_t)p + 3;
    float *x = falloc(n);
    memset(x, 0, n * sizeof(float));
    ct_comm_counter before = ct_world_counter(W, a);
    TRY(ct_comm_allreduce(W, a, x, n));
    ct_comm_counter after = ct_world_counter(W, a);
    size_t base = n / (size_t)p, rem = n % (size_t)p;
    size_t mine = base + ((size_t)me < rem), next = base + ((size_t)((me + 1) % p) < rem);
    uint64_t want = p == 1 ? 0 : (uint64_t)(2 * n - mine - next) * sizeof(float);
    CHECK(after.bytes - before.bytes == want && after.calls == before.calls + 1,
          "counters on %s: %llu bytes in %llu calls, expected %llu in 1", ct_axis_name(a),
          (unsigned long long)(after.bytes - before.bytes), (unsigned long long)(after.calls - before.calls),
          (unsigned long long)want);
    ct_free(x);
}

/* ---- modes ----------------------------------------------------------------------------- */

/* Point-to-point around the group: every member sends n floats to the next coordinate on
 * two tags at once (received in the other order) and checks what the previous one sent. */
static void check_p2p(int a, size_t n) {
    int p = ct_world_axis_size(W, a), me = ct_world_coord(W, a);
    if (p == 1) return;
    int salt = ++salt_counter, next = (me + 1) % p, prev = (me + p - 1) % p;
    float *out0 = falloc(n + 1), *out1 = falloc(n + 1), *in0 = falloc(n + 1), *in1 = falloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        out0[i] = ival(me, i, salt);
        out1[i] = ival(me, i, salt + 1);
    }
    ct_request r[4];
    TRY(ct_comm_recv_start(W, a, prev, 7, in1, n, &r[0]));
    TRY(ct_comm_send_start(W, a, next, 3, out0, n, &r[1]));
    TRY(ct_comm_send_start(W, a, next, 7, out1, n, &r[2]));
    TRY(ct_comm_recv_start(W, a, prev, 3, in0, n, &r[3]));
    for (int i = 0; i < 4; i++) TRY(ct_comm_wait(W, &r[i]));
    for (size_t i = 0; i < n; i++)
        CHECK(in0[i] == ival(prev, i, salt) && in1[i] == ival(prev, i, salt + 1),
              "point-to-point on %s: [%zu] wrong", ct_axis_name(a), i);
    ct_request bad;
    CHECK(ct_comm_send_start(W, a, me, 1, out0, n, &bad) == CT_EINVAL, "a send to itself was accepted");
    /* a message between two members only must not put the group's collectives out of step */
    if (me <= 1 && n) {
        ct_request one;
        if (me == 0) TRY(ct_comm_send_start(W, a, 1, 5, out0, n, &one));
        else
            TRY(ct_comm_recv_start(W, a, 0, 5, in0, n, &one));
        TRY(ct_comm_wait(W, &one));
    }
    float sum = 1.0f;
    TRY(ct_comm_allreduce(W, a, &sum, 1));
    CHECK(sum == (float)p, "an all-reduce after a two-member message gave %g, not %d", (double)sum, p);
    ct_free(out0);
    ct_free(out1);
    ct_free(in0);
    ct_free(in1);
}

static void check_axis(int a) {
    static const size_t sizes[] = {0, 1, 3, 7, 1000, 4099, 70001};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        check_allreduce_exact(a, n);
        check_reduce_scatter_exact(a, n);
        check_allgather_exact(a, n);
        if (n <= 4099) check_broadcast(a, n);
        if (n >= 3) check_allreduce_random(a, n);
        check_p2p(a, n);
    }
    check_uneven(a, 5);
    check_uneven(a, 3000);
    check_alltoall(a, 1);
    check_alltoall(a, 900);
    check_alltoall_mismatch(a);
    TRY(ct_comm_barrier(W, a));
}

static int mode_check(int argc, char **argv) {
    ct_layout want = parse_layout(argc, argv);
    TRY(ct_world_create(&W, &want));
    double t0 = ct_now();
    check_coords();
    for (int seg = 0; seg < 2; seg++) {
        ct_world_set_segment(W, seg ? 0 : 256); /* 256 floats: many segments and messages */
        for (int a = 0; a < CT_AXIS_COUNT; a++) check_axis(a);
    }
    check_inflight();
    check_progress_engine(1);
    check_progress_engine(0);
    for (int a = 0; a < CT_AXIS_COUNT; a++) check_counters(a);
    char name[128];
    if (ct_world_rank(W) == 0)
        printf("comm check ok: %d rank%s, %s%s, %.2f s\ndigest %016llx\n", ct_world_size(W),
               ct_world_size(W) == 1 ? "" : "s", ct_layout_format(ct_world_layout(W), 0, name, sizeof name),
               ct_world_is_mpi(W) ? "" : " (no MPI)", ct_now() - t0, (unsigned long long)digest);
    ct_world_free(W);
    return 0;
}

static int mode_layout(int argc, char **argv) {
    ct_layout want = parse_layout(argc, argv);
    if (ct_world_create(&W, &want) != CT_OK) {
        ct_launch_report("cetus: ");
        return 2;
    }
    char name[128];
    if (ct_world_rank(W) == 0)
        printf("layout %s\n", ct_layout_format(ct_world_layout(W), 1, name, sizeof name));
    ct_world_free(W);
    return 0;
}

/* Waits for rank 0, which arrives `late` seconds late; returns this rank's CPU seconds. */
static double timed_wait(double late, int how) {
    float x[4] = {1, 2, 3, 4};
    if (ct_world_rank(W) == 0) sleep_s(late);
    double c0 = cpu_seconds();
    if (how == 0) TRY(ct_comm_barrier(W, CT_AXIS_WORLD));
    else if (how == 1)
        TRY(ct_comm_allreduce(W, CT_AXIS_WORLD, x, 4));
    else
        CHECK(MPI_Barrier(ct_world_comm(W, CT_AXIS_WORLD)) == MPI_SUCCESS, "MPI_Barrier");
    return cpu_seconds() - c0;
}

static int mode_idle(int argc, char **argv) {
    double late = argc > 0 ? atof(argv[0]) : 1.0;
    TRY(ct_world_create(&W, NULL));
    static const char *const how[3] = {"ct_comm_barrier", "ct_comm_allreduce", "MPI_Barrier"};
    int mpi = ct_world_is_mpi(W);
    for (int k = 0; k < (mpi ? 3 : 2); k++) {
        TRY(ct_comm_barrier(W, CT_AXIS_WORLD));
        double t0 = ct_now(), cpu = timed_wait(late, k), wall = ct_now() - t0;
        if (ct_world_rank(W) == 0) continue;
        printf("rank %d: %s waited %.2f s using %.3f s of CPU (%.1f%%)\n", ct_world_rank(W), how[k], wall, cpu,
               100 * cpu / wall);
        CHECK(wall > 0.8 * late, "%s returned after %.2f s, before the late rank", how[k], wall);
        CHECK(k == 2 || cpu < 0.2 * wall, "%s burned %.3f s of CPU in a %.2f s wait", how[k], cpu, wall);
    }
    fflush(stdout);
    ct_world_free(W);
    return 0;
}

static int mode_fatal(int argc, char **argv) {
    int who = argc > 0 ? atoi(argv[0]) : 0;
    ct_layout want = parse_layout(argc - 1, argv + 1);
    TRY(ct_world_create(&W, &want));
    if (ct_world_rank(W) == who) {
        sleep_s(0.2);
        ct_world_abort(W, 3, "injected fatal error (comm check)");
    }
    TRY(ct_comm_barrier(W, CT_AXIS_WORLD)); /* never completes */
    ct_world_free(W);
    return 0;
}

/* DIR/pid.RANK: this process's pid, for a test that signals one rank. */
static void write_pid(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/pid.%d", dir, ct_world_rank(W));
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

static int mode_hang(int argc, char **argv) {
    CHECK(argc > 0, "hang needs a directory");
    TRY(ct_world_create(&W, NULL));
    write_pid(argv[0]);
    if (ct_world_rank(W) == 0) sleep_s(60);
    TRY(ct_comm_barrier(W, CT_AXIS_WORLD));
    ct_world_free(W);
    return 0;
}

static int mode_stall(int argc, char **argv) {
    CHECK(argc > 1, "stall needs a directory and a timeout");
    TRY(ct_world_create(&W, NULL));
    TRY(ct_world_set_timeout(W, atof(argv[1])));
    ct_progress *prog = NULL;
    TRY(ct_progress_create(&prog, W, argc > 2 && !strcmp(argv[2], "thread")));
    if (ct_world_rank(W) == 0)
        printf("stall: requests drained %s\n",
               ct_progress_threaded(prog) ? "from a progress thread" : "by ct_comm_wait");
    write_pid(argv[0]);
    float buf[256] = {0};
    for (;;) { /* until the watchdog ends every rank */
        ct_request req;
        TRY(ct_comm_allreduce_start(W, CT_AXIS_WORLD, buf, 256, &req));
        TRY(ct_progress_add(prog, &req, NULL, NULL));
        TRY(ct_progress_drain(prog));
        sleep_s(0.01);
    }
}

/* ---- benchmark ------------------------------------------------------------------------- */

/* Burns `us` microseconds of this process's CPU time (not wall time: a rank that loses
 * its core to a spinning peer takes longer, as real compute would). */
static void busy_us(double us) {
    double end = cpu_seconds() + us * 1e-6;
    volatile double x = 0;
    while (cpu_seconds() < end)
        for (int i = 0; i < 1000; i++) x += 1;
    (void)x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench_one(int method, float *buf, size_t n, int reps, double work) {
    static const char *const names[3] = {"MPI_Allreduce (blocking)", "ct ring + spin on test",
                                         "ct ring + ct_comm_wait"};
    double *t = ct_alloc(sizeof(double) * (size_t)reps, "times"), c0 = cpu_seconds();
    double w0 = ct_now();
    for (int r = -2; r < reps; r++) {
        double t0 = ct_now();
        busy_us(work * (1 + ct_world_rank(W) % 2));
        if (method == 0) {
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, ct_world_comm(W, CT_AXIS_WORLD));
        } else {
            ct_request req;
            int done = 0;
            TRY(ct_comm_allreduce_start(W, CT_AXIS_WORLD, buf, n, &req));
            if (method == 1)
                while (!done) TRY(ct_comm_test(W, &req, &done));
            else
                TRY(ct_comm_wait(W, &req));
        }
        if (r >= 0) t[r] = ct_now() - t0;
    }
    float use[2] = {(float)(cpu_seconds() - c0), (float)(ct_now() - w0)};
    TRY(ct_comm_allreduce(W, CT_AXIS_WORLD, use, 2));
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    if (ct_world_rank(W) == 0)
        printf("%-26s n=%-8zu median %8.3f ms/round, CPU %5.1f%% of wall per rank\n", names[method], n,
               1e3 * t[reps / 2], 100.0 * use[0] / use[1]);
    ct_free(t);
}

static int mode_bench(int argc, char **argv) {
    size_t n = argc > 0 ? (size_t)atol(argv[0]) : 1 << 16;
    int reps = argc > 1 ? atoi(argv[1]) : 50;
    double work = argc > 2 ? atof(argv[2]) : 0;
    TRY(ct_world_create(&W, NULL));
    CHECK(ct_world_is_mpi(W), "bench needs mpirun");
    float *buf = falloc(n);
    memset(buf, 0, n * sizeof(float));
    if (ct_world_rank(W) == 0)
        printf("%d ranks, all-reduce of %zu floats after %.0f/%.0f us of work (even/odd ranks)\n",
               ct_world_size(W), n, work, 2 * work);
    for (int m = 0; m < 3; m++) bench_one(m, buf, n, reps, work);
    fflush(stdout);
    ct_free(buf);
    ct_world_free(W);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    argc -= 2;
    argv += 2;
    if (!strcmp(mode, "check")) return mode_check(argc, argv);
    if (!strcmp(mode, "layout")) return mode_layout(argc, argv);
    if (!strcmp(mode, "idle")) return mode_idle(argc, argv);
    if (!strcmp(mode, "fatal")) return mode_fatal(argc, argv);
    if (!strcmp(mode, "hang")) return mode_hang(argc, argv);
    if (!strcmp(mode, "stall")) return mode_stall(argc, argv);
    if (!strcmp(mode, "bench")) return mode_bench(argc, argv);
    fprintf(stderr, "usage: tool_comm_check check|layout|idle|fatal|hang|stall|bench [args]\n");
    return 2;
}
