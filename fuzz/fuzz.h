/* fuzz.h: what the libFuzzer harnesses share: a scratch directory of this process (on
 * /dev/shm where there is one, so writing an input costs no disk I/O) for readers that take
 * a path, writing an input into it, and FUZZ_CHECK, which turns a broken invariant into a
 * crash libFuzzer reports and saves the input of. */
#ifndef CT_FUZZ_H
#define CT_FUZZ_H

#include "core/core.h"
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define FUZZ_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz: invariant broken at %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, ct_last_error()); \
            abort(); \
        } \
    } while (0)

/* Empties ct_last_error(), so that a refusal can be seen to leave a message. */
static inline void fuzz_clear_error(void) { (void)ct_fail(CT_OK, "%s", ""); }

static char fuzz_dir_path[64]; /* base (at most 32 bytes) + /cetus-fuzz-XXXXXX */

/* Removes the files the harness wrote and the directory (at exit). */
static inline void fuzz_dir_remove(void) {
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_path);
}

/* The scratch directory of this process, created on first use under $FUZZ_TMP (fuzz/run.sh
 * sets it and removes it afterwards, also when a crash skipped the exit handler), else
 * /dev/shm or /tmp. */
static inline const char *fuzz_dir(void) {
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    const char *base = getenv("FUZZ_TMP");
    if (!base || !*base || strlen(base) > 32) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/cetus-fuzz-XXXXXX", base);
    FUZZ_CHECK(mkdtemp(fuzz_dir_path) != NULL);
    atexit(fuzz_dir_remove);
    return fuzz_dir_path;
}

/* The path of name in the scratch directory, into out[cap]. */
static inline const char *fuzz_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", fuzz_dir(), name);
    return out;
}

/* Writes data[0..n) to the scratch file name (replacing it) and returns its path in out. */
static inline const char *fuzz_write(char *out, size_t cap, const char *name, const void *data, size_t n) {
    fuzz_path(out, cap, name);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0);
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        FUZZ_CHECK(k > 0);
        p += k;
        n -= (size_t)k;
    }
    FUZZ_CHECK(close(fd) == 0);
    return out;
}

/* The file of a checksummed shard input: data[1..size) (in a malloc'd buffer, *n bytes),
 * where mode bit 0 of data[0] set stores the XXH64 (seed 0) of file[from..n) (version 2,
 * the u32 at offset 8 of both shard kinds: followed by the header's bytes before the
 * checksum, file[0..at)) little-endian at file[at..at+8), so that
 * mutations reach the checks behind the checksum. NULL for an empty input. */
static inline uint8_t *fuzz_shard_file(const uint8_t *data, size_t size, size_t from, size_t at, size_t *n) {
    if (size == 0) return NULL;
    *n = size - 1;
    uint8_t *file = malloc(size);
    FUZZ_CHECK(file != NULL);
    memcpy(file, data + 1, *n);
    if ((data[0] & 1) && *n >= from) { /* version 1: the body alone; 2: then header[0..at) */
        uint32_t version = (uint32_t)file[8] | (uint32_t)file[9] << 8 | (uint32_t)file[10] << 16 |
                           (uint32_t)file[11] << 24;
        size_t body = *n - from, hashed = body + (version != 1 ? at : 0);
        uint8_t *scope = malloc(hashed ? hashed : 1);
        FUZZ_CHECK(scope != NULL);
        memcpy(scope, file + from, body);
        memcpy(scope + body, file, hashed - body);
        uint64_t h = XXH64(scope, hashed, 0);
        free(scope);
        for (int i = 0; i < 8; i++) file[at + (size_t)i] = (uint8_t)(h >> (8 * i));
    }
    return file;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past 0x10FFFF). */
static inline int fuzz_utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        if (len == 0 || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return 0;
        if (len == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F))) return 0;
        if (len == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))) return 0;
        i += len;
    }
    return 1;
}

#endif
