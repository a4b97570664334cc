/* comm.h: the communication layer of the parallel engine. It owns the parallel layout
 * (which rank holds which data / tensor / pipeline / expert coordinates), one MPI
 * communicator per axis, float32 collectives on an axis, and waiting for them without
 * burning a core.
 *
 * Layout. World = pipeline x data x tensor ranks, tensor innermost:
 *     rank = ((pipe * data) + d) * tensor + t
 * Expert groups are carved from the data ranks: the `expert` consecutive data ranks
 * d = g*expert .. g*expert + expert-1 form one expert-parallel group (coordinate
 * d % expert); the data ranks with the same d % expert hold replicas of the same experts
 * and form the expert-data group (coordinate d / expert), over which expert gradients are
 * averaged.
 *
 * Single process. A process not started by an MPI launcher (no OMPI_COMM_WORLD_SIZE or
 * PMIX_RANK in the environment) is a world of one rank: MPI is never initialised and
 * every collective is a local copy. Every axis of size 1 takes the same local path.
 *
 * Collectives. Reduce-scatter, all-gather and all-reduce run as rings over nonblocking
 * point-to-point messages (the bandwidth-optimal schedule: an all-reduce sends
 * 2(p-1)/p of the buffer from every rank), in segments of at most 2^18 floats. Each block
 * of a reduction is summed once, at one rank, in a fixed order (the ring order starting
 * after the block's owner), and then copied: every rank holds identical bytes by
 * construction, and a run repeats bit for bit for a fixed layout. An all-reduce equals,
 * bit for bit, a reduce-scatter over the near-even split of the buffer
 * (ct_split_create_even) followed by an all-gather. Broadcast and barrier are MPI_Ibcast /
 * MPI_Ibarrier.
 *
 * Progress. A started collective advances only inside ct_comm_test / ct_comm_wait (one
 * ring step per completed message): to overlap communication with compute, call
 * ct_comm_test on the requests in flight between pieces of work, or hand them to a
 * progress thread (progress.h). Requests on one axis must be started in the same order on
 * every rank of the group (the MPI rule); buffers and count arrays must stay untouched
 * until the request completes.
 *
 * Threads. MPI is initialised at MPI_THREAD_SERIALIZED when the library offers it
 * (ct_world_threaded): every start, test and wait holds the world's lock around its MPI
 * calls and request state, so one thread may drive some requests while another starts and
 * waits on others. One request is driven by one thread at a time.
 *
 * Waiting. ct_comm_wait tests for progress, polling for 50 us after the last message,
 * then yielding the core (sched_yield) until 200 us, then sleeping between tests with a
 * backoff from 1 us doubling to 128 us (past ~2 ms of waiting, up to 1/16 of the time
 * waited, at most 1 ms), with the thread's timer slack lowered to 1 us while it sleeps.
 * When this node runs more ranks than it has online CPUs (oversubscribed), polling stops
 * after 10 us and yielding after 50 us. A rank therefore does not spin while a peer needs
 * its core, and a rank waiting for a straggler uses ~1% of a core.
 *
 * Hangs. A rank that stops answering (stopped, swapped out, stuck in a driver) would leave
 * its peers waiting for ever. A wait that sees no message move for parallel.timeout seconds
 * (ct_world_set_timeout; default 600, 0 = off) ends the job instead: in ct_comm_wait (one
 * comparison per nap, so nothing on the normal path) and in ct_progress_drain while a
 * progress thread drives the requests (the waiting thread looks at the clock every 0.1 s).
 * The rank then reports (collective, axis, sequence number, seconds waited) to rank 0 over
 * a communicator of the watchdog's own (a duplicate of the world, idle until then). Rank 0,
 * once its own wait expired, gathers reports for a grace period (half the timeout, 1 to
 * 10 s), prints the other ranks' waits that differ from its own and one line naming the
 * ranks that sent none -- a stopped rank cannot answer anything, so silence is what
 * identifies it:
 *     cetus: rank 0 of 2 (data 0, tensor 0): all-reduce on the data axis (#21) waited
 *     3.0 s (parallel.timeout): rank 1 did not reach it; aborting
 * and calls MPI_Abort, which ends every rank (mpirun sends SIGCONT first, so stopped ones
 * too). When rank 0 is the late one, a reporting rank waits twice the grace period, says
 * "rank 0 is late" and aborts. A rank named late has waited less than about timeout - grace
 * in any collective, or none at all. Only the first expired wait of a process speaks.
 *
 * Errors. Communicators return MPI errors (MPI_ERRORS_RETURN); they come back as
 * CT_EIO with the MPI message and the axis. Fatal errors go through ct_world_abort, which
 * prints the rank and calls MPI_Abort so no rank hangs. */
