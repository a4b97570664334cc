/* caption_loader.c: captioned scene batches for image-prefix models (see caption_loader.h). */
#include "data/caption_loader.h"
#include "data/scenes.h"
#include "spec/model_spec.h"
#include <stdio.h>
#include <string.h>

struct ct_caption_loader {
    ct_scene_shard shard;
    char path[1100];
    ct_model_config cfg;
    int B, T, Np, shuffle;
    int32_t eot;
    uint64_t seed, epoch, index;
    uint64_t *perm, perm_epoch;
    int perm_valid;
    uint64_t *last; /* [B]: the scenes of the last global batch */
    float *pixels;  /* [H * W] */
};

static ct_status check_fit(const ct_caption_loader *l) {
    const ct_model_config *c = &l->cfg;
    const ct_scene_shard *s = &l->shard;
    if (c->image.patch == 0)
        return ct_fail(CT_EINVAL, "%s: captioned scenes need a model with image input (image.patch > 0)",
                       l->path);
    if ((int)s->height != c->image.height || (int)s->width != c->image.width)
        return ct_fail(CT_EINVAL,
                       "%s holds %ux%u images but the model's canvas is image.height x image.width = "
                       "%dx%d",
                       l->path, s->height, s->width, c->image.height, c->image.width);
    if ((int)s->vocab_size > c->vocab_size)
        return ct_fail(CT_EINVAL, "%s holds tokens of a %u-token vocabulary but model.vocab_size = %d", l->path,
                       s->vocab_size, c->vocab_size);
    if (l->T > c->seq_len)
        return ct_fail(CT_EINVAL,
                       "%s: captions of up to %u tokens after the image's %d patches and BOS need %d "
                       "positions, more than model.seq_len = %d; raise model.seq_len",
                       l->path, s->max_tokens, l->Np, l->T, c->seq_len);
    return CT_OK;
}

ct_status ct_caption_loader_open(ct_caption_loader **out, const char *dir, const char *split,
                                 const ct_model_config *cfg, int B, uint64_t seed, int shuffle) {
    CT_TRY(ct_dir_check_finished(dir, "scene shards"));
    ct_caption_loader *l = ct_calloc(sizeof *l, "a caption loader");
    if (!l) return CT_ENOMEM;
    snprintf(l->path, sizeof l->path, "%s/scenes_%s.bin", dir, split);
    l->cfg = *cfg;
    l->B = B;
    l->seed = seed;
    l->shuffle = shuffle;
    l->Np = ct_model_image_patches(cfg);
    l->eot = ct_caption_eot(cfg);
    ct_status s = ct_scene_shard_open(&l->shard, l->path);
    if (s != CT_OK) {
        ct_free(l);
        return s;
    }
    l->T = l->Np + 1 + (int)l->shard.max_tokens;
    s = check_fit(l);
    if (s == CT_OK && !(l->last = ct_calloc((size_t)B * sizeof *l->last, "a caption loader"))) s = CT_ENOMEM;
    if (s == CT_OK && !(l->pixels = ct_alloc(l->shard.height * (size_t)l->shard.width * sizeof *l->pixels,
                                             "a caption loader")))
        s = CT_ENOMEM;
    if (s != CT_OK) {
        ct_caption_loader_close(l);
        return s;
    }
    *out = l;
    return CT_OK;
}

void ct_caption_loader_close(ct_caption_loader *l) {
    if (!l) return;
    ct_scene_shard_close(&l->shard);
    ct_free(l->perm);
    ct_free(l->last);
    ct_free(l->pixels);
    ct_free(l);
}

int ct_caption_loader_seq_len(const ct_caption_loader *l) { return l->T; }
uint64_t ct_caption_loader_count(const ct_caption_loader *l) { return l->shard.count; }

static ct_status scene_at(ct_caption_loader *l, uint64_t epoch, uint64_t index, uint64_t *scene) {
    if (!l->shuffle) {
        *scene = index;
        return CT_OK;
    }
    if (!l->perm && !(l->perm = ct_alloc(l->shard.count * sizeof *l->perm, "caption loader permutation")))
        return CT_ENOMEM;
    if (!l->perm_valid || l->perm_epoch != epoch) {
        ct_epoch_permutation(l->perm, l->shard.count, l->seed, epoch);
        l->perm_epoch = epoch;
        l->perm_valid = 1;
    }
    *scene = l->perm[index];
    return CT_OK;
}

/* One row: the scene's patches, then BOS, caption and padding; targets on the caption. */
static void fill_row(ct_caption_loader *l, uint64_t scene, float *patches, int32_t *tokens, int32_t *targets) {
    const uint8_t *px = ct_scene_shard_pixels(&l->shard, scene);
    size_t n_px = l->shard.height * (size_t)l->shard.width;
    for (size_t i = 0; i < n_px; i++) l->pixels[i] = (float)px[i] / 255.0f;
    ct_image_patches(&l->cfg, l->pixels, patches);
    int32_t cap[4096];
    int n = (int)ct_scene_shard_caption(&l->shard, scene, cap);
    for (int t = 0; t < l->T; t++) {
        int j = t - l->Np; /* caption index this position predicts */
        tokens[t] = t < l->Np ? 0 : j == 0 ? l->eot : j - 1 < n ? cap[j - 1] : l->eot;
        targets[t] = j < 0 || j > n ? -1 : j < n ? cap[j] : l->eot;
    }
}

ct_status ct_caption_loader_next_rows(ct_caption_loader *l, int row0, int nrows, float *patches,
                                      int32_t *tokens, int32_t *targets, int32_t *prefix) {
    if (row0 < 0 || nrows < 0 || row0 > l->B - nrows)
        return ct_fail(CT_EINVAL, "caption loader for %s: rows [%d, %d) are outside the batch of %d rows",
                       l->path, row0, row0 + nrows, l->B);
    size_t K = (size_t)l->cfg.image.patch * l->cfg.image.patch;
    for (int r = 0; r < l->B; r++) {
        CT_TRY(scene_at(l, l->epoch, l->index, &l->last[r]));
        if (r >= row0 && r < row0 + nrows) {
            size_t i = (size_t)(r - row0);
            fill_row(l, l->last[r], patches + i * (size_t)l->Np * K, tokens + i * (size_t)l->T,
                     targets + i * (size_t)l->T);
            prefix[i] = l->Np + 1;
        }
        if (++l->index == l->shard.count) {
            l->index = 0;
            l->epoch++;
        }
    }
    return CT_OK;
}

ct_loader_pos ct_caption_loader_get_pos(const ct_caption_loader *l) {
    return (ct_loader_pos){l->epoch, l->index};
}

ct_status ct_caption_loader_set_pos(ct_caption_loader *l, ct_loader_pos pos) {
    if (pos.index >= l->shard.count)
        return ct_fail(CT_EINVAL, "caption loader for %s: position %llu is past its %llu scenes", l->path,
                       (unsigned long long)pos.index, (unsigned long long)l->shard.count);
    l->epoch = pos.epoch;
    l->index = pos.index;
    return CT_OK;
}

void ct_caption_loader_reset(ct_caption_loader *l) { l->epoch = l->index = 0; }

uint64_t ct_caption_loader_batch_targets(const ct_caption_loader *l) {
    int32_t cap[4096];
    uint64_t n = 0;
    for (int r = 0; r < l->B; r++) n += ct_scene_shard_caption(&l->shard, l->last[r], cap) + 1;
    return n;
}

size_t ct_caption_loader_caption(const ct_caption_loader *l, int row, int32_t *tokens) {
    return ct_scene_shard_caption(&l->shard, l->last[row], tokens);
}
