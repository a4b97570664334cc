/* image_io.c: 8-bit grayscale images (image_io.h): loading PNG through libpng and PGM by a
 * small parser, saving both atomically, resizing (box filter down, bilinear up). Every
 * refusal names the file and what is wrong with it. */
#include "data/image_io.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <png.h>
#include <string.h>
#include <sys/stat.h>

static const uint8_t png_signature[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};

/* ---- shared checks --------------------------------------------------------------------- */

/* Refuses a file's declared size: zero on a side, or more than CT_IMAGE_MAX_SIDE. */
static ct_status check_file_dims(const char *path, uint64_t w, uint64_t h) {
    if (w == 0 || h == 0)
        return ct_fail(CT_ECORRUPT, "%s has zero %s: its header declares %" PRIu64 "x%" PRIu64 " pixels", path,
                       w == 0 ? "width" : "height", w, h);
    if (w > CT_IMAGE_MAX_SIDE || h > CT_IMAGE_MAX_SIDE)
        return ct_fail(CT_ECORRUPT,
                       "%s is too large: its header declares %" PRIu64 "x%" PRIu64
                       " pixels; at most %d on a side are accepted",
                       path, w, h, CT_IMAGE_MAX_SIDE);
    return CT_OK;
}

static int side_ok(int n) { return n >= 1 && n <= CT_IMAGE_MAX_SIDE; }

/* Refuses an image argument without pixels or with a side outside 1..CT_IMAGE_MAX_SIDE. */
static ct_status check_image(const ct_image *img, const char *what, const char *name) {
    if (!img || !img->pixels || !side_ok(img->width) || !side_ok(img->height))
        return ct_fail(CT_EINVAL,
                       "cannot %s %s: not a valid image (%dx%d%s); each side must be "
                       "in 1..%d",
                       what, name, img ? img->width : 0, img ? img->height : 0,
                       img && img->pixels ? "" : ", no pixels", CT_IMAGE_MAX_SIDE);
    return CT_OK;
}

ct_status ct_image_create(ct_image *out, int width, int height) {
    memset(out, 0, sizeof *out);
    if (!side_ok(width) || !side_ok(height))
        return ct_fail(CT_EINVAL, "cannot create a %dx%d image: each side must be in 1..%d", width, height,
                       CT_IMAGE_MAX_SIDE);
    out->pixels = ct_calloc((size_t)width * (size_t)height, "image pixels");
    if (!out->pixels) return CT_ENOMEM;
    out->width = width;
    out->height = height;
    return CT_OK;
}

void ct_image_free(ct_image *img) {
    if (!img) return;
    ct_free(img->pixels);
    memset(img, 0, sizeof *img);
}

void ct_image_to_float(const ct_image *img, float *out) {
    size_t n = (size_t)img->width * (size_t)img->height;
    for (size_t i = 0; i < n; i++) out[i] = img->pixels[i] * (1.0f / 255.0f);
}

