/* tool_fuzz_seeds.c: writes the seed corpora of the fuzz harnesses (fuzz/corpus/<reader>/):
 * for each reader a few valid inputs made by the library's own writers, and damaged copies
 * of them (cut in half, one byte flipped). Usage: tool_fuzz_seeds OUTDIR (fuzz/corpus). */
#include "../../fuzz/fuzz_tok.h"
#include "data/image_io.h"
#include "data/scenes.h"
#include "data/shard.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/safetensors.h"
#include "train/tb_events.h"
#include <png.h>

static const char *out_root;

static int fail(const char *what) {
    fprintf(stderr, "tool_fuzz_seeds: %s: %s\n", what, ct_last_error());
    return 1;
}

/* OUT/reader/name into path[cap]. */
static const char *seed_path(char *path, size_t cap, const char *reader, const char *name) {
    snprintf(path, cap, "%s/%s", out_root, reader);
    if (ct_mkdirs(path) != CT_OK) return NULL;
    snprintf(path, cap, "%s/%s/%s", out_root, reader, name);
    return path;
}

static int put(const char *reader, const char *name, const void *data, size_t n) {
    char path[4096];
    FILE *f = seed_path(path, sizeof path, reader, name) ? fopen(path, "wb") : NULL;
    int ok = f && fwrite(data, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    return ok ? 0 : fail(name);
}

/* Writes name (already there) cut in half and with its middle byte flipped, beside it. */
static int damage(const char *reader, const char *name) {
    char path[4096], *text, cut[256];
    size_t n;
    seed_path(path, sizeof path, reader, name);
    if (ct_read_file(path, &text, &n) != CT_OK) return fail(name);
    snprintf(cut, sizeof cut, "%s.cut", name);
    int bad = put(reader, cut, text, n / 2);
    if (n > 0) text[n / 2] ^= 0x5a;
    snprintf(cut, sizeof cut, "%s.flip", name);
    bad |= put(reader, cut, text, n);
    ct_free(text);
    return bad;
}

/* Rewrites name (already there) as mode byte 0 + its bytes, and beside it name.sum as mode
 * byte 1 (the harness fixes the checksum) + its bytes, with damaged copies of both. */
static int with_mode(const char *reader, const char *name) {
    char path[4096], *text, sum[256];
    size_t n;
    seed_path(path, sizeof path, reader, name);
    if (ct_read_file(path, &text, &n) != CT_OK) return fail(name);
    uint8_t *seed = malloc(n + 1);
    memcpy(seed + 1, text, n);
    ct_free(text);
    seed[0] = 0;
    int bad = put(reader, name, seed, n + 1);
    seed[0] = 1;
    snprintf(sum, sizeof sum, "%s.sum", name);
    bad |= put(reader, sum, seed, n + 1);
    free(seed);
    return bad || damage(reader, name) || damage(reader, sum);
}

static int config_seeds(void) {
    static const char small[] = "{\"model\": {\"n_layer\": 2, \"d_model\": 64, \"n_head\": 4}, "
                                "\"train\": {\"lr\": 3e-4, \"batch_size\": 4}}\0train.steps=10\n"
                                "memory.recompute=0-1\nparallel.stages=auto";
    static const char moe[] =
        "{\"model\": {\"n_layer\": 4, \"moe_every\": 2}, \"moe\": {\"n_experts\": 4, "
        "\"top_k\": 2}, \"offload\": {\"optimizer\": \"0-1:host\"}}\0memory.compute_budget=512M";
    ct_config c;
    ct_config_defaults(&c);
    cJSON *j = ct_config_json(&c);
    char *defaults = cJSON_Print(j);
    cJSON_Delete(j);
    int bad = !defaults || put("config", "defaults.json", defaults, strlen(defaults));
    cJSON_free(defaults);
    bad |= put("config", "small", small, sizeof small - 1) || put("config", "moe", moe, sizeof moe - 1);
    return bad || damage("config", "small") || damage("config", "defaults.json");
}

static int safetensors_seeds(void) {
    float a[6] = {1, 2, 3, 4, 5, 6}, s = 0.5f;
    ct_st_tensor t[] = {{"wte.weight", 2, {3, 2}, a}, {"scale", 0, {0}, &s}, {"empty", 1, {0}, NULL}};
    const char *meta[] = {"format", "pt", NULL};
    char path[4096];
    seed_path(path, sizeof path, "safetensors", "three.safetensors");
    if (ct_safetensors_save(path, t, 3, meta) != CT_OK) return fail(path);
    seed_path(path, sizeof path, "safetensors", "one.safetensors");
    if (ct_safetensors_save(path, t, 1, NULL) != CT_OK) return fail(path);
    return damage("safetensors", "three.safetensors") || damage("safetensors", "one.safetensors");
}

/* A checkpoint's trainer.json with a full trainer state, as mode 0 (raw) and 1 (re-signed). */
static int trainer_seeds(void) {
    char dir[2048], path[4096], *text;
    size_t n;
    seed_path(dir, sizeof dir, "trainer_json", "ckpt");
    float p[4] = {1, 2, 3, 4};
    ct_ckpt_tensor ct[] = {{"ln_f.weight", 1, {4}, 0, 4}};
    ct_ckpt_view view = {.tensors = ct, .n_tensors = 1, .num_params = 4, .params = p};
    ct_config c;
    ct_config_defaults(&c);
    cJSON *state = cJSON_Parse(
        "{\"step\": \"5\", \"adam_steps\": \"5\", \"data\": {\"epoch\": \"0\", \"index\": "
        "\"12\"}, \"captions\": {\"epoch\": \"1\", \"index\": \"3\"}}");
    cJSON_AddItemToObject(state, "config", ct_config_json(&c));
    ct_status s = ct_checkpoint_save(dir, &view, state);
    cJSON_Delete(state);
    snprintf(path, sizeof path, "%s/trainer.json", dir);
    if (s != CT_OK || ct_read_file(path, &text, &n) != CT_OK) return fail(dir);
    char *seed = malloc(n + 1);
    memcpy(seed + 1, text, n);
    seed[0] = 0;
    int bad = put("trainer_json", "raw", seed, n + 1);
    seed[0] = 1;
    bad |= put("trainer_json", "resigned", seed, n + 1);
    free(seed);
    ct_free(text);
    ct_checkpoint_remove(dir);
    seed_path(path, sizeof path, "trainer_json", "latest"); /* the save's pointer beside it */
    remove(path);
    return bad || damage("trainer_json", "raw") || damage("trainer_json", "resigned");
}

static int shard_seeds(void) {
    int32_t tok[64];
    for (int i = 0; i < 64; i++) tok[i] = (i * 7919) % 50257;
    char path[4096];
    if (ct_shard_write(seed_path(path, sizeof path, "shard", "gpt2.bin"), tok, 64, 50257) != CT_OK ||
        ct_shard_write(seed_path(path, sizeof path, "shard", "wide.bin"), tok, 16, 70000) != CT_OK ||
        ct_shard_write(seed_path(path, sizeof path, "shard", "empty.bin"), tok, 0, 300) != CT_OK)
        return fail(path);
    return with_mode("shard", "gpt2.bin") || with_mode("shard", "wide.bin") || with_mode("shard", "empty.bin");
}

static int scene_seeds(void) {
    char path[4096];
    ct_scene_writer *w;
    if (ct_scene_writer_open(&w, seed_path(path, sizeof path, "scenes", "two.bin"), 8, 50257) != CT_OK)
        return fail(path);
    uint8_t px[CT_SCENE_SIDE * CT_SCENE_SIDE];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 31);
    ct_scene one = {.n_items = 1, .labels = {7}, .cells = {2}};
    ct_scene three = {.n_items = 3, .labels = {3, 12, 19}, .cells = {0, 1, 3}};
    int32_t caption[5] = {64, 767, 287, 262, 1353};
    ct_status s = ct_scene_writer_add(w, px, caption, 5, &one);
    if (s == CT_OK) s = ct_scene_writer_add(w, px, caption, 3, &three);
    if (s != CT_OK) {
        ct_scene_writer_abort(w);
        return fail(path);
    }
    if (ct_scene_writer_commit(w) != CT_OK) return fail(path);
    return with_mode("scenes", "two.bin");
}

