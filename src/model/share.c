/* share.c: which block's weights each block uses under model.share_layers, and delinking
 * (Pseudo-to-Real): the real model's config, the pseudo block each real block copies, and
 * the copy itself for an in-memory model. */
#include "core/core.h"
#include "model/model.h"
#include "spec/model_spec.h"
#include <stdio.h>
#include <string.h>

ct_status ct_model_delink(ct_model **out, const ct_model *pseudo, int layers) {
    const ct_model_config *pc = ct_model_get_config(pseudo);
    if (ct_model_stages(pseudo) > 1 || ct_model_tensor_ranks(pseudo) > 1 || ct_model_expert_ranks(pseudo) > 1)
        return ct_fail(CT_EINVAL,
                       "ct_model_delink takes a one-process model; delink a parallel run through its "
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
    if (s != CT_OK) {
        ct_model_free(real);
        return s;
    }
    *out = real;
    return CT_OK;
}