/* "'x'" for a printable byte, "byte 0x1b" otherwise, for messages. */
static const char *describe_byte(uint8_t c, char buf[16]) {
    if (c >= 0x21 && c < 0x7f) snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

/* ---- PGM ------------------------------------------------------------------------------- */

typedef struct pgm_reader {
    const char *path;
    const uint8_t *d;
    size_t n, at;
} pgm_reader;

typedef struct pgm_header {
    uint64_t width, height, maxval;
    int ascii;
} pgm_header;

enum { NUM_OK, NUM_END, NUM_BAD };

static int is_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* Skips whitespace and '#' comments (each to the end of its line). */
static void pgm_skip(pgm_reader *r) {
    while (r->at < r->n) {
        if (is_space(r->d[r->at])) r->at++;
        else if (r->d[r->at] == '#')
            while (r->at < r->n && r->d[r->at] != '\n') r->at++;
        else
            break;
    }
}

/* Reads one unsigned decimal number after any whitespace and comments; values past 2^40
 * saturate there (every limit checked afterwards is far below). */
static int pgm_number(pgm_reader *r, uint64_t *v) {
    pgm_skip(r);
    if (r->at >= r->n) return NUM_END;
    if (!is_digit(r->d[r->at])) return NUM_BAD;
    uint64_t x = 0;
    for (; r->at < r->n && is_digit(r->d[r->at]); r->at++)
        x = x < (1ull << 40) ? x * 10 + (uint64_t)(r->d[r->at] - '0') : x;
    *v = x;
    return NUM_OK;
}

static ct_status pgm_field(pgm_reader *r, const char *what, uint64_t *v) {
    char b[16];
    int k = pgm_number(r, v);
    if (k == NUM_END)
        return ct_fail(CT_ECORRUPT, "%s is truncated: its PGM header ends before the %s", r->path, what);
    if (k == NUM_BAD)
        return ct_fail(CT_ECORRUPT,
                       "%s has a bad PGM header: expected the %s as a decimal number, "
                       "found %s",
                       r->path, what, describe_byte(r->d[r->at], b));
    return CT_OK;
}

/* Parses "P5|P2 width height maxval" and, for P5, the single whitespace byte after it. */
static ct_status pgm_read_header(pgm_reader *r, pgm_header *h) {
    h->ascii = r->d[1] == '2';
    r->at = 2;
    CT_TRY(pgm_field(r, "width", &h->width));
    CT_TRY(pgm_field(r, "height", &h->height));
    CT_TRY(pgm_field(r, "maxval", &h->maxval));
    if (h->maxval == 0 || h->maxval > 65535)
        return ct_fail(CT_ECORRUPT,
                       "%s has a bad PGM header: maxval %" PRIu64 " is outside "
                       "1..65535",
                       r->path, h->maxval);
    CT_TRY(check_file_dims(r->path, h->width, h->height));
    if (h->ascii || r->at == r->n) return CT_OK; /* a P5 with no data is reported as truncated */
    if (!is_space(r->d[r->at]))
        return ct_fail(CT_ECORRUPT,
                       "%s has a bad PGM header: expected one whitespace byte after "
                       "maxval, before the pixels",
                       r->path);
    r->at++;
    return CT_OK;
}

/* A sample in 0..maxval scaled to 0..255, rounded. */
static uint8_t pgm_scale(uint64_t v, uint64_t maxval) {
    return maxval == 255 ? (uint8_t)v : (uint8_t)((v * 255 + maxval / 2) / maxval);
}

static ct_status pgm_over_maxval(const pgm_reader *r, const pgm_header *h, size_t i, uint64_t v) {
    return ct_fail(CT_ECORRUPT,
                   "%s has a bad pixel: value %" PRIu64 " at (%" PRIu64 ", %" PRIu64
                   ") is above the header's maxval %" PRIu64,
                   r->path, v, (uint64_t)i % h->width, (uint64_t)i / h->width, h->maxval);
}

static ct_status pgm_truncated(const pgm_reader *r, const pgm_header *h, size_t have) {
    return ct_fail(CT_ECORRUPT,
                   "%s is truncated: it holds %zu of the %" PRIu64 " pixels its PGM "
                   "header declares (%" PRIu64 "x%" PRIu64 ")",
                   r->path, have, h->width * h->height, h->width, h->height);
}

static ct_status pgm_read_binary(const pgm_reader *r, const pgm_header *h, uint8_t *px) {
    size_t count = (size_t)(h->width * h->height), bps = h->maxval > 255 ? 2 : 1;
    size_t avail = r->n - r->at;
    if (avail / bps < count) return pgm_truncated(r, h, avail / bps);
    const uint8_t *p = r->d + r->at;
    for (size_t i = 0; i < count; i++) {
        uint64_t v = bps == 1 ? p[i] : ((uint64_t)p[2 * i] << 8) | p[2 * i + 1];
        if (v > h->maxval) return pgm_over_maxval(r, h, i, v);
        px[i] = pgm_scale(v, h->maxval);
    }
    return CT_OK;
}

static ct_status pgm_read_ascii(pgm_reader *r, const pgm_header *h, uint8_t *px) {
    size_t count = (size_t)(h->width * h->height);
    char b[16];
    for (size_t i = 0; i < count; i++) {
        uint64_t v;
        int k = pgm_number(r, &v);
        if (k == NUM_END) return pgm_truncated(r, h, i);
        if (k == NUM_BAD)
            return ct_fail(CT_ECORRUPT,
                           "%s has a bad pixel at (%" PRIu64 ", %" PRIu64 "): expected "
                           "a decimal number, found %s",
                           r->path, (uint64_t)i % h->width, (uint64_t)i / h->width,
                           describe_byte(r->d[r->at], b));
        if (v > h->maxval) return pgm_over_maxval(r, h, i, v);
        px[i] = pgm_scale(v, h->maxval);
    }
    return CT_OK;
}

static ct_status load_pgm(const char *path, const uint8_t *d, size_t n, ct_image *out) {
    pgm_reader r = {path, d, n, 0};
    pgm_header h;
    CT_TRY(pgm_read_header(&r, &h));
    CT_TRY(ct_image_create(out, (int)h.width, (int)h.height));
    return h.ascii ? pgm_read_ascii(&r, &h, out->pixels) : pgm_read_binary(&r, &h, out->pixels);
}

/* ---- PNG through libpng ---------------------------------------------------------------- */

/* State shared with libpng's callbacks, reading or writing. libpng reports errors by
 * longjmp; everything allocated lives here so the caller frees it either way. */
typedef struct png_io {
    const char *path;
    const uint8_t *data; /* reading: the mapped file */
    size_t size, at;
    ct_atomic_file *file; /* writing */
    ct_status status;     /* a failure already reported through ct_fail (I/O, memory) */
    int truncated;        /* reading ran past the end of the file */
    char msg[256];        /* libpng's own error message */
    uint8_t *row, *rgba;  /* one converted row; the whole image when interlaced */
} png_io;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_io *io = png_get_error_ptr(png);
    snprintf(io->msg, sizeof io->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t len) {
    png_io *io = png_get_io_ptr(png);
    if (len > io->size - io->at) {
        io->truncated = 1;
        png_error(png, "unexpected end of file");
    }
    memcpy(out, io->data + io->at, len);
    io->at += len;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Checks the signature's length and the IHDR's size before libpng allocates anything. */
static ct_status png_precheck(const char *path, const uint8_t *d, size_t n) {
    if (n < 8 + 8 + 13 + 4)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated: its %zu bytes end inside the PNG signature "
                       "and header",
                       path, n);
    if (memcmp(d + 12, "IHDR", 4) != 0)
        return ct_fail(CT_ECORRUPT, "%s is not a valid PNG: its first chunk is not IHDR", path);
    return check_file_dims(path, be32(d + 16), be32(d + 20));
}

/* Asks libpng for 8-bit RGBA whatever the file holds. */
static void png_to_rgba8(png_structp png, png_infop info) {
    int type = png_get_color_type(png, info);
    png_set_expand(png); /* palette -> RGB, gray under 8 bits -> 8, tRNS -> alpha */
    png_set_scale_16(png);
    if (!(type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    if (!(type & PNG_COLOR_MASK_ALPHA) && !png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
}

/* BT.601 luma in 16-bit fixed point (weights sum to 65536, so gray stays exact), then
 * composited over black. */
static void rgba_to_gray(const uint8_t *rgba, uint8_t *gray, size_t w) {
    for (size_t x = 0; x < w; x++, rgba += 4) {
        uint32_t l = (19595u * rgba[0] + 38470u * rgba[1] + 7471u * rgba[2] + 0x8000u) >> 16;
        gray[x] = (uint8_t)((l * rgba[3] + 127) / 255);
    }
}

static uint8_t *png_alloc_or_fail(png_structp png, png_io *io, size_t bytes) {
    uint8_t *p = ct_alloc(bytes, "PNG rows");
    if (!p) {
        io->status = CT_ENOMEM;
        png_error(png, "out of memory");
    }
    return p;
}

static void png_read_pixels(png_structp png, png_io *io, ct_image *out, int passes) {
    size_t w = (size_t)out->width, h = (size_t)out->height, stride = 4 * w;
    if (passes == 1) {
        io->row = png_alloc_or_fail(png, io, stride);
        for (size_t y = 0; y < h; y++) {
            png_read_row(png, io->row, NULL);
            rgba_to_gray(io->row, out->pixels + y * w, w);
        }
        return;
    }
    io->rgba = png_alloc_or_fail(png, io, stride * h); /* interlaced: passes fill it in */
    for (int p = 0; p < passes; p++)
        for (size_t y = 0; y < h; y++) png_read_row(png, io->rgba + y * stride, NULL);
    for (size_t y = 0; y < h; y++) rgba_to_gray(io->rgba + y * stride, out->pixels + y * w, w);
}

/* The libpng calls, under its longjmp error handling; 0 on failure. */
static int png_decode(png_structp png, png_infop info, png_io *io, ct_image *out) {
    if (setjmp(png_jmpbuf(png))) return 0;
    png_read_info(png, info);
    png_to_rgba8(png, info);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    if (png_get_rowbytes(png, info) != 4 * (size_t)w || png_get_bit_depth(png, info) != 8)
        png_error(png, "unsupported layout after conversion to 8-bit RGBA");
    if (ct_image_create(out, w, h) != CT_OK) {
        io->status = CT_ENOMEM;
        png_error(png, "out of memory");
    }
    png_read_pixels(png, io, out, passes);
    png_read_end(png, NULL);
    return 1;
}

static ct_status load_png(const char *path, const uint8_t *d, size_t n, ct_image *out) {
    CT_TRY(png_precheck(path, d, n));
    png_io io = {.path = path, .data = d, .size = n};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return ct_fail(CT_ENOMEM, "out of memory starting libpng to read %s", path);
    }
    png_set_read_fn(png, &io, png_read_mem);
    int ok = png_decode(png, info, &io, out);
    png_destroy_read_struct(&png, &info, NULL);
    ct_free(io.row);
    ct_free(io.rgba);
    if (ok) return CT_OK;
    if (io.status != CT_OK) return io.status;
    if (io.truncated)
        return ct_fail(CT_ECORRUPT,
                       "%s is truncated: the file (%zu bytes) ends inside the PNG "
                       "data",
                       path, n);
    return ct_fail(CT_ECORRUPT, "%s is not a valid PNG: libpng: %s", path, io.msg);
}

static void png_write_out(png_structp png, png_bytep data, size_t len) {
    png_io *io = png_get_io_ptr(png);
    io->status = ct_atomic_write(io->file, data, len);
    if (io->status != CT_OK) png_error(png, "write failed");
}

static void png_flush_none(png_structp png) { (void)png; }

static int png_encode(png_structp png, png_infop info, const ct_image *img) {
    if (setjmp(png_jmpbuf(png))) return 0;
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++) png_write_row(png, img->pixels + (size_t)y * (size_t)img->width);
    png_write_end(png, NULL);
    return 1;
}

static ct_status write_png(png_io *io, const ct_image *img) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, io, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return ct_fail(CT_ENOMEM, "out of memory starting libpng to write %s", io->path);
    }
    png_set_write_fn(png, io, png_write_out, png_flush_none);
    int ok = png_encode(png, info, img);
    png_destroy_write_struct(&png, &info);
    if (ok) return CT_OK;
    if (io->status != CT_OK) return io->status;
    return ct_fail(CT_EIO, "cannot write %s: libpng: %s", io->path, io->msg);
}

