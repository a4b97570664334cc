/* calibrate.c: measuring this machine into one hardware group: GEMM rates by shape through the
 * training kernel, memory copy bandwidth with the compute threads, disk write and read
 * bandwidth through a scratch file (fsynced, read back past the page cache), and the
 * bandwidth and latency of messages between ranks 0 and 1. Every rank computes at once (the
 * rates are a rank's while all ranks work), rank 0 alone measures the disk, and rank 0's
 * figures are handed to every rank. */
#include "plan/calibrate.h"
#include "data/tokenizer.h"
#include "core/core.h"
#include "ops/ops.h"
#include "parallel/comm.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define COPY_BYTES (256 * MIB) /* memory copy buffers */
#define COPY_CHUNK (4 * MIB)   /* a thread's piece of the copy */
#define COPY_REPS 5
#define DISK_BYTES (256 * MIB) /* the scratch file */
#define DISK_CHUNK (8 * MIB)   /* one write() / read() */
#define REPS_MIN 3             /* timed repetitions of a GEMM shape, after a warm-up */
#define REPS_MAX 7
#define SHAPE_SECONDS 0.1 /* repeat a shape past REPS_MIN while under this */
#define LARGE_GEMM 1e9    /* FLOP of a product that counts toward matmul_flops */
#define PING_FLOATS 2     /* latency message: 8 bytes */
#define PING_REPS 100
#define BULK_FLOATS (8 * MIB) /* bandwidth message: 32 MiB */
#define BULK_REPS 5
#define TAG_PING 1
#define TAG_PONG 2

/* Products measured (out [m, n] = in [m, k] x w [k, n]): the rows of a micro-batch
 * against the widths of transformer layers, square and MLP-shaped (k -> 4k, 4k -> k),
 * spanning ~2 MFLOP to ~34 GFLOP. */
