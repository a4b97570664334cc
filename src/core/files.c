/* files.c: atomic file writes (temp + fsync + rename, with positioned rewrites and reads
 * of the temp file before commit), read-only mmap, whole-file reads and mkdir -p. Every
 * failure message names the path and the system error. */
#define _GNU_SOURCE
#include <stdarg.h>
#include "core.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct ct_atomic_file {
    int fd;
    char *path;
    char *tmp;
    uint64_t size; /* bytes appended so far */
};

/* Test hook: bytes ct_atomic_write may still write before it fails with ENOSPC; -1 = off.
 * Counted across all files, so a test can make a multi-file save fail at any byte. */
static long long inject_left = -1;

void ct_files_inject_write_failure(long long after_bytes) { inject_left = after_bytes; }

/* Applies the injected disk-full limit: shortens *bytes to what may still be written and
 * returns 1 when the write must then fail. */
static int injected_full(size_t *bytes) {
    if (inject_left < 0) return 0;
    if ((unsigned long long)*bytes <= (unsigned long long)inject_left) {
        inject_left -= (long long)*bytes;
        return 0;
    }
    *bytes = (size_t)inject_left;
    inject_left = 0;
    return 1;
}

static void atomic_release(ct_atomic_file *f) {
    ct_free(f->path);
    ct_free(f->tmp);
    ct_free(f);
}

ct_status ct_atomic_open(ct_atomic_file **out, const char *path) {
    size_t n = strlen(path);
    ct_atomic_file *f = ct_calloc(sizeof *f, path);
    if (!f) return CT_ENOMEM;
    f->fd = -1;
    if (!(f->path = ct_strdup(path, path)) || !(f->tmp = ct_alloc(n + 5, path))) {
        atomic_release(f);
        return CT_ENOMEM;
    }
    memcpy(f->tmp, path, n);
    memcpy(f->tmp + n, ".tmp", 5);
    f->fd = open(f->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        ct_status s = ct_fail(CT_EIO, "cannot create %s: %s", f->tmp, strerror(errno));
        atomic_release(f);
        return s;
    }
    *out = f;
    return CT_OK;
}

ct_status ct_atomic_write(ct_atomic_file *f, const void *data, size_t bytes) {
    const uint8_t *p = data;
    int full = injected_full(&bytes);
    while (bytes > 0) {
        size_t chunk = bytes > (1u << 30) ? (1u << 30) : bytes;
        ssize_t w = write(f->fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return ct_fail(CT_EIO, "cannot write %s: %s", f->tmp, strerror(errno));
        }
        p += w;
        bytes -= (size_t)w;
        f->size += (uint64_t)w;
    }
    if (full) return ct_fail(CT_EIO, "cannot write %s: %s", f->tmp, strerror(ENOSPC));
    return CT_OK;
}

/* Refuses a positioned access outside the bytes appended so far. */
static ct_status check_range(const ct_atomic_file *f, uint64_t offset, size_t bytes, const char *what) {
    if (offset > f->size || bytes > f->size - offset)
        return ct_fail(CT_EINVAL,
                       "cannot %s %zu bytes at offset %" PRIu64 " of %s: it holds "
                       "%" PRIu64 " bytes",
                       what, bytes, offset, f->tmp, f->size);
    return CT_OK;
}

ct_status ct_atomic_pwrite(ct_atomic_file *f, uint64_t offset, const void *data, size_t bytes) {
    CT_TRY(check_range(f, offset, bytes, "rewrite"));
    const uint8_t *p = data;
    while (bytes > 0) {
        size_t chunk = bytes > (1u << 30) ? (1u << 30) : bytes;
        ssize_t w = pwrite(f->fd, p, chunk, (off_t)offset);
        if (w < 0) {
            if (errno == EINTR) continue;
            return ct_fail(CT_EIO, "cannot write %s: %s", f->tmp, strerror(errno));
        }
        p += w;
        offset += (uint64_t)w;
        bytes -= (size_t)w;
    }
    return CT_OK;
}

ct_status ct_atomic_pread(ct_atomic_file *f, uint64_t offset, void *buf, size_t bytes) {
    CT_TRY(check_range(f, offset, bytes, "read back"));
    uint8_t *p = buf;
    while (bytes > 0) {
        size_t chunk = bytes > (1u << 30) ? (1u << 30) : bytes;
        ssize_t r = pread(f->fd, p, chunk, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return ct_fail(CT_EIO, "cannot read back %s: %s", f->tmp,
                           r < 0 ? strerror(errno) : "unexpected end of file");
        p += r;
        offset += (uint64_t)r;
        bytes -= (size_t)r;
    }
    return CT_OK;
}

void ct_atomic_abort(ct_atomic_file *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp);
    atomic_release(f);
}

