/* images.c: item sets of 28x28 grayscale images and their loaders: MNIST IDX files and the
 * Fashion-MNIST class JSON files (format and splits in images.h). */
#include "data/images.h"
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_IMAGES_HEADER 16u
#define IDX_LABELS_HEADER 8u

struct ct_items {
    ct_item_kind kind;
    size_t n, cap;
    uint8_t *pixels;  /* n * CT_ITEM_PIXELS */
    uint8_t *labels;  /* n */
    uint32_t *origin; /* n */
};

static const char *const digit_names[CT_ITEM_CLASSES] = {"a 0", "a 1", "a 2", "a 3",  "a 4",
                                                         "a 5", "a 6", "a 7", "an 8", "a 9"};
static const char *const clothing_names[CT_ITEM_CLASSES] = {"a t-shirt",    "a trouser", "a pullover",
                                                            "a dress",      "a coat",    "a sandal",
                                                            "a shirt",      "a sneaker", "a bag",
                                                            "an ankle boot"};

const char *ct_item_class_name(ct_item_kind kind, int label) {
    if (label < 0 || label >= CT_ITEM_CLASSES) return NULL;
    if (kind == CT_ITEM_DIGIT) return digit_names[label];
    if (kind == CT_ITEM_CLOTHING) return clothing_names[label];
    return NULL;
}

/* ---- the set --------------------------------------------------------------------------- */

static ct_items *items_new(ct_item_kind kind) {
    ct_items *s = ct_alloc(sizeof *s, "item set");
    if (s) memset(s, 0, sizeof *s);
    if (s) s->kind = kind;
    return s;
}

void ct_items_free(ct_items *s) {
    if (!s) return;
    ct_free(s->pixels);
    ct_free(s->labels);
    ct_free(s->origin);
    ct_free(s);
}

/* Makes room for cap items (keeping the first n). */
static ct_status items_reserve(ct_items *s, size_t cap) {
    if (cap <= s->cap) return CT_OK;
    uint8_t *px = ct_alloc(cap * CT_ITEM_PIXELS, "item pixels");
    uint8_t *lb = ct_alloc(cap, "item labels");
    uint32_t *og = ct_alloc(cap * sizeof *og, "item origins");
    if (!px || !lb || !og) {
        ct_free(px);
        ct_free(lb);
        ct_free(og);
        return CT_ENOMEM;
    }
    if (s->n) {
        memcpy(px, s->pixels, s->n * CT_ITEM_PIXELS);
        memcpy(lb, s->labels, s->n);
        memcpy(og, s->origin, s->n * sizeof *og);
    }
    ct_free(s->pixels);
    ct_free(s->labels);
    ct_free(s->origin);
    s->pixels = px;
    s->labels = lb;
    s->origin = og;
    s->cap = cap;
    return CT_OK;
}

static ct_status items_push(ct_items *s, const uint8_t *pixels, int label, uint32_t origin) {
    if (s->n == s->cap) CT_TRY(items_reserve(s, s->cap ? 2 * s->cap : 1024));
    memcpy(s->pixels + s->n * CT_ITEM_PIXELS, pixels, CT_ITEM_PIXELS);
    s->labels[s->n] = (uint8_t)label;
    s->origin[s->n] = origin;
    s->n++;
    return CT_OK;
}

size_t ct_items_count(const ct_items *s) { return s ? s->n : 0; }
ct_item_kind ct_items_kind(const ct_items *s) { return s->kind; }
const uint8_t *ct_items_pixels(const ct_items *s, size_t i) {
    CT_ASSERT(i < s->n);
    return s->pixels + i * CT_ITEM_PIXELS;
}
int ct_items_label(const ct_items *s, size_t i) {
    CT_ASSERT(i < s->n);
    return s->labels[i];
}
uint32_t ct_items_origin(const ct_items *s, size_t i) {
    CT_ASSERT(i < s->n);
    return s->origin[i];
}

/* ---- MNIST IDX ------------------------------------------------------------------------- */

