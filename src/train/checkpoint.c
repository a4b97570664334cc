/* checkpoint.c: checkpoint directories (model.safetensors, optimizer.safetensors,
 * trainer.json): the crash-safe save protocol, finding a complete checkpoint after an
 * interrupted save, the "latest" pointer, and the load that verifies everything before it
 * hands anything over. Tensors move only through a ct_ckpt_io (the caller's, or one over
 * the view's flat buffers), one at a time. The on-disk layout is described in checkpoint.h. */
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include <xxhash.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_PATH 4096
#define CKPT_NAME 1024
#define CKPT_FORMAT "cetus-checkpoint"
#define CKPT_VERSION 1
#define F_MODEL "model.safetensors"
#define F_OPTIM "optimizer.safetensors"
#define F_TRAINER "trainer.json"
#define F_LATEST "latest"

/* The only files cetus deletes from a checkpoint directory: these, the side files, and the
 * temporary ".tmp" of each. */
static const char *const owned_files[] = {F_MODEL, F_OPTIM, F_TRAINER};
static const char *const side_names[] = {CT_CKPT_SIDE_NAMES};
#define N_OWNED (sizeof owned_files / sizeof *owned_files)
#define N_SIDE (sizeof side_names / sizeof *side_names)
static const char *const model_suffix[] = {""};
static const char *const optim_suffixes[] = {".exp_avg", ".exp_avg_sq"};

/* ---- paths and small file-system helpers ------------------------------------------------ */

typedef struct ckpt_paths {
    char dir[CKPT_PATH];    /* DIR without trailing slashes */
    char parent[CKPT_PATH]; /* its parent directory */
    char base[CKPT_NAME];   /* its last component */
    char tmp[CKPT_PATH];    /* DIR.tmp-<pid> */
    char old[CKPT_PATH];    /* DIR.old-<pid> */
} ckpt_paths;

static ct_status join(char out[CKPT_PATH], const char *a, const char *b) {
    if (snprintf(out, CKPT_PATH, "%s/%s", a, b) >= CKPT_PATH)
        return ct_fail(CT_EINVAL, "path %s/%s is too long", a, b);
    return CT_OK;
}

static ct_status paths_init(ckpt_paths *p, const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    if (n == 0 || n + 32 >= CKPT_PATH) return ct_fail(CT_EINVAL, "bad checkpoint directory '%s'", dir);
    memcpy(p->dir, dir, n);
    p->dir[n] = 0;
    const char *slash = strrchr(p->dir, '/');
    const char *base = slash ? slash + 1 : p->dir;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || strlen(base) + 32 >= CKPT_NAME)
        return ct_fail(CT_EINVAL,
                       "checkpoint directory '%s' needs a name of its own "
                       "(not /, . or ..)",
                       dir);
    strcpy(p->base, base);
    if (!slash) strcpy(p->parent, ".");
    else if (slash == p->dir)
        strcpy(p->parent, "/");
    else {
        memcpy(p->parent, p->dir, (size_t)(slash - p->dir));
        p->parent[slash - p->dir] = 0;
    }
    long pid = (long)getpid();
    if (snprintf(p->tmp, CKPT_PATH, "%s.tmp-%ld", p->dir, pid) >= CKPT_PATH ||
        snprintf(p->old, CKPT_PATH, "%s.old-%ld", p->dir, pid) >= CKPT_PATH)
        return ct_fail(CT_EINVAL, "checkpoint directory '%s' is too long", dir);
    return CT_OK;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* 1 if dir holds trainer.json (written last: the directory is complete); its mtime. */
static int is_complete(const char *dir, struct timespec *mtime) {
    char path[CKPT_PATH];
    struct stat st;
    if (join(path, dir, F_TRAINER) != CT_OK || stat(path, &st) != 0) return 0;
    if (mtime) *mtime = st.st_mtim;
    return 1;
}

static ct_status fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ct_fail(CT_EIO, "cannot open directory %s: %s", path, strerror(errno));
    int rc = fsync(fd), err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) return ct_fail(CT_EIO, "cannot fsync directory %s: %s", path, strerror(err));
    return CT_OK;
}

/* Deletes the files cetus writes in dir, then dir itself. 1 if dir is gone. */
static int remove_owned(const char *dir) {
    char path[CKPT_PATH];
    for (size_t i = 0; i < N_OWNED + N_SIDE; i++) {
        const char *name = i < N_OWNED ? owned_files[i] : side_names[i - N_OWNED];
        if (join(path, dir, name) != CT_OK) continue;
        unlink(path);
        if (strlen(path) + 5 <= CKPT_PATH) unlink(strcat(path, ".tmp"));
    }
    return rmdir(dir) == 0 || errno == ENOENT;
}

/* 1 if name is one of the side files a checkpoint may hold. */
static int side_name(const char *name) {
    for (size_t i = 0; i < N_SIDE; i++)
        if (!strcmp(name, side_names[i])) return 1;
    return 0;
}

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Calls fn on each sibling "<base><tag><digits>" of p->dir (tag is ".tmp-" or ".old-"). */
typedef void (*sibling_fn)(const char *path, void *ctx);
static void each_sibling(const ckpt_paths *p, const char *tag, sibling_fn fn, void *ctx) {
    DIR *d = opendir(p->parent);
    if (!d) return;
    size_t bl = strlen(p->base), tl = strlen(tag);
    char path[CKPT_PATH];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *s = e->d_name;
        if (strncmp(s, p->base, bl) || strncmp(s + bl, tag, tl) || !all_digits(s + bl + tl)) continue;
        if (join(path, p->parent, s) == CT_OK) fn(path, ctx);
    }
    closedir(d);
}

