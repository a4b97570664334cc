/* model_spec.h: what a model configuration implies before any model exists (model_spec.c):
 * shape checks, block kinds and weight sharing, the image grid, caption token ids, the
 * compute-balanced pipeline plan and the shape of a delinked model. The config types and
 * the calls a library user needs (ct_model_config_check, ct_model_share_owner, ...) are
 * declared in include/cetus.h; this header adds the internal ones. */
#ifndef CT_MODEL_SPEC_H
#define CT_MODEL_SPEC_H

#include "cetus.h"
#include <stddef.h>
#include <stdint.h>

/* "top1" | "top2" | "topk" | "prototype" -> *out; otherwise EINVAL naming moe.routing. */
ct_status ct_moe_routing_parse(const char *name, ct_moe_routing *out);
const char *ct_moe_routing_name(ct_moe_routing r);
/* Checks an MoE configuration for d_model channels; the message names the key and what fits. */
ct_status ct_moe_config_check(const ct_moe_config *c, int d_model);

/* 1 if block l has an MoE feed-forward. */
int ct_model_layer_is_moe(const ct_model_config *c, int l);

/* Captions (models with image input, image.patch > 0) use the training layout: positions
 * [0, Np) the image (Np = ct_model_image_patches), position Np the BOS token, then the
 * caption; caption token j is predicted at position Np + j and the end-of-text token after
 * the last one. The image and the BOS are attended bidirectionally (prefix Np + 1). */

/* The end-of-text id that starts and ends captions: 50256 when vocab_size > 50256 (GPT-2's
 * <|endoftext|>), otherwise vocab_size - 1. */
int32_t ct_caption_eot(const ct_model_config *cfg);
/* The longest caption that fits the context with its end-of-text target:
 * seq_len - Np - 1 (0 for a text-only model). */
int ct_caption_max_tokens(const ct_model_config *cfg);

/* The pseudo model's tensor name (into out) that the real model's tensor real_name takes
 * when the pseudo model of config pseudo is delinked into `layers` blocks: "h.<l>.X" becomes
 * "h.<source>.X", the rest keep their names. */
ct_status ct_delink_source_name(const ct_model_config *pseudo, int layers, const char *real_name, char *out,
                                size_t cap);

#endif
