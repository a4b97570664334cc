/* prepare.h: turns a text corpus into token shards for training (`cetus prepare`).
 * Inputs are files or directories; directories are walked recursively in sorted order
 * (hidden entries and symlinked directories skipped) for *.txt, *.rst and *.md files
 * (so *.rst.txt too). Each file is one document; every document is preceded by EOT (GPT-2's 50256),
 * so documents are separated by it and generation can start from EOT. Documents are split
 * into train and validation deterministically: the round(val_fraction * n) documents (at
 * least 1, at most n - 1) with the smallest XXH64 hash of their path relative to the input
 * are validation. Writes OUT/train_000.bin..., OUT/val_000.bin... (see shard.h), removes
 * stale shards of an earlier run, and writes OUT/meta.json last; meta.json records the
 * tokenizer (name, identity hash, vocabulary size, EOT, and with --vocab-size the file
 * tokenizer.json written beside the shards). While it runs OUT holds
 * CT_UNFINISHED_MARKER (core.h), so a killed run's mix of new and old shards is refused. */
#ifndef CT_PREPARE_H
#define CT_PREPARE_H

#include "core/core.h"
#include "data/tokenizer.h"

#define CT_PREPARE_DEFAULT_INPUT "/usr/share/doc/python3.11/html/_sources"
#define CT_PREPARE_DEFAULT_OUT "data/pydocs"
#define CT_PREPARE_DEFAULT_VAL_FRACTION 0.05
#define CT_PREPARE_DEFAULT_SHARD_TOKENS 100000000ULL
#define CT_PREPARE_TOKENIZER_FILE "tokenizer.json" /* beside the shards, with --vocab-size */

typedef struct ct_prepare_opts {
    const char *const *inputs; /* files or directories */
    int n_inputs;
    const char *out_dir;
    double val_fraction;    /* in (0, 1) */
    uint64_t shard_tokens;  /* tokens per shard file, >= 1 */
    int progress;           /* 1: progress lines on stderr */
    int squeeze_whitespace; /* 1: runs of spaces/tabs -> one space, no trailing spaces,
                                 * at most one blank line (indentation-heavy markup otherwise
                                 * fills a quarter of the tokens with spaces) */
    int vocab_size;         /* > 0: train a byte-level BPE of this size on the training
                                 * documents (bpe_train.h), write OUT/tokenizer.json and
                                 * tokenize with it instead of the tokenizer passed in */
} ct_prepare_opts;

typedef struct ct_prepare_split {
    uint64_t documents, tokens, bytes;
    int shards;
} ct_prepare_split;

typedef struct ct_prepare_stats {
    ct_prepare_split train, val;
    int vocab_size;           /* of the tokenizer used */
    double bpe_count_mbps;    /* with vocab_size: the trainer's counting rate, MB/s */
    double bpe_merge_secs;    /* and its merge loop (and writing tokenizer.json), seconds */
    double train_entropy;     /* unigram entropy of the training tokens, nats */
    double val_cross_entropy; /* val tokens under the add-one smoothed train unigram, nats */
} ct_prepare_stats;

/* Runs the whole preparation with tokenizer tok; st may be NULL. An empty corpus, a missing
 * input or fewer than 2 documents is CT_EINVAL / CT_EIO naming the input. */
ct_status ct_prepare(const ct_prepare_opts *o, ct_tokenizer *tok, ct_prepare_stats *st);

#endif /* CT_PREPARE_H */
