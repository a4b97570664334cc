/* progress.h: a progress engine for collectives started on the main thread and finished
 * in the background: the requests handed to it are driven by a helper thread (when MPI
 * allows threads: ct_world_threaded), so a reduction started in backward moves on while
 * the main thread computes, instead of only when it next calls into the communication
 * layer. Without threads the same calls work: ct_progress_poll and ct_progress_drain then
 * drive the requests on the caller's thread.
 *
 * The helper tests its requests, and when none moved it naps with a backoff from 2 us
 * doubling to 200 us (timer slack lowered to 1 us), so a rank with nothing in flight
 * sleeps on a condition variable and one waiting on a slow peer costs well under 1% of a
 * core. */
#ifndef CT_PROGRESS_H
#define CT_PROGRESS_H

#include "parallel/comm.h"

typedef struct ct_progress ct_progress;
/* Called on the driving thread when a request completed (not after a failure). */
typedef void (*ct_progress_done_fn)(void *ctx);

/* thread != 0 asks for the helper thread (granted when ct_world_threaded and more than
 * one rank). */
ct_status ct_progress_create(ct_progress **out, ct_world *w, int thread);
/* Every request handed over must have been drained. NULL is a no-op. */
void ct_progress_free(ct_progress *p);
/* Hands over a started request: it and its buffers belong to the engine until drained. */
ct_status ct_progress_add(ct_progress *p, ct_request *req, ct_progress_done_fn done, void *ctx);
/* Without a helper thread: advances the requests as far as arrived messages allow. */
void ct_progress_poll(ct_progress *p);
/* Waits until every request handed over has completed; the first failure, if any. */
ct_status ct_progress_drain(ct_progress *p);
/* 1 when a helper thread drives the requests. */
int ct_progress_threaded(const ct_progress *p);

#endif
