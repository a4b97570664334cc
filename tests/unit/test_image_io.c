/* test_image_io.c: image files (data/image_io.h): PNG and PGM (P5, P2) round trips, colour,
 * alpha, palette, 16-bit and interlaced PNGs written here through libpng, PGM maxvals,
 * resizing (constant, box-filter averages, bilinear points), and every refusal with the
 * file named in its message. Fixtures are generated at run time in a temp directory. */
#include <criterion/criterion.h>
#include "data/image_io.h"
#include <png.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------------------- */

static char tmpdir[64];
static char paths[8][512];
static int n_paths;

static void setup(void) {
    strcpy(tmpdir, "/tmp/cetus_image_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    n_paths = 0;
}

static void teardown(void) {
    for (int i = 0; i < n_paths; i++) unlink(paths[i]);
    rmdir(tmpdir);
}

/* A path in the temp directory, removed at teardown. */
static const char *tmp_path(const char *name) {
    cr_assert_lt(n_paths, 8);
    snprintf(paths[n_paths], sizeof paths[0], "%s/%s", tmpdir, name);
    return paths[n_paths++];
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

static uint8_t *read_bytes(const char *path, size_t *n) {
    char *buf;
    cr_assert_eq(ct_read_file(path, &buf, n), CT_OK, "%s", ct_last_error());
    return (uint8_t *)buf;
}

/* w x h image with a pattern that uses the whole 0..255 range and no two equal rows. */
static ct_image pattern(int w, int h) {
    ct_image img;
    cr_assert_eq(ct_image_create(&img, w, h), CT_OK);
    for (int i = 0; i < w * h; i++) img.pixels[i] = (uint8_t)((i * 37 + i / w * 11) & 255);
    return img;
}

static void assert_same(const ct_image *a, const ct_image *b) {
    cr_assert_eq(a->width, b->width);
    cr_assert_eq(a->height, b->height);
    cr_assert_eq(memcmp(a->pixels, b->pixels, (size_t)a->width * a->height), 0);
}

/* Writes a PNG through libpng directly: rows of the given depth and colour type packed
 * one after another (rowbytes each), with an optional palette and interlacing. */
static void write_png_raw(const char *path, int w, int h, int depth, int type, const uint8_t *data,
                          size_t rowbytes, const png_color *palette, int n_palette, int interlace) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    if (setjmp(png_jmpbuf(png))) cr_assert_fail("libpng failed writing the fixture %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    png_bytep rows[64];
    cr_assert_leq(h, 64);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(data + (size_t)y * rowbytes);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static ct_image load_ok(const char *path) {
    ct_image img;
    cr_assert_eq(ct_image_load(path, &img), CT_OK, "%s", ct_last_error());
    return img;
}

/* Loading path fails with code and a message naming the file and containing each of the
 * given phrases; the output is left empty. */
static void assert_refused(const char *path, ct_status code, const char *a, const char *b) {
    ct_image img = {.width = 7, .height = 7, .pixels = (uint8_t *)&img};
    ct_status s = ct_image_load(path, &img);
    const char *msg = ct_last_error();
    cr_assert_eq(s, code, "%s: %s (%s)", path, ct_status_name(s), msg);
    cr_assert_not_null(strstr(msg, path), "message does not name the file: %s", msg);
    cr_assert_not_null(strstr(msg, a), "message lacks '%s': %s", a, msg);
    if (b) cr_assert_not_null(strstr(msg, b), "message lacks '%s': %s", b, msg);
    cr_assert(img.pixels == NULL && img.width == 0 && img.height == 0);
}

TestSuite(image_io, .init = setup, .fini = teardown);

/* ---- round trips ----------------------------------------------------------------------- */

Test(image_io, png_round_trip_exact) {
    const char *path = tmp_path("a.png");
    ct_image img = pattern(37, 23), back;
    cr_assert_eq(ct_image_save_png(path, &img), CT_OK, "%s", ct_last_error());
    back = load_ok(path);
    assert_same(&img, &back);
    size_t n;
    uint8_t *bytes = read_bytes(path, &n);
    cr_assert_eq(bytes[24], 8, "bit depth");
    cr_assert_eq(bytes[25], PNG_COLOR_TYPE_GRAY, "colour type");
    ct_free(bytes);
    ct_image_free(&img);
    ct_image_free(&back);
}

Test(image_io, pgm_round_trips_exact) {
    ct_image img = pattern(41, 9);
    for (int ascii = 0; ascii <= 1; ascii++) {
        const char *path = tmp_path(ascii ? "a2.pgm" : "a5.pgm");
        cr_assert_eq(ct_image_save_pgm(path, &img, ascii), CT_OK, "%s", ct_last_error());
        size_t n;
        uint8_t *bytes = read_bytes(path, &n);
        cr_assert_eq(memcmp(bytes, ascii ? "P2\n41 9\n255\n" : "P5\n41 9\n255\n", 12), 0);
        ct_free(bytes);
        ct_image back = load_ok(path);
        assert_same(&img, &back);
        ct_image_free(&back);
    }
    ct_image_free(&img);
}

Test(image_io, save_is_atomic_and_reports_unwritable) {
    ct_image img = pattern(4, 4);
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", tmpdir);
    cr_assert_eq(ct_image_save_png(path, &img), CT_EIO);
    cr_assert_not_null(strstr(ct_last_error(), "no/such/dir/x.png"), "%s", ct_last_error());
    const char *ok = tmp_path("b.pgm");
    cr_assert_eq(ct_image_save_pgm(ok, &img, 0), CT_OK);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", ok);
    cr_assert_neq(access(tmp, F_OK), 0, "temp file left behind");
    ct_image empty = {0};
    cr_assert_eq(ct_image_save_png(ok, &empty), CT_EINVAL);
    ct_image_free(&img);
}

/* ---- PNG colour types ------------------------------------------------------------------ */

Test(image_io, rgb_png_becomes_bt601_gray) {
    const char *path = tmp_path("rgb.png");
    const uint8_t rgb[2][12] = {
        {255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 150, 200},
        {0, 0, 0, 255, 255, 255, 10, 10, 10, 1, 2, 3},
    };
    write_png_raw(path, 4, 2, 8, PNG_COLOR_TYPE_RGB, &rgb[0][0], 12, NULL, 0, 0);
    ct_image img = load_ok(path);
    cr_assert_eq(img.width, 4);
    cr_assert_eq(img.height, 2);
    /* Pillow's convert("L"): red 76, green 150, blue 29, (100,150,200) -> 141 */
    const uint8_t want[8] = {76, 150, 29, 141, 0, 255, 10, 2};
    for (int i = 0; i < 8; i++) cr_assert_eq(img.pixels[i], want[i], "pixel %d: %d", i, img.pixels[i]);
    ct_image_free(&img);
}

Test(image_io, rgba_png_composites_over_black) {
    const char *path = tmp_path("rgba.png");
    const uint8_t rgba[12] = {200, 200, 200, 128, 255, 255, 255, 0, 50, 50, 50, 255};
    write_png_raw(path, 3, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, rgba, 12, NULL, 0, 0);
    ct_image img = load_ok(path);
    cr_assert_eq(img.pixels[0], 100); /* 200 * 128 / 255 = 100.4 */
    cr_assert_eq(img.pixels[1], 0);
    cr_assert_eq(img.pixels[2], 50);
    ct_image_free(&img);
}

Test(image_io, palette_and_16_bit_png) {
    const char *pal = tmp_path("pal.png");
    const png_color colors[3] = {{0, 0, 0}, {255, 255, 255}, {255, 0, 0}};
    const uint8_t packed[1] = {0x18}; /* 2-bit indices 0, 1, 2, 0 */
    write_png_raw(pal, 4, 1, 2, PNG_COLOR_TYPE_PALETTE, packed, 1, colors, 3, 0);
    ct_image img = load_ok(pal);
    const uint8_t want[4] = {0, 255, 76, 0};
    for (int i = 0; i < 4; i++) cr_assert_eq(img.pixels[i], want[i], "pixel %d: %d", i, img.pixels[i]);
    ct_image_free(&img);

    const char *g16 = tmp_path("g16.png");
    const uint8_t be[6] = {0xff, 0xff, 0x00, 0x00, 0x64, 0x64}; /* 65535, 0, 25700 = 257 * 100 */
    write_png_raw(g16, 3, 1, 16, PNG_COLOR_TYPE_GRAY, be, 6, NULL, 0, 0);
    img = load_ok(g16);
    cr_assert_eq(img.pixels[0], 255);
    cr_assert_eq(img.pixels[1], 0);
    cr_assert_eq(img.pixels[2], 100);
    ct_image_free(&img);
}

Test(image_io, interlaced_png) {
    const char *path = tmp_path("adam7.png");
    ct_image want = pattern(13, 11);
    write_png_raw(path, 13, 11, 8, PNG_COLOR_TYPE_GRAY, want.pixels, 13, NULL, 0, 1);
    ct_image img = load_ok(path);
    assert_same(&want, &img);
    ct_image_free(&img);
    ct_image_free(&want);
}

/* ---- PGM variants ---------------------------------------------------------------------- */

Test(image_io, pgm_maxvals_and_comments) {
    const char *p5 = tmp_path("16.pgm");
    const uint8_t bin[] = "P5\n# sixteen bits\n3 1\n65535\n\xff\xff\x00\x00\x64\x64";
    write_bytes(p5, bin, sizeof bin - 1);
    ct_image img = load_ok(p5);
    cr_assert_eq(img.pixels[0], 255);
    cr_assert_eq(img.pixels[1], 0);
    cr_assert_eq(img.pixels[2], 100);
    ct_image_free(&img);

    const char *p2 = tmp_path("1000.pgm");
    write_text(p2, "P2 # comment\n4 1 1000\n1000 500\n 0  3\n");
    img = load_ok(p2);
    cr_assert_eq(img.pixels[0], 255);
    cr_assert_eq(img.pixels[1], 128); /* 127.5 rounds up */
    cr_assert_eq(img.pixels[2], 0);
    cr_assert_eq(img.pixels[3], 1);
    ct_image_free(&img);
}

/* ---- resize ---------------------------------------------------------------------------- */

static ct_image resized(const ct_image *in, int w, int h) {
    ct_image out;
    cr_assert_eq(ct_image_resize(in, w, h, &out), CT_OK, "%s", ct_last_error());
    cr_assert_eq(out.width, w);
    cr_assert_eq(out.height, h);
    return out;
}

Test(image_io, resize_keeps_a_constant_image_constant) {
    ct_image img;
    cr_assert_eq(ct_image_create(&img, 7, 5), CT_OK);
    memset(img.pixels, 77, 35);
    const int sizes[][2] = {{3, 11}, {20, 2}, {1, 1}, {7, 5}, {6, 4}, {64, 48}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        ct_image out = resized(&img, sizes[k][0], sizes[k][1]);
        for (int i = 0; i < out.width * out.height; i++)
            cr_assert_eq(out.pixels[i], 77, "%dx%d pixel %d: %d", out.width, out.height, i, out.pixels[i]);
        ct_image_free(&out);
    }
    ct_image_free(&img);
}

Test(image_io, resize_down_averages_areas) {
    ct_image img;
    cr_assert_eq(ct_image_create(&img, 8, 6), CT_OK);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 8; x++) img.pixels[y * 8 + x] = (x + y) % 2 ? 200 : 0;
    ct_image out = resized(&img, 4, 3);
    for (int i = 0; i < 12; i++) cr_assert_eq(out.pixels[i], 100, "pixel %d: %d", i, out.pixels[i]);
    ct_image_free(&out);
    ct_image_free(&img);

    const uint8_t px[8] = {10, 20, 30, 40, 50, 60, 70, 80}; /* 4x2 -> 2x1 */
    ct_image small = {4, 2, (uint8_t *)px};
    out = resized(&small, 2, 1);
    cr_assert_eq(out.pixels[0], 35);
    cr_assert_eq(out.pixels[1], 55);
    ct_image_free(&out);

    const uint8_t row[3] = {0, 90, 180}; /* 3 -> 2: thirds split, [0 + 45] / 1.5 and [45 + 180] / 1.5 */
    ct_image third = {3, 1, (uint8_t *)row};
    out = resized(&third, 2, 1);
    cr_assert_eq(out.pixels[0], 30);
    cr_assert_eq(out.pixels[1], 150);
    ct_image_free(&out);
}

Test(image_io, resize_up_interpolates_bilinearly) {
    const uint8_t px[4] = {0, 100, 200, 40};
    ct_image img = {2, 2, (uint8_t *)px};
    ct_image out = resized(&img, 4, 4);
    /* sample positions along each axis: 0 (clamped), 0.25, 0.75, 1 (clamped) */
    const uint8_t want[16] = {0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40};
    for (int i = 0; i < 16; i++) cr_assert_eq(out.pixels[i], want[i], "pixel %d: %d", i, out.pixels[i]);
    ct_image_free(&out);

    ct_image bad;
    cr_assert_eq(ct_image_resize(&img, 0, 4, &bad), CT_EINVAL);
    cr_assert_null(bad.pixels);
    cr_assert_eq(ct_image_resize(&img, 4, CT_IMAGE_MAX_SIDE + 1, &bad), CT_EINVAL);
}

Test(image_io, to_float_is_value_over_255) {
    const uint8_t px[3] = {0, 51, 255};
    ct_image img = {3, 1, (uint8_t *)px};
    float f[3];
    ct_image_to_float(&img, f);
    cr_assert_float_eq(f[0], 0.0f, 1e-7);
    cr_assert_float_eq(f[1], 0.2f, 1e-7);
    cr_assert_float_eq(f[2], 1.0f, 1e-7);
}

/* ---- refusals -------------------------------------------------------------------------- */

Test(image_io, refuses_missing_and_empty_files) {
    const char *missing = tmp_path("missing.png");
    assert_refused(missing, CT_EIO, "No such file or directory", NULL);
    assert_refused(tmpdir, CT_EIO, "not a regular file", NULL);
    const char *empty = tmp_path("empty.png");
    write_bytes(empty, "", 0);
    assert_refused(empty, CT_ECORRUPT, "is empty", NULL);
}

Test(image_io, refuses_truncated_png) {
    const char *path = tmp_path("cut.png");
    ct_image img = pattern(64, 64);
    ct_rng rng;
    ct_rng_seed(&rng, 7);
    for (int i = 0; i < 64 * 64; i++) img.pixels[i] = (uint8_t)ct_rng_u64(&rng); /* incompressible */
    cr_assert_eq(ct_image_save_png(path, &img), CT_OK, "%s", ct_last_error());
    size_t n;
    uint8_t *bytes = read_bytes(path, &n);
    cr_assert_gt(n, 1000);
    write_bytes(path, bytes, n / 2);
    assert_refused(path, CT_ECORRUPT, "truncated", NULL);
    write_bytes(path, bytes, 20); /* inside the header */
    assert_refused(path, CT_ECORRUPT, "truncated", NULL);
    write_bytes(path, bytes, n - 4); /* the IEND chunk's CRC cut off */
    assert_refused(path, CT_ECORRUPT, "truncated", NULL);
    ct_free(bytes);
    ct_image_free(&img);
}

Test(image_io, refuses_corrupt_and_oversized_png) {
    const char *path = tmp_path("bad.png");
    ct_image img = pattern(16, 16);
    cr_assert_eq(ct_image_save_png(path, &img), CT_OK);
    size_t n;
    uint8_t *bytes = read_bytes(path, &n);
    bytes[n / 2] ^= 0x55; /* inside IDAT: its CRC no longer matches */
    write_bytes(path, bytes, n);
    assert_refused(path, CT_ECORRUPT, "not a valid PNG", NULL);
    bytes[n / 2] ^= 0x55;
    const uint8_t wide[4] = {0x00, 0x01, 0x86, 0xa0}; /* IHDR width 100000 */
    memcpy(bytes + 16, wide, 4);
    write_bytes(path, bytes, n);
    assert_refused(path, CT_ECORRUPT, "too large", "100000x16");
    memset(bytes + 16, 0, 4);
    write_bytes(path, bytes, n);
    assert_refused(path, CT_ECORRUPT, "zero width", NULL);
    ct_free(bytes);
    ct_image_free(&img);
}

Test(image_io, refuses_truncated_pgm) {
    const char *p5 = tmp_path("cut5.pgm");
    write_bytes(p5, "P5\n4 4\n255\n0123456789", 21);
    assert_refused(p5, CT_ECORRUPT, "truncated", "10 of the 16 pixels");
    write_text(p5, "P5 4 4 255");
    assert_refused(p5, CT_ECORRUPT, "truncated", "0 of the 16 pixels");
    write_text(p5, "P5 4 4");
    assert_refused(p5, CT_ECORRUPT, "truncated", "maxval");
    const char *p2 = tmp_path("cut2.pgm");
    write_text(p2, "P2 3 2 255\n1 2 3\n4\n");
    assert_refused(p2, CT_ECORRUPT, "truncated", "4 of the 6 pixels");
}

Test(image_io, refuses_what_is_not_an_image) {
    const char *path = tmp_path("notes.png");
    write_text(path, "hello, this is text\n");
    assert_refused(path, CT_ECORRUPT, "not an image", "accepted formats are PNG and PGM");
    write_text(path, "P2P networking\n");
    assert_refused(path, CT_ECORRUPT, "not an image", NULL);
    write_text(path, "P6\n2 2\n255\n............");
    assert_refused(path, CT_ECORRUPT, "Netpbm P6", "PGM");
}

Test(image_io, refuses_bad_pgm_headers) {
    const char *path = tmp_path("bad.pgm");
    write_text(path, "P5 0 0 255\n");
    assert_refused(path, CT_ECORRUPT, "zero width", NULL);
    write_text(path, "P5 4 0 255\n");
    assert_refused(path, CT_ECORRUPT, "zero height", NULL);
    write_text(path, "P5 100000 10 255\n");
    assert_refused(path, CT_ECORRUPT, "too large", "100000x10");
    write_text(path, "P5 4 x 255\n");
    assert_refused(path, CT_ECORRUPT, "bad PGM header", "height");
    write_text(path, "P5 4 4 70000\n");
    assert_refused(path, CT_ECORRUPT, "bad PGM header", "maxval 70000");
    write_text(path, "P5 1 1 0\n");
    assert_refused(path, CT_ECORRUPT, "maxval 0", NULL);
    write_text(path, "P2 2 1 100\n50 101\n");
    assert_refused(path, CT_ECORRUPT, "value 101 at (1, 0)", "maxval 100");
    write_text(path, "P2 2 1 100\n50 abc\n");
    assert_refused(path, CT_ECORRUPT, "bad pixel at (1, 0)", "'a'");
    write_bytes(path, "P5 2 1 100\n\x10\xff", 13);
    assert_refused(path, CT_ECORRUPT, "value 255 at (1, 0)", NULL);
}