/* A 4x3 PNG of another colour type or depth through libpng (the library writes 8-bit gray). */
static int png_seed(const char *name, int depth, int color) {
    char path[4096];
    FILE *f = fopen(seed_path(path, sizeof path, "image", name), "wb");
    png_structp png = f ? png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL) : NULL;
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        if (f) fclose(f);
        return fail(name);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, 4, 3, depth, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, palette, 4);
    png_write_info(png, info);
    png_byte row[4 * 8];
    for (int y = 0; y < 3; y++) {
        for (size_t i = 0; i < sizeof row; i++)
            row[i] = (png_byte)((i * 37 + (size_t)y * 11) & (color ? 3 : 0xff));
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0 ? 0 : fail(name);
}

static int image_seeds(void) {
    ct_image img;
    if (ct_image_create(&img, 5, 3) != CT_OK) return fail("image");
    for (int i = 0; i < 15; i++) img.pixels[i] = (uint8_t)(i * 17);
    char path[4096];
    ct_status s = ct_image_save_png(seed_path(path, sizeof path, "image", "gray.png"), &img);
    if (s == CT_OK) s = ct_image_save_pgm(seed_path(path, sizeof path, "image", "p5.pgm"), &img, 0);
    if (s == CT_OK) s = ct_image_save_pgm(seed_path(path, sizeof path, "image", "p2.pgm"), &img, 1);
    ct_image_free(&img);
    if (s != CT_OK) return fail(path);
    static const char p5_16[] = "P5\n# sixteen bits\n2 1\n1000\n\x03\xe8\x01\xf4";
    static const char p2[] = "P2 # a comment\n3 2 15\n0 5 10\n15 7 # end\n1 2";
    int bad = put("image", "p5_16.pgm", p5_16, sizeof p5_16 - 1) ||
              put("image", "p2_comments.pgm", p2, sizeof p2 - 1);
    bad |= png_seed("rgba.png", 8, PNG_COLOR_TYPE_RGB_ALPHA) || png_seed("gray16.png", 16, PNG_COLOR_TYPE_GRAY);
    bad |= png_seed("palette.png", 8, PNG_COLOR_TYPE_PALETTE);
    return bad || damage("image", "gray.png") || damage("image", "p5.pgm") || damage("image", "rgba.png");
}

