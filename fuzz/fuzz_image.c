/* fuzz_image.c: fuzzes the image file reader (src/data/image_io.c, ct_image_load), PNG
 * through libpng and PGM (P5 and P2) by its own parser: the input is the whole file, whose
 * first bytes pick the format.
 * Asserts beyond "no crash, no leak": a refusal leaves a message and an empty image; an
 * image that loads has sides in 1..CT_IMAGE_MAX_SIDE and readable pixels, resizes, and
 * (up to a million pixels) comes back identical through ct_image_save_pgm (binary and ASCII)
 * and ct_image_load, and through ct_image_save_png and ct_image_load. */
#include "fuzz.h"
#include "data/image_io.h"

#define ROUND_TRIP_MAX_PIXELS (1u << 20)

/* img written by save and read back holds the same pixels. */
static void check_reload(const ct_image *img, int format) {
    char path[128];
    fuzz_path(path, sizeof path, format == 2 ? "back.png" : "back.pgm");
    ct_status s = format == 2 ? ct_image_save_png(path, img) : ct_image_save_pgm(path, img, format);
    FUZZ_CHECK(s == CT_OK);
    ct_image back;
    FUZZ_CHECK(ct_image_load(path, &back) == CT_OK);
    FUZZ_CHECK(back.width == img->width && back.height == img->height);
    FUZZ_CHECK(memcmp(back.pixels, img->pixels, (size_t)img->width * (size_t)img->height) == 0);
    ct_image_free(&back);
}

static void check_image(const ct_image *img) {
    FUZZ_CHECK(img->width >= 1 && img->width <= CT_IMAGE_MAX_SIDE);
    FUZZ_CHECK(img->height >= 1 && img->height <= CT_IMAGE_MAX_SIDE && img->pixels != NULL);
    size_t n = (size_t)img->width * (size_t)img->height;
    volatile unsigned sum = 0;
    for (size_t k = 0; k < n; k++) sum += img->pixels[k];
    (void)sum;
    ct_image small;
    FUZZ_CHECK(ct_image_resize(img, 7, 5, &small) == CT_OK);
    ct_image_free(&small);
    if (n > ROUND_TRIP_MAX_PIXELS) return;
    for (int format = 0; format < 3; format++) check_reload(img, format);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[128];
    fuzz_write(path, sizeof path, "fuzz.img", data, size);
    fuzz_clear_error();
    ct_image img;
    if (ct_image_load(path, &img) == CT_OK) {
        check_image(&img);
        ct_image_free(&img);
    } else {
        FUZZ_CHECK(ct_last_error()[0] != 0 && img.pixels == NULL && img.width == 0 && img.height == 0);
    }
    return 0;
}