ct_status ct_image_save_png(const char *path, const ct_image *img) {
    CT_TRY(check_image(img, "save", path));
    ct_atomic_file *f;
    CT_TRY(ct_atomic_open(&f, path));
    png_io io = {.path = path, .file = f};
    ct_status s = write_png(&io, img);
    if (s != CT_OK) {
        ct_atomic_abort(f);
        return s;
    }
    return ct_atomic_commit(f);
}

/* ---- PGM writing ----------------------------------------------------------------------- */

static ct_status write_p5(ct_atomic_file *f, const ct_image *img) {
    char head[64];
    int k = snprintf(head, sizeof head, "P5\n%d %d\n255\n", img->width, img->height);
    CT_TRY(ct_atomic_write(f, head, (size_t)k));
    return ct_atomic_write(f, img->pixels, (size_t)img->width * (size_t)img->height);
}

/* Decimal samples, 16 to a line (lines stay under Netpbm's 70 characters), rows on new lines. */
static ct_status write_p2(ct_atomic_file *f, const ct_image *img) {
    char head[64];
    int k = snprintf(head, sizeof head, "P2\n%d %d\n255\n", img->width, img->height);
    CT_TRY(ct_atomic_write(f, head, (size_t)k));
    size_t w = (size_t)img->width;
    char *line = ct_alloc(4 * w + 1, "PGM text row");
    if (!line) return CT_ENOMEM;
    ct_status s = CT_OK;
    for (int y = 0; y < img->height && s == CT_OK; y++) {
        size_t len = 0;
        for (size_t x = 0; x < w; x++)
            len += (size_t)snprintf(line + len, 5, "%u%c", img->pixels[(size_t)y * w + x],
                                    x + 1 == w || x % 16 == 15 ? '\n' : ' ');
        s = ct_atomic_write(f, line, len);
    }
    ct_free(line);
    return s;
}