/* The tiny vocabulary packed as fuzz_bpe reads it: encoder.json NUL vocab.bpe NUL text. */
static int bpe_seed(const char *name, const char *text, size_t n) {
    char *enc = fuzz_tiny_encoder(), merges[4096];
    if (!enc) return fail(name);
    fuzz_tiny_merges(merges, sizeof merges);
    size_t ne = strlen(enc), nm = strlen(merges);
    char *seed = malloc(ne + nm + n + 2);
    memcpy(seed, enc, ne);
    seed[ne] = 0;
    memcpy(seed + ne + 1, merges, nm);
    seed[ne + 1 + nm] = 0;
    memcpy(seed + ne + nm + 2, text, n);
    int bad = put("bpe", name, seed, ne + nm + n + 2);
    free(seed);
    cJSON_free(enc);
    return bad;
}

static int tokenizer_seeds(void) {
#define TEXT(s) \
    { s, sizeof s - 1 }
    static const struct {
        const char *s;
        size_t n;
    } texts[] = {
        TEXT("hello there, the caf\xc3\xa9 costs \xe2\x82\xac"
             "5"),
        TEXT("def main():\n    return 42  # it's done, we'll see\n\n\n"),
        TEXT("bad \xff\xfe bytes \xc3 cut \xe2\x82 and \xed\xa0\x80 surrogate \xf4\x90\x80\x80 high"),
        TEXT("<|endoftext|> 2024-01-02 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \t\r\n  x"),
        TEXT("\xc0\xaf overlong \xe0\x80\xaf and \x00 nul"),
    };
#undef TEXT
    int bad = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "text_%zu", i);
        bad |= put("tokenize", name, texts[i].s, texts[i].n);
        if (i < 3) bad |= bpe_seed(name, texts[i].s, texts[i].n);
    }
    return bad || damage("bpe", "text_0");
}

/* A run's event log: three steps of a few scalars each, then a step's MoE loads. */
static int tb_seeds(void) {
    char dir[] = "/tmp/cetus_tb_seed_XXXXXX", path[1200], *text;
    if (!mkdtemp(dir)) return fail("mkdtemp");
    ct_tb_events *tb;
    if (ct_tb_open(&tb, dir, 1) != CT_OK || !tb) return fail("ct_tb_open");
    static const char *tags[] = {"train/loss", "train/lr", "val/loss", "moe/layer1/load/0",
                                 "moe/layer1/load/1"};
    for (int step = 1; step <= 4; step++)
        for (int i = step < 4 ? 0 : 3; i < (step < 4 ? 3 : 5); i++)
            if (ct_tb_scalar(tb, step, tags[i], 1.0 / (step + i)) != CT_OK) return fail("ct_tb_scalar");
    snprintf(path, sizeof path, "%s", ct_tb_path(tb));
    ct_tb_close(tb);
    size_t n;
    if (ct_read_file(path, &text, &n) != CT_OK) return fail(path);
    remove(path);
    rmdir(dir);
    int bad = put("tb_events", "log", text, n);
    ct_free(text);
    return bad || with_mode("tb_events", "log");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tool_fuzz_seeds OUTDIR\n");
        return 2;
    }
    out_root = argv[1];
    int bad = config_seeds() || safetensors_seeds() || trainer_seeds() || shard_seeds();
    bad = bad || scene_seeds() || image_seeds() || tokenizer_seeds() || tb_seeds();
    return bad;
}