static uint32_t get_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Checks an IDX image file's header and size; *n gets its image count. */
static ct_status check_idx_images(const ct_mapped *m, const char *path, uint32_t *n) {
    if (m->size < IDX_IMAGES_HEADER)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated: %zu bytes, less than the %u-byte IDX image "
                       "header",
                       path, m->size, IDX_IMAGES_HEADER);
    uint32_t magic = get_be32(m->data), rows = get_be32(m->data + 8), cols = get_be32(m->data + 12);
    if (magic != IDX_IMAGES_MAGIC)
        return ct_fail(CT_ECORRUPT, "%s is not an IDX image file: magic 0x%08x (expected 0x%08x)", path, magic,
                       IDX_IMAGES_MAGIC);
    if (rows != CT_ITEM_SIDE || cols != CT_ITEM_SIDE)
        return ct_fail(CT_ECORRUPT, "%s holds %ux%u images (expected %dx%d)", path, rows, cols, CT_ITEM_SIDE,
                       CT_ITEM_SIDE);
    *n = get_be32(m->data + 4);
    uint64_t want = IDX_IMAGES_HEADER + (uint64_t)*n * CT_ITEM_PIXELS;
    if (m->size != want)
        return ct_fail(CT_ECORRUPT, "%s is %s: %zu bytes, expected %u + %u images x %d = %llu", path,
                       m->size < want ? "truncated" : "padded", m->size, IDX_IMAGES_HEADER, *n, CT_ITEM_PIXELS,
                       (unsigned long long)want);
    return CT_OK;
}

/* Checks an IDX label file against the image count n (header, size, labels 0..9). */
static ct_status check_idx_labels(const ct_mapped *m, const char *path, uint32_t n, const char *images) {
    if (m->size < IDX_LABELS_HEADER)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated: %zu bytes, less than the %u-byte IDX label "
                       "header",
                       path, m->size, IDX_LABELS_HEADER);
    uint32_t magic = get_be32(m->data), count = get_be32(m->data + 4);
    if (magic != IDX_LABELS_MAGIC)
        return ct_fail(CT_ECORRUPT, "%s is not an IDX label file: magic 0x%08x (expected 0x%08x)", path, magic,
                       IDX_LABELS_MAGIC);
    if (count != n)
        return ct_fail(CT_ECORRUPT, "%s has %u labels but %s has %u images", path, count, images, n);
    uint64_t want = IDX_LABELS_HEADER + (uint64_t)count;
    if (m->size != want)
        return ct_fail(CT_ECORRUPT, "%s is %s: %zu bytes, expected %u + %u labels = %llu", path,
                       m->size < want ? "truncated" : "padded", m->size, IDX_LABELS_HEADER, count,
                       (unsigned long long)want);
    for (uint32_t i = 0; i < count; i++)
        if (m->data[IDX_LABELS_HEADER + i] >= CT_ITEM_CLASSES)
            return ct_fail(CT_ECORRUPT, "%s: label %u of image %u is not a digit 0..9", path,
                           m->data[IDX_LABELS_HEADER + i], i);
    return CT_OK;
}

static ct_status fill_from_idx(ct_items *s, const ct_mapped *img, const ct_mapped *lab, uint32_t n) {
    CT_TRY(items_reserve(s, n ? n : 1));
    for (uint32_t i = 0; i < n; i++)
        CT_TRY(items_push(s, img->data + IDX_IMAGES_HEADER + (size_t)i * CT_ITEM_PIXELS,
                          lab->data[IDX_LABELS_HEADER + i], i));
    return CT_OK;
}

ct_status ct_items_load_idx(ct_items **out, const char *images_path, const char *labels_path) {
    *out = NULL;
    ct_mapped img = {0}, lab = {0};
    uint32_t n = 0;
    ct_status s = ct_map_file(&img, images_path);
    if (s == CT_OK) s = check_idx_images(&img, images_path, &n);
    if (s == CT_OK) s = ct_map_file(&lab, labels_path);
    if (s == CT_OK) s = check_idx_labels(&lab, labels_path, n, images_path);
    ct_items *set = NULL;
    if (s == CT_OK) s = (set = items_new(CT_ITEM_DIGIT)) ? CT_OK : CT_ENOMEM;
    if (s == CT_OK) s = fill_from_idx(set, &img, &lab, n);
    ct_unmap_file(&img);
    ct_unmap_file(&lab);
    if (s != CT_OK) {
        ct_items_free(set);
        return s;
    }
    *out = set;
    return CT_OK;
}

/* dir itself when dir/probe is readable, else dir/sub (the package layout, so that a missing
 * package is reported at the path where its files belong), into out. */
