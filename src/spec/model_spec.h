/* model_spec.h: what a model configuration implies before any model exists (model_spec.c):
 * shape checks, block kinds and weight sharing, the image grid, caption token ids, the
 * compute-balanced pipeline plan and the shape of a delinked model. The config types,
 * ct_model_config_check and the image grid (ct_model_image_patches, ct_image_patches) are
 * declared in include/cetus.h for library users; this header declares the rest. */
#ifndef CT_MODEL_SPEC_H
#define CT_MODEL_SPEC_H

#include "cetus.h"
#include <stddef.h>
#include <stdint.h>

/* The block whose weights block l uses (l itself when it has its own). */
int ct_model_share_owner(const ct_model_config *cfg, int l);
/* Sets of block weights a config holds: n_layer without sharing. */
int ct_model_unique_blocks(const ct_model_config *cfg);

enum { CT_MAX_STAGES = 256 };
/* Splits cfg's blocks over `stages` stages, at least one block each, balanced by compute:
 * the largest stage cost (each block's FLOPs per token at model.seq_len, plus the head's on
 * the last stage) is as small as it can be. blocks[stages] gets each stage's block count. */
ct_status ct_model_plan_stages(const ct_model_config *cfg, int stages, int *blocks);
/* The real model's config for ct_model_delink(pseudo of config cfg, layers); checks it. */
ct_status ct_model_delink_config(const ct_model_config *cfg, int layers, ct_model_config *out);
/* The pseudo block (its weights' owner) real block l of that delinked model copies. */
int ct_model_delink_source(const ct_model_config *pseudo, int layers, int l);

/* Per-expert capacity for N tokens: ceil(capacity_factor * N * k / E) (for prototype routing
 * that is ceil(cf * N / (E/k)), the same number); N when dropless. */
int ct_moe_capacity(const ct_moe_config *c, int N);
/* Most packed expert rows a call over N tokens can produce: min(N*k, E*capacity). */
int ct_moe_rows_max(const ct_moe_config *c, int N);
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
