/* store.h: where state lives off the compute tier (the memory places), and the store with the
 * thread that moves it.
 *
 * A store is one rank's backing for offloaded tensors: a file (the disk tier,
 * offload.dir/rank_R.bin, read and written with pread/pwrite) of a fixed size laid out by
 * the caller. One I/O thread serves every request in the order submitted: reads from the
 * file into a buffer, writes of a buffer into the file, and copies between buffers (host
 * <-> compute transfers, so they too overlap the caller's compute). Each submission returns
 * a ticket; ct_store_wait(t) returns once every request up to t is done. The first failure
 * is kept (naming the file, the offset and the system error) and returned by every later
 * wait. Buffers must stay untouched until their request completes. */
#ifndef CT_STORE_H
#define CT_STORE_H

#include "cetus.h"
#include <stddef.h>
#include <stdint.h>

/* Where state lives: the compute tier (where the model computes), host memory, or the disk
 * (a file, its pages dropped from memory after each use). */
typedef enum ct_place { CT_PLACE_COMPUTE = 0, CT_PLACE_HOST, CT_PLACE_DISK } ct_place;
/* A run of a flat buffer (parameters, gradients or optimizer moments) placed off the
 * compute tier: [lo, lo + n) at place. The optimizer's moments and the offload policy
 * speak of placements in these. */
typedef struct ct_place_range {
    size_t lo, n;
    ct_place place;
} ct_place_range;

typedef struct ct_store ct_store;
typedef uint64_t ct_ticket;

/* A store of `bytes` bytes; dir NULL: no file (copies only). The file is created (or
 * truncated) and removed again by ct_store_close. */
ct_status ct_store_open(ct_store **out, const char *dir, int rank, size_t bytes);
void ct_store_close(ct_store *s);
const char *ct_store_path(const ct_store *s);

ct_ticket ct_store_read(ct_store *s, size_t offset, void *dst, size_t bytes);
ct_ticket ct_store_write(ct_store *s, size_t offset, const void *src, size_t bytes);
ct_ticket ct_store_copy(ct_store *s, void *dst, const void *src, size_t bytes);
/* What copies run on the I/O thread: memcpy unless set (the model hands in the backend's
 * copy between tiers, ct_copy of ops.h, which core may not call itself). Set it before the
 * first copy is submitted. */
typedef void (*ct_copy_fn)(void *dst, const void *src, size_t bytes);
void ct_store_set_copy(ct_store *s, ct_copy_fn copy);
/* Drops the whole pages inside [p, p + bytes) from memory (ct_pages_drop), in turn. */
ct_ticket ct_store_release(ct_store *s, void *p, size_t bytes);
/* Waits until request t (and every earlier one) is done. */
ct_status ct_store_wait(ct_store *s, ct_ticket t);
/* Seconds the I/O thread spent moving data, and those callers spent waiting for it. */
void ct_store_times(const ct_store *s, double *busy_s, double *wait_s);

#endif