static ct_status package_subdir(char *out, size_t cap, const char *dir, const char *sub, const char *probe) {
    char p[4096];
    CT_TRY(ct_path_format(p, sizeof p, "%s/%s", dir, probe));
    if (access(p, R_OK) == 0) return ct_path_format(out, cap, "%s", dir);
    return ct_path_format(out, cap, "%s/%s", dir, sub);
}

static ct_status load_idx_pair(ct_items **out, const char *dir, const char *prefix) {
    char img[4096], lab[4096];
    CT_TRY(ct_path_format(img, sizeof img, "%s/%s-images-idx3-ubyte", dir, prefix));
    CT_TRY(ct_path_format(lab, sizeof lab, "%s/%s-labels-idx1-ubyte", dir, prefix));
    return ct_items_load_idx(out, img, lab);
}

ct_status ct_items_load_mnist(ct_items **train, ct_items **val, const char *dir) {
    *train = *val = NULL;
    char d[4096];
    CT_TRY(package_subdir(d, sizeof d, dir, "data", "train-images-idx3-ubyte"));
    CT_TRY(load_idx_pair(train, d, "train"));
    ct_status s = load_idx_pair(val, d, "t10k");
    if (s != CT_OK) {
        ct_items_free(*train);
        *train = NULL;
    }
    return s;
}

/* ---- Fashion-MNIST JSON ---------------------------------------------------------------- */

/* Reads one entry (784 integers 0..255) into px; 0 when it is not one, with *why set. */
static int parse_entry(const cJSON *e, uint8_t *px, const char **why) {
    if (!cJSON_IsArray(e)) {
        *why = "is not an array";
        return 0;
    }
    int i = 0;
    for (const cJSON *v = e->child; v; v = v->next, i++) {
        if (i >= CT_ITEM_PIXELS) {
            *why = "has more than 784 values";
            return 0;
        }
        double d = v->valuedouble;
        if (!cJSON_IsNumber(v) || !(d >= 0 && d <= 255) || d != (double)(int)d) {
            *why = "has a value that is not an integer in 0..255";
            return 0;
        }
        px[i] = (uint8_t)d;
    }
    if (i != CT_ITEM_PIXELS) {
        *why = "has fewer than 784 values";
        return 0;
    }
    return 1;
}

/* Parses one class file's "data" entries into all (origins = entry indices). */
static ct_status parse_class(ct_items *all, const cJSON *root, const char *path, int label, size_t *skipped) {
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsArray(data)) return ct_fail(CT_ECORRUPT, "%s has no \"data\" array of images", path);
    uint8_t px[CT_ITEM_PIXELS];
    uint32_t idx = 0;
    for (const cJSON *e = data->child; e; e = e->next, idx++) {
        const char *why = NULL;
        if (cJSON_IsArray(e) && !e->child) {
            (*skipped)++;
            continue;
        }
        if (!parse_entry(e, px, &why))
            return ct_fail(CT_ECORRUPT, "%s: entry %u of \"data\" %s (expected 784 integers in 0..255)", path,
                           idx, why);
        CT_TRY(items_push(all, px, label, idx));
    }
    return CT_OK;
}

/* The fast path: a scanner for exactly the package's layout, {"data": [[v, ...], ...]} with
 * plain integers (cJSON takes 10x longer on these 150 MB of numbers). Whatever it does not
 * recognise goes to cJSON, which accepts any JSON of the same meaning or names the fault. */
typedef struct scanner {
    const char *p, *end;
} scanner;

