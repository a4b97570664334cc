/* prepare.h: turns a text corpus into token shards for training (`cetus prepare`).
 * The documents come from the stream of docs.h: text files (each one document), JSONL files
 * (each line one document, its string field text_field), gzip-compressed or not, directories
 * walked for them, standard input; docs.h says how they are found, read and split into train
 * and validation, deterministically. Every document is preceded by EOT (GPT-2's 50256, or the
 * trained tokenizer's last id), so documents are separated by it and generation can start
 * from EOT. With vocab_size, a byte-level BPE of that size is first trained on the training
 * documents (a pass of its own over the stream; bpe_train.h) and written as
 * OUT/tokenizer.json (Hugging Face's format) with the shards; without it, an earlier run's
 * tokenizer.json is removed. meta.json records the tokenizer: name, identity hash,
 * vocabulary size, and "file" when it was trained here. Documents are tokenized in batches
 * on n_toks threads (one tokenizer each) and written in input order: the output is the same
 * for any thread count. Shards go first to OUT/CT_PREPARE_STAGING_DIR; only when every input
 * is read and tokenized are they moved to OUT/train_000.bin..., OUT/val_000.bin... (see
 * shard.h), stale shards of an earlier run removed, and OUT/meta.json written last. A refused
 * run (a malformed JSONL line, a split left empty, a damaged gzip stream) leaves OUT as it
 * was. While the shards move OUT holds CT_UNFINISHED_MARKER (core.h), so a run killed then is
 * refused by the loaders; a run killed earlier leaves only the staging directory, which the
 * next run empties. */
#ifndef CT_PREPARE_H
#define CT_PREPARE_H

#include "core/core.h"
#include "data/docs.h"
#include "data/tokenizer.h"

#define CT_PREPARE_DEFAULT_INPUT "/usr/share/doc/python3.11/html/_sources"
#define CT_PREPARE_DEFAULT_OUT "data/pydocs"
#define CT_PREPARE_DEFAULT_VAL_FRACTION 0.05
#define CT_PREPARE_DEFAULT_SHARD_TOKENS 100000000ULL
#define CT_PREPARE_STAGING_DIR ".prepare-staging"
#define CT_PREPARE_MAX_THREADS 1024                /* --threads at most */
#define CT_PREPARE_TOKENIZER_FILE "tokenizer.json" /* beside the shards, with vocab_size */

typedef struct ct_prepare_opts {
    const char *const *inputs; /* files, directories, "-" for standard input */
    int n_inputs;
    const char *out_dir;
    double val_fraction;    /* in (0, 1) */
    uint64_t shard_tokens;  /* tokens per shard file, >= 1 */
    int progress;           /* 1: progress lines on stderr */
    int squeeze_whitespace; /* 1: runs of spaces/tabs -> one space, no trailing spaces,
                                 * at most one blank line (indentation-heavy markup otherwise
                                 * fills a quarter of the tokens with spaces) */
    ct_docs_format format;  /* CT_DOCS_AUTO (0: by name), _TEXT, _JSONL */
    const char *text_field; /* JSONL: the field holding a document's text; NULL: "text" */
    int skip_bad;           /* 1: skip malformed JSONL lines (counted); 0: refuse them */
    int vocab_size;         /* > 0: train a byte-level BPE of this size and tokenize with it
                             * instead of toks (not with standard input: read twice) */
} ct_prepare_opts;

typedef struct ct_prepare_split {
    uint64_t documents, tokens, bytes;
    int shards;
} ct_prepare_split;

typedef struct ct_prepare_stats {
    ct_prepare_split train, val;
    double train_entropy;     /* unigram entropy of the training tokens, nats */
    double val_cross_entropy; /* val tokens under the add-one smoothed train unigram, nats */
    uint64_t skipped;         /* malformed JSONL lines skipped (skip_bad) */
    int vocab_size;           /* of the tokenizer used */
    double bpe_count_mbps;    /* with vocab_size: the trainer's counting rate, MB/s */
    double bpe_merge_secs;    /* and its merge loop (and writing tokenizer.json), seconds */
} ct_prepare_stats;

/* Runs the whole preparation on n_toks threads, toks[i] the tokenizer of thread i (all loaded
 * from the same files); st may be NULL. An empty corpus, a missing input, too few documents
 * for the split or a malformed line is CT_EINVAL / CT_EIO naming the input (and its line). */
ct_status ct_prepare(const ct_prepare_opts *o, ct_tokenizer *const *toks, int n_toks, ct_prepare_stats *st);

#endif /* CT_PREPARE_H */
