/* safetensors.h: reading and writing float32 tensors in the safetensors format, the layout
 * Hugging Face's `safetensors` library reads:
 *
 *   [8 bytes] N, the header length, unsigned little-endian
 *   [N bytes] JSON header: {"__metadata__": {"key": "value", ...},
 *                           "<name>": {"dtype": "F32", "shape": [d0, ...],
 *                                      "data_offsets": [begin, end]}, ...}
 *             padded with spaces so that N is a multiple of 8
 *   [rest]    the data section: each tensor's float32 values, little-endian, row-major;
 *             offsets are relative to the start of the data section; the tensors are laid
 *             out in header order, contiguous, with no gaps, and the file ends with the
 *             last one.
 *
 * The writer stores the XXH64 (seed 0) of the data section as 16 lowercase hex digits under
 * __metadata__["cetus.xxh64"]; the reader verifies it when present. Files from other
 * writers (without it) are still read, with every structural check.
 */
#ifndef CT_SAFETENSORS_H
#define CT_SAFETENSORS_H

#include "core/core.h"

#define CT_ST_MAX_DIMS 4
#define CT_ST_CHECKSUM_KEY "cetus.xxh64"

/* One tensor to write: ndim in [0, 4] (0 = scalar), shape[0..ndim), data = prod(shape)
 * floats (ignored by ct_safetensors_write_fetch). The writer does not copy data; it must
 * stay valid for the call. */
typedef struct ct_st_tensor {
    const char *name;
    int ndim;
    int64_t shape[CT_ST_MAX_DIMS];
    const float *data;
} ct_st_tensor;

/* Writes path atomically (temp file, fsync, rename), streaming each tensor from its buffer
 * (the file is never assembled in memory); ct_safetensors_write_fetch with a fetch that
 * returns tensors[i].data. meta_kv is NULL or a NULL-terminated list key, value, key,
 * value, ... of strings stored in __metadata__ (the key "cetus.xxh64" is reserved). Names
 * must be unique and not "__metadata__". */
ct_status ct_safetensors_save(const char *path, const ct_st_tensor *tensors, size_t n,
                              const char *const *meta_kv);

/* ct_safetensors_save that also reports the size and XXH64 of the whole file written
 * (either pointer may be NULL). */
ct_status ct_safetensors_write(const char *path, const ct_st_tensor *tensors, size_t n,
                               const char *const *meta_kv, uint64_t *file_bytes, uint64_t *file_xxh64);

/* The streaming writer: tensor i's data comes from fetch, called exactly once per tensor
 * (empty ones included), in table order, while the file is written; *data must then hold
 * prod(shape) floats (may be NULL for an empty tensor) and stay valid until the next call.
 * The data fields of tensors are ignored. The header is written first with a placeholder
 * checksum and rewritten in place once the data is hashed; the file is then read back to
 * report its size and XXH64 as it is committed (either pointer may be NULL). If fetch
 * fails, the file is abandoned (path untouched) and its status returned. */
typedef ct_status (*ct_st_fetch_fn)(void *ctx, size_t i, const float **data);
ct_status ct_safetensors_write_fetch(const char *path, const ct_st_tensor *tensors, size_t n,
                                     const char *const *meta_kv, ct_st_fetch_fn fetch, void *ctx,
                                     uint64_t *file_bytes, uint64_t *file_xxh64);

/* Formats shape [ndim] as "[d0, d1, ...]" into buf (cap bytes) and returns buf. */
const char *ct_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

/* A validated, memory-mapped safetensors file. */
typedef struct ct_safetensors ct_safetensors;

/* Maps path and validates all of it before returning: header length inside the file,
 * JSON that parses, string-only __metadata__, every entry F32 with at most 4 dimensions,
 * byte size == prod(shape) * 4, offsets inside the data section, unique names, tensors
 * contiguous without gaps or overlap, file size exact, the checksum when present, and
 * every value finite (a NaN or Inf is refused naming the tensor and its first bad index;
 * checked in the same pass over the data as the checksum). On failure *out is NULL and the
 * message names the file and the problem. */
ct_status ct_safetensors_open(ct_safetensors **out, const char *path);
void ct_safetensors_close(ct_safetensors *st); /* NULL is fine */

const char *ct_safetensors_path(const ct_safetensors *st);
size_t ct_safetensors_count(const ct_safetensors *st);
/* The i-th tensor in data order (i < count): its name, and optionally ndim and shape. */
const char *ct_safetensors_name(const ct_safetensors *st, size_t i, int *ndim, int64_t shape[CT_ST_MAX_DIMS]);
/* The tensor's data (read-only, inside the mapping) or NULL if there is no such name;
 * ndim and shape are filled when non-NULL. Entries of shape past ndim are set to 1. */
const float *ct_safetensors_find(const ct_safetensors *st, const char *name, int *ndim,
                                 int64_t shape[CT_ST_MAX_DIMS]);
/* A __metadata__ value or NULL. */
const char *ct_safetensors_meta(const ct_safetensors *st, const char *key);
/* The whole mapped file, e.g. to hash it. */
const uint8_t *ct_safetensors_bytes(const ct_safetensors *st, size_t *size);

#endif /* CT_SAFETENSORS_H */
