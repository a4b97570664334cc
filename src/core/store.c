/* store.c: the store of offloaded state: a file per rank and one I/O thread serving reads, writes and
 * copies in submission order (see store.h). */
#include "core/core.h"
#include "core/store.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OP_READ, OP_WRITE, OP_COPY, OP_RELEASE, QUEUE = 64 };

typedef struct request {
    int op;
    size_t offset, bytes;
    void *dst;
    const void *src;
} request;

struct ct_store {
    int fd;
    char path[1024];
    size_t bytes;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t more, done_cv;
    request queue[QUEUE];
    ct_ticket submitted, done; /* requests 1..submitted taken; 1..done finished */
    int stop;
    ct_status status;
    char error[1400];
    double busy_s, wait_s;
    ct_copy_fn copy; /* NULL: memcpy */
};

static int do_io(ct_store *s, const request *r) {
    size_t at = 0;
    while (at < r->bytes) {
        ssize_t n = r->op == OP_READ
                        ? pread(s->fd, (char *)r->dst + at, r->bytes - at, (off_t)(r->offset + at))
                        : pwrite(s->fd, (const char *)r->src + at, r->bytes - at, (off_t)(r->offset + at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            snprintf(s->error, sizeof s->error, "offload store %s: %s of %zu bytes at offset %zu failed: %s",
                     s->path, r->op == OP_READ ? "reading" : "writing", r->bytes, r->offset + at,
                     n < 0 ? strerror(errno) : "unexpected end of file");
            return 0;
        }
        at += (size_t)n;
    }
    return 1;
}

static void *serve(void *arg) {
    ct_store *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stop && s->done == s->submitted) pthread_cond_wait(&s->more, &s->lock);
        if (s->done == s->submitted) break; /* stopping, nothing left */
        request r = s->queue[s->done % QUEUE];
        int failed = s->status != CT_OK;
        pthread_mutex_unlock(&s->lock);
        double t0 = ct_now();
        int ok = 1;
        if (failed) ok = 1;
        else if (r.op == OP_COPY && s->copy)
            s->copy(r.dst, r.src, r.bytes);
        else if (r.op == OP_COPY)
            memcpy(r.dst, r.src, r.bytes);
        else if (r.op == OP_RELEASE)
            ct_pages_drop(r.dst, r.bytes);
        else
            ok = do_io(s, &r);
        pthread_mutex_lock(&s->lock);
        s->busy_s += ct_now() - t0;
        if (!ok && s->status == CT_OK) s->status = CT_EIO;
        s->done++;
        pthread_cond_broadcast(&s->done_cv);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

ct_status ct_store_open(ct_store **out, const char *dir, int rank, size_t bytes) {
    ct_store *s = ct_calloc(sizeof *s, "the offload store");
    if (!s) return CT_ENOMEM;
    s->fd = -1;
    s->bytes = bytes;
    if (dir) {
        ct_status st = ct_mkdirs(dir);
        if (st != CT_OK) {
            ct_free(s);
            return st;
        }
        snprintf(s->path, sizeof s->path, "%s/rank_%d.bin", dir, rank);
        s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (s->fd < 0 || ftruncate(s->fd, (off_t)bytes) != 0) {
            st = ct_fail(CT_EIO, "offload.dir: cannot create %s of %zu bytes: %s", s->path, bytes,
                         strerror(errno));
            if (s->fd >= 0) {
                close(s->fd);
                unlink(s->path);
            }
            ct_free(s);
            return st;
        }
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->more, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (pthread_create(&s->thread, NULL, serve, s) != 0) {
        if (s->fd >= 0) {
            close(s->fd);
            unlink(s->path);
        }
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->more);
        pthread_cond_destroy(&s->done_cv);
        ct_free(s);
        return ct_fail(CT_EIO, "offload: cannot start the I/O thread");
    }
    *out = s;
    return CT_OK;
}

void ct_store_close(ct_store *s) {
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->more);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    if (s->fd >= 0) {
        close(s->fd);
        unlink(s->path);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->more);
    pthread_cond_destroy(&s->done_cv);
    ct_free(s);
}

const char *ct_store_path(const ct_store *s) { return s->path; }

static ct_ticket submit(ct_store *s, request r) {
    CT_ASSERT(r.op == OP_COPY || r.op == OP_RELEASE || (s->fd >= 0 && r.offset + r.bytes <= s->bytes));
    pthread_mutex_lock(&s->lock);
    while (s->submitted - s->done == QUEUE) pthread_cond_wait(&s->done_cv, &s->lock); /* full */
    s->queue[s->submitted % QUEUE] = r;
    ct_ticket t = ++s->submitted;
    pthread_cond_signal(&s->more);
    pthread_mutex_unlock(&s->lock);
    return t;
}

ct_ticket ct_store_read(ct_store *s, size_t offset, void *dst, size_t bytes) {
    return submit(s, (request){OP_READ, offset, bytes, dst, NULL});
}
ct_ticket ct_store_write(ct_store *s, size_t offset, const void *src, size_t bytes) {
    return submit(s, (request){OP_WRITE, offset, bytes, NULL, src});
}
ct_ticket ct_store_copy(ct_store *s, void *dst, const void *src, size_t bytes) {
    return submit(s, (request){OP_COPY, 0, bytes, dst, src});
}
void ct_store_set_copy(ct_store *s, ct_copy_fn copy) {
    pthread_mutex_lock(&s->lock);
    s->copy = copy;
    pthread_mutex_unlock(&s->lock);
}
ct_ticket ct_store_release(ct_store *s, void *p, size_t bytes) {
    return submit(s, (request){OP_RELEASE, 0, bytes, p, NULL});
}

ct_status ct_store_wait(ct_store *s, ct_ticket t) {
    double t0 = ct_now();
    pthread_mutex_lock(&s->lock);
    while (s->done < t) pthread_cond_wait(&s->done_cv, &s->lock);
    ct_status st = s->status;
    s->wait_s += ct_now() - t0;
    pthread_mutex_unlock(&s->lock);
    return st == CT_OK ? CT_OK : ct_fail(st, "%s", s->error);
}

void ct_store_times(const ct_store *s, double *busy_s, double *wait_s) {
    *busy_s = s->busy_s;
    *wait_s = s->wait_s;
}
