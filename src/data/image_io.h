/* image_io.h: grayscale image files for image + text training and captioning: loading PNG
 * (through libpng) and PGM, saving both, and resizing to a model's canvas.
 *
 * Pixels: a ct_image holds 8-bit grayscale, row-major, no padding: pixel (x, y) is
 * pixels[y * width + x], 0 is black and 255 white. ct_image_to_float gives the [0, 1]
 * floats a model consumes (value / 255).
 *
 * Loading decides the format from the file's first bytes, never its name:
 *   PNG  any bit depth (1 to 16) and colour type (gray, gray+alpha, RGB, RGBA, palette, with
 *        or without tRNS transparency), interlaced or not. 16-bit samples are scaled to
 *        8 bits, colour becomes gray with the ITU-R BT.601 luma weights
 *        (0.299 R + 0.587 G + 0.114 B, rounded, as Pillow's convert("L")), and alpha is
 *        composited over black (gray * alpha / 255, rounded). Gamma chunks are ignored.
 *   PGM  binary "P5" and ASCII "P2", maxval 1 to 65535 (two big-endian bytes per sample
 *        when over 255), '#' comments in the header; samples are scaled to 0..255, rounded.
 *
 * Errors: every failure names the file and the problem (ct_last_error()).
 *   CT_EIO       the file cannot be opened, read or written (the system's reason is given);
 *   CT_ECORRUPT  the file's bytes are wrong: empty, truncated, neither PNG nor PGM, a bad
 *                PGM header or pixel value, a PNG that libpng rejects, zero width or height,
 *                or more than CT_IMAGE_MAX_SIDE pixels on a side;
 *   CT_EINVAL    a bad argument: an image or resize target with a side outside
 *                1..CT_IMAGE_MAX_SIDE or without pixels;
 *   CT_ENOMEM    an allocation failed.
 * On failure *out is left empty (all zero) and nothing needs freeing. */
#ifndef CT_IMAGE_IO_H
#define CT_IMAGE_IO_H

#include "core/core.h"

#define CT_IMAGE_MAX_SIDE 16384 /* larger images are refused, not allocated */

typedef struct ct_image {
    int width, height;
    uint8_t *pixels; /* [height * width], from ct_alloc; release with ct_image_free */
} ct_image;

/* Reads a PNG or PGM file into out (8-bit gray, as above). */
ct_status ct_image_load(const char *path, ct_image *out);

/* Allocates a width x height image with zeroed pixels. */
ct_status ct_image_create(ct_image *out, int width, int height);

/* Resizes in to exactly width x height (the aspect ratio is not kept: the image is
 * stretched to fill the target canvas). Each axis on its own: shrinking averages the
 * covered area (box filter, fractional coverage at the edges of each cell), enlarging
 * interpolates bilinearly between pixel centres (edges clamped), an unchanged size copies.
 * Results are rounded to the nearest 8-bit value. out must not alias in. */
ct_status ct_image_resize(const ct_image *in, int width, int height, ct_image *out);

/* Writes an 8-bit grayscale PNG, atomically (temp file, fsync, rename). */
ct_status ct_image_save_png(const char *path, const ct_image *img);
/* Writes a PGM with maxval 255, atomically: binary P5, or ASCII P2 when ascii != 0. */
ct_status ct_image_save_pgm(const char *path, const ct_image *img, int ascii);

/* Writes the width * height pixels as floats in [0, 1] (value / 255) to out. */
void ct_image_to_float(const ct_image *img, float *out);

/* Frees the pixels and zeroes img; safe on a zeroed or already freed image. */
void ct_image_free(ct_image *img);

#endif /* CT_IMAGE_IO_H */
