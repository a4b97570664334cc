/* verify.c: `cetus verify DIR...`: checks checkpoints and data without loading a model.
 * DIR is a checkpoint (step directory), a run directory (every checkpoint in DIR/ckpt), a
 * checkpoint directory (every checkpoint in it) or a data directory from `cetus prepare`
 * (token shards and scene shards). One line per item,
 *   ok    PATH  (what it holds)       or       BAD   PATH  the first problem found
 * then a summary line; exit 0 when every item is ok, 1 when any is bad, 2 on usage errors
 * (including a DIR that is none of those). The checks are the train and data layers' own
 * (ct_checkpoint_verify, ct_data_check_dir). */
#include "cli/cli.h"
#include "data/data_check.h"
#include "train/commands.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LATEST_MARK "  <- latest"

typedef struct tally {
    int ok, bad;
} tally;

static void verify_help(void) {
    printf("usage: cetus verify DIR...\n\n"
           "Checks checkpoints and data without loading a model: checksums, tensor names and\n"
           "shapes against the stored config, optimizer state against the parameters, finite\n"
           "values; token and scene shards as the loaders check them. DIR may be\n"
           "  a checkpoint          runs/x/ckpt/step_00000200\n"
           "  a run directory       runs/x (every checkpoint in runs/x/ckpt; says which is latest)\n"
           "  a checkpoint directory runs/x/ckpt\n"
           "  a data directory      what `cetus prepare` (or `cetus prepare --scenes`) wrote\n"
           "Prints one line per item (ok or BAD, the path, what it holds or the problem) and a\n"
           "summary. Exit status: 0 all ok, 1 something bad, 2 usage error.\n");
}

static int has(const char *dir, const char *name, int want_dir) {
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path || stat(path, &st) != 0)
        return 0;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

/* A checkpoint step directory, complete or not: it has a file a checkpoint holds. */
static int is_checkpoint(const char *dir) {
    return has(dir, "trainer.json", 0) || has(dir, "model.safetensors", 0) ||
           has(dir, "optimizer.safetensors", 0);
}

/* The message without a leading "ITEM/", "ITEM: " or "ITEM " (the line names the item). */
static const char *relative(const char *msg, const char *item) {
    size_t n = strlen(item);
    if (strncmp(msg, item, n) != 0) return msg;
    if (msg[n] == '/' || msg[n] == ' ') return msg + n + 1;
    return msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
}

static void report(tally *t, const char *item, ct_status s, const char *detail, const char *mark) {
    if (s == CT_OK) {
        printf("ok    %s  (%s)%s\n", item, detail, mark);
        t->ok++;
    } else {
        printf("BAD   %s  %s%s\n", item, relative(ct_last_error(), item), mark);
        t->bad++;
    }
}

/* "950", "12.3k", "1.2M", "7.10B" */
static const char *count_str(size_t n, char *buf, size_t cap) {
    if (n < 1000) snprintf(buf, cap, "%zu", n);
    else if (n < 1000000)
        snprintf(buf, cap, "%.1fk", (double)n / 1e3);
    else if (n < 1000000000)
        snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else
        snprintf(buf, cap, "%.2fB", (double)n / 1e9);
    return buf;
}

