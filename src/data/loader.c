/* loader.c: the shard-backed batch loader: finding and mapping a split's shards, the
 * per-epoch window permutation, and filling batch rows (see loader.h for the model). */
#include "data/loader.h"
#include "data/shard.h"
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

struct ct_loader {
    char *dir;
    ct_shard *shards; /* [n_shards] */
    int n_shards;
    uint64_t *start; /* [n_shards + 1]: first stream position of each shard */
    uint64_t n_tokens, n_windows;
    int B, T, vocab, shuffle;
    uint64_t seed;
    uint64_t spread; /* > 0: visit only this many windows, spread over the split */
    ct_loader_pos pos;
    uint64_t *perm; /* [n_windows] order of perm_epoch, when shuffling */
    uint64_t perm_epoch;
    int perm_valid;
    int32_t *window; /* [T + 1] scratch */
};

/* ---- finding shards -------------------------------------------------------------------- */

int ct_loader_is_shard_name(const char *name, const char *split) {
    size_t ls = strlen(split), ln = strlen(name);
    if (ln < ls + 6 || strncmp(name, split, ls) != 0 || name[ls] != '_') return 0;
    if (strcmp(name + ln - 4, ".bin") != 0) return 0;
    for (size_t i = ls + 1; i < ln - 4; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) ct_free(names[i]);
    ct_free(names);
}

/* Lists DIR/<split>_*.bin sorted by name into *names (ct_alloc strings). */
static ct_status list_shards(const char *dir, const char *split, char ***names, int *n) {
    DIR *d = opendir(dir);
    if (!d)
        return ct_fail(CT_EIO,
                       "cannot open data directory %s: %s (write it with `cetus prepare "
                       "--out %s`)",
                       dir, strerror(errno), dir);
    int cap = 0;
    *names = NULL;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!ct_loader_is_shard_name(e->d_name, split)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = ct_realloc(*names, (size_t)cap * sizeof *p, "the shard list");
            if (!p) break;
            *names = p;
        }
        if (!((*names)[*n] = ct_strdup(e->d_name, "the shard list"))) break;
        (*n)++;
    }
    closedir(d);
    if (e) { /* stopped early: out of memory */
        free_names(*names, *n);
        *names = NULL;
        *n = 0;
        return ct_fail_context(CT_ENOMEM, "listing %s", dir);
    }
    if (*n == 0)
        return ct_fail(CT_EIO,
                       "no %s_*.bin token shards in %s (write them with `cetus "
                       "prepare --out %s`)",
                       split, dir, dir);
    qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return CT_OK;
}

/* Opens every shard and lays them end to end. */
static ct_status map_shards(ct_loader *l, char **names, int n) {
    l->shards = ct_calloc((size_t)n * sizeof *l->shards, "loader shards");
    l->start = ct_calloc(((size_t)n + 1) * sizeof *l->start, "loader shard offsets");
    if (!l->shards || !l->start) return CT_ENOMEM;
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", l->dir, names[i]);
        CT_TRY(ct_shard_open(&l->shards[i], path));
        l->n_shards = i + 1;
        if (i > 0 && l->shards[i].vocab_size != l->shards[0].vocab_size)
            return ct_fail(CT_ECORRUPT,
                           "%s has vocab size %u but %s/%s has %u: shards of one "
                           "split must share a vocabulary",
                           path, l->shards[i].vocab_size, l->dir, names[0], l->shards[0].vocab_size);
        l->start[i + 1] = l->start[i] + l->shards[i].n_tokens;
    }
    l->n_tokens = l->start[n];
    l->vocab = (int)l->shards[0].vocab_size;
    return CT_OK;
}

/* ---- open / close ---------------------------------------------------------------------- */