typedef struct newest {
    char path[CKPT_PATH];
    struct timespec t;
    int found;
} newest;

static void pick_newest(const char *path, void *ctx) {
    newest *b = ctx;
    struct timespec t;
    if (!is_dir(path) || !is_complete(path, &t)) return;
    if (b->found && (t.tv_sec < b->t.tv_sec || (t.tv_sec == b->t.tv_sec && t.tv_nsec <= b->t.tv_nsec))) return;
    snprintf(b->path, sizeof b->path, "%s", path);
    b->t = t;
    b->found = 1;
}

static void remove_sibling(const char *path, void *ctx) {
    (void)ctx;
    if (is_dir(path)) remove_owned(path);
}

/* The directory to load for dir: dir itself, or after an interrupted save the complete
 * new copy (DIR.tmp-*) or else the old one (DIR.old-*). */
static ct_status resolve(const char *dir, char out[CKPT_PATH]) {
    ckpt_paths p;
    CT_TRY(paths_init(&p, dir));
    if (is_dir(p.dir)) {
        strcpy(out, p.dir);
        return CT_OK;
    }
    newest b = {.found = 0};
    each_sibling(&p, ".tmp-", pick_newest, &b);
    if (!b.found) each_sibling(&p, ".old-", pick_newest, &b);
    if (!b.found) return ct_fail(CT_EIO, "checkpoint %s does not exist", p.dir);
    ct_log("checkpoint %s is missing (an interrupted save); using %s", p.dir, b.path);
    strcpy(out, b.path);
    return CT_OK;
}

/* ---- the view --------------------------------------------------------------------------- */

static void view_shape(const ct_ckpt_tensor *t, int64_t out[4]) {
    for (int i = 0; i < 4; i++) out[i] = i < t->ndim ? t->shape[i] : 1;
}

static ct_status check_view_tensor(const char *dir, const ct_ckpt_view *v, const ct_ckpt_tensor *t) {
    if (!t->name || t->ndim < 0 || t->ndim > 4)
        return ct_fail(CT_EINVAL, "checkpoint %s: a tensor has no name or a bad ndim", dir);
    size_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        size_t d = (size_t)t->shape[i];
        if (t->shape[i] < 0 || (d && numel > SIZE_MAX / d))
            return ct_fail(CT_EINVAL, "checkpoint %s: tensor %s has a bad shape", dir, t->name);
        numel *= d;
    }
    if (v->io && numel != t->numel)
        return ct_fail(CT_EINVAL,
                       "checkpoint %s: tensor %s has numel %zu, its shape holds "
                       "%zu",
                       dir, t->name, t->numel, numel);
    if (!v->io && (numel != t->numel || t->offset > v->num_params || t->numel > v->num_params - t->offset))
        return ct_fail(CT_EINVAL,
                       "checkpoint %s: tensor %s (offset %zu, numel %zu) does not "
                       "match its shape or fit in %zu params",
                       dir, t->name, t->offset, t->numel, v->num_params);
    return CT_OK;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static ct_status check_unique_names(const char *dir, const ct_ckpt_view *v) {
    const char **names = ct_alloc((v->n_tensors + 1) * sizeof *names, "checkpoint names");
    if (!names) return CT_ENOMEM;
    for (size_t i = 0; i < v->n_tensors; i++) names[i] = v->tensors[i].name;
    qsort(names, v->n_tensors, sizeof *names, cmp_str_ptr);
    ct_status s = CT_OK;
    for (size_t i = 1; i < v->n_tensors && s == CT_OK; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            s = ct_fail(CT_EINVAL, "checkpoint %s: tensor name %s appears twice", dir, names[i]);
    ct_free(names);
    return s;
}

/* The view's side files: known names, each once, with their bytes. */
static ct_status check_side_files(const char *dir, const ct_ckpt_view *v) {
    if (v->n_files && !v->files) return ct_fail(CT_EINVAL, "checkpoint %s: side files without a table", dir);
    for (size_t i = 0; i < v->n_files; i++) {
        const ct_ckpt_file *f = &v->files[i];
        if (!f->name || !side_name(f->name) || (f->bytes && !f->data))
            return ct_fail(CT_EINVAL, "checkpoint %s: side file %s is not one a checkpoint holds (%s)", dir,
                           f->name ? f->name : "(no name)",
                           "config.json, vocab.json, merges.txt, tokenizer.json");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(v->files[j].name, f->name))
                return ct_fail(CT_EINVAL, "checkpoint %s: side file %s appears twice", dir, f->name);
    }
    return CT_OK;
}

/* Checks the view for a save (saving = 1: needs io->get) or a load (needs io->put). */
static ct_status check_view(const char *dir, const ct_ckpt_view *v, int saving) {
    if (v && v->io) {
        if ((v->n_tensors && !v->tensors) || (saving ? !v->io->get : !v->io->put))
            return ct_fail(CT_EINVAL,
                           "checkpoint %s: the view needs tensors and an io with "
                           "a %s callback",
                           dir, saving ? "get" : "put");
    } else if (!v || (v->n_tensors && (!v->tensors || !v->params)) || (!v->adam_m) != (!v->adam_v)) {
        return ct_fail(CT_EINVAL,
                       "checkpoint %s: the view needs tensors, params and both or "
                       "neither AdamW moment buffers",
                       dir);
    }
    for (size_t i = 0; i < v->n_tensors; i++) CT_TRY(check_view_tensor(dir, v, &v->tensors[i]));
    CT_TRY(check_side_files(dir, v));
    return check_unique_names(dir, v);
}