ct_status ct_image_save_pgm(const char *path, const ct_image *img, int ascii) {
    CT_TRY(check_image(img, "save", path));
    ct_atomic_file *f;
    CT_TRY(ct_atomic_open(&f, path));
    ct_status s = ascii ? write_p2(f, img) : write_p5(f, img);
    if (s != CT_OK) {
        ct_atomic_abort(f);
        return s;
    }
    return ct_atomic_commit(f);
}

/* ---- loading: the format from the first bytes ------------------------------------------ */

static ct_status map_image_file(const char *path, ct_mapped *m) {
    struct stat st;
    if (stat(path, &st) != 0) return ct_fail(CT_EIO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ct_fail(CT_EIO, "cannot read %s: not a regular file", path);
    return ct_map_file(m, path);
}

static int is_pgm(const uint8_t *d, size_t n) {
    return n >= 2 && d[0] == 'P' && (d[1] == '5' || d[1] == '2') && (n == 2 || is_space(d[2]));
}

static ct_status not_an_image(const char *path, const uint8_t *d, size_t n) {
    if (n >= 3 && d[0] == 'P' && d[1] && strchr("1346", d[1]) && is_space(d[2]))
        return ct_fail(CT_ECORRUPT,
                       "%s is a Netpbm P%c file (PBM or PPM), not an accepted image: "
                       "of Netpbm only PGM (P5, P2) is read; convert it to PGM or PNG",
                       path, d[1]);
    return ct_fail(CT_ECORRUPT,
                   "%s is not an image: it starts with neither the PNG signature nor a "
                   "PGM magic number (P5 or P2); the accepted formats are PNG and PGM",
                   path);
}

static ct_status decode(const char *path, const uint8_t *d, size_t n, ct_image *out) {
    if (n == 0) return ct_fail(CT_ECORRUPT, "%s is empty: expected a PNG or PGM image", path);
    if (memcmp(d, png_signature, n < 8 ? n : 8) == 0) return load_png(path, d, n, out);
    if (is_pgm(d, n)) return load_pgm(path, d, n, out);
    return not_an_image(path, d, n);
}

ct_status ct_image_load(const char *path, ct_image *out) {
    memset(out, 0, sizeof *out);
    ct_mapped m;
    CT_TRY(map_image_file(path, &m));
    ct_status s = decode(path, m.data, m.size, out);
    ct_unmap_file(&m);
    if (s != CT_OK) ct_image_free(out);
    return s;
}

/* ---- resizing -------------------------------------------------------------------------- */

/* How one axis maps: output index o reads count[o] input samples from first[o] on, with
 * weights weight[o * taps + t] (summing to 1). */
typedef struct axis_plan {
    int taps;
    int *first, *count;
    float *weight;
} axis_plan;

static void plan_free(axis_plan *p) {
    ct_free(p->first);
    ct_free(p->count);
    ct_free(p->weight);
}

/* Shrinking: output o averages the input interval [o * s, (o + 1) * s), s = in / out,
 * each input sample weighted by the length it covers. */
static void plan_box(axis_plan *p, int in, int out) {
    double s = (double)in / out;
    for (int o = 0; o < out; o++) {
        double lo = o * s, hi = (o + 1) * s;
        int first = (int)floor(lo), n = 0;
        for (int t = 0; t < p->taps && first + t < in; t++, n++) {
            double cover = fmin(hi, first + t + 1.0) - fmax(lo, (double)(first + t));
            p->weight[(size_t)o * p->taps + t] = cover > 0 ? (float)(cover / s) : 0.0f;
        }
        p->first[o] = first;
        p->count[o] = n;
    }
}

/* Enlarging (or the same size): output o samples the input at its pixel centre
 * (o + 0.5) * in / out - 0.5, clamped to the edge samples, interpolating linearly. */
static void plan_bilinear(axis_plan *p, int in, int out) {
    double s = (double)in / out;
    for (int o = 0; o < out; o++) {
        double x = fmin(fmax((o + 0.5) * s - 0.5, 0.0), in - 1.0);
        int i = (int)floor(x);
        float f = (float)(x - i);
        p->first[o] = i;
        p->count[o] = i + 1 < in ? 2 : 1;
        p->weight[(size_t)o * 2] = 1.0f - f;
        p->weight[(size_t)o * 2 + 1] = f;
    }
}

static ct_status plan_axis(axis_plan *p, int in, int out) {
    p->taps = out < in ? (int)ceil((double)in / out) + 1 : 2;
    p->first = ct_alloc((size_t)out * sizeof *p->first, "resize plan");
    p->count = ct_alloc((size_t)out * sizeof *p->count, "resize plan");
    p->weight = ct_calloc((size_t)out * (size_t)p->taps * sizeof *p->weight, "resize plan");
    if (!p->first || !p->count || !p->weight) {
        plan_free(p);
        return CT_ENOMEM;
    }
    if (out < in) plan_box(p, in, out);
    else
        plan_bilinear(p, in, out);
    return CT_OK;
}

/* Resamples every row of in along x into tmp [in->height, ow]. */
static void resize_rows(const ct_image *in, const axis_plan *px, int ow, float *tmp) {
    for (size_t y = 0; y < (size_t)in->height; y++) {
        const uint8_t *src = in->pixels + y * (size_t)in->width;
        for (int o = 0; o < ow; o++) {
            const float *w = px->weight + (size_t)o * px->taps;
            const uint8_t *s = src + px->first[o];
            float acc = 0.0f;
            for (int t = 0; t < px->count[o]; t++) acc += w[t] * s[t];
            tmp[y * (size_t)ow + o] = acc;
        }
    }
}

/* Resamples tmp's columns along y into out, rounding to 8 bits; acc holds one row. */
static void resize_cols(const float *tmp, const axis_plan *py, ct_image *out, float *acc) {
    size_t ow = (size_t)out->width;
    for (int o = 0; o < out->height; o++) {
        const float *w = py->weight + (size_t)o * py->taps;
        memset(acc, 0, ow * sizeof *acc);
        for (int t = 0; t < py->count[o]; t++) {
            const float *row = tmp + (size_t)(py->first[o] + t) * ow;
            for (size_t x = 0; x < ow; x++) acc[x] += w[t] * row[x];
        }
        uint8_t *dst = out->pixels + (size_t)o * ow;
        for (size_t x = 0; x < ow; x++) dst[x] = (uint8_t)fminf(fmaxf(floorf(acc[x] + 0.5f), 0.0f), 255.0f);
    }
}

ct_status ct_image_resize(const ct_image *in, int width, int height, ct_image *out) {
    memset(out, 0, sizeof *out);
    CT_TRY(check_image(in, "resize", "the image"));
    if (!side_ok(width) || !side_ok(height))
        return ct_fail(CT_EINVAL,
                       "cannot resize a %dx%d image to %dx%d: each side must be in "
                       "1..%d",
                       in->width, in->height, width, height, CT_IMAGE_MAX_SIDE);
    axis_plan px = {0}, py = {0};
    float *tmp = NULL, *acc = NULL;
    ct_status s = plan_axis(&px, in->width, width);
    if (s == CT_OK) s = plan_axis(&py, in->height, height);
    if (s == CT_OK) s = ct_image_create(out, width, height);
    if (s == CT_OK) {
        tmp = ct_alloc((size_t)in->height * (size_t)width * sizeof *tmp, "resize rows");
        acc = ct_alloc((size_t)width * sizeof *acc, "resize row");
        if (!tmp || !acc) s = CT_ENOMEM;
    }
    if (s == CT_OK) {
        resize_rows(in, &px, width, tmp);
        resize_cols(tmp, &py, out, acc);
    } else {
        ct_image_free(out);
    }
    ct_free(tmp);
    ct_free(acc);
    plan_free(&px);
    plan_free(&py);
    return s;
}
