/* data_check.c: the verdict on each shard of a data directory (see data_check.h): token
 * shards through ct_shard_open, scene shards through ct_scene_shard_open. */
#include "data/data_check.h"
#include "data/loader.h"
#include "data/scenes.h"
#include "data/shard.h"
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#define OLD_NOTE "header not under the checksum: re-run cetus prepare"

/* 1 for "scenes_<letters>.bin". */
static int is_scene_name(const char *name) {
    size_t n = strlen(name);
    if (n <= 11 || strncmp(name, "scenes_", 7) != 0 || strcmp(name + n - 4, ".bin") != 0) return 0;
    for (size_t i = 7; i < n - 4; i++)
        if (name[i] < 'a' || name[i] > 'z') return 0;
    return 1;
}

static int is_data_name(const char *name) {
    return ct_loader_is_shard_name(name, "train") || ct_loader_is_shard_name(name, "val") ||
           is_scene_name(name);
}

static void check_tokens(ct_data_item *it) {
    ct_shard s;
    if ((it->status = ct_shard_open(&s, it->path)) != CT_OK) return;
    snprintf(it->detail, sizeof it->detail, "%" PRIu64 " tokens, vocab %u, version %u%s", s.n_tokens,
             s.vocab_size, s.version, s.version == CT_SHARD_VERSION_V1 ? ": " OLD_NOTE : "");
    ct_shard_close(&s);
}

static void check_scenes(ct_data_item *it) {
    ct_scene_shard s;
    if ((it->status = ct_scene_shard_open(&s, it->path)) != CT_OK) return;
    snprintf(it->detail, sizeof it->detail,
             "%" PRIu64 " scenes, captions of up to %u tokens, vocab %u, version %u%s", s.count, s.max_tokens,
             s.vocab_size, s.version, s.version == CT_SCENE_VERSION_V1 ? ": " OLD_NOTE " --scenes" : "");
    ct_scene_shard_close(&s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The data file names in dir, sorted, into *names[*n] (ct_alloc; free each and the list). */
static ct_status list_names(const char *dir, char ***names, int *n) {
    DIR *d = opendir(dir);
    if (!d) return ct_fail(CT_EIO, "cannot open data directory %s: %s", dir, strerror(errno));
    int cap = 0;
    ct_status s = CT_OK;
    for (struct dirent *e; s == CT_OK && (e = readdir(d)) != NULL;) {
        if (!is_data_name(e->d_name)) continue;
        if (*n == cap) {
            char **p = ct_realloc(*names, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *p, "the shard list");
            if (!p) s = CT_ENOMEM;
            else
                *names = p;
        }
        if (s == CT_OK && !((*names)[*n] = ct_strdup(e->d_name, "the shard list"))) s = CT_ENOMEM;
        if (s == CT_OK) (*n)++;
    }
    closedir(d);
    if (*n > 1) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return s;
}

/* A directory a killed prepare left (CT_UNFINISHED_MARKER there) is one bad item itself. */
static int check_finished(const char *dir, ct_data_item_fn fn, void *ctx) {
    char path[4096];
    if (ct_path_format(path, sizeof path, "%s/%s", dir, CT_UNFINISHED_MARKER) != CT_OK) return 0;
    ct_data_item it = {.path = path, .detail = ""};
    if ((it.status = ct_dir_check_finished(dir, "shards")) == CT_OK) return 0;
    fn(ctx, &it);
    return 1;
}

ct_status ct_data_check_dir(const char *dir, ct_data_item_fn fn, void *ctx, int *count) {
    char **names = NULL, path[4096];
    int n = 0;
    ct_status s = list_names(dir, &names, &n);
    int unfinished = s == CT_OK ? check_finished(dir, fn, ctx) : 0;
    for (int i = 0; s == CT_OK && i < n; i++) {
        ct_data_item it = {.path = path, .detail = ""};
        if ((s = ct_path_format(path, sizeof path, "%s/%s", dir, names[i])) != CT_OK) break;
        if (is_scene_name(names[i])) check_scenes(&it);
        else
            check_tokens(&it);
        fn(ctx, &it);
    }
    for (int i = 0; i < n; i++) ct_free(names[i]);
    ct_free(names);
    *count = n + unfinished;
    return s;
}
