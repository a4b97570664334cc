/* loader.h: batches of token windows from the shards `cetus prepare` wrote.
 * All DIR/<split>_*.bin shards (sorted by name) are memory-mapped, validated and viewed as
 * one token stream of N tokens, cut into W = (N - 1) / T windows of T + 1 tokens at stride
 * T (window w = tokens [w*T, w*T + T]). A window gives one batch row: inputs = its first T
 * tokens, targets = its last T. Each epoch visits every window once, in a permutation
 * derived from (seed, epoch) when shuffling, in order otherwise; batches run on across
 * epoch ends. The position (epoch, index of the next window in that epoch's order) is all
 * the state: restoring it continues bit-identically. */
#ifndef CT_LOADER_H
#define CT_LOADER_H

#include "core/core.h"

typedef struct ct_loader ct_loader;

typedef struct ct_loader_pos {
    uint64_t epoch;
    uint64_t index; /* next window of this epoch's order, in [0, W) */
} ct_loader_pos;

/* split is "train" or "val"; B rows of T tokens per batch; shuffle != 0 permutes windows.
 * Errors name the directory: no shards, a bad shard, shards of different vocabularies, or
 * fewer than T + 1 tokens in all. */
ct_status ct_loader_open(ct_loader **out, const char *dir, const char *split, int B, int T, uint64_t seed,
                         int shuffle);
void ct_loader_close(ct_loader *l);

/* Fills the global batch: inputs, targets [B, T]; advances the position by B windows. */
ct_status ct_loader_next(ct_loader *l, int32_t *inputs, int32_t *targets);
/* Data parallelism: fills only rows [row0, row0 + nrows) of the global batch into
 * inputs, targets [nrows, T] (this rank's slice), yet advances the position by the whole
 * global batch of B windows, so all ranks stay in step. */
ct_status ct_loader_next_rows(ct_loader *l, int row0, int nrows, int32_t *inputs, int32_t *targets);

/* 1 if a file name is one of split's shards: "<split>_<digits>.bin". */
int ct_loader_is_shard_name(const char *name, const char *split);

ct_loader_pos ct_loader_get_pos(const ct_loader *l);
/* Fails (CT_EINVAL, naming the value) if pos.index >= the number of windows. */
ct_status ct_loader_set_pos(ct_loader *l, ct_loader_pos pos);
void ct_loader_reset(ct_loader *l); /* back to epoch 0, index 0 */
/* Evaluation: from now on the loader visits n windows spread evenly over the whole split,
 * k-th window (k in [0, n)) = floor((k W + floor(W / 2)) / n), i.e. the middle of the k-th of n
 * equal parts, then starts over (no epochs of its own); n is capped at W; n = 0 goes back to
 * visiting every window. Resets the position. Refused for a shuffling loader. A fixed set
 * that samples the whole split, where the first n windows would sample only its start. */
ct_status ct_loader_spread(ct_loader *l, uint64_t n);

uint64_t ct_loader_num_windows(const ct_loader *l);
/* The order of epoch `epoch`: a Fisher-Yates shuffle of [0, n) into perm from an RNG seeded
 * by a hash of (seed, epoch); every loader draws its epochs this way. */
void ct_epoch_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint64_t epoch);
uint64_t ct_loader_num_tokens(const ct_loader *l);
int ct_loader_vocab_size(const ct_loader *l);
/* Fails (CT_EINVAL) naming the first shard whose vocabulary is larger than a model's
 * vocab_size: its tokens may lie past the model's embedding rows. */
ct_status ct_loader_check_vocab(const ct_loader *l, int vocab_size);

#endif /* CT_LOADER_H */