/* 1 if the view saves/needs the AdamW moments (optimizer.safetensors). */
static int view_moments(const ct_ckpt_view *v) { return v->io ? v->moments != 0 : v->adam_m != NULL; }

static float *flat_buffer(const ct_ckpt_view *v, int b) {
    return b == 0 ? v->params : b == 1 ? v->adam_m : v->adam_v;
}

static ct_status flat_get(void *ctx, size_t i, int b, const float **data) {
    const ct_ckpt_view *v = ctx;
    *data = flat_buffer(v, b) + v->tensors[i].offset;
    return CT_OK;
}

static void flat_put(void *ctx, size_t i, int b, const float *data) {
    const ct_ckpt_view *v = ctx;
    const ct_ckpt_tensor *t = &v->tensors[i];
    if (t->numel) memcpy(flat_buffer(v, b) + t->offset, data, t->numel * sizeof(float));
}

/* The view's io: its own, or one over its flat buffers (the only way tensors move). */
static ct_ckpt_io view_io(const ct_ckpt_view *v) {
    if (v->io) return *v->io;
    return (ct_ckpt_io){flat_get, flat_put, (void *)v};
}

/* ---- save ------------------------------------------------------------------------------- */

typedef struct file_rec {
    uint64_t bytes, hash;
} file_rec;

static ct_st_tensor st_tensor(const ct_ckpt_tensor *t, const char *name) {
    ct_st_tensor s = {name, t->ndim, {0}, NULL};
    for (int d = 0; d < t->ndim; d++) s.shape[d] = t->shape[d];
    return s;
}

/* Feeds the safetensors writer: entry k of a file of nsuf buffers from b0 is tensor k % n
 * of buffer b0 + k / n. */
typedef struct st_feed {
    ct_ckpt_io io;
    size_t n;
    int b0;
} st_feed;

static ct_status feed_tensor(void *ctx, size_t k, const float **data) {
    const st_feed *f = ctx;
    return f->io.get(f->io.ctx, k % f->n, f->b0 + (int)(k / f->n), data);
}

/* Writes one safetensors file of the view: buffer b0 + j under suffixes[j], j < nsuf. */
static ct_status write_st(const char *path, const ct_ckpt_view *v, const ct_ckpt_io *io,
                          const char *const *suffixes, int b0, int nsuf, const char *content, file_rec *rec) {
    size_t n = v->n_tensors * (size_t)nsuf;
    ct_st_tensor *t = ct_alloc((n + 1) * sizeof *t, "checkpoint tensor table");
    char **names = ct_calloc((n + 1) * sizeof *names, "checkpoint tensor names");
    ct_status s = t && names ? CT_OK : CT_ENOMEM;
    for (size_t i = 0; s == CT_OK && i < n; i++) {
        const ct_ckpt_tensor *vt = &v->tensors[i % v->n_tensors];
        const char *suf = suffixes[i / v->n_tensors];
        size_t len = strlen(vt->name) + strlen(suf) + 1;
        if (!(names[i] = ct_alloc(len, "checkpoint tensor names"))) s = CT_ENOMEM;
        else
            snprintf(names[i], len, "%s%s", vt->name, suf);
        t[i] = st_tensor(vt, names[i]);
    }
    const char *meta[] = {"format", "pt", "cetus.content", content, NULL};
    st_feed feed = {*io, v->n_tensors, b0};
    if (s == CT_OK)
        s = ct_safetensors_write_fetch(path, t, n, meta, feed_tensor, &feed, &rec->bytes, &rec->hash);
    for (size_t i = 0; names && i < n; i++) ct_free(names[i]);
    ct_free(names);
    ct_free(t);
    return s;
}

static int add_record(cJSON *files, const char *name, const file_rec *r) {
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, r->hash);
    cJSON *o = cJSON_AddObjectToObject(files, name);
    return o && cJSON_AddNumberToObject(o, "bytes", (double)r->bytes) &&
           cJSON_AddStringToObject(o, "xxh64", hex);
}

static int add_state(cJSON *root, const cJSON *state) {
    cJSON *st = state ? cJSON_Duplicate(state, 1) : cJSON_CreateObject();
    if (st && cJSON_AddItemToObject(root, "trainer", st)) return 1;
    cJSON_Delete(st);
    return 0;
}

/* The text of trainer.json (free with cJSON_free), or NULL when out of memory. side[i] is
 * the record of v's side file i. */