#ifndef CT_COMM_H
#define CT_COMM_H

#include "cetus.h"
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* ---- layout ---------------------------------------------------------------------------- */

/* parallel.data, parallel.tensor, parallel.pipeline, parallel.expert. data == 0 means
 * "every rank not taken by tensor x pipeline"; the others must be >= 1. */
typedef struct ct_layout {
    int data, tensor, pipeline, expert;
} ct_layout;

typedef enum ct_axis {
    CT_AXIS_DATA,        /* same pipeline stage and tensor coordinate */
    CT_AXIS_TENSOR,      /* same pipeline stage and data coordinate */
    CT_AXIS_PIPELINE,    /* same data and tensor coordinates */
    CT_AXIS_EXPERT,      /* expert-parallel group: `expert` consecutive data ranks */
    CT_AXIS_EXPERT_DATA, /* data ranks holding replicas of the same experts */
    CT_AXIS_WORLD,       /* every rank */
    CT_AXIS_COUNT
} ct_axis;

const char *ct_axis_name(ct_axis axis); /* "data", "tensor", ..., "world" */

/* Resolves want (NULL = all ranks data parallel) for a world of `ranks` ranks into *out.
 * launched: whether mpirun started the process (only changes the wording). On a layout
 * that does not fit, returns CT_EINVAL with a message naming the parallel.* keys and the
 * layouts that fit, e.g. "parallel.data=3 x parallel.tensor=2 needs 6 ranks but mpirun
 * started 4; layouts that fit 4 ranks: data=4, data=2 x tensor=2, tensor=4". */
ct_status ct_layout_resolve(const ct_layout *want, int ranks, int launched, ct_layout *out);

/* The data x tensor layouts (with the given pipeline, expert = 1) whose product is
 * `ranks`, tensor ascending. Writes at most max, returns how many there are (0 when
 * pipeline does not divide ranks). The model-dependent filter (heads, d_ff, vocab
 * divisible by tensor) is the caller's. */
int ct_layout_list(int ranks, int pipeline, ct_layout *out, int max);

/* "data=2 x tensor=2" (axes of size 1 left out; "data=1" for one rank). With keys != 0:
 * "parallel.data=2 x parallel.tensor=2". Returns buf. */
char *ct_layout_format(const ct_layout *l, int keys, char *buf, size_t cap);

/* Coordinates of a rank, indexed by ct_axis (coord[CT_AXIS_WORLD] == rank), group sizes,
 * and the world rank of the member of `rank`'s group on `axis` at coordinate `coord`. */
void ct_layout_coords(const ct_layout *l, int rank, int coord[CT_AXIS_COUNT]);
int ct_layout_axis_size(const ct_layout *l, ct_axis axis);
int ct_layout_peer(const ct_layout *l, int rank, ct_axis axis, int coord);

/* ---- world ----------------------------------------------------------------------------- */

typedef struct ct_world ct_world;

/* Whether an MPI launcher started this process, and its rank and size as the launcher
 * announced them (rank 0 and size 1 without a launcher; size 0 if a launcher did not
 * announce it). Usable before ct_world_create, e.g. to print a refusal on rank 0 only. */
int ct_launch_mpi(void);
int ct_launch_rank(void);
int ct_launch_size(void);
/* For an error before (or instead of) a world: rank 0 prints prefix + ct_last_error() to
 * stderr; the other ranks wait a second first, so mpirun shows the message before it ends
 * the job on the first non-zero exit. */
void ct_launch_report(const char *prefix);

/* Starts MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) when an MPI launcher started the
 * process, checks the layout (before MPI_Init when the launcher announced the size) and
 * builds one communicator per axis. On failure *out is NULL and MPI is finalised again.
 * One world per process. */
ct_status ct_world_create(ct_world **out, const ct_layout *want);
/* Frees the communicators and finalises MPI (if ct_world_create initialised it). Every
 * request must have completed. NULL is a no-op. */
void ct_world_free(ct_world *w);

