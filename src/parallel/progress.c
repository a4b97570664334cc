/* progress.c: the progress engine of progress.h: a list of requests in flight, driven by a
 * helper thread (or by the caller's polls), each one's completion callback run once. */
#define _GNU_SOURCE /* prctl timer slack */
#include "parallel/progress.h"
#include "core/core.h"
#include "parallel/world.h"
#include <pthread.h>
#include <sys/prctl.h>
#include <time.h>

#define MAX_ITEMS 4096
#define NAP_MIN_NS 2000
#define NAP_MAX_NS 200000

typedef struct item {
    ct_request *req;
    ct_progress_done_fn done;
    void *ctx;
} item;

struct ct_progress {
    ct_world *w;
    pthread_t thread;
    int has_thread, quit;
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    item items[MAX_ITEMS];
    int n;            /* requests in flight */
    ct_status status; /* the first failure */
    double moved_at;  /* when a request last moved (ct_now), for the watchdog */
};

/* Tests item i (its request belongs to the driving thread); returns 1 if it ended. */
static int drive(ct_progress *p, item *it, int *moved) {
    int done = 0, m = 0;
    ct_status s = ct_comm_test_moved(p->w, it->req, &done, &m);
    *moved |= m;
    if (s != CT_OK) {
        pthread_mutex_lock(&p->mu);
        if (p->status == CT_OK) p->status = s;
        pthread_mutex_unlock(&p->mu);
        return 1;
    }
    if (done && it->done) it->done(it->ctx);
    return done;
}

/* One pass over the requests in flight; removes the ended ones. Returns whether any moved. */
static int pass(ct_progress *p) {
    item now[MAX_ITEMS];
    pthread_mutex_lock(&p->mu);
    int n = p->n;
    for (int i = 0; i < n; i++) now[i] = p->items[i];
    pthread_mutex_unlock(&p->mu);
    int moved = 0, ended[MAX_ITEMS];
    for (int i = 0; i < n; i++) ended[i] = drive(p, &now[i], &moved);
    pthread_mutex_lock(&p->mu);
    int kept = 0; /* the first n entries are the ones tested; later ones were added since */
    for (int i = 0; i < p->n; i++)
        if (i >= n || !ended[i]) p->items[kept++] = p->items[i];
    moved |= kept < p->n;
    p->n = kept;
    if (moved) p->moved_at = ct_now();
    if (p->n == 0) pthread_cond_broadcast(&p->idle);
    pthread_mutex_unlock(&p->mu);
    return moved;
}

static void *helper(void *arg) {
    ct_progress *p = arg;
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    long nap = NAP_MIN_NS;
    pthread_mutex_lock(&p->mu);
    while (!p->quit) {
        if (p->n == 0) {
            pthread_cond_wait(&p->work, &p->mu);
            nap = NAP_MIN_NS;
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        if (pass(p)) {
            nap = NAP_MIN_NS;
        } else {
            struct timespec ts = {0, nap};
            nanosleep(&ts, NULL);
            nap = 2 * nap < NAP_MAX_NS ? 2 * nap : NAP_MAX_NS;
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

ct_status ct_progress_create(ct_progress **out, ct_world *w, int thread) {
    ct_progress *p = ct_calloc(sizeof *p, "the progress engine");
    if (!p) return CT_ENOMEM;
    p->w = w;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    if (thread && ct_world_threaded(w) && ct_world_size(w) > 1)
        p->has_thread = pthread_create(&p->thread, NULL, helper, p) == 0;
    *out = p;
    return CT_OK;
}

void ct_progress_free(ct_progress *p) {
    if (!p) return;
    if (p->has_thread) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_signal(&p->work);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    ct_free(p);
}

int ct_progress_threaded(const ct_progress *p) { return p->has_thread; }

ct_status ct_progress_add(ct_progress *p, ct_request *req, ct_progress_done_fn done, void *ctx) {
    pthread_mutex_lock(&p->mu);
    if (p->n == MAX_ITEMS) {
        pthread_mutex_unlock(&p->mu);
        return ct_fail(CT_EINVAL, "progress engine: more than %d requests in flight", MAX_ITEMS);
    }
    p->items[p->n++] = (item){req, done, ctx};
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return CT_OK;
}

void ct_progress_poll(ct_progress *p) {
    if (!p->has_thread) pass(p);
}

/* With p->mu held: until the helper drained every request. Past parallel.timeout without
 * any request moving, the watchdog takes over (the helper keeps testing meanwhile). */
static void wait_idle(ct_progress *p) {
    double limit = ct_world_timeout(p->w), since = ct_now();
    while (p->n > 0) {
        if (limit <= 0) {
            pthread_cond_wait(&p->idle, &p->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L; /* look at the clock every 0.1 s */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->idle, &p->mu, &ts);
        double now = ct_now(), last = p->moved_at > since ? p->moved_at : since;
        if (p->n > 0 && now - last >= limit) {
            ct_request *req = p->items[0].req;
            pthread_mutex_unlock(&p->mu);
            ct_comm_expired(p->w, req, now - last);
        }
    }
}

ct_status ct_progress_drain(ct_progress *p) {
    if (p->has_thread) {
        pthread_mutex_lock(&p->mu);
        wait_idle(p);
    } else {
        for (;;) { /* in order, with ct_comm_wait's patient waiting */
            pthread_mutex_lock(&p->mu);
            if (p->n == 0) break;
            item it = p->items[0];
            pthread_mutex_unlock(&p->mu);
            ct_status s = ct_comm_wait(p->w, it.req);
            if (s == CT_OK && it.done) it.done(it.ctx);
            pthread_mutex_lock(&p->mu);
            if (s != CT_OK && p->status == CT_OK) p->status = s;
            for (int i = 1; i < p->n; i++) p->items[i - 1] = p->items[i];
            p->n--;
            pthread_mutex_unlock(&p->mu);
        }
    }
    ct_status s = p->status;
    p->status = CT_OK;
    pthread_mutex_unlock(&p->mu);
    return s;
}