static void verify_checkpoint(tally *t, const char *dir, const char *mark) {
    ct_ckpt_report r;
    char detail[256], params[32];
    ct_status s = ct_checkpoint_verify(dir, &r);
    snprintf(detail, sizeof detail, "%zu tensors, %s params, %s, trainer.json step %s", r.tensors,
             count_str(r.params, params, sizeof params), r.optimizer ? "optimizer state" : "weights only",
             r.step[0] ? r.step : "none");
    report(t, dir, s, detail, mark);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The checkpoint names in root (directories without a dot: not what an interrupted save
 * left), sorted; *n of them. NULL when out of memory. */
static char **list_checkpoints(const char *root, int *n) {
    DIR *d = opendir(root);
    char **names = calloc(1, sizeof *names);
    *n = 0;
    for (struct dirent *e; d && names && (e = readdir(d)) != NULL;) {
        if (strchr(e->d_name, '.') || !has(root, e->d_name, 1)) continue;
        char **p = realloc(names, (size_t)(*n + 1) * sizeof *p);
        if (!p || !(p[*n] = strdup(e->d_name))) {
            free(p ? p : names);
            names = NULL;
            break;
        }
        names = p;
        (*n)++;
    }
    if (d) closedir(d);
    if (names) qsort(names, (size_t)*n, sizeof *names, cmp_str);
    return names;
}

/* Every checkpoint in root, marking the one `latest` names (a broken pointer is an item). */
static void verify_root(tally *t, const char *root) {
    char latest[1024] = "", item[4096];
    snprintf(item, sizeof item, "%s/latest", root);
    if (has(root, "latest", 0) && ct_checkpoint_latest_name(root, latest, sizeof latest) != CT_OK)
        report(t, item, CT_ECORRUPT, "", "");
    int n;
    char **names = list_checkpoints(root, &n);
    if (!names || n == 0)
        report(t, root, ct_fail(CT_EIO, "%s", names ? "holds no checkpoints" : "out of memory"), "", "");
    for (int i = 0; names && i < n; i++) {
        snprintf(item, sizeof item, "%s/%s", root, names[i]);
        verify_checkpoint(t, item, strcmp(names[i], latest) ? "" : LATEST_MARK);
        free(names[i]);
    }
    free(names);
}

static void on_shard(void *ctx, const ct_data_item *it) { report(ctx, it->path, it->status, it->detail, ""); }

/* Checkpoint roots: a `latest` pointer, or a subdirectory that is a checkpoint. */
static int is_root(const char *dir) {
    if (has(dir, "latest", 0)) return 1;
    int n, found = 0;
    char **names = list_checkpoints(dir, &n), path[4096];
    for (int i = 0; names && i < n; i++) {
        found |= ct_path_format(path, sizeof path, "%s/%s", dir, names[i]) == CT_OK && is_checkpoint(path);
        free(names[i]);
    }
    free(names);
    return found;
}

/* Verifies one DIR argument; 0 when it is none of the kinds verify knows (usage error). */
static int verify_arg(tally *t, const char *arg) {
    char dir[4000], sub[4096];
    size_t k = strlen(arg);
    while (k > 1 && arg[k - 1] == '/') k--;
    if (k >= sizeof dir) {
        fprintf(stderr, "cetus verify: %s: path too long\n", arg);
        return 0;
    }
    memcpy(dir, arg, k);
    dir[k] = 0;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cetus verify: %s is not a directory (see --help)\n", arg);
        return 0;
    }
    if ((size_t)snprintf(sub, sizeof sub, "%s/ckpt", dir) >= sizeof sub) {
        fprintf(stderr, "cetus verify: %s: path too long\n", arg);
        return 0;
    }
    if (is_checkpoint(dir)) verify_checkpoint(t, dir, "");
    else if (has(dir, "ckpt", 1))
        verify_root(t, sub);
    else if (is_root(dir))
        verify_root(t, dir);
    else {
        int n = 0;
        ct_status s = ct_data_check_dir(dir, on_shard, t, &n);
        if (s != CT_OK) report(t, dir, s, "", "");
        if (s == CT_OK && n == 0) {
            fprintf(stderr,
                    "cetus verify: %s is not a checkpoint, a run directory, a checkpoint directory or a data "
                    "directory (see --help)\n",
                    arg);
            return 0;
        }
    }
    return 1;
}

int cmd_verify(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            verify_help();
            return 0;
        }
        if (argv[i][0] == '-') {
            fprintf(stderr, "cetus verify: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (argc < 2) {
        fprintf(stderr, "cetus verify: which directory? (usage: cetus verify DIR..., see --help)\n");
        return 2;
    }
    ct_runtime_init(0, 1);
    tally t = {0, 0};
    for (int i = 1; i < argc; i++)
        if (!verify_arg(&t, argv[i])) return 2;
    printf("%d checked: %d ok, %d bad\n", t.ok + t.bad, t.ok, t.bad);
    return t.bad ? 1 : 0;
}
