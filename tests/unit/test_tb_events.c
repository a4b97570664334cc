/* test_tb_events.c: the TensorBoard event log (train/tb_events.h): CRC-32C against its
 * published check value, the TFRecord framing and the Event bytes of a step, and what
 * opening an existing log does: a resumed log drops the steps it holds, a record cut short
 * is truncated away and the file continued, a damaged or unreadable file is left alone and a
 * new file takes over, a run that does not resume starts a new file. */
#define TMPDIR_TEMPLATE "/tmp/cetus_tb_XXXXXX"
#include "tmpdir.h"
#include "core/core.h"
#include "train/tb_events.h"
#include <sys/stat.h>
#include <time.h>

static uint32_t mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The events files in tmpdir, sorted by name; returns how many (at most 4). */
static int list(char names[4][256]) {
    int n = 0;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "events.out.tfevents.", 20) && n < 4)
            snprintf(names[n++], 256, "%s/%.180s", tmpdir, e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char t[256];
                memcpy(t, names[i], 256);
                memcpy(names[i], names[j], 256);
                memcpy(names[j], t, 256);
            }
    return n;
}

typedef struct {
    int n;
    size_t at[16], len[16], size; /* each record's offset and data length; the file's size */
    uint8_t data[4096];
} records;

/* Reads path's records, asserting that each one's framing and checksums are right. */
static void read_records(const char *path, records *r) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    r->size = fread(r->data, 1, sizeof r->data, f);
    fclose(f);
    r->n = 0;
    for (size_t at = 0; at < r->size; r->n++) {
        cr_assert_leq(at + 16, r->size);
        uint64_t len = le(r->data + at, 8);
        cr_assert_eq(le(r->data + at + 8, 4), mask(ct_tb_crc32c_portable(r->data + at, 8)));
        cr_assert_leq(at + 16 + len, r->size);
        cr_assert_eq(le(r->data + at + 12 + len, 4), mask(ct_tb_crc32c_portable(r->data + at + 12, len)));
        r->at[r->n] = at + 12;
        r->len[r->n] = len;
        at += 16 + len;
    }
}

/* The step of record i (an Event with a step: wall_time, then field 2's one-byte varint). */
static int step_of(const records *r, int i) {
    const uint8_t *p = r->data + r->at[i];
    cr_assert_eq(p[0], 0x09);
    cr_assert_eq(p[9], 0x10);
    return p[10];
}

/* path holds the version record, then one record for each step first..last. */
static void expect_steps(const char *path, int first, int last) {
    records r;
    read_records(path, &r);
    cr_assert_eq(r.n, last - first + 2, "%s: %d records", path, r.n);
    for (int i = 1; i < r.n; i++) cr_assert_eq(step_of(&r, i), first + i - 1);
}

static void write_steps(int resume, int from, int to) {
    ct_tb_events *tb;
    cr_assert_eq(ct_tb_open(&tb, tmpdir, resume), CT_OK);
    cr_assert_not_null(tb);
    for (int s = from; s <= to; s++) cr_assert_eq(ct_tb_scalar(tb, s, "train/loss", 1.0 / s), CT_OK);
    ct_tb_close(tb);
}

Test(tb_events, crc32c_check_value) {
    cr_assert_eq(ct_tb_crc32c("123456789", 9), 0xE3069283u);
    cr_assert_eq(ct_tb_crc32c_portable("123456789", 9), 0xE3069283u);
    cr_assert_eq(ct_tb_crc32c("", 0), 0u);
    uint8_t buf[300];
    for (int i = 0; i < 300; i++) buf[i] = (uint8_t)(i * 37 + 11);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 300; n += 13)
            cr_assert_eq(ct_tb_crc32c(buf + off, n), ct_tb_crc32c_portable(buf + off, n), "%zu at %zu", n, off);
}