static char *trainer_text(const file_rec *model, const file_rec *optim, const ct_ckpt_view *v,
                          const file_rec *side, const cJSON *state) {
    cJSON *root = cJSON_CreateObject(), *files = NULL;
    int ok = root && cJSON_AddStringToObject(root, "format", CKPT_FORMAT) &&
             cJSON_AddNumberToObject(root, "version", CKPT_VERSION) &&
             (files = cJSON_AddObjectToObject(root, "files")) && add_record(files, F_MODEL, model) &&
             (!optim || add_record(files, F_OPTIM, optim));
    for (size_t i = 0; ok && i < v->n_files; i++) ok = add_record(files, v->files[i].name, &side[i]);
    ok = ok && add_state(root, state);
    char *canon = ok ? cJSON_PrintUnformatted(root) : NULL, hex[17], *text = NULL;
    if (canon) {
        snprintf(hex, sizeof hex, "%016" PRIx64, (uint64_t)XXH64(canon, strlen(canon), 0));
        if (cJSON_AddStringToObject(root, "xxh64", hex)) text = cJSON_Print(root);
    }
    cJSON_free(canon);
    cJSON_Delete(root);
    return text;
}

/* Writes path atomically from data [bytes] (and a newline after it when nl). */
static ct_status write_whole(const char *path, const void *data, size_t bytes, int nl) {
    ct_atomic_file *f;
    CT_TRY(ct_atomic_open(&f, path));
    ct_status s = ct_atomic_write(f, data, bytes);
    if (s == CT_OK && nl) s = ct_atomic_write(f, "\n", 1);
    if (s != CT_OK) {
        ct_atomic_abort(f);
        return s;
    }
    return ct_atomic_commit(f);
}

static ct_status write_trainer(const char *path, const file_rec *model, const file_rec *optim,
                               const ct_ckpt_view *v, const file_rec *side, const cJSON *state) {
    char *text = trainer_text(model, optim, v, side, state);
    if (!text) return ct_fail(CT_ENOMEM, "%s: out of memory building the trainer state", path);
    ct_status s = write_whole(path, text, strlen(text), 1);
    cJSON_free(text);
    return s;
}

/* Writes v's side files into dir, their records into side[]. */
static ct_status write_side_files(const char *dir, const ct_ckpt_view *v, file_rec *side) {
    char path[CKPT_PATH];
    for (size_t i = 0; i < v->n_files; i++) {
        const ct_ckpt_file *f = &v->files[i];
        CT_TRY(join(path, dir, f->name));
        CT_TRY(write_whole(path, f->data ? f->data : "", f->bytes, 0));
        side[i] = (file_rec){f->bytes, XXH64(f->data ? f->data : "", f->bytes, 0)};
    }
    return CT_OK;
}

/* Writes the complete new checkpoint into p->tmp; trainer.json goes last. */
static ct_status write_tmp(const ckpt_paths *p, const ct_ckpt_view *v, const cJSON *state) {
    if (!remove_owned(p->tmp) || mkdir(p->tmp, 0755) != 0)
        return ct_fail(CT_EIO, "cannot create %s: %s", p->tmp, strerror(errno));
    char path[CKPT_PATH];
    file_rec model, optim;
    ct_ckpt_io io = view_io(v);
    int moments = view_moments(v);
    CT_TRY(join(path, p->tmp, F_MODEL));
    CT_TRY(write_st(path, v, &io, model_suffix, 0, 1, "model", &model));
    if (moments) {
        CT_TRY(join(path, p->tmp, F_OPTIM));
        CT_TRY(write_st(path, v, &io, optim_suffixes, 1, 2, "adamw moments", &optim));
    }
    file_rec side[N_SIDE];
    CT_TRY(write_side_files(p->tmp, v, side));
    CT_TRY(join(path, p->tmp, F_TRAINER));
    CT_TRY(write_trainer(path, &model, moments ? &optim : NULL, v, side, state));
    return fsync_dir(p->tmp);
}

/* Replaces p->dir by p->tmp: old aside, new in, old removed. */
static ct_status swap_in(const ckpt_paths *p) {
    remove_owned(p->old);
    int had_old = is_dir(p->dir);
    if (had_old && rename(p->dir, p->old) != 0)
        return ct_fail(CT_EIO, "cannot move %s aside to %s: %s", p->dir, p->old, strerror(errno));
    if (rename(p->tmp, p->dir) != 0) {
        ct_status s = ct_fail(CT_EIO, "cannot rename %s to %s: %s", p->tmp, p->dir, strerror(errno));
        if (had_old) rename(p->old, p->dir);
        return s;
    }
    CT_TRY(fsync_dir(p->parent));
    if (had_old && !remove_owned(p->old))
        ct_log("checkpoint: kept %s: it holds files cetus did not write", p->old);
    return CT_OK;
}

static ct_status write_latest(const ckpt_paths *p) {
    char path[CKPT_PATH];
    CT_TRY(join(path, p->parent, F_LATEST));
    return write_whole(path, p->base, strlen(p->base), 1);
}

static ct_status refuse_foreign(const ckpt_paths *p) {
    struct stat st;
    if (stat(p->dir, &st) != 0) return CT_OK;
    if (!S_ISDIR(st.st_mode) || !is_complete(p->dir, NULL))
        return ct_fail(CT_EINVAL,
                       "%s exists and is not a checkpoint (no %s); refusing to "
                       "replace it",
                       p->dir, F_TRAINER);
    return CT_OK;
}

ct_status ct_checkpoint_save(const char *dir, const ct_ckpt_view *v, const cJSON *trainer_state) {
    ckpt_paths p;
    CT_TRY(paths_init(&p, dir));
    CT_TRY(check_view(p.dir, v, 1));
    CT_TRY(refuse_foreign(&p));
    ct_status s = write_tmp(&p, v, trainer_state);
    if (s == CT_OK) s = swap_in(&p);
    if (s != CT_OK) {
        remove_owned(p.tmp);
        return ct_fail_context(s, "saving checkpoint %s", p.dir);
    }
    each_sibling(&p, ".tmp-", remove_sibling, NULL);
    each_sibling(&p, ".old-", remove_sibling, NULL);
    s = write_latest(&p);
    return s == CT_OK ? s : ct_fail_context(s, "saving checkpoint %s", p.dir);
}