static ct_status loader_init(ct_loader *l, const char *dir, const char *split) {
    char **names = NULL;
    int n = 0;
    if (!(l->dir = ct_strdup(dir, "the loader's directory"))) return CT_ENOMEM;
    CT_TRY(list_shards(dir, split, &names, &n));
    ct_status s = map_shards(l, names, n);
    free_names(names, n);
    CT_TRY(s);
    if (l->n_tokens < (uint64_t)l->T + 1)
        return ct_fail(CT_EINVAL,
                       "%s: the %s split has %" PRIu64 " tokens, too few for one window "
                       "of seq_len + 1 = %d tokens",
                       dir, split, l->n_tokens, l->T + 1);
    l->n_windows = (l->n_tokens - 1) / (uint64_t)l->T;
    l->window = ct_alloc(((size_t)l->T + 1) * sizeof *l->window, "loader window");
    return l->window ? CT_OK : CT_ENOMEM;
}

ct_status ct_loader_open(ct_loader **out, const char *dir, const char *split, int B, int T, uint64_t seed,
                         int shuffle) {
    *out = NULL;
    if (B < 1 || T < 1)
        return ct_fail(CT_EINVAL, "loader for %s: batch size %d and sequence length %d must be >= 1", dir, B,
                       T);
    if (!*split || strchr(split, '/'))
        return ct_fail(CT_EINVAL, "loader for %s: bad split name '%s' (expected e.g. \"train\" or \"val\")",
                       dir, split);
    CT_TRY(ct_dir_check_finished(dir, "token shards"));
    ct_loader *l = ct_calloc(sizeof *l, "loader");
    if (!l) return CT_ENOMEM;
    *l = (ct_loader){.B = B, .T = T, .seed = seed, .shuffle = shuffle != 0};
    ct_status s = loader_init(l, dir, split);
    if (s != CT_OK) {
        ct_loader_close(l);
        return s;
    }
    *out = l;
    return CT_OK;
}

void ct_loader_close(ct_loader *l) {
    if (!l) return;
    for (int i = 0; i < l->n_shards; i++) ct_shard_close(&l->shards[i]);
    ct_free(l->shards);
    ct_free(l->start);
    ct_free(l->perm);
    ct_free(l->window);
    ct_free(l->dir);
    ct_free(l);
}

/* ---- window order ---------------------------------------------------------------------- */

void ct_epoch_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t epoch) {
    uint8_t key[16];
    for (int i = 0; i < 8; i++) {
        key[i] = (uint8_t)(seed >> (8 * i));
        key[8 + i] = (uint8_t)(epoch >> (8 * i));
    }
    ct_rng r;
    ct_rng_seed(&r, XXH64(key, sizeof key, 0x6365747573ULL));
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    for (uint64_t i = n - 1; n > 0 && i > 0; i--) {
        uint64_t j = ct_rng_below(&r, i + 1);
        uint64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static ct_status make_perm(ct_loader *l, uint64_t epoch) {
    if (!l->perm && !(l->perm = ct_alloc(l->n_windows * sizeof *l->perm, "loader permutation")))
        return CT_ENOMEM;
    ct_epoch_permutation(l->perm, l->n_windows, l->seed, epoch);
    l->perm_epoch = epoch;
    l->perm_valid = 1;
    return CT_OK;
}

static ct_status window_at(ct_loader *l, uint64_t epoch, uint64_t index, uint64_t *w) {
    if (l->spread) { /* the centre of the index-th of `spread` equal parts of the split */
        uint64_t W = l->n_windows, n = l->spread, k = index % n;
        *w = (uint64_t)(((unsigned __int128)k * W + W / 2) / n); /* < W: k <= n - 1 */
        return CT_OK;
    }
    if (!l->shuffle) {
        *w = index;
        return CT_OK;
    }
    if (!l->perm_valid || l->perm_epoch != epoch) CT_TRY(make_perm(l, epoch));
    *w = l->perm[index];
    return CT_OK;
}

/* ---- reading --------------------------------------------------------------------------- */

/* Copies stream tokens [p, p + n) into dst, across shard boundaries. */
static void read_tokens(const ct_loader *l, uint64_t p, int32_t *dst, size_t n) {
    int lo = 0, hi = l->n_shards - 1; /* last shard with start <= p */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->start[mid] <= p) lo = mid;
        else
            hi = mid - 1;
    }
    for (size_t i = 0; i < n; i++, p++) {
        while (p >= l->start[lo + 1]) lo++;
        dst[i] = ct_shard_token(&l->shards[lo], p - l->start[lo]);
    }
}

