/* policy.h: where each part of a model's state lives (offload placement). A model is cut
 * into units: the embeddings (unit 0), each block l (unit 1 + l) and the head (ln_f and the
 * head's copy of the tied embedding; unit n_layer + 1); each unit's tensors are one
 * contiguous range of the flat buffers. A placement names a tier per unit:
 *   "none" (all compute), "host", "disk", or a list of UNITS:TIER entries separated by
 *   commas, where UNITS is a block range "0-23", one block "7", "embed", "head" or "all",
 *   and TIER is compute, host or disk; later entries override earlier ones, e.g.
 *   "all:host,0-11:disk". */
#ifndef CT_OFFLOAD_POLICY_H
#define CT_OFFLOAD_POLICY_H

#include "cetus.h"
#include "core/store.h"

/* Parses text (the value of config key `key`) into units[n_layer + 2]; blocks_only: "host",
 * "disk" and "all" name the blocks, and the embeddings and head stay on the compute tier. */
ct_status ct_offload_parse(const char *text, const char *key, int n_layer, int blocks_only, ct_place *units);
/* The flat ranges of m's units (this pipeline stage's) whose place is not compute, in
 * order, into out [n_layer + 2]; returns how many. */
int ct_offload_ranges(const ct_model *m, const ct_place *units, ct_place_range *out);
/* The automatic policy: given the compute budget, the bytes the compute tier needs besides
 * the state (activations and buffers: fixed) and the share of the moments this rank holds
 * (1/D under ZeRO), picks the placement with the least offloaded that fits: first the
 * optimizer state (touched once per step), unit by unit, largest first; then the blocks'
 * parameters and gradients together, dense blocks before MoE blocks (more compute per byte
 * moved, so their transfers hide best behind compute). Offloaded state goes to `tier`.
 * Fills params, grads and opt [n_layer + 2] and the predicted compute peak; fails with what
 * would be needed when nothing fits. sharded_bytes != 0 (ZeRO 3): the weights and gradients
 * are held sharded, at most that many bytes at once, and stay where they are: only the
 * moments are placed. */
ct_status ct_offload_auto(const ct_model *m, size_t budget, size_t fixed, size_t sharded_bytes,
                          double moment_share, ct_place tier, ct_place *params, ct_place *grads, ct_place *opt,
                          size_t *predicted);
/* One line describing a placement, e.g. "moments of all units on host; weights and
 * gradients of blocks 0-9 on host". */
void ct_offload_describe(int n_layer, const ct_place *params, const ct_place *grads, const ct_place *opt,
                         char *buf, size_t cap);
/* "compute", "host", "disk". */
const char *ct_place_name(ct_place p);

#endif