/* ---- load ------------------------------------------------------------------------------- */

typedef struct ckpt_open {
    char dir[CKPT_PATH];
    cJSON *doc; /* trainer.json */
    ct_safetensors *model, *optim;
} ckpt_open;

static void ckpt_close(ckpt_open *c) {
    cJSON_Delete(c->doc);
    ct_safetensors_close(c->model);
    ct_safetensors_close(c->optim);
}

/* A JSON string of 16 hex digits. */
static int json_hex64(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsString(j) || strlen(j->valuestring) != 16) return 0;
    char *end;
    *v = strtoull(j->valuestring, &end, 16);
    return *end == 0;
}

static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || (double)(uint64_t)d != d) return 0;
    *v = (uint64_t)d;
    return 1;
}

/* Checks trainer.json's own checksum (which it then drops from the tree). */
static ct_status verify_self(const char *path, cJSON *doc) {
    cJSON *h = cJSON_DetachItemFromObjectCaseSensitive(doc, "xxh64");
    uint64_t want;
    int ok = json_hex64(h, &want);
    cJSON_Delete(h);
    if (!ok) return ct_fail(CT_ECORRUPT, "%s: no valid \"xxh64\" checksum field", path);
    char *canon = cJSON_PrintUnformatted(doc);
    if (!canon) return ct_fail(CT_ENOMEM, "%s: out of memory", path);
    uint64_t got = XXH64(canon, strlen(canon), 0);
    cJSON_free(canon);
    if (got != want)
        return ct_fail(CT_ECORRUPT,
                       "%s: checksum mismatch: the content hashes to %016" PRIx64
                       ", the file records %016" PRIx64 " (corrupt or edited)",
                       path, got, want);
    return CT_OK;
}

static ct_status read_trainer(ckpt_open *c) {
    char path[CKPT_PATH], *text;
    size_t n;
    CT_TRY(join(path, c->dir, F_TRAINER));
    CT_TRY(ct_read_file(path, &text, &n));
    const char *end = NULL;
    c->doc = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    size_t used = c->doc && end ? (size_t)(end - text) : 0;
    while (used < n && (text[used] == ' ' || text[used] == '\n' || text[used] == '\r' || text[used] == '\t'))
        used++;
    ct_free(text);
    if (!cJSON_IsObject(c->doc))
        return ct_fail(CT_ECORRUPT, "%s: not a JSON object (corrupt or truncated)", path);
    if (used != n)
        return ct_fail(CT_ECORRUPT, "%s: %zu bytes after the JSON object (corrupt or edited)", path, n - used);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(c->doc, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(c->doc, "version");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, CKPT_FORMAT) || !cJSON_IsNumber(ver) ||
        ver->valuedouble != CKPT_VERSION)
        return ct_fail(CT_ECORRUPT, "%s: expected format \"%s\" version %d", path, CKPT_FORMAT, CKPT_VERSION);
    CT_TRY(verify_self(path, c->doc));
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(c->doc, "files")) ||
        !cJSON_GetObjectItemCaseSensitive(c->doc, "trainer"))
        return ct_fail(CT_ECORRUPT, "%s: missing \"files\" or \"trainer\"", path);
    return CT_OK;
}

/* rec (trainer.json's record of file name in c->dir): its size and XXH64. */
static ct_status read_record(const ckpt_open *c, const char *name, const cJSON *rec, uint64_t *bytes,
                             uint64_t *hash) {
    if (!rec)
        return ct_fail(CT_ECORRUPT, "%s/%s has no record of %s (saved without it?)", c->dir, F_TRAINER, name);
    if (!json_uint(cJSON_GetObjectItemCaseSensitive(rec, "bytes"), bytes) ||
        !json_hex64(cJSON_GetObjectItemCaseSensitive(rec, "xxh64"), hash))
        return ct_fail(CT_ECORRUPT, "%s/%s: bad record for %s", c->dir, F_TRAINER, name);
    return CT_OK;
}

/* The file at path, data [size], is the one its record (bytes, hash) describes. */
static ct_status match_record(const char *path, const void *data, size_t size, uint64_t bytes, uint64_t hash) {
    if (size != bytes)
        return ct_fail(CT_ECORRUPT, "%s: %zu bytes, %s records %" PRIu64, path, size, F_TRAINER, bytes);
    uint64_t got = XXH64(data, size, 0);
    if (got != hash)
        return ct_fail(CT_ECORRUPT,
                       "%s: file checksum mismatch: it hashes to %016" PRIx64 ", %s records %016" PRIx64
                       " (corrupt file)",
                       path, got, F_TRAINER, hash);
    return CT_OK;
}

/* Opens c->dir/fname and checks its size and XXH64 against trainer.json. */
static ct_status open_verified(ckpt_open *c, const char *fname, ct_safetensors **out) {
    char path[CKPT_PATH];
    uint64_t bytes, hash;
    size_t size;
    CT_TRY(join(path, c->dir, fname));
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(c->doc, "files");
    CT_TRY(read_record(c, fname, cJSON_GetObjectItemCaseSensitive(files, fname), &bytes, &hash));
    CT_TRY(ct_safetensors_open(out, path));
    const uint8_t *data = ct_safetensors_bytes(*out, &size);
    return match_record(path, data, size, bytes, hash);
}

