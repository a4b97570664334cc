/* world.h: what the files of src/parallel share inside: the ct_world and ct_split
 * structs, MPI error reporting and the scratch buffers of the ring reductions. */
#ifndef CT_PARALLEL_WORLD_H
#define CT_PARALLEL_WORLD_H

#include "parallel/comm.h"
#include "core/core.h"
#include <pthread.h>

enum { CT_COMM_SEGMENT = 1 << 16 }; /* floats per message by default (1 MiB) */

typedef struct ct_scratch {
    float *buf;
    size_t cap;
    int busy;
} ct_scratch;

struct ct_world {
    int rank, size, owns_mpi;
    ct_layout layout;
    int coord[CT_AXIS_COUNT], axis_size[CT_AXIS_COUNT];
    MPI_Comm comm[CT_AXIS_COUNT];
    MPI_Comm p2p[CT_AXIS_COUNT]; /* a duplicate of each, for point-to-point messages */
    unsigned seq[CT_AXIS_COUNT]; /* collectives started per axis: message tags */
    ct_comm_counter counter[CT_AXIS_COUNT];
    size_t segment;
    double poll_s, yield_s; /* ct_comm_wait: poll, then yield, then sleep (seconds) */
    ct_scratch *slots;
    int n_slots;
    int threaded;                /* MPI allows calls from several threads, one at a time */
    int one_node[CT_AXIS_COUNT]; /* every member of the group shares this rank's node */
    pthread_mutex_t lock;        /* held around every request state change and MPI call */
    double timeout_s;            /* parallel.timeout: a wait without progress this long aborts */
    MPI_Comm watch;              /* a duplicate of the world, for the watchdog's reports only */
};

struct ct_split {
    ct_axis axis;
    int p;
    size_t total, max_count;
    size_t *count, *offset;
};

/* CT_EIO naming the MPI error, the call and the axis. */
ct_status ct_world_mpi_error(const ct_world *w, int axis, int rc, const char *what);
ct_status ct_world_claim_scratch(ct_world *w, size_t floats, int *slot, float **buf);
void ct_world_release_scratch(ct_world *w, int slot);

/* What a rank whose wait expired tells the watchdog's leader (sent as bytes). */
typedef struct ct_watch_report {
    int rank, axis, peer; /* peer: world rank of a send's or receive's other end, else -1 */
    unsigned seq;         /* the collective's number on its axis (a message's tag) */
    double waited;        /* seconds without progress */
    char op[16];          /* "all-reduce", "barrier", "receive", ... */
} ct_watch_report;

/* A wait on req saw no progress for `waited` seconds (past w->timeout_s): the report of
 * comm.c's ct_comm_expired goes to the watchdog. Called without the world's lock. */
_Noreturn void ct_comm_expired(ct_world *w, const ct_request *req, double waited);
/* watchdog.c: reports to rank 0, which names the ranks that did not report and ends every
 * rank (see comm.h, "Hangs"). Takes the world's lock and never returns. */
_Noreturn void ct_watchdog_expired(ct_world *w, const ct_watch_report *mine);

#endif
