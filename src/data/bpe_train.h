/* bpe_train.h: trains a byte-level BPE on a stream of documents and writes it as a Hugging
 * Face tokenizer.json (what `cetus prepare --vocab-size` does; ct_tokenizer_load_json reads
 * it). Each document is pre-tokenized with GPT-2's regex (as Hugging Face's ByteLevel does;
 * invalid UTF-8 becomes U+FFFD first) and its words counted; then the merge loop starts from
 * the 256 byte tokens, ids in the order of their byte-level characters (GPT-2's first 256
 * ids), and repeatedly merges the most frequent adjacent pair. Ties go to the pair with the
 * smallest (left id, right id), the rule of Hugging Face's BpeTrainer, so a corpus trains to
 * the same file every time. Merged tokens take ids 256, 257, ... in merge order, and
 * "<|endoftext|>" is an added special token with the last id: vocabulary N = 256 bytes +
 * (N - 257) merges + EOT. When the corpus runs out of pairs first, the vocabulary is smaller
 * (stats say so). Pair counts are updated incrementally: a pair -> words index and a max-heap
 * with lazy invalidation, so a merge costs the words it touches, not the corpus. */
#ifndef CT_BPE_TRAIN_H
#define CT_BPE_TRAIN_H

#include "core/core.h"

#define CT_BPE_MIN_VOCAB 257

typedef struct ct_bpe_trainer ct_bpe_trainer;

typedef struct ct_bpe_stats {
    uint64_t documents, bytes, words, unique_words;
    int vocab, merges;             /* what was written (vocab = merges + 257) */
    double count_secs, merge_secs; /* pre-tokenizing and counting; the merge loop + writing */
} ct_bpe_stats;

/* CT_OK for a vocabulary size in [CT_BPE_MIN_VOCAB, CT_TOKENIZER_MAX_VOCAB], else CT_EINVAL
 * saying why. */
ct_status ct_bpe_check_vocab(long long vocab_size);
/* vocab_size: checked as above. */
ct_status ct_bpe_trainer_create(ct_bpe_trainer **out, int vocab_size);
/* Counts the words of one document. */
ct_status ct_bpe_trainer_feed(ct_bpe_trainer *t, const char *text, size_t len);
/* Runs the merges and writes the tokenizer.json to path atomically; st may be NULL. */
ct_status ct_bpe_trainer_finish(ct_bpe_trainer *t, const char *path, ct_bpe_stats *st);
void ct_bpe_trainer_free(ct_bpe_trainer *t);

#endif /* CT_BPE_TRAIN_H */