/* Checks the side file c->dir/name against its record rec in trainer.json. */
static ct_status verify_side_file(const ckpt_open *c, const char *name, const cJSON *rec) {
    char path[CKPT_PATH], *data;
    uint64_t bytes, hash;
    size_t n;
    if (!side_name(name))
        return ct_fail(CT_ECORRUPT, "%s/%s records a file %s that a checkpoint does not hold", c->dir,
                       F_TRAINER, name);
    CT_TRY(read_record(c, name, rec, &bytes, &hash));
    CT_TRY(join(path, c->dir, name));
    CT_TRY(ct_read_file(path, &data, &n));
    ct_status s = match_record(path, data, n, bytes, hash);
    ct_free(data);
    return s;
}

/* Every side file trainer.json records (none in a checkpoint saved without them). */
static ct_status verify_side_files(const ckpt_open *c) {
    const cJSON *rec;
    cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(c->doc, "files")) {
        if (!rec->string || !strcmp(rec->string, F_MODEL) || !strcmp(rec->string, F_OPTIM)) continue;
        CT_TRY(verify_side_file(c, rec->string, rec));
    }
    return CT_OK;
}

static ct_status full_name(char out[CKPT_NAME], const char *name, const char *suffix) {
    if (snprintf(out, CKPT_NAME, "%s%s", name, suffix) >= CKPT_NAME)
        return ct_fail(CT_EINVAL, "tensor name %s%s is too long", name, suffix);
    return CT_OK;
}

static ct_status match_one(const ct_safetensors *st, const ct_ckpt_tensor *t, const char *suf) {
    char name[CKPT_NAME], a[160], b[160];
    int64_t want[4], got[4];
    int ndim;
    CT_TRY(full_name(name, t->name, suf));
    view_shape(t, want);
    if (!ct_safetensors_find(st, name, &ndim, got))
        return ct_fail(CT_ECORRUPT, "%s: tensor %s is missing (expected shape %s)", ct_safetensors_path(st),
                       name, ct_st_shape_str(a, sizeof a, t->ndim, want));
    if (ndim != t->ndim || memcmp(got, want, sizeof got) != 0)
        return ct_fail(CT_ECORRUPT, "%s: tensor %s has shape %s, expected %s", ct_safetensors_path(st), name,
                       ct_st_shape_str(a, sizeof a, ndim, got), ct_st_shape_str(b, sizeof b, t->ndim, want));
    return CT_OK;
}

/* 1 if name is some view tensor's name followed by one of the suffixes. */
static int known_name(const char *name, const ct_ckpt_view *v, const char *const *suf, int nsuf) {
    for (size_t i = 0; i < v->n_tensors; i++) {
        size_t k = strlen(v->tensors[i].name);
        if (strncmp(name, v->tensors[i].name, k) != 0) continue;
        for (int s = 0; s < nsuf; s++)
            if (strcmp(name + k, suf[s]) == 0) return 1;
    }
    return 0;
}

/* Every view tensor (with each suffix) is in st with its shape, and st has nothing else. */
static ct_status match_tensors(const ct_safetensors *st, const ct_ckpt_view *v, const char *const *suf,
                               int nsuf) {
    for (int s = 0; s < nsuf; s++)
        for (size_t i = 0; i < v->n_tensors; i++) CT_TRY(match_one(st, &v->tensors[i], suf[s]));
    size_t n = ct_safetensors_count(st);
    if (n == v->n_tensors * (size_t)nsuf) return CT_OK;
    for (size_t j = 0; j < n; j++) {
        const char *name = ct_safetensors_name(st, j, NULL, NULL);
        if (!known_name(name, v, suf, nsuf))
            return ct_fail(CT_ECORRUPT,
                           "%s: unexpected tensor %s (the model has no such "
                           "tensor)",
                           ct_safetensors_path(st), name);
    }
    return ct_fail(CT_ECORRUPT, "%s: %zu tensors, expected %zu", ct_safetensors_path(st), n,
                   v->n_tensors * (size_t)nsuf);
}

/* Hands every view tensor's stored data (name + suf in st) to io's put as buffer b. */
static void deliver(const ct_safetensors *st, const ct_ckpt_view *v, const ct_ckpt_io *io, const char *suf,
                    int b) {
    char name[CKPT_NAME];
    for (size_t i = 0; i < v->n_tensors; i++) {
        full_name(name, v->tensors[i].name, suf); /* checked by match_tensors */
        io->put(io->ctx, i, b, ct_safetensors_find(st, name, NULL, NULL));
    }
}

/* Opens and verifies everything a load needs; touches no caller buffer. */
static ct_status open_all(ckpt_open *c, const char *dir, const ct_ckpt_view *v, int optim) {
    CT_TRY(check_view(dir, v, 0));
    CT_TRY(resolve(dir, c->dir));
    CT_TRY(read_trainer(c));
    CT_TRY(verify_side_files(c));
    CT_TRY(open_verified(c, F_MODEL, &c->model));
    CT_TRY(match_tensors(c->model, v, model_suffix, 1));
    if (!optim) return CT_OK;
    CT_TRY(open_verified(c, F_OPTIM, &c->optim));
    return match_tensors(c->optim, v, optim_suffixes, 2);
}