/* Best effort (the rename is done): fsyncs the directory holding the file path. */
static void fsync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    if (n >= sizeof dir) return;
    if (!slash) memcpy(dir, ".", 2);
    else if (n == 0)
        memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

ct_status ct_atomic_commit(ct_atomic_file *f) {
    ct_status s = CT_OK;
    if (fsync(f->fd) != 0) s = ct_fail(CT_EIO, "cannot fsync %s: %s", f->tmp, strerror(errno));
    if (close(f->fd) != 0 && s == CT_OK) s = ct_fail(CT_EIO, "cannot close %s: %s", f->tmp, strerror(errno));
    f->fd = -1;
    if (s == CT_OK && rename(f->tmp, f->path) != 0)
        s = ct_fail(CT_EIO, "cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
    if (s != CT_OK) {
        ct_atomic_abort(f);
        return s;
    }
    fsync_parent_dir(f->path);
    atomic_release(f);
    return CT_OK;
}

ct_status ct_map_file(ct_mapped *m, const char *path) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ct_fail(CT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ct_fail(CT_EIO, "cannot stat %s: %s", path, strerror(errno));
    }
    if (st.st_size == 0) {
        close(fd);
        return CT_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ct_fail(CT_EIO, "cannot map %s: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return CT_OK;
}

void ct_unmap_file(ct_mapped *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

ct_status ct_read_file(const char *path, char **out, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return ct_fail(CT_EIO, "cannot open %s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (n < 0) {
        fclose(fp);
        return ct_fail(CT_EIO, "cannot read %s: not a regular file", path);
    }
    char *buf = ct_alloc((size_t)n + 1, path);
    if (!buf) {
        fclose(fp);
        return CT_ENOMEM;
    }
    size_t got = fread(buf, 1, (size_t)n, fp);
    int err = ferror(fp);
    fclose(fp);
    if (err || got != (size_t)n) {
        ct_free(buf);
        return ct_fail(CT_EIO, "cannot read %s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    if (size) *size = (size_t)n;
    return CT_OK;
}

ct_status ct_dir_mark_unfinished(const char *dir) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%s", dir, CT_UNFINISHED_MARKER));
    ct_atomic_file *f;
    CT_TRY(ct_atomic_open(&f, path));
    static const char note[] = "a `cetus prepare` into this directory has not finished; run it again\n";
    ct_status s = ct_atomic_write(f, note, sizeof note - 1);
    if (s != CT_OK) {
        ct_atomic_abort(f);
        return s;
    }
    return ct_atomic_commit(f);
}

ct_status ct_dir_mark_finished(const char *dir) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%s", dir, CT_UNFINISHED_MARKER));
    if (unlink(path) != 0 && errno != ENOENT)
        return ct_fail(CT_EIO, "cannot remove %s: %s", path, strerror(errno));
    return CT_OK;
}

ct_status ct_dir_check_finished(const char *dir, const char *what) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%s", dir, CT_UNFINISHED_MARKER));
    if (access(path, F_OK) != 0) return CT_OK;
    return ct_fail(CT_EINVAL,
                   "%s: the %s are incomplete: the `cetus prepare` writing them did not finish (%s is "
                   "there); run it again",
                   dir, what, CT_UNFINISHED_MARKER);
}

ct_status ct_mkdirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return ct_fail(CT_EINVAL, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ct_fail(CT_EIO, "cannot create directory %s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    return CT_OK;
}

ct_status ct_path_format(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap) return ct_fail(CT_EINVAL, "path too long: %.200s...", out);
    return CT_OK;
}

ct_status ct_atomic_write_file(const char *path, const void *data, size_t bytes) {
    ct_atomic_file *f;
    CT_TRY(ct_atomic_open(&f, path));
    ct_status s = ct_atomic_write(f, data, bytes);
    if (s == CT_OK) return ct_atomic_commit(f);
    ct_atomic_abort(f);
    return s;
}

void ct_npm_dir(char *out, size_t cap, const char *package) {
    const char *root = getenv("CETUS_DATA");
    if (!root || !*root) root = "data";
    snprintf(out, cap, "%s/npm/%s", root, package);
}

int ct_parse_u64(const char *s, uint64_t max, uint64_t *out) {
    if (!s || !*s || strlen(s) > 20) return 0;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (v > max) return 0;
    *out = v;
    return 1;
}
