/* tb_events.c: the TensorBoard event log (tb_events.h). A file is a sequence of TFRecords,
 * each
 *     u64 length | u32 masked CRC-32C of the length | length bytes | u32 masked CRC-32C of them
 * (little-endian; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8), holding one `Event`
 * protobuf of TensorBoard's event.proto: the first {wall_time = 1 (double), file_version = 3
 * (string) "brain.Event:2"}, then one per step {wall_time, step = 2 (int64), summary = 5}
 * where a Summary (summary.proto) is repeated value = 1, each Value {tag = 1 (string),
 * simple_value = 2 (float)}. These few fields are encoded by hand below (varints, fixed
 * 32/64-bit, length-delimited): a protobuf library would bring far more than they need.
 *
 * Resume: a resumed run repeats the steps between its checkpoint and where it stopped. The
 * log avoids writing them twice by reading back the newest events file, keeping its valid
 * prefix (a record cut short by a kill is truncated away) and dropping every step up to the
 * last one found. TensorBoard's own alternative, a SessionLog START event that makes its
 * loader purge the later steps, is not chosen: other tools that import event files ignore
 * it and would show every repeated step twice, while dropping them leaves each (tag, step)
 * once for any reader (a resumed run's repeated steps are bit-identical anyway). One record
 * per step, flushed at once, means a kill loses at most the step being written.
 *
 * A file that fails a checksum or does not parse is never repaired in place: a warning, and
 * a new file (named after it, so readers take it as the newer) continues after the steps of
 * the damaged file's valid prefix. Write errors turn the log off with a warning. */
#include "train/tb_events.h"
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

#define TB_PREFIX "events.out.tfevents."
#define TB_VERSION "brain.Event:2"

struct ct_tb_events {
    FILE *fp;        /* NULL: the log is off */
    char path[1200]; /* the file written */
    int64_t done;    /* steps <= done are in the log already (INT64_MIN: none) */
    int64_t step;    /* the pending step's number */
    uint8_t *values; /* the pending step's Summary.value fields, used of cap bytes */
    size_t used, cap;
};

/* ---- CRC-32C ------------------------------------------------------------------------------ */

static uint32_t crc_loop(uint32_t c, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return c;
}

/* c is the running (uninverted) register. */
static uint32_t crc_update(uint32_t c, const void *data, size_t n) {
    const uint8_t *p = data;
#if defined(__SSE4_2__)
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
    }
    c = (uint32_t)c64;
#endif
    return crc_loop(c, p, n);
}

uint32_t ct_tb_crc32c(const void *data, size_t n) { return ~crc_update(~0u, data, n); }

uint32_t ct_tb_crc32c_portable(const void *data, size_t n) { return ~crc_loop(~0u, data, n); }

static uint32_t crc_mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

/* ---- encoding ----------------------------------------------------------------------------- */