int ct_world_rank(const ct_world *w);
int ct_world_size(const ct_world *w);
int ct_world_is_mpi(const ct_world *w); /* 0 for the single process without a launcher */
/* 1 when MPI runs at MPI_THREAD_SERIALIZED or above: then any thread may start, test and
 * wait on requests (comm.c serialises them with a lock), e.g. a progress thread driving
 * data parallelism's reductions while the main thread computes. */
int ct_world_threaded(const ct_world *w);
/* 1 when every member of this rank's group on the axis runs on this rank's node (its
 * messages are shared-memory copies, made by the cores that compute). */
int ct_world_axis_on_one_node(const ct_world *w, ct_axis axis);
const ct_layout *ct_world_layout(const ct_world *w);
int ct_world_coord(const ct_world *w, ct_axis axis);           /* this rank's index in its group */
int ct_world_axis_size(const ct_world *w, ct_axis axis);       /* size of the group */
int ct_world_peer(const ct_world *w, ct_axis axis, int coord); /* world rank of a member */
/* The axis communicator (group rank == coordinate); MPI_COMM_NULL without MPI. */
MPI_Comm ct_world_comm(const ct_world *w, ct_axis axis);

/* Prints "cetus: rank R of N (data d, tensor t): msg" to stderr (", pipeline p" when
 * pipelined) and ends every rank: MPI_Abort(MPI_COMM_WORLD, code) under MPI, exit(code)
 * otherwise. code 0 becomes 1. w may be NULL (the launcher's rank is printed). */
_Noreturn void ct_world_abort(ct_world *w, int code, const char *msg);

/* Traffic per axis since init (or the last reset): collectives started, bytes this rank
 * handed to MPI sends (exact for the ring collectives and all-to-all; a broadcast counts
 * its payload on the root only, since MPI picks its tree), and seconds spent in
 * ct_comm_wait and the blocking calls. */
typedef struct ct_comm_counter {
    uint64_t calls, bytes;
    double wait_s;
} ct_comm_counter;
ct_comm_counter ct_world_counter(const ct_world *w, ct_axis axis);
void ct_world_reset_counters(ct_world *w);

/* parallel.timeout: a wait (ct_comm_wait, ct_progress_drain) that sees no progress for this
 * many seconds ends every rank (see "Hangs" at the top); 0 turns the watchdog off. Default
 * CT_COMM_TIMEOUT. CT_EINVAL naming the key for a negative or absurd value. */
#define CT_COMM_TIMEOUT 600.0
ct_status ct_world_set_timeout(ct_world *w, double seconds);
double ct_world_timeout(const ct_world *w);

/* Largest message in floats (default 2^18, at most INT_MAX). Tests lower it to exercise
 * the segmented paths on small buffers; 0 restores the default. */
void ct_world_set_segment(ct_world *w, size_t floats);

/* ---- uneven shards --------------------------------------------------------------------- */

/* How a buffer of `total` floats is split into contiguous shards over an axis: shard c
 * (c = coordinate) is [offset(c), offset(c) + count(c)). Made once (e.g. per ZeRO buffer)
 * and reused by every call; it must outlive the requests that use it. */
typedef struct ct_split ct_split;
ct_status ct_split_create(ct_split **out, const ct_world *w, ct_axis axis, const size_t *counts);
/* Near-even: the first total % p shards hold one float more. */
ct_status ct_split_create_even(ct_split **out, const ct_world *w, ct_axis axis, size_t total);
void ct_split_free(ct_split *s);
ct_axis ct_split_axis(const ct_split *s);
size_t ct_split_total(const ct_split *s);
size_t ct_split_count(const ct_split *s, int coord);
size_t ct_split_offset(const ct_split *s, int coord);

/* ---- collectives ----------------------------------------------------------------------- */

/* A collective in flight. The fields belong to comm.c; zero-initialisation is not needed
 * (every _start fills it), and a completed request may be reused at once. */
typedef struct ct_request {
    MPI_Request mpi[2]; /* send and receive of the current step */
    MPI_Request *segs;  /* point-to-point: one per segment, all posted at the start */
    int op, axis, tag, slot, root;
    unsigned seq; /* the collective's number on its axis (for the watchdog's message) */
    long step, steps;
    size_t n, seg, max_block, sent, received, expect;
    const void *send;
    void *recv;
    const ct_split *split;
    const size_t *send_counts, *recv_counts;
    float *tmp;
} ct_request;