/* Row of window w: inputs [T] = tokens w*T .. w*T+T-1, targets [T] = one further. */
static void fill_row(ct_loader *l, uint64_t w, int32_t *inputs, int32_t *targets) {
    size_t T = (size_t)l->T;
    read_tokens(l, w * T, l->window, T + 1);
    memcpy(inputs, l->window, T * sizeof *inputs);
    memcpy(targets, l->window + 1, T * sizeof *targets);
}

ct_status ct_loader_next_rows(ct_loader *l, int row0, int nrows, int32_t *inputs, int32_t *targets) {
    if (row0 < 0 || nrows < 0 || row0 > l->B - nrows)
        return ct_fail(CT_EINVAL, "loader for %s: rows [%d, %d) are outside the batch of %d rows", l->dir, row0,
                       row0 + nrows, l->B);
    uint64_t W = l->spread ? l->spread : l->n_windows; /* positions of an epoch */
    for (int r = 0; r < nrows; r++) {
        uint64_t abs = l->pos.index + (uint64_t)(row0 + r), w;
        CT_TRY(window_at(l, l->pos.epoch + abs / W, abs % W, &w));
        fill_row(l, w, inputs + (size_t)r * (size_t)l->T, targets + (size_t)r * (size_t)l->T);
    }
    uint64_t abs = l->pos.index + (uint64_t)l->B;
    l->pos.epoch += abs / W;
    l->pos.index = abs % W;
    return CT_OK;
}

ct_status ct_loader_next(ct_loader *l, int32_t *inputs, int32_t *targets) {
    return ct_loader_next_rows(l, 0, l->B, inputs, targets);
}

/* ---- position and sizes ---------------------------------------------------------------- */

ct_loader_pos ct_loader_get_pos(const ct_loader *l) { return l->pos; }

ct_status ct_loader_set_pos(ct_loader *l, ct_loader_pos pos) {
    if (pos.index >= l->n_windows)
        return ct_fail(CT_EINVAL,
                       "loader for %s: position index %" PRIu64 " is past the %" PRIu64
                       " windows of an epoch (different data or seq_len than when saved?)",
                       l->dir, pos.index, l->n_windows);
    l->pos = pos;
    return CT_OK;
}

void ct_loader_reset(ct_loader *l) { l->pos = (ct_loader_pos){0, 0}; }

ct_status ct_loader_spread(ct_loader *l, uint64_t n) {
    if (l->shuffle && n)
        return ct_fail(CT_EINVAL, "loader for %s: a shuffled loader cannot visit a spread set of windows",
                       l->dir);
    if (n > l->n_windows) n = l->n_windows;
    l->spread = n;
    l->pos = (ct_loader_pos){0, 0};
    return CT_OK;
}
uint64_t ct_loader_num_windows(const ct_loader *l) { return l->n_windows; }
uint64_t ct_loader_num_tokens(const ct_loader *l) { return l->n_tokens; }
int ct_loader_vocab_size(const ct_loader *l) { return l->vocab; }

ct_status ct_loader_check_vocab(const ct_loader *l, int vocab_size) {
    for (int i = 0; i < l->n_shards; i++)
        if (l->shards[i].vocab_size > (uint32_t)vocab_size)
            return ct_fail(CT_EINVAL,
                           "%s holds tokens of a %u-token vocabulary but model.vocab_size = %d (data "
                           "prepared for another model?)",
                           l->shards[i].path, l->shards[i].vocab_size, vocab_size);
    return CT_OK;
}
