/* tb_events.h: the TensorBoard event log of a training run (run.dir/events.out.tfevents.*):
 * scalars per step as TensorBoard's Event protobufs in TFRecord framing. Written by rank 0
 * beside metrics.jsonl; its own I/O problems (a damaged log, a full disk) never stop a run:
 * they print one warning and the log goes on in a new file or stops. Only a failed
 * allocation is returned (CT_ENOMEM), as everywhere in the library. */
#ifndef CT_TB_EVENTS_H
#define CT_TB_EVENTS_H

#include "core/core.h"

typedef struct ct_tb_events ct_tb_events;

/* Opens the event log in dir. With resume set, the newest events file there is continued:
 * its records are read back (every checksum checked), a torn last record is cut off, and
 * steps up to the last one it holds are dropped from then on (a resumed run repeats the
 * steps after its checkpoint). A damaged or unreadable file is left as it is: a warning,
 * and a new file beside it takes over. Without resume (or without a file) a new file
 * starts. *out may be NULL after a warning (no log this run); every call below takes NULL. */
ct_status ct_tb_open(ct_tb_events **out, const char *dir, int resume);

/* Adds tag = value to step's event. A new step first writes the pending one (one record per
 * step). Values of steps the log already holds are dropped. */
ct_status ct_tb_scalar(ct_tb_events *tb, int64_t step, const char *tag, double value);

/* Writes the pending step as one record and flushes it to the file. */
void ct_tb_flush(ct_tb_events *tb);

/* Flushes and closes; takes NULL. */
void ct_tb_close(ct_tb_events *tb);

/* The file being written ("" once the log is off). */
const char *ct_tb_path(const ct_tb_events *tb);

/* CRC-32C (Castagnoli) of n bytes: with SSE4.2's crc32 instruction where the build targets
 * it, else a portable loop; _portable is always the loop (tests compare the two). */
uint32_t ct_tb_crc32c(const void *data, size_t n);
uint32_t ct_tb_crc32c_portable(const void *data, size_t n);

#endif /* CT_TB_EVENTS_H */
