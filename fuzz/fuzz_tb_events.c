/* fuzz_tb_events.c: fuzzes the TensorBoard event log's reading back of an existing events
 * file (src/train/tb_events.c: ct_tb_open resuming, which continues the newest file of a run
 * directory). Input: a mode byte, then the events file. Mode bit 0 set: the harness first
 * re-seals both checksums of every whole record, so that mutations reach the Event parsing
 * behind them; clear: the bytes go to the file as they are.
 * Asserts beyond "no crash, no leak": opening never fails and always gives a log to write
 * to (a damaged file only moves it to a new file); after a step is written and the log
 * closed, opening again continues the very file written, so what the log wrote after any
 * input reads back whole. The log's warning for each damaged input goes to /dev/null (tens
 * of MB a minute otherwise); FUZZ_TB_VERBOSE=1 keeps it, and the sanitizers' reports, on
 * stderr (to replay a crash). */
#include "fuzz.h"
#include "train/tb_events.h"
#include <dirent.h>

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t masked_crc(const uint8_t *p, size_t n) {
    uint32_t c = ct_tb_crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* Stores the right masked CRC-32C of each whole record's length and data. */
static void reseal(uint8_t *f, size_t n) {
    for (size_t at = 0; n - at >= 16;) {
        uint64_t len = 0;
        for (int i = 0; i < 8; i++) len |= (uint64_t)f[at + (size_t)i] << (8 * i);
        if (len > n - at - 16) return;
        put_u32(f + at + 8, masked_crc(f + at, 8));
        put_u32(f + at + 12 + len, masked_crc(f + at + 12, len));
        at += 16 + len;
    }
}

/* The run directory of the harness, emptied. */
static const char *empty_run_dir(void) {
    static char dir[128];
    fuzz_path(dir, sizeof dir, "run");
    FUZZ_CHECK(ct_mkdirs(dir) == CT_OK);
    DIR *d = opendir(dir);
    FUZZ_CHECK(d != NULL);
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%.200s", dir, e->d_name);
            FUZZ_CHECK(unlink(path) == 0);
        }
    closedir(d);
    return dir;
}

/* Sends stderr to /dev/null (quiet set) or back where it was; keeps it with FUZZ_TB_VERBOSE. */
static void quiet_stderr(int quiet) {
    static int saved = -1;
    if (getenv("FUZZ_TB_VERBOSE")) return;
    if (quiet) {
        int null = open("/dev/null", O_WRONLY);
        FUZZ_CHECK(null >= 0);
        saved = dup(2);
        FUZZ_CHECK(saved >= 0 && dup2(null, 2) == 2 && close(null) == 0);
    } else {
        FUZZ_CHECK(dup2(saved, 2) == 2 && close(saved) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t *file = malloc(size);
    FUZZ_CHECK(file != NULL);
    memcpy(file, data + 1, size - 1);
    if (data[0] & 1) reseal(file, size - 1);
    const char *dir = empty_run_dir();
    char path[512];
    snprintf(path, sizeof path, "%s/events.out.tfevents.1000000000.fuzz.1", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FUZZ_CHECK(fd >= 0 && write(fd, file, size - 1) == (ssize_t)(size - 1) && close(fd) == 0);
    free(file);
    ct_tb_events *tb, *again;
    quiet_stderr(1);
    ct_status opened = ct_tb_open(&tb, dir, 1);
    quiet_stderr(0);
    FUZZ_CHECK(opened == CT_OK && tb != NULL);
    FUZZ_CHECK(ct_tb_scalar(tb, INT64_C(1) << 62, "fuzz/value", 1.5) == CT_OK);
    char written[1200];
    snprintf(written, sizeof written, "%s", ct_tb_path(tb));
    FUZZ_CHECK(written[0] != 0);
    ct_tb_close(tb);
    FUZZ_CHECK(ct_tb_open(&again, dir, 1) == CT_OK && again != NULL);
    FUZZ_CHECK(strcmp(ct_tb_path(again), written) == 0);
    ct_tb_close(again);
    return 0;
}
