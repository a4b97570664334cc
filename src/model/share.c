/* share.c: which block's weights each block uses under model.share_layers, and delinking
 * (Pseudo-to-Real): the real model's config, the pseudo block each real block copies, and
 * the copy itself for an in-memory model. */
#include "core/core.h"
#include "model/gpt_internal.h"
#include "model/share.h"
#include <stdio.h>
#include <string.h>

int ct_model_share_owner(const ct_model_config *c, int l) {
    int g = c->share_layers == CT_SHARE_ALL ? c->n_layer : c->share_layers;
    if (g <= 1) return l;
    int moe = ct_model_layer_is_moe(c, l);
    for (int k = l - l % g; k < l; k++)
        if (ct_model_layer_is_moe(c, k) == moe) return k;
    return l;
}

int ct_model_unique_blocks(const ct_model_config *c) {
    int n = 0;
    for (int l = 0; l < c->n_layer; l++) n += ct_model_share_owner(c, l) == l;
    return n;
}

static int group_size(const ct_model_config *c) {
    return c->share_layers == CT_SHARE_ALL ? c->n_layer : c->share_layers > 1 ? c->share_layers : 1;
}

/* Real block l of `layers` takes a block of the kind real block l has (the MoE placement
 * rule, model.moe_every, is the pseudo model's) from pseudo group g: l's own group at the
 * same depth, else groups spread evenly over the real blocks. -1 if that group has none. */
int ct_model_delink_source(const ct_model_config *p, int layers, int l) {
    int L = p->n_layer, g = group_size(p), groups = (L + g - 1) / g;
    if (layers == 0) layers = L;
    int group = layers == L ? l / g : (int)((long long)l * groups / layers);
    ct_model_config real = *p;
    real.n_layer = layers;
    int moe = ct_model_layer_is_moe(&real, l);
    for (int k = group * g; k < L && k < group * g + g; k++)
        if (ct_model_layer_is_moe(p, k) == moe) return ct_model_share_owner(p, k);
    return -1;
}

ct_status ct_model_delink_config(const ct_model_config *c, int layers, ct_model_config *out) {
    CT_TRY(ct_model_config_check(c));
    int L = c->n_layer, g = group_size(c), groups = (L + g - 1) / g;
    if (c->share_layers == 0 || ct_model_unique_blocks(c) == L)
        return ct_fail(CT_EINVAL, "the model does not share weights between blocks (model.share_layers = %d): "
                       "there is nothing to delink", c->share_layers);
    if (layers < 0) return ct_fail(CT_EINVAL, "delinking into %d layers: must be >= 1", layers);
    if (layers == 0) layers = L;
    if (layers < groups)
        return ct_fail(CT_EINVAL, "delinking into %d layers: the pseudo model has %d groups of shared weights "
                       "(model.share_layers = %d over %d blocks); the real model needs at least one layer per group",
                       layers, groups, c->share_layers, L);
    *out = *c;
    out->n_layer = layers;
    out->share_layers = 0;
    CT_TRY(ct_model_config_check(out));
    for (int l = 0; l < layers; l++)
        if (ct_model_delink_source(c, layers, l) < 0)
            return ct_fail(CT_EINVAL, "delinking into %d layers: real block %d is %s but the pseudo group it maps "
                           "to has no such block; pick a depth whose MoE blocks (model.moe_every = %d) line up with "
                           "the groups'", layers, l, ct_model_layer_is_moe(out, l) ? "an MoE block" : "dense",
                           c->moe_every);
    return CT_OK;
}

ct_status ct_delink_source_name(const ct_model_config *pseudo, int layers, const char *real_name, char *out,
                                size_t cap) {
    int l, at;
    if (sscanf(real_name, "h.%d.%n", &l, &at) != 1) {
        snprintf(out, cap, "%s", real_name);
        return CT_OK;
    }
    int source = ct_model_delink_source(pseudo, layers, l);
    if (source < 0) return ct_fail(CT_EINVAL, "delinking: real block %d has no source block", l);
    snprintf(out, cap, "h.%d.%s", source, real_name + at);
    return CT_OK;
}

ct_status ct_model_delink(ct_model **out, const ct_model *pseudo, int layers) {
    const ct_model_config *pc = ct_model_get_config(pseudo);
    if (ct_model_stages(pseudo) > 1 || ct_model_tensor_ranks(pseudo) > 1 || ct_model_expert_ranks(pseudo) > 1)
        return ct_fail(CT_EINVAL, "ct_model_delink takes a one-process model; delink a parallel run through its "
                       "checkpoint (ct_delink_checkpoint or `cetus delink`)");
    ct_model_config rc;
    CT_TRY(ct_model_delink_config(pc, layers, &rc));
    ct_model *real;
    CT_TRY(ct_model_create(&real, &rc, 0));
    ct_status s = CT_OK;
    const float *from = ct_model_params((ct_model *)pseudo);
    for (size_t i = 0; s == CT_OK && i < ct_model_num_tensors(real); i++) {
        const ct_tensor_info *t = ct_model_tensor(real, i), *src;
        char name[96];
        s = ct_delink_source_name(pc, rc.n_layer, t->name, name, sizeof name);
        if (s == CT_OK && !(src = ct_model_find_tensor(pseudo, name)))
            s = ct_fail(CT_EINVAL, "delinking: the pseudo model has no tensor %s", name);
        if (s == CT_OK) memcpy(ct_model_params(real) + t->offset, from + src->offset, t->numel * sizeof(float));
    }
    if (s != CT_OK) { ct_model_free(real); return s; }
    *out = real;
    return CT_OK;
}