ct_status ct_checkpoint_load(const char *dir, const ct_ckpt_view *v, cJSON **trainer_state) {
    if (trainer_state) *trainer_state = NULL;
    ckpt_open c = {.doc = NULL};
    cJSON *state = NULL;
    ct_status s = open_all(&c, dir, v, v && view_moments(v));
    if (s == CT_OK && trainer_state &&
        !(state = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c.doc, "trainer"), 1)))
        s = ct_fail(CT_ENOMEM, "%s: out of memory copying the trainer state", c.dir);
    if (s == CT_OK) {
        ct_ckpt_io io = view_io(v);
        deliver(c.model, v, &io, model_suffix[0], 0);
        if (c.optim) deliver(c.optim, v, &io, optim_suffixes[0], 1);
        if (c.optim) deliver(c.optim, v, &io, optim_suffixes[1], 2);
        if (trainer_state) *trainer_state = state;
    }
    ckpt_close(&c);
    return s == CT_OK ? s : ct_fail_context(s, "loading checkpoint %s", dir);
}

static int is_safetensors_file(const char *path) {
    struct stat st;
    size_t n = strlen(path), k = strlen(".safetensors");
    return n > k && strcmp(path + n - k, ".safetensors") == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static ct_status load_weights_file(const char *path, const ct_ckpt_view *v) {
    CT_TRY(check_view(path, v, 0));
    ct_safetensors *st;
    CT_TRY(ct_safetensors_open(&st, path));
    ct_status s = match_tensors(st, v, model_suffix, 1);
    if (s == CT_OK) {
        ct_ckpt_io io = view_io(v);
        deliver(st, v, &io, model_suffix[0], 0);
    }
    ct_safetensors_close(st);
    return s;
}

ct_status ct_checkpoint_load_weights(const char *path, const ct_ckpt_view *v) {
    ct_status s;
    if (is_safetensors_file(path)) {
        s = load_weights_file(path, v);
    } else {
        ckpt_open c = {.doc = NULL};
        s = open_all(&c, path, v, 0);
        if (s == CT_OK) {
            ct_ckpt_io io = view_io(v);
            deliver(c.model, v, &io, model_suffix[0], 0);
        }
        ckpt_close(&c);
    }
    return s == CT_OK ? s : ct_fail_context(s, "loading weights from %s", path);
}

/* 1 if trainer.json (read) records an optimizer file. */
static int records_optim(const ckpt_open *c) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->doc, "files"), F_OPTIM) != NULL;
}

/* Every check of a load on c->dir (set), the optimizer file when trainer.json records one. */
static ct_status check_all(ckpt_open *c, const ct_ckpt_view *v, int *has_optim) {
    CT_TRY(read_trainer(c));
    *has_optim = records_optim(c);
    CT_TRY(verify_side_files(c));
    CT_TRY(open_verified(c, F_MODEL, &c->model));
    CT_TRY(match_tensors(c->model, v, model_suffix, 1));
    if (!*has_optim) return CT_OK;
    CT_TRY(open_verified(c, F_OPTIM, &c->optim));
    return match_tensors(c->optim, v, optim_suffixes, 2);
}

ct_status ct_checkpoint_check(const char *dir, const ct_ckpt_view *v, int *has_optim) {
    *has_optim = 0;
    CT_TRY(check_view(dir, v, 0));
    if (!is_dir(dir)) return ct_fail(CT_EIO, "checkpoint %s does not exist", dir);
    ckpt_open c = {.doc = NULL};
    if ((size_t)snprintf(c.dir, sizeof c.dir, "%s", dir) >= sizeof c.dir)
        return ct_fail(CT_EINVAL, "checkpoint path %s is too long", dir);
    ct_status s = check_all(&c, v, has_optim);
    ckpt_close(&c);
    return s;
}

ct_status ct_checkpoint_read_state(const char *dir, cJSON **trainer_state) {
    *trainer_state = NULL;
    ckpt_open c = {.doc = NULL};
    ct_status s = resolve(dir, c.dir);
    if (s == CT_OK) s = read_trainer(&c);
    if (s == CT_OK &&
        !(*trainer_state = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c.doc, "trainer"), 1)))
        s = ct_fail(CT_ENOMEM, "%s: out of memory copying the trainer state", c.dir);
    ckpt_close(&c);
    return s == CT_OK ? s : ct_fail_context(s, "reading checkpoint %s", dir);
}

/* ---- the latest pointer ----------------------------------------------------------------- */

static int valid_name(const char *s, size_t n) {
    return n > 0 && strlen(s) == n && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

ct_status ct_checkpoint_latest(const char *parent, char *out, size_t cap) {
    char path[CKPT_PATH], *text, real[CKPT_PATH];
    size_t n;
    CT_TRY(join(path, parent, F_LATEST));
    CT_TRY(ct_read_file(path, &text, &n));
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) n--;
    text[n] = 0;
    ct_status s = CT_OK;
    if (!valid_name(text, n)) s = ct_fail(CT_ECORRUPT, "%s does not hold a checkpoint directory name", path);
    else if ((size_t)snprintf(out, cap, "%s/%s", parent, text) >= cap)
        s = ct_fail(CT_EINVAL, "%s: the path %s/%s does not fit in %zu bytes", path, parent, text, cap);
    else if ((s = resolve(out, real)) != CT_OK)
        s = ct_fail_context(s, "%s names %s", path, text);
    ct_free(text);
    return s;
}