Test(tb_events, framing_and_event_bytes, .init = make_tmpdir, .fini = cleanup) {
    ct_tb_events *tb;
    cr_assert_eq(ct_tb_open(&tb, tmpdir, 1), CT_OK);
    cr_assert_eq(ct_tb_scalar(tb, 300, "a/b", 2.5), CT_OK);
    cr_assert_eq(ct_tb_scalar(tb, 300, "c", -1.0), CT_OK);
    cr_assert_eq(ct_tb_scalar(tb, 301, "a/b", 0.0), CT_OK); /* a new step writes step 300 */
    ct_tb_flush(tb);
    ct_tb_close(tb);
    char names[4][256];
    cr_assert_eq(list(names), 1);
    records r;
    read_records(names[0], &r);
    cr_assert_eq(r.n, 3);
    /* Event{wall_time, file_version = "brain.Event:2"} */
    const uint8_t *p = r.data + r.at[0];
    double t;
    memcpy(&t, p + 1, 8);
    cr_assert(p[0] == 0x09 && t > 1.5e9, "wall_time %f", t);
    cr_assert_eq(r.len[0], 9 + 2 + 13);
    cr_assert(p[9] == 0x1a && p[10] == 13 && !memcmp(p + 11, "brain.Event:2", 13));
    /* Event{wall_time, step = 300, summary{value{tag "a/b", simple_value 2.5}, value{"c", -1}}} */
    static const uint8_t step300[] = {0x10, 0xac, 0x02, 0x2a, 22,   0x0a, 10,   0x0a, 3,
                                      'a',  '/',  'b',  0x15, 0x00, 0x00, 0x20, 0x40, 0x0a,
                                      8,    0x0a, 1,    'c',  0x15, 0x00, 0x00, 0x80, 0xbf};
    cr_assert_eq(r.len[1], 9 + sizeof step300);
    cr_assert_eq(r.data[r.at[1]], 0x09);
    cr_assert_arr_eq(r.data + r.at[1] + 9, step300, sizeof step300);
    static const uint8_t step301[] = {0x10, 0xad, 0x02, 0x2a, 12,   0x0a, 10,   0x0a, 3,
                                      'a',  '/',  'b',  0x15, 0x00, 0x00, 0x00, 0x00};
    cr_assert_eq(r.len[2], 9 + sizeof step301);
    cr_assert_arr_eq(r.data + r.at[2] + 9, step301, sizeof step301);
}

Test(tb_events, resume_drops_logged_steps, .init = make_tmpdir, .fini = cleanup) {
    write_steps(1, 1, 4);
    write_steps(1, 3, 6); /* a resumed run repeats steps 3 and 4 */
    char names[4][256];
    cr_assert_eq(list(names), 1);
    expect_steps(names[0], 1, 6);
}

Test(tb_events, torn_record_is_cut_and_file_continued, .init = make_tmpdir, .fini = cleanup) {
    write_steps(1, 1, 3);
    char names[4][256];
    cr_assert_eq(list(names), 1);
    struct stat st;
    cr_assert_eq(stat(names[0], &st), 0);
    cr_assert_eq(truncate(names[0], st.st_size - 3), 0); /* step 3's record, cut short */
    write_steps(1, 2, 4);
    char again[4][256];
    cr_assert_eq(list(again), 1);
    cr_assert_str_eq(again[0], names[0]);
    expect_steps(names[0], 1, 4);
}

Test(tb_events, damaged_file_is_left_and_a_new_one_continues, .init = make_tmpdir, .fini = cleanup) {
    write_steps(1, 1, 4);
    char names[4][256];
    cr_assert_eq(list(names), 1);
    records before;
    read_records(names[0], &before);
    FILE *f = fopen(names[0], "r+b");
    fseek(f, (long)before.at[3] + 2, SEEK_SET); /* inside step 3's record */
    fputc(before.data[before.at[3] + 2] ^ 0x40, f);
    fclose(f);
    write_steps(1, 2, 5);
    cr_assert_eq(list(names), 2);
    FILE *g = fopen(names[0], "rb");
    uint8_t old[4096];
    size_t n = fread(old, 1, sizeof old, g);
    fclose(g);
    cr_assert_eq(n, before.size, "the damaged file was changed");
    expect_steps(names[1], 3, 5); /* after step 2, the damaged file's last good one */
}

Test(tb_events, unreadable_file_and_fresh_runs_start_new_files, .init = make_tmpdir, .fini = cleanup) {
    char path[300];
    snprintf(path, sizeof path, "%s/events.out.tfevents.%lld.x", tmpdir, (long long)time(NULL) + 1000);
    cr_assert_eq(mkdir(path, 0700), 0); /* the newest "file" cannot be read */
    write_steps(1, 1, 2);
    char names[4][256];
    cr_assert_eq(list(names), 2);
    cr_assert_str_eq(names[0], path, "the new file should sort after the newest name");
    write_steps(0, 1, 2); /* not resuming: a new file, every step */
    cr_assert_eq(list(names), 3);
    expect_steps(names[2], 1, 2);
}