typedef struct shape {
    int m, k, n;
} shape;
static const shape shapes[] = {
    {64, 128, 128},     {64, 512, 512},     {64, 512, 2048},  {64, 2048, 2048}, {256, 256, 256},
    {256, 1024, 1024},  {256, 2048, 512},   {1024, 128, 128}, {1024, 512, 512}, {1024, 512, 2048},
    {1024, 1024, 1024}, {1024, 2048, 512},  {4096, 256, 256}, {4096, 512, 512}, {4096, 1024, 1024},
    {4096, 1024, 2048}, {4096, 2048, 2048},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static double median(double *t, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double v = t[j];
            t[j] = t[j - 1], t[j - 1] = v;
        }
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void fill(float *x, size_t n, ct_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = ct_rng_uniform(r) - 0.5f;
}

/* A progress line on stdout (rank 0: print != 0), flushed at once. */
static void __attribute__((format(printf, 2, 3))) say(int print, const char *fmt, ...) {
    if (!print) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("calibrate: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Every rank learns whether any failed (and waits for the others: a barrier). */
static ct_status agree(ct_world *w, int size, ct_status s) {
    return size > 1 ? ct_world_agree(w, s, "calibration") : s;
}

/* Rank 0 runs work(g, print) alone while the other ranks sleep (a spinning or yielding
 * waiter would take cycles from its threads); then every rank learns whether it failed. */
static ct_status alone(ct_world *w, int size, int rank, ct_hw_group *g, int print,
                       ct_status (*work)(ct_hw_group *, int)) {
    ct_status s = rank == 0 ? work(g, print) : CT_OK;
    if (size <= 1) return s;
    float failed = s != CT_OK;
    ct_request req;
    ct_status c = ct_comm_allreduce_start(w, CT_AXIS_WORLD, &failed, 1, &req);
    for (int done = 0; c == CT_OK && !done;) {
        c = ct_comm_test(w, &req, &done);
        if (c == CT_OK && !done) nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    if (s != CT_OK || c != CT_OK) return s != CT_OK ? s : c;
    return failed > 0.0f ? ct_fail(CT_EIO, "calibration failed on rank 0 (see its message)") : CT_OK;
}

/* ---- GEMM ------------------------------------------------------------------------------- */

typedef struct gemm_bufs {
    float *in, *w, *bias, *out;
} gemm_bufs;

/* Seconds of one product of shape s: the median of REPS_MIN..REPS_MAX timed runs after a
 * warm-up. */
static double time_shape(const gemm_bufs *b, const shape *s) {
    double t[REPS_MAX];
    int r = 0;
    ct_matmul_forward(b->out, b->in, b->w, b->bias, s->m, s->k, s->n);
    double start = ct_now();
    while (r < REPS_MAX && (r < REPS_MIN || ct_now() - start < SHAPE_SECONDS)) {
        double t0 = ct_now();
        ct_matmul_forward(b->out, b->in, b->w, b->bias, s->m, s->k, s->n);
        t[r++] = ct_now() - t0;
    }
    return median(t, r);
}

static void gemm_free(gemm_bufs *b) {
    ct_free(b->in);
    ct_free(b->w);
    ct_free(b->bias);
    ct_free(b->out);
    memset(b, 0, sizeof *b);
}

static ct_status gemm_alloc(gemm_bufs *b) {
    size_t in = 0, w = 0, out = 0, n = 0;
    for (int i = 0; i < N_SHAPES; i++) {
        const shape *s = &shapes[i];
        size_t a = (size_t)s->m * s->k, c = (size_t)s->k * s->n, o = (size_t)s->m * s->n;
        in = a > in ? a : in, w = c > w ? c : w, out = o > out ? o : out,
        n = (size_t)s->n > n ? (size_t)s->n : n;
    }
    memset(b, 0, sizeof *b);
    b->in = ct_alloc(in * sizeof(float), "calibration GEMM input");
    b->w = ct_alloc(w * sizeof(float), "calibration GEMM weight");
    b->bias = ct_alloc(n * sizeof(float), "calibration GEMM bias");
    b->out = ct_alloc(out * sizeof(float), "calibration GEMM output");
    if (!b->in || !b->w || !b->bias || !b->out) {
        gemm_free(b);
        return CT_ENOMEM;
    }
    ct_rng r;
    ct_rng_seed(&r, 1);
    fill(b->in, in, &r), fill(b->w, w, &r), fill(b->bias, n, &r);
    memset(b->out, 0, out * sizeof(float));
    return CT_OK;
}

/* The best rate of the large shapes with the products in bf16 (train.precision = bf16), where
 * the processor has bf16 instructions (else matmul_tflops_bf16 stays unset). */
static ct_status measure_gemm_bf16(ct_hw_group *g, const gemm_bufs *b, int print) {
    g->matmul_bf16 = 0;
    if (ct_gemm_check("auto", "bf16") != CT_OK) {
        say(print, "bf16: no bf16 instructions here (matmul_tflops_bf16 left out)");
        return CT_OK;
    }
    CT_TRY(ct_gemm_configure("auto", "bf16"));
    for (int i = 0; i < N_SHAPES; i++) {
        const shape *s = &shapes[i];
        double flop = 2.0 * s->m * s->k * s->n;
        if (flop >= LARGE_GEMM) g->matmul_bf16 = fmax(g->matmul_bf16, flop / time_shape(b, s));
    }
    say(print, "matmul in bf16 %.1f GFLOP/s (the best product of >= 1 GFLOP)", g->matmul_bf16 / 1e9);
    return ct_gemm_configure("auto", "fp32");
}

/* Times each shape on this process's threads (rank 0, alone: the node's rate on its cores;
 * the planner gives a rank its threads' share). */
static ct_status measure_gemm(ct_hw_group *g, int print) {
    gemm_bufs b;
    ct_status st = gemm_alloc(&b);
    g->n_gemm = 0;
    g->matmul_flops = 0;
    for (int i = 0; st == CT_OK && i < N_SHAPES && i < CT_HW_MAX_GEMM; i++) {
        const shape *s = &shapes[i];
        double flop = 2.0 * s->m * s->k * s->n, rate = flop / time_shape(&b, s);
        g->gemm[g->n_gemm++] = (ct_gemm_rate){.m = s->m, .n = s->n, .k = s->k, .flops = rate};
        if (flop >= LARGE_GEMM && rate > g->matmul_flops) g->matmul_flops = rate;
        say(print, "gemm %4dx%4dx%4d (m x k x n) %8.1f GFLOP/s", s->m, s->k, s->n, rate / 1e9);
    }
    if (st == CT_OK) st = measure_gemm_bf16(g, &b, print);
    gemm_free(&b);
    if (st != CT_OK) return st;
    say(print, "matmul %.1f GFLOP/s (the best product of >= 1 GFLOP)", g->matmul_flops / 1e9);
    return CT_OK;
}

/* ---- memory ----------------------------------------------------------------------------- */

/* dst = src in pieces of COPY_CHUNK over the compute threads. */
static void copy_parallel(char *dst, const char *src, size_t bytes) {
    long chunks = (long)((bytes + COPY_CHUNK - 1) / COPY_CHUNK);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < chunks; c++) {
        size_t at = (size_t)c * COPY_CHUNK, n = bytes - at < COPY_CHUNK ? bytes - at : COPY_CHUNK;
        memcpy(dst + at, src + at, n);
    }
}

static ct_status measure_memory(ct_hw_group *g, int print) {
    char *a = ct_alloc(COPY_BYTES, "calibration copy source"),
         *b = ct_alloc(COPY_BYTES, "calibration copy target");
    if (!a || !b) {
        ct_free(a);
        ct_free(b);
        return CT_ENOMEM;
    }
    memset(a, 1, COPY_BYTES);
    memset(b, 2, COPY_BYTES);
    copy_parallel(b, a, COPY_BYTES); /* warm-up */
    double t[COPY_REPS];
    for (int r = 0; r < COPY_REPS; r++) {
        double t0 = ct_now();
        copy_parallel(r % 2 ? a : b, r % 2 ? b : a, COPY_BYTES);
        t[r] = ct_now() - t0;
    }
    ct_free(a);
    ct_free(b);
    g->memory_bw = g->host_bw = (double)COPY_BYTES / median(t, COPY_REPS);
    say(print, "memory copy %.1f GB/s (bytes copied per second)", g->memory_bw / 1e9);
    return CT_OK;
}

/* ---- disk ------------------------------------------------------------------------------- */

static ct_status write_all(int fd, const char *buf, size_t n, const char *path) {
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return ct_fail(CT_EIO, "writing %s: %s", path, w < 0 ? strerror(errno) : "no progress");
        buf += w, n -= (size_t)w;
    }
    return CT_OK;
}

/* Seconds to write DISK_BYTES to a new file at path and fsync it; the pages are then dropped
 * from the page cache. */
static ct_status disk_write(const char *path, const char *buf, double *secs) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return ct_fail(CT_EIO, "cannot create %s: %s", path, strerror(errno));
    double t0 = ct_now();
    ct_status s = CT_OK;
    for (size_t at = 0; s == CT_OK && at < DISK_BYTES; at += DISK_CHUNK)
        s = write_all(fd, buf, DISK_CHUNK, path);
    if (s == CT_OK && fsync(fd) != 0) s = ct_fail(CT_EIO, "fsync %s: %s", path, strerror(errno));
    *secs = ct_now() - t0;
    if (s == CT_OK) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (close(fd) != 0 && s == CT_OK) s = ct_fail(CT_EIO, "closing %s: %s", path, strerror(errno));
    return s;
}

static ct_status disk_read(const char *path, char *buf, double *secs) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ct_fail(CT_EIO, "cannot open %s: %s", path, strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    size_t got = 0;
    ct_status s = CT_OK;
    double t0 = ct_now();
    while (s == CT_OK) {
        ssize_t r = read(fd, buf, DISK_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) s = ct_fail(CT_EIO, "reading %s: %s", path, strerror(errno));
        if (r <= 0) break;
        got += (size_t)r;
    }
    *secs = ct_now() - t0;
    close(fd);
    if (s == CT_OK && got != DISK_BYTES)
        s = ct_fail(CT_EIO, "reading %s: %zu bytes back of %zu written", path, got, DISK_BYTES);
    return s;
}

static ct_status measure_disk(ct_hw_group *g, const char *dir, int print) {
    if (!dir || !dir[0]) return ct_fail(CT_EINVAL, "calibration: no directory for the disk's scratch file");
    CT_TRY(ct_mkdirs(dir));
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/.cetus-calibrate-%ld.tmp", dir, (long)getpid()));
    char *buf = ct_alloc(DISK_CHUNK, "calibration disk buffer");
    if (!buf) return CT_ENOMEM;
    ct_rng r;
    ct_rng_seed(&r, 2);
    for (size_t i = 0; i < DISK_CHUNK / 8; i++) ((uint64_t *)(void *)buf)[i] = ct_rng_u64(&r);
    double tw = 0, tr = 0;
    ct_status s = disk_write(path, buf, &tw);
    if (s == CT_OK) s = disk_read(path, buf, &tr);
    unlink(path);
    ct_free(buf);
    if (s != CT_OK) return s;
    g->disk_write_bw = (double)DISK_BYTES / tw;
    g->disk_read_bw = (double)DISK_BYTES / tr;
    say(print, "disk write %.2f GB/s (with fsync), read %.2f GB/s (%s)", g->disk_write_bw / 1e9,
        g->disk_read_bw / 1e9, dir);
    return CT_OK;
}

/* ---- links ------------------------------------------------------------------------------ */

/* reps round trips of n floats between ranks 0 and 1 (after a few untimed ones); on rank 0
 * *rtt is the median round trip in seconds. */
static ct_status ping_pong(ct_world *w, int me, float *out, float *in, size_t n, int reps, double *rtt) {
    double t[PING_REPS];
    int warm = reps > 10 ? 10 : 1;
    for (int r = 0; r < warm + reps; r++) {
        ct_request a, b;
        double t0 = ct_now();
        if (me == 0) {
            CT_TRY(ct_comm_recv_start(w, CT_AXIS_WORLD, 1, TAG_PONG, in, n, &a));
            CT_TRY(ct_comm_send_start(w, CT_AXIS_WORLD, 1, TAG_PING, out, n, &b));
            CT_TRY(ct_comm_wait(w, &b));
            CT_TRY(ct_comm_wait(w, &a));
        } else {
            CT_TRY(ct_comm_recv_start(w, CT_AXIS_WORLD, 0, TAG_PING, in, n, &a));
            CT_TRY(ct_comm_wait(w, &a));
            CT_TRY(ct_comm_send_start(w, CT_AXIS_WORLD, 0, TAG_PONG, in, n, &b));
            CT_TRY(ct_comm_wait(w, &b));
        }
        if (r >= warm) t[r - warm] = ct_now() - t0;
    }
    *rtt = median(t, reps);
    return CT_OK;
}

/* Ranks 0 and 1 time small and large messages; rank 0 keeps the figures. */
static ct_status link_pair(ct_hw_group *g, ct_world *w, int me, float *out, float *in, int print) {
    double small = 0, bulk = 0;
    CT_TRY(ping_pong(w, me, out, in, PING_FLOATS, PING_REPS, &small));
    CT_TRY(ping_pong(w, me, out, in, BULK_FLOATS, BULK_REPS, &bulk));
    if (me != 0) return CT_OK;
    g->intra_latency = g->inter_latency = small / 2;
    g->intra_bw = g->inter_bw = BULK_FLOATS * sizeof(float) / (bulk / 2);
    say(print, "link ranks 0 <-> 1: latency %.2f us, %.2f GB/s (%zu MiB messages)", g->intra_latency * 1e6,
        g->intra_bw / 1e9, BULK_FLOATS * sizeof(float) / MIB);
    return CT_OK;
}

static ct_status link_one_rank(ct_hw_group *g, int print) {
    g->intra_bw = g->inter_bw = g->memory_bw;
    g->intra_latency = g->inter_latency = 1e-6;
    say(print,
        "link not measured (one rank): taken as the memory copy, %.1f GB/s and 1 us; "
        "run under mpirun -np 2 to measure it",
        g->intra_bw / 1e9);
    return CT_OK;
}

/* Every rank calls it; ranks 0 and 1 exchange messages once both have their buffers. */
static ct_status measure_link(ct_hw_group *g, ct_world *w, int size, int rank, int print) {
    if (size <= 1) return link_one_rank(g, print);
    size_t bytes = rank < 2 ? BULK_FLOATS * sizeof(float) : 0;
    float *out = bytes ? ct_alloc(bytes, "calibration message out") : NULL;
    float *in = bytes ? ct_alloc(bytes, "calibration message in") : NULL;
    ct_status s = agree(w, size, !bytes || (out && in) ? CT_OK : CT_ENOMEM);
    if (s == CT_OK && bytes) {
        memset(out, 0, bytes);
        memset(in, 0, bytes);
        s = link_pair(g, w, rank, out, in, print);
    }
    ct_free(out);
    ct_free(in);
    return agree(w, size, s);
}

/* ---- the whole ------------------------------------------------------------------------- */

/* Every rank takes rank 0's figures (bytes as they are, as floats' worth of words). */
static ct_status share(ct_hardware *hw, ct_world *w, int size) {
    if (size <= 1) return CT_OK;
    size_t n = (sizeof *hw + sizeof(float) - 1) / sizeof(float);
    float *buf = ct_alloc(n * sizeof(float), "calibration results");
    ct_status s = agree(w, size, buf ? CT_OK : CT_ENOMEM);
    if (s != CT_OK) {
        ct_free(buf);
        return s;
    }
    memset(buf, 0, n * sizeof(float));
    memcpy(buf, hw, sizeof *hw);
    s = ct_comm_broadcast(w, CT_AXIS_WORLD, 0, buf, n);
    if (s == CT_OK) memcpy(hw, buf, sizeof *hw);
    ct_free(buf);
    return s;
}

static ct_status describe(ct_hardware *hw, int size) {
    memset(hw, 0, sizeof *hw);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double memory = (double)ct_runtime_memory_bytes();
    if (memory <= 0) return ct_fail(CT_EIO, "calibration: the system does not say how much memory it has");
    cores = cores > 0 ? cores : 1;
    snprintf(hw->name, sizeof hw->name, "this machine (%ld cores)", cores);
    hw->n_groups = 1;
    ct_hw_group *g = &hw->groups[0];
    snprintf(g->name, sizeof g->name, "local");
    g->count = g->per_node = size;
    g->cores = (int)cores;
    g->memory_bytes = g->host_bytes = memory;
    return CT_OK;
}

/* Resident bytes of this process now (/proc/self/statm), 0 when unknown. */
static double resident_now(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    int ok = f && fscanf(f, "%ld %ld", &pages, &rss) == 2;
    if (f) fclose(f);
    return ok ? (double)rss * (double)sysconf(_SC_PAGESIZE) : 0.0;
}

/* A rank's own memory before any model: MPI, the threads and their BLAS buffers (after one
 * product), and the tokenizer rank 0 of a training run loads. */
static ct_status measure_base(ct_hw_group *g, int print) {
    gemm_bufs b;
    CT_TRY(gemm_alloc(&b));
    time_shape(&b, &shapes[0]);
    gemm_free(&b);
    g->base_rss = resident_now();
    ct_tokenizer *tok = NULL;
    if (ct_tokenizer_load_default(&tok) != CT_OK) tok = NULL; /* not there: measured without */
    g->leader_rss = resident_now();
    ct_tokenizer_free(tok);
    say(print, "process %.1f MiB resident before any model (rank 0, with the tokenizer: %.1f MiB)",
        g->base_rss / (1024.0 * 1024.0), g->leader_rss / (1024.0 * 1024.0));
    return CT_OK;
}

static ct_status measure_all(ct_hardware *hw, ct_world *w, const char *dir) {
    int size = w ? ct_world_size(w) : 1, rank = w ? ct_world_rank(w) : 0, print = rank == 0;
    ct_hw_group *g = &hw->groups[0];
    CT_TRY(agree(w, size, describe(hw, size)));
    say(print, "%s, %d rank%s, %d thread%s each", hw->name, size, size > 1 ? "s" : "", ct_runtime_threads(),
        ct_runtime_threads() > 1 ? "s" : "");
    CT_TRY(alone(w, size, rank, g, print, measure_base));
    CT_TRY(alone(w, size, rank, g, print, measure_gemm));
    CT_TRY(alone(w, size, rank, g, print, measure_memory));
    CT_TRY(agree(w, size, rank == 0 ? measure_disk(g, dir, print) : CT_OK));
    CT_TRY(measure_link(g, w, size, rank, print));
    return share(hw, w, size);
}

ct_status ct_hw_calibrate(ct_hardware *hw, ct_world *world, const char *dir, int threads) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 0 || (cores > 0 && threads > cores * CT_THREADS_PER_CORE_MAX))
        return ct_fail(CT_EINVAL, "calibration: %d threads: allowed 0 (all cores) to %ld", threads,
                       (cores > 0 ? cores : 1) * CT_THREADS_PER_CORE_MAX);
    int before = ct_runtime_threads();
    ct_runtime_init(threads, 0);
    ct_hardware out;
    ct_status s = measure_all(&out, world, dir);
    ct_runtime_init(before, 0);
    if (s == CT_OK) *hw = out;
    return s;
}
