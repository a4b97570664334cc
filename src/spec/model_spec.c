/* model_spec.c: what a model configuration implies before any model exists: the checks of
 * its shape, which blocks are MoE and whose weights each block uses, the image grid and
 * the caption token ids, the pipeline stage plan by compute, and the real model a pseudo
 * model delinks into. Config arithmetic only: no parameters, no buffers, no communication,
 * so data loaders, the trainer and a planner can use it without building a model. */
#include "core/core.h"
#include "spec/model_spec.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

#define CT_CAPTION_GPT2_EOT 50256 /* GPT-2 <|endoftext|> */

ct_status ct_model_config_check(const ct_model_config *c) {
    if (c->n_layer < 1) return ct_fail(CT_EINVAL, "model.n_layer = %d: must be at least 1", c->n_layer);
    if (c->d_model < 1) return ct_fail(CT_EINVAL, "model.d_model = %d: must be at least 1", c->d_model);
    if (c->n_head < 1) return ct_fail(CT_EINVAL, "model.n_head = %d: must be at least 1", c->n_head);
    if (c->d_model % c->n_head != 0)
        return ct_fail(CT_EINVAL,
                       "model.d_model = %d is not divisible by model.n_head = %d; "
                       "pick n_head among the divisors of d_model",
                       c->d_model, c->n_head);
    if (c->seq_len < 1) return ct_fail(CT_EINVAL, "model.seq_len = %d: must be at least 1", c->seq_len);
    if (c->vocab_size < 1)
        return ct_fail(CT_EINVAL, "model.vocab_size = %d: must be at least 1", c->vocab_size);
    if (c->moe_every < 0 || c->moe_every > c->n_layer)
        return ct_fail(CT_EINVAL, "model.moe_every = %d: allowed 0 (no MoE) to model.n_layer = %d",
                       c->moe_every, c->n_layer);
    if (c->moe_every > 0) CT_TRY(ct_moe_config_check(&c->moe, c->d_model));
    const ct_image_config *im = &c->image;
    if (im->patch < 0) return ct_fail(CT_EINVAL, "image.patch = %d: must be >= 0 (0: text only)", im->patch);
    if (im->patch > 0 &&
        (im->height < im->patch || im->width < im->patch || im->height % im->patch || im->width % im->patch))
        return ct_fail(CT_EINVAL,
                       "image.height x image.width = %d x %d is not a grid of image.patch = %d pixel "
                       "patches; use multiples of %d",
                       im->height, im->width, im->patch, im->patch);
    if (im->patch > 0 && ct_model_image_patches(c) >= c->seq_len)
        return ct_fail(CT_EINVAL,
                       "the image's %d patches leave no room for text in model.seq_len = %d; raise "
                       "model.seq_len or image.patch",
                       ct_model_image_patches(c), c->seq_len);
    if (c->share_layers < CT_SHARE_ALL || c->share_layers > c->n_layer)
        return ct_fail(CT_EINVAL,
                       "model.share_layers = %d: allowed none (0), a group size up to model.n_layer = %d, "
                       "or all",
                       c->share_layers, c->n_layer);
    return CT_OK;
}

int ct_model_layer_is_moe(const ct_model_config *c, int l) {
    return c->moe_every > 0 && (l + 1) % c->moe_every == 0;
}

/* Relative training cost per token of block l (forward + backward matrix products and
 * attention at the model's sequence length) and of the head (the vocabulary projection). */
static double block_cost(const ct_model_config *c, int l) {
    double C = c->d_model, moe_active = C * c->moe.n_experts + (double)c->moe.top_k * 2.0 * C * c->moe.d_hidden;
    double params = 4.0 * C * C + (ct_model_layer_is_moe(c, l) ? moe_active : 8.0 * C * C);
    return 6.0 * params + 12.0 * (double)c->seq_len * C;
}

static double head_cost(const ct_model_config *c) { return 6.0 * (double)c->d_model * c->vocab_size; }