static void le_put(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_get(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t varint_put(uint8_t *p, uint64_t v) {
    size_t n = 0;
    for (; v >= 0x80; v >>= 7) p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    for (; v >= 0x80; v >>= 7) n++;
    return n;
}

static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Event's head: wall_time (field 1, fixed64), then with step >= 0 step (field 2, varint) and
 * the key and length of a field 3 or 5 body of body bytes. Returns the bytes (at most 32). */
static size_t event_head(uint8_t *p, int64_t step, int field, size_t body) {
    size_t n = 0;
    double t = wall_time();
    uint64_t bits;
    memcpy(&bits, &t, 8);
    p[n++] = 0x09;
    le_put(p + n, bits, 8);
    n += 8;
    if (step >= 0) {
        p[n++] = 0x10;
        n += varint_put(p + n, (uint64_t)step);
    }
    p[n++] = (uint8_t)(field << 3 | 2);
    return n + varint_put(p + n, body);
}

/* Writes one record of the head and body bytes and flushes; a failure turns the log off. */
static void write_record(ct_tb_events *tb, const uint8_t *head, size_t hn, const uint8_t *body, size_t bn) {
    uint8_t len[12], tail[4];
    le_put(len, hn + bn, 8);
    le_put(len + 8, crc_mask(ct_tb_crc32c(len, 8)), 4);
    le_put(tail, crc_mask(~crc_update(crc_update(~0u, head, hn), body, bn)), 4);
    if (fwrite(len, 1, 12, tb->fp) == 12 && fwrite(head, 1, hn, tb->fp) == hn &&
        (bn == 0 || fwrite(body, 1, bn, tb->fp) == bn) && fwrite(tail, 1, 4, tb->fp) == 4 &&
        fflush(tb->fp) == 0)
        return;
    ct_log("warning: cannot write %s (%s); no more TensorBoard events this run", tb->path, strerror(errno));
    fclose(tb->fp);
    tb->fp = NULL;
    tb->path[0] = 0;
}

/* ---- reading a file back ------------------------------------------------------------------ */

typedef struct tb_scan {
    size_t valid;     /* bytes of whole, checked records */
    int64_t last;     /* the largest step in them (INT64_MIN: none) */
    char damage[200]; /* "" or what is wrong (the rest of the file is not used) */
} tb_scan;

static int varint_get(const uint8_t *p, size_t n, size_t *at, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *at < n; shift += 7) {
        uint8_t b = p[(*at)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* One Event's step (-1: none) and whether it is a file_version; 0 when it does not parse. */
static int event_parse(const uint8_t *p, size_t n, int64_t *step, int *version) {
    size_t at = 0;
    *step = -1;
    *version = 0;
    while (at < n) {
        uint64_t key, v;
        if (!varint_get(p, n, &at, &key)) return 0;
        int wire = (int)(key & 7), field = (int)(key >> 3);
        if (wire == 0) {
            if (!varint_get(p, n, &at, &v)) return 0;
            if (field == 2) *step = (int64_t)v;
        } else if (wire == 1 || wire == 5) {
            if (n - at < (wire == 1 ? 8u : 4u)) return 0;
            at += wire == 1 ? 8 : 4;
        } else if (wire == 2) {
            if (!varint_get(p, n, &at, &v) || v > n - at) return 0;
            if (field == 3) *version = v > 12 && !memcmp(p + at, "brain.Event:", 12);
            at += v;
        } else {
            return 0;
        }
    }
    return 1;
}

/* Checks the record at p (n bytes left); 1 whole and good (*len its data bytes), 0 cut
 * short (the end of the file), -1 damaged (why in s->damage). */
static int record_check(const uint8_t *p, size_t n, size_t at, uint64_t *len, tb_scan *s) {
    if (n < 12) return 0;
    *len = le_get(p, 8);
    if (crc_mask(ct_tb_crc32c(p, 8)) != (uint32_t)le_get(p + 8, 4)) {
        snprintf(s->damage, sizeof s->damage, "the length of the record at byte %zu fails its checksum", at);
        return -1;
    }
    if (n < 16 || *len > n - 16) return 0;
    if (crc_mask(ct_tb_crc32c(p + 12, *len)) != (uint32_t)le_get(p + 12 + *len, 4)) {
        snprintf(s->damage, sizeof s->damage, "the record at byte %zu fails its checksum", at);
        return -1;
    }
    return 1;
}

/* Reads path's records: s->valid and s->last, s->damage set where one is wrong. */
static ct_status scan_file(const char *path, tb_scan *s) {
    ct_mapped m;
    s->valid = 0;
    s->last = INT64_MIN;
    s->damage[0] = 0;
    CT_TRY(ct_map_file(&m, path));
    for (size_t at = 0; at < m.size;) {
        uint64_t len;
        int64_t step;
        int version, ok = record_check(m.data + at, m.size - at, at, &len, s);
        if (ok <= 0) break;
        if (!event_parse(m.data + at + 12, len, &step, &version) || (at == 0 && !version)) {
            snprintf(s->damage, sizeof s->damage, "the record at byte %zu is not %s", at,
                     at == 0 ? "an event file's version" : "an Event");
            break;
        }
        if (step > s->last) s->last = step;
        at += 16 + len;
        s->valid = at;
    }
    ct_unmap_file(&m);
    return CT_OK;
}

/* ---- choosing and opening the file -------------------------------------------------------- */

/* The newest events file in dir (the greatest name: the names start with the time), or "". */
static void newest_file(const char *dir, char *name, size_t cap) {
    name[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, TB_PREFIX, strlen(TB_PREFIX)) && strcmp(e->d_name, name) > 0 &&
            strlen(e->d_name) < cap)
            snprintf(name, cap, "%s", e->d_name);
    closedir(d);
}

/* Creates a new file events.out.tfevents.<seconds>.<host>.<pid>, its time after after's
 * (an existing name, or "") so that it sorts last, and writes the version record. */
static int create_file(ct_tb_events *tb, const char *dir, const char *after) {
    long long t = (long long)time(NULL), prev = after[0] ? strtoll(after + strlen(TB_PREFIX), NULL, 10) : 0;
    if (prev < 0 || prev > 9999999999LL) prev = 0; /* not a time in seconds (10 digits) */
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (!(*c == '-' || *c == '_' || (*c >= '0' && *c <= '9') || ((*c | 32) >= 'a' && (*c | 32) <= 'z')))
            *c = '_';
    for (int tries = 0; tries < 100 && !tb->fp; tries++, t++) {
        if (t <= prev) t = prev + 1;
        snprintf(tb->path, sizeof tb->path, "%s/" TB_PREFIX "%lld.%s.%ld", dir, t, host, (long)getpid());
        tb->fp = fopen(tb->path, "wbx");
        if (!tb->fp && errno != EEXIST) break;
    }
    if (!tb->fp) {
        ct_log("warning: cannot create %s (%s); no TensorBoard events this run", tb->path, strerror(errno));
        tb->path[0] = 0;
        return 0;
    }
    uint8_t head[32];
    size_t hn = event_head(head, -1, 3, strlen(TB_VERSION));
    write_record(tb, head, hn, (const uint8_t *)TB_VERSION, strlen(TB_VERSION));
    return tb->fp != NULL;
}

/* Continues dir/name: 1 when it is open for appending after its valid prefix (tb->done its
 * last step), 0 when a new file must take over (tb->done still set from the valid prefix). */
static int continue_file(ct_tb_events *tb, const char *dir, const char *name) {
    tb_scan s;
    snprintf(tb->path, sizeof tb->path, "%s/%s", dir, name);
    if (scan_file(tb->path, &s) != CT_OK) {
        ct_log("warning: cannot read the TensorBoard events in %s (%s); starting a new events file", tb->path,
               ct_last_error());
        return 0;
    }
    tb->done = s.last;
    if (s.damage[0]) {
        ct_log("warning: %s is damaged (%s); left as it is, a new events file continues after step %" PRId64,
               tb->path, s.damage, s.last < 0 ? (int64_t)0 : s.last);
        return 0;
    }
    if (s.valid == 0) return 0; /* nothing whole in it: start over */
    if (truncate(tb->path, (off_t)s.valid) != 0 || !(tb->fp = fopen(tb->path, "ab"))) {
        ct_log("warning: cannot append to %s (%s); starting a new events file", tb->path, strerror(errno));
        return 0;
    }
    return 1;
}

ct_status ct_tb_open(ct_tb_events **out, const char *dir, int resume) {
    *out = NULL;
    ct_tb_events *tb = ct_calloc(sizeof *tb, "the TensorBoard event log");
    if (!tb) return CT_ENOMEM;
    tb->done = INT64_MIN;
    tb->step = INT64_MIN;
    char name[512];
    newest_file(dir, name, sizeof name);
    if (!(resume && name[0] && continue_file(tb, dir, name)) && !create_file(tb, dir, name)) {
        ct_free(tb);
        return CT_OK;
    }
    *out = tb;
    return CT_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

static ct_status reserve(ct_tb_events *tb, size_t more) {
    if (tb->used + more <= tb->cap) return CT_OK;
    size_t cap = tb->cap ? tb->cap : 4096;
    while (cap < tb->used + more) cap *= 2;
    uint8_t *p = ct_realloc(tb->values, cap, "a TensorBoard event");
    if (!p) return CT_ENOMEM;
    tb->values = p;
    tb->cap = cap;
    return CT_OK;
}

ct_status ct_tb_scalar(ct_tb_events *tb, int64_t step, const char *tag, double value) {
    if (!tb || !tb->fp || step <= tb->done) return CT_OK;
    if (step != tb->step) ct_tb_flush(tb);
    tb->step = step;
    size_t t = strlen(tag), inner = 1 + varint_len(t) + t + 5;
    CT_TRY(reserve(tb, 1 + varint_len(inner) + inner));
    uint8_t *p = tb->values + tb->used;
    size_t n = 0;
    p[n++] = 0x0a; /* Summary.value */
    n += varint_put(p + n, inner);
    p[n++] = 0x0a; /* Value.tag */
    n += varint_put(p + n, t);
    memcpy(p + n, tag, t);
    n += t;
    p[n++] = 0x15; /* Value.simple_value */
    float f = (float)value;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    le_put(p + n, bits, 4);
    tb->used += n + 4;
    return CT_OK;
}

void ct_tb_flush(ct_tb_events *tb) {
    if (!tb || !tb->fp || !tb->used) return;
    uint8_t head[32];
    size_t hn = event_head(head, tb->step, 5, tb->used);
    write_record(tb, head, hn, tb->values, tb->used);
    tb->used = 0;
}

void ct_tb_close(ct_tb_events *tb) {
    if (!tb) return;
    ct_tb_flush(tb);
    if (tb->fp) fclose(tb->fp);
    ct_free(tb->values);
    ct_free(tb);
}

const char *ct_tb_path(const ct_tb_events *tb) { return tb && tb->fp ? tb->path : ""; }