/* ---- a run's checkpoint directory: resuming, removing, clearing what killed saves left --- */

/* The process that made a ".tmp-<pid>", ".old-<pid>" or ".del-<pid>" sibling still runs. */
static int pid_alive(const char *digits) {
    long pid = strtol(digits, NULL, 10);
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Leftover "<name><tag><pid>" of a save, swap or removal killed part way, where the process
 * is gone: removed, except a complete one whose checkpoint <name> is missing (resolve()
 * still reads it). *removed counts what was. */
static void clear_leftover(const char *root, const char *entry, int *removed) {
    static const char *const tags[] = {".tmp-", ".old-", ".del-"};
    for (int t = 0; t < 3; t++) {
        const char *at = strstr(entry, tags[t]), *pid = at ? at + strlen(tags[t]) : NULL;
        if (!at || at == entry || !all_digits(pid) || pid_alive(pid)) continue;
        char path[CKPT_PATH], main_dir[CKPT_PATH];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", root, entry) >= sizeof path ||
            (size_t)snprintf(main_dir, sizeof main_dir, "%s/%.*s", root, (int)(at - entry), entry) >=
                sizeof main_dir)
            return;
        if (!is_dir(path)) return;
        int removal = !strcmp(tags[t], ".del-"); /* a save's or swap's copy may be all that is left */
        if (!removal && is_complete(path, NULL) && !is_complete(main_dir, NULL)) return;
        if (remove_owned(path)) (*removed)++;
        return;
    }
}

/* A checkpoint name of the run ("step_00000100"): no dot, so no leftover. */
static int plain_name(const char *s) { return s[0] != '.' && !strchr(s, '.'); }

ct_status ct_checkpoint_find_resume(const char *root, int speak, char *out, size_t cap, int *found) {
    *found = 0;
    DIR *d = opendir(root);
    if (!d) return errno == ENOENT ? CT_OK : ct_fail(CT_EIO, "cannot open %s: %s", root, strerror(errno));
    int removed = 0;
    char newest[CKPT_NAME] = "", path[CKPT_PATH];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!plain_name(e->d_name)) {
            if (speak) clear_leftover(root, e->d_name, &removed);
            continue;
        }
        if (strlen(e->d_name) >= sizeof newest || join(path, root, e->d_name) != CT_OK) continue;
        if (is_dir(path) && is_complete(path, NULL) && strcmp(e->d_name, newest) > 0) strcpy(newest, e->d_name);
    }
    closedir(d);
    if (removed) ct_log("checkpoints: removed %d directories left by interrupted saves in %s", removed, root);
    CT_TRY(join(path, root, F_LATEST));
    if (access(path, F_OK) == 0) {
        CT_TRY(ct_checkpoint_latest(root, out, cap));
        *found = 1;
        const char *named = strrchr(out, '/') + 1;
        if (strcmp(newest, named) <= 0) return CT_OK;
        /* a later save finished its directory but died before moving the pointer */
        if (speak)
            ct_log("checkpoints: %s is newer than the %s that 'latest' names (its save did not finish): "
                   "resuming from it",
                   newest, named);
        return ct_path_format(out, cap, "%s/%s", root, newest);
    }
    if (!newest[0]) {
        if (speak)
            ct_log("checkpoints: %s holds no complete checkpoint (a first save did not finish): starting fresh",
                   root);
        return CT_OK;
    }
    CT_TRY(ct_path_format(out, cap, "%s/%s", root, newest));
    if (speak)
        ct_log(
            "checkpoints: %s has no 'latest' pointer (its save did not finish): resuming from the newest complete "
            "checkpoint, %s",
            root, newest);
    *found = 1;
    return CT_OK;
}

void ct_checkpoint_remove(const char *dir) {
    ckpt_paths p;
    if (paths_init(&p, dir) != CT_OK || !is_dir(p.dir)) return;
    char gone[CKPT_PATH];
    /* out of the way first: a kill part way leaves a ".del-" leftover, never a checkpoint
     * that looks complete without its weights */
    if ((size_t)snprintf(gone, sizeof gone, "%s.del-%ld", p.dir, (long)getpid()) >= sizeof gone) return;
    if (rename(p.dir, gone) != 0) return;
    if (fsync_dir(p.parent) != CT_OK) return;
    if (!remove_owned(gone)) ct_log("checkpoint: kept %s: it holds files cetus did not write", gone);
}

ct_status ct_checkpoint_resolve(const char *path, char *out, size_t cap) {
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/trainer.json", path);
    if (access(probe, F_OK) == 0) return ct_path_format(out, cap, "%s", path);
    snprintf(probe, sizeof probe, "%s/ckpt", path);
    ct_status s = access(probe, F_OK) == 0 ? ct_checkpoint_latest(probe, out, cap) : CT_EIO;
    if (s == CT_OK || s == CT_ENOMEM) return s; /* out of memory is not "not a checkpoint" */
    s = ct_checkpoint_latest(path, out, cap);
    if (s == CT_OK || s == CT_ENOMEM) return s;
    return ct_fail(CT_EIO,
                   "%s is not a checkpoint, a run directory or a checkpoint directory with a 'latest' "
                   "pointer (train first: cetus train)",
                   path);
}