ct_status ct_model_plan_stages(const ct_model_config *cfg, int stages, int *blocks) {
    int L = cfg->n_layer;
    if (stages < 1 || stages > L)
        return ct_fail(CT_EINVAL,
                       "parallel.pipeline = %d stages for model.n_layer = %d blocks: every stage "
                       "needs a block; use at most %d stages",
                       stages, L, L);
    /* best[s][l]: the least possible largest stage cost placing blocks [0, l) on stages [0, s) */
    size_t cells = (size_t)(stages + 1) * (size_t)(L + 1);
    double *best = ct_alloc(cells * sizeof *best, "the pipeline stage plan");
    double *prefix = best ? ct_calloc(((size_t)L + 1) * sizeof *prefix, "the pipeline stage plan") : NULL;
    int *cut = prefix ? ct_calloc(cells * sizeof *cut, "the pipeline stage plan") : NULL;
    if (!cut) {
        ct_free(best);
        ct_free(prefix);
        return CT_ENOMEM;
    }
#define AT(a, s, l) a[(size_t)(s) * (size_t)(L + 1) + (size_t)(l)]
    for (int l = 0; l < L; l++) prefix[l + 1] = prefix[l] + block_cost(cfg, l);
    for (int s = 0; s <= stages; s++)
        for (int l = 0; l <= L; l++) AT(best, s, l) = s == 0 && l == 0 ? 0.0 : HUGE_VAL;
    for (int s = 1; s <= stages; s++)
        for (int l = s; l <= L - (stages - s); l++)
            for (int k = s - 1; k < l; k++) { /* stage s-1 takes blocks [k, l) */
                double cost = prefix[l] - prefix[k] + (s == stages ? head_cost(cfg) : 0.0);
                double worst = fmax(AT(best, s - 1, k), cost);
                if (worst < AT(best, s, l)) {
                    AT(best, s, l) = worst;
                    AT(cut, s, l) = k;
                }
            }
    for (int s = stages, l = L; s > 0; s--) {
        int k = AT(cut, s, l);
        blocks[s - 1] = l - k;
        l = k;
    }
#undef AT
    ct_free(best);
    ct_free(prefix);
    ct_free(cut);
    return CT_OK;
}

int ct_model_image_patches(const ct_model_config *c) {
    return c->image.patch > 0 ? (c->image.height / c->image.patch) * (c->image.width / c->image.patch) : 0;
}

void ct_image_patches(const ct_model_config *c, const float *pixels, float *out) {
    size_t n = (size_t)c->image.height * c->image.width;
    ct_patches_cut(out, pixels, c->image.height, c->image.width, c->image.patch);
    for (size_t i = 0; i < n; i++) out[i] = 2.0f * out[i] - 1.0f;
}

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
        return ct_fail(CT_EINVAL,
                       "the model does not share weights between blocks (model.share_layers = %d): "
                       "there is nothing to delink",
                       c->share_layers);
    if (layers < 0) return ct_fail(CT_EINVAL, "delinking into %d layers: must be >= 1", layers);
    if (layers == 0) layers = L;
    if (layers < groups)
        return ct_fail(
            CT_EINVAL,
            "delinking into %d layers: the pseudo model has %d groups of shared weights "
            "(model.share_layers = %d over %d blocks); the real model needs at least one layer per group",
            layers, groups, c->share_layers, L);
    *out = *c;
    out->n_layer = layers;
    out->share_layers = 0;
    CT_TRY(ct_model_config_check(out));
    for (int l = 0; l < layers; l++)
        if (ct_model_delink_source(c, layers, l) < 0)
            return ct_fail(
                CT_EINVAL,
                "delinking into %d layers: real block %d is %s but the pseudo group it maps "
                "to has no such block; pick a depth whose MoE blocks (model.moe_every = %d) line up with "
                "the groups'",
                layers, l, ct_model_layer_is_moe(out, l) ? "an MoE block" : "dense", c->moe_every);
    return CT_OK;
}

int32_t ct_caption_eot(const ct_model_config *c) {
    return c->vocab_size > CT_CAPTION_GPT2_EOT ? CT_CAPTION_GPT2_EOT : c->vocab_size - 1;
}

int ct_caption_max_tokens(const ct_model_config *c) {
    int np = ct_model_image_patches(c);
    return np > 0 && c->seq_len > np + 1 ? c->seq_len - np - 1 : 0;
}

static const char *const routing_names[] = {"top1", "top2", "topk", "prototype"};