/* Sums buf [n] over the axis group, in place. */
ct_status ct_comm_allreduce_start(ct_world *w, ct_axis axis, float *buf, size_t n, ct_request *req);
/* send [p * n] -> recv [n]: block c of the sum lands on coordinate c. recv may be
 * send + me * n (in place: only the block of this rank is written). */
ct_status ct_comm_reduce_scatter_start(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n,
                                       ct_request *req);
/* send [total] -> recv [count(me)], shards as in s; recv may be send + offset(me). */
ct_status ct_comm_reduce_scatterv_start(ct_world *w, const ct_split *s, const float *send, float *recv,
                                        ct_request *req);
/* send [n] -> recv [p * n], block c from coordinate c. send may be recv + me * n. */
ct_status ct_comm_allgather_start(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n,
                                  ct_request *req);
/* send [count(me)] -> recv [total]. send may be recv + offset(me). */
ct_status ct_comm_allgatherv_start(ct_world *w, const ct_split *s, const float *send, float *recv,
                                   ct_request *req);
/* buf [n] of coordinate root -> every member. */
ct_status ct_comm_broadcast_start(ct_world *w, ct_axis axis, int root, float *buf, size_t n, ct_request *req);
/* Personalised exchange: send_counts[c] floats go to coordinate c (packed in coordinate
 * order), recv_counts[c] floats come from c. recv_counts must match what the peers send:
 * a mismatch is CT_EINVAL naming both counts. */
ct_status ct_comm_alltoallv_start(ct_world *w, ct_axis axis, const float *send, const size_t *send_counts,
                                  float *recv, const size_t *recv_counts, ct_request *req);
ct_status ct_comm_barrier_start(ct_world *w, ct_axis axis, ct_request *req);

/* Point-to-point (pipeline stages): n floats to / from the member at coordinate peer of this
 * rank's group on the axis. A send and its receive name the same tag (0..32767; e.g. the
 * micro-batch and direction); messages with one tag between two members arrive in the
 * order sent. They travel on a communicator of their own, apart from the collectives. */
ct_status ct_comm_send_start(ct_world *w, ct_axis axis, int peer, int tag, const float *buf, size_t n,
                             ct_request *req);
ct_status ct_comm_recv_start(ct_world *w, ct_axis axis, int peer, int tag, float *buf, size_t n,
                             ct_request *req);
/* Advances req as far as the messages that arrived allow; *done = 1 once it completed. */
ct_status ct_comm_test(ct_world *w, ct_request *req, int *done);
/* ct_comm_test that also says whether any message of req completed (*moved). */
ct_status ct_comm_test_moved(ct_world *w, ct_request *req, int *done, int *moved);
/* Waits for req without spinning (see the top of this file). */
ct_status ct_comm_wait(ct_world *w, ct_request *req);

/* Blocking forms: start + wait. */
ct_status ct_comm_allreduce(ct_world *w, ct_axis axis, float *buf, size_t n);
/* Every rank learns whether any failed: returns local's status where it failed, else a
 * failure naming `what` when another rank's did (its own message is on that rank). */
ct_status ct_world_agree(ct_world *w, ct_status local, const char *what);
ct_status ct_comm_reduce_scatter(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n);
ct_status ct_comm_reduce_scatterv(ct_world *w, const ct_split *s, const float *send, float *recv);
ct_status ct_comm_allgather(ct_world *w, ct_axis axis, const float *send, float *recv, size_t n);
ct_status ct_comm_allgatherv(ct_world *w, const ct_split *s, const float *send, float *recv);
ct_status ct_comm_broadcast(ct_world *w, ct_axis axis, int root, float *buf, size_t n);
ct_status ct_comm_alltoallv(ct_world *w, ct_axis axis, const float *send, const size_t *send_counts,
                            float *recv, const size_t *recv_counts);
ct_status ct_comm_barrier(ct_world *w, ct_axis axis);
/* Exchanges per_peer sizes with every member: send [p * per_peer] (block c to coordinate
 * c) -> recv [p * per_peer] (block c from c). For the counts of an all-to-all. */
ct_status ct_comm_alltoall_sizes(ct_world *w, ct_axis axis, const size_t *send, size_t *recv, size_t per_peer);

#endif /* CT_COMM_H */
