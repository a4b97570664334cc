/* share.h: cross-layer weight sharing (model.share_layers) and delinking a shared "pseudo"
 * model into the "real" one with independent blocks: which weights each block uses, and
 * which pseudo tensor each real tensor is copied from. The public half is in cetus.h. */
#ifndef CT_SHARE_H
#define CT_SHARE_H

#include "cetus.h"

/* The pseudo model's tensor name (into out) that the real model's tensor real_name takes
 * when the pseudo model of config pseudo is delinked into `layers` blocks: "h.<l>.X" becomes
 * "h.<source>.X", the rest keep their names. */
ct_status ct_delink_source_name(const ct_model_config *pseudo, int layers, const char *real_name, char *out,
                                size_t cap);

#endif
