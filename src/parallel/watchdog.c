/* watchdog.c: the end of a hang (comm.h, "Hangs"). A rank whose wait passed parallel.timeout
 * reports its collective to rank 0 over the world's watch communicator; rank 0 gathers the
 * reports for a grace period, names the ranks that sent none (the late ones) and ends every
 * rank with MPI_Abort. When rank 0 is the late one, the ranks that reported say so after
 * twice the grace period and end the job themselves. Nothing here runs before a wait
 * expires: the normal path pays one comparison per nap of ct_comm_wait. */
#include "parallel/world.h"
#include <stdatomic.h>
#include <string.h>
#include <time.h>

enum { WATCH_TAG = 7, LIST_MAX = 64 };

static atomic_int expired; /* the first thread whose wait expired speaks for the rank */

/* Seconds the leader gathers reports: half the timeout, within 1..10 s. */
static double grace_s(const ct_world *w) {
    double g = w->timeout_s / 2;
    return g < 1 ? 1 : g > 10 ? 10 : g;
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* "all-reduce on the data axis (#123)" or "receive from rank 3 on the pipeline axis (tag 5)". */
static void describe(const ct_watch_report *r, char *buf, size_t cap) {
    if (r->peer >= 0)
        snprintf(buf, cap, "%s %s rank %d on the %s axis (tag %u)", r->op,
                 strcmp(r->op, "send") ? "from" : "to", r->peer, ct_axis_name(r->axis), r->seq);
    else
        snprintf(buf, cap, "%s on the %s axis (#%u)", r->op, ct_axis_name(r->axis), r->seq);
}

/* Whether world rank `rank` takes part in the leader's waiting request r. */
static int in_group(const ct_world *w, const ct_watch_report *r, int rank) {
    if (r->peer >= 0) return rank == r->peer;
    for (int c = 0; c < w->axis_size[r->axis]; c++)
        if (ct_world_peer(w, r->axis, c) == rank) return 1;
    return 0;
}

static int count(const char *pick, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += pick[i] != 0;
    return k;
}

/* Appends "rank 1 " / "ranks 1, 3 " (the ranks with pick[i] set) and then `verb` to buf. */
static void list_ranks(const char *pick, int n, const char *verb, char *buf, size_t cap) {
    size_t used = strlen(buf);
    used += (size_t)snprintf(buf + used, cap - used, "%srank%s", used ? "; " : "",
                             count(pick, n) == 1 ? "" : "s");
    for (int i = 0, k = 0; i < n && used < cap; i++) {
        if (!pick[i]) continue;
        if (k++ == LIST_MAX) {
            used += (size_t)snprintf(buf + used, cap - used, ", ...");
            break;
        }
        used += (size_t)snprintf(buf + used, cap - used, "%s %d", k > 1 ? "," : "", i);
    }
    if (used < cap) snprintf(buf + used, cap - used, " %s", verb);
}

/* Rank 0: reports until every rank sent one or the grace period ended. */
static void gather(ct_world *w, char *got, ct_watch_report *reps) {
    int have = 1, n = w->size;
    double end = ct_now() + grace_s(w);
    while (have < n && ct_now() < end) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, WATCH_TAG, w->watch, &flag, &st) != MPI_SUCCESS) break;
        if (!flag) {
            nap_ms(5);
            continue;
        }
        ct_watch_report r;
        MPI_Recv(&r, (int)sizeof r, MPI_BYTE, st.MPI_SOURCE, WATCH_TAG, w->watch, MPI_STATUS_IGNORE);
        if (st.MPI_SOURCE > 0 && st.MPI_SOURCE < n && !got[st.MPI_SOURCE]) {
            got[st.MPI_SOURCE] = 1;
            reps[st.MPI_SOURCE] = r;
            have++;
        }
    }
}

/* One line per other waiting rank whose wait differs from the leader's. */
static void print_others(const ct_world *w, const char *got, const ct_watch_report *reps) {
    char what[160];
    for (int i = 1, shown = 0; i < w->size && shown < LIST_MAX; i++) {
        if (!got[i] || (reps[i].axis == reps[0].axis && reps[i].seq == reps[0].seq &&
                        !strcmp(reps[i].op, reps[0].op) && reps[i].peer < 0))
            continue;
        describe(&reps[i], what, sizeof what);
        fprintf(stderr, "cetus: rank %d waits in %s for %.1f s\n", i, what, reps[i].waited);
        shown++;
    }
}

static _Noreturn void lead(ct_world *w, const ct_watch_report *mine) {
    int n = w->size;
    char *got = calloc((size_t)n, 3), msg[4096], what[160], tail[2048] = "";
    ct_watch_report *reps = calloc((size_t)n, sizeof *reps);
    describe(mine, what, sizeof what);
    if (got && reps) {
        char *late = got + n, *away = got + 2 * n; /* did not report: in the group / elsewhere */
        got[0] = 1;
        reps[0] = *mine;
        gather(w, got, reps);
        for (int i = 1; i < n; i++) {
            late[i] = !got[i] && in_group(w, mine, i);
            away[i] = !got[i] && !late[i];
        }
        print_others(w, got, reps);
        if (count(late, n)) list_ranks(late, n, "did not reach it", tail, sizeof tail);
        if (count(away, n)) list_ranks(away, n, "sent no report either (late too)", tail, sizeof tail);
        if (!tail[0]) snprintf(tail, sizeof tail, "every rank waits (collectives in a different order?)");
    }
    snprintf(msg, sizeof msg, "%s waited %.1f s (parallel.timeout): %s; aborting", what, mine->waited,
             tail[0] ? tail : "no report gathered");
    ct_world_abort(w, 1, msg);
}

static _Noreturn void follow(ct_world *w, const ct_watch_report *mine) {
    MPI_Request rq = MPI_REQUEST_NULL;
    MPI_Isend(mine, (int)sizeof *mine, MPI_BYTE, 0, WATCH_TAG, w->watch, &rq);
    double g = grace_s(w), end = ct_now() + 2 * g;
    while (ct_now() < end) { /* rank 0 ends the job in the meantime unless it is the late one */
        int flag = 0;
        MPI_Test(&rq, &flag, MPI_STATUS_IGNORE);
        nap_ms(5);
    }
    char msg[512], what[160];
    describe(mine, what, sizeof what);
    snprintf(msg, sizeof msg,
             "%s waited %.1f s (parallel.timeout); rank 0, which gathers the reports, did not end the job "
             "within %.1f s: rank 0 is late; aborting",
             what, mine->waited, 2 * g);
    ct_world_abort(w, 1, msg);
}

_Noreturn void ct_watchdog_expired(ct_world *w, const ct_watch_report *mine) {
    if (atomic_exchange(&expired, 1))
        for (;;) nap_ms(1000);    /* another thread of this rank speaks for it */
    pthread_mutex_lock(&w->lock); /* held until the end: the MPI calls below are this thread's */
    if (w->watch == MPI_COMM_NULL || w->size == 1) {
        char msg[512], what[160];
        describe(mine, what, sizeof what);
        snprintf(msg, sizeof msg, "%s waited %.1f s (parallel.timeout); aborting", what, mine->waited);
        ct_world_abort(w, 1, msg);
    }
    if (w->rank == 0) lead(w, mine);
    follow(w, mine);
}