static ct_status check_counts(const ct_moe_config *c) {
    if (c->top_k < 1)
        return ct_fail(CT_EINVAL,
                       "moe.top_k=%d: must be >= 1 (experts per token; for "
                       "moe.routing=prototype the number of expert groups)",
                       c->top_k);
    if (c->n_experts < c->top_k)
        return ct_fail(CT_EINVAL,
                       "moe.n_experts=%d is smaller than moe.top_k=%d: a token needs "
                       "top_k distinct experts; use moe.n_experts >= %d or moe.top_k <= %d",
                       c->n_experts, c->top_k, c->top_k, c->n_experts < 1 ? 1 : c->n_experts);
    if (c->routing == CT_MOE_TOP1 && c->top_k != 1)
        return ct_fail(CT_EINVAL,
                       "moe.top_k=%d does not fit moe.routing=top1 (Switch), which "
                       "routes to 1 expert: set moe.top_k=1 or moe.routing=topk",
                       c->top_k);
    if (c->routing == CT_MOE_TOP2 && c->top_k != 2)
        return ct_fail(CT_EINVAL,
                       "moe.top_k=%d does not fit moe.routing=top2 (GShard), which "
                       "routes to 2 experts: set moe.top_k=2 or moe.routing=topk",
                       c->top_k);
    if (c->routing == CT_MOE_PROTOTYPE && c->n_experts % c->top_k != 0) {
        char fits[160] = "";
        size_t len = 0;
        for (int d = 1; d <= c->n_experts && len + 12 < sizeof fits; d++)
            if (c->n_experts % d == 0)
                len += (size_t)snprintf(fits + len, sizeof fits - len, "%s%d", len ? ", " : "", d);
        return ct_fail(CT_EINVAL,
                       "moe.top_k=%d prototypes do not divide moe.n_experts=%d into "
                       "equal groups (moe.routing=prototype): use a moe.top_k from {%s}",
                       c->top_k, c->n_experts, fits);
    }
    return CT_OK;
}

static ct_status check_nonneg(const char *key, float v, const char *typical) {
    if (!(v >= 0.0f) || isinf(v))
        return ct_fail(CT_EINVAL, "%s=%g: must be a finite number >= 0 (%s)", key, (double)v, typical);
    return CT_OK;
}

const char *ct_moe_routing_name(ct_moe_routing r) { return (unsigned)r < 4 ? routing_names[r] : "?"; }

ct_status ct_moe_routing_parse(const char *name, ct_moe_routing *out) {
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, routing_names[i]) == 0) {
            *out = (ct_moe_routing)i;
            return CT_OK;
        }
    return ct_fail(CT_EINVAL,
                   "moe.routing=\"%s\": expected one of top1 (Switch), top2 (GShard), topk "
                   "(gates renormalised over moe.top_k), prototype (moe.top_k groups, top-1 each)",
                   name ? name : "(null)");
}

int ct_moe_capacity(const ct_moe_config *c, int N) {
    if (c->dropless) return N;
    double cap = ceil((double)c->capacity_factor * N * c->top_k / c->n_experts);
    return cap > N ? N : (int)cap; /* an expert never gets more than N assignments */
}

int ct_moe_rows_max(const ct_moe_config *c, int N) {
    size_t all = (size_t)N * c->top_k, capped = (size_t)c->n_experts * ct_moe_capacity(c, N);
    return (int)(all < capped ? all : capped);
}

ct_status ct_moe_config_check(const ct_moe_config *c, int d_model) {
    if ((unsigned)c->routing > CT_MOE_PROTOTYPE)
        return ct_fail(CT_EINVAL, "moe.routing=%d: expected top1, top2, topk or prototype", (int)c->routing);
    if (d_model < 1) return ct_fail(CT_EINVAL, "model.d_model=%d: must be >= 1", d_model);
    CT_TRY(check_counts(c));
    if (c->d_hidden < 1)
        return ct_fail(CT_EINVAL,
                       "moe.d_hidden=%d: each expert's hidden size must be >= 1 "
                       "(typically 4 * model.d_model = %d)",
                       c->d_hidden, 4 * d_model);
    if (!c->dropless && (!(c->capacity_factor > 0.0f) || isinf(c->capacity_factor)))
        return ct_fail(CT_EINVAL,
                       "moe.capacity_factor=%g: must be a finite number > 0 (e.g. "
                       "1.25; capacity per expert = ceil(factor * tokens * top_k / n_experts)), "
                       "or set moe.dropless=true",
                       (double)c->capacity_factor);
    CT_TRY(check_nonneg("moe.aux_coef", c->aux_coef, "typical 0.01; 0 turns the loss off"));
    CT_TRY(check_nonneg("moe.z_coef", c->z_coef, "typical 0.001; 0 turns the loss off"));
    CT_TRY(check_nonneg("moe.router_noise", c->router_noise,
                        "std of the Gaussian noise on router logits; 0 turns it off"));
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