static void skip_space(scanner *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

static int eat(scanner *s, char c) {
    skip_space(s);
    if (s->p == s->end || *s->p != c) return 0;
    s->p++;
    return 1;
}

/* An integer 0..255 as JSON writes it (no sign, fraction, exponent or leading zero). */
static int scan_byte(scanner *s, uint8_t *out) {
    skip_space(s);
    const char *start = s->p;
    int v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9' && s->p - start < 4) v = 10 * v + (*s->p++ - '0');
    size_t digits = (size_t)(s->p - start);
    if (!digits || digits > 3 || v > 255 || (digits > 1 && *start == '0')) return 0;
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E')) return 0;
    *out = (uint8_t)v;
    return 1;
}

/* One entry: 1 for an image into px, -1 for an empty entry, 0 for anything else. */
static int scan_entry(scanner *s, uint8_t *px) {
    if (!eat(s, '[')) return 0;
    if (eat(s, ']')) return -1;
    for (int i = 0; i < CT_ITEM_PIXELS; i++)
        if ((i && !eat(s, ',')) || !scan_byte(s, px + i)) return 0;
    return eat(s, ']') ? 1 : 0;
}

/* Scans text into all; returns 0 (all unchanged) when it is not the plain layout. */
static int scan_class(const char *text, size_t size, ct_items *all, int label, size_t *skipped, ct_status *st) {
    scanner s = {text, text + size};
    static const char key[] = "\"data\"";
    if (!eat(&s, '{') || !eat(&s, '"') || (size_t)(s.end - s.p) < 5 || memcmp(s.p, key + 1, 5) != 0) return 0;
    s.p += 5;
    if (!eat(&s, ':') || !eat(&s, '[')) return 0;
    size_t n0 = all->n, skip = 0;
    uint8_t px[CT_ITEM_PIXELS];
    int more = !eat(&s, ']'), ok = 1;
    for (uint32_t idx = 0; more && ok; idx++) {
        int r = scan_entry(&s, px);
        if (r < 0) skip++;
        if (r > 0 && (*st = items_push(all, px, label, idx)) != CT_OK) return 1;
        ok = r != 0;
        more = ok && eat(&s, ',');
        if (ok && !more) ok = eat(&s, ']');
    }
    ok = ok && eat(&s, '}');
    skip_space(&s);
    if (ok && s.p == s.end) {
        *skipped += skip;
        *st = CT_OK;
        return 1;
    }
    all->n = n0;
    return 0;
}

static ct_status load_class(ct_items *all, const char *path, int label, size_t *skipped) {
    char *text;
    size_t size;
    CT_TRY(ct_read_file(path, &text, &size));
    ct_status s;
    if (scan_class(text, size, all, label, skipped, &s)) {
        ct_free(text);
        return s;
    }
    cJSON *root = cJSON_ParseWithLength(text, size);
    ct_free(text);
    if (!root) return ct_fail(CT_ECORRUPT, "%s is not valid JSON", path);
    s = parse_class(all, root, path, label, skipped);
    cJSON_Delete(root);
    return s;
}

/* Moves items [from, to) of all into dst. */
static ct_status move_range(ct_items *dst, const ct_items *all, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        CT_TRY(items_push(dst, all->pixels + i * CT_ITEM_PIXELS, all->labels[i], all->origin[i]));
    return CT_OK;
}

/* Loads class file `label` and splits it into train and val. */
static ct_status load_split_class(ct_items *train, ct_items *val, const char *dir, int label,
                                  size_t val_per_class, size_t *skipped) {
    char path[4096];
    CT_TRY(ct_path_format(path, sizeof path, "%s/%d.json", dir, label));
    ct_items *all = items_new(CT_ITEM_CLOTHING);
    if (!all) return CT_ENOMEM;
    ct_status s = load_class(all, path, label, skipped);
    if (s == CT_OK && all->n <= val_per_class)
        s = ct_fail(CT_ECORRUPT,
                    "%s holds %zu images: too few to keep the last %zu for validation "
                    "and train on the rest",
                    path, all->n, val_per_class);
    size_t cut = all->n - val_per_class;
    if (s == CT_OK) s = move_range(train, all, 0, cut);
    if (s == CT_OK) s = move_range(val, all, cut, all->n);
    ct_items_free(all);
    return s;
}

ct_status ct_items_load_fashion(ct_items **train, ct_items **val, const char *dir, size_t val_per_class,
                                size_t *skipped) {
    *train = *val = NULL;
    size_t skip = 0;
    if (val_per_class == 0) return ct_fail(CT_EINVAL, "loading %s: val_per_class must be >= 1", dir);
    char d[4096];
    CT_TRY(package_subdir(d, sizeof d, dir, "src/clothes", "0.json"));
    ct_items *tr = items_new(CT_ITEM_CLOTHING), *va = items_new(CT_ITEM_CLOTHING);
    ct_status s = tr && va ? CT_OK : CT_ENOMEM;
    for (int c = 0; c < CT_ITEM_CLASSES && s == CT_OK; c++)
        s = load_split_class(tr, va, d, c, val_per_class, &skip);
    if (s != CT_OK) {
        ct_items_free(tr);
        ct_items_free(va);
        return s;
    }
    if (skipped) *skipped = skip;
    *train = tr;
    *val = va;
    return CT_OK;
}
