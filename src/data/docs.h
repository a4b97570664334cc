/* docs.h: the document stream of `cetus prepare`: every input (text files, JSONL files, either
 * gzip-compressed, directories of them, standard input) as one sequence of documents, each
 * with its text, its origin and its train/validation split. Inputs are read in blocks and
 * decompressed on the fly; no more than one document is held at a time.
 *
 * Formats. A text file is one document. A JSONL file holds one document per line: the string
 * field `text_field` (default "text") of the JSON object on that line, as Hugging Face
 * datasets, torchtitan and nanotron export them; lines of only whitespace are skipped, and a
 * malformed line (not JSON, not an object, the field missing or not a string) is refused as
 * "FILE:LINE: ..." or, with skip_bad, skipped and counted. A string is read up to its first
 * \u0000 escape, if any (cJSON keeps NUL-terminated strings). Gzip data is recognised by its
 * magic bytes, whatever the name, and a damaged or truncated gzip stream is refused. Format
 * CT_DOCS_AUTO goes by name: *.jsonl and *.jsonl.gz are JSONL, every other file text; "-"
 * (standard input) is text. CT_DOCS_TEXT / CT_DOCS_JSONL force the format of every input.
 * Directories are walked recursively in sorted order (hidden entries and symlinked directories
 * skipped) for *.txt, *.rst, *.md and *.jsonl files, each optionally ending in .gz (so
 * *.rst.txt too); a file named directly is read whatever its name.
 *
 * The split, deterministic and independent of the thread count. RELPATH is a file's path
 * relative to its input ("-" for standard input) without a final ".gz", so compressing a
 * file keeps its split:
 *   - whole-file documents (text files, standard input): their n are known when the stream
 *     opens; the round(val_fraction * n) with the smallest XXH64(RELPATH) are validation, at
 *     least 1 and at most n - 1 when n >= 2;
 *   - JSONL lines, streamed: a line is validation when XXH64("RELPATH:LINE") is below
 *     val_fraction * 2^64 (LINE counted from 1 over every line of the file).
 * Each split must end up with at least one document: the stream's last ct_docs_next refuses
 * it otherwise (CT_EINVAL naming the inputs and the counts). Without JSONL inputs, fewer than
 * 2 documents are refused when the stream opens. */
#ifndef CT_DOCS_H
#define CT_DOCS_H

#include "core/core.h"

typedef enum ct_docs_format { CT_DOCS_AUTO = 0, CT_DOCS_TEXT, CT_DOCS_JSONL } ct_docs_format;

#define CT_DOCS_DEFAULT_TEXT_FIELD "text"
#define CT_DOCS_STDIN "-"
/* With skip_bad and report, the first this many skipped lines are logged with their reason. */
#define CT_DOCS_SKIPS_SHOWN 10

typedef struct ct_docs_opts {
    const char *const *inputs; /* files, directories, "-" for standard input (at most once) */
    int n_inputs;
    ct_docs_format format;
    const char *text_field; /* NULL: CT_DOCS_DEFAULT_TEXT_FIELD */
    double val_fraction;    /* in (0, 1) */
    int skip_bad;           /* 1: malformed JSONL lines are skipped and counted; 0: refused */
    int report;             /* 1: log the first skipped lines to stderr */
} ct_docs_opts;

typedef struct ct_doc {
    char *text; /* [len] bytes and a NUL, owned by the stream until the next call; the
                         * caller may rewrite it in place (no longer than len) */
    size_t len;
    const char *origin; /* "PATH" or "PATH:LINE" (valid until the next call) */
    int val;            /* 1: validation split */
} ct_doc;

typedef struct ct_docs_counts {
    uint64_t files, jsonl_files; /* input files, of them JSONL (standard input counts as one) */
    uint64_t bytes_total;        /* the input files' sizes on disk (compressed); 0: unknown */
    uint64_t bytes_read;         /* of them consumed so far */
    uint64_t documents[2];       /* yielded so far: train, val */
    uint64_t skipped;            /* malformed JSONL lines skipped */
} ct_docs_counts;

typedef struct ct_docs ct_docs;

/* Lists the inputs (walking directories; nothing is read yet) and splits the whole-file
 * documents. A missing input or none at all is CT_EIO / CT_EINVAL naming it. */
ct_status ct_docs_open(ct_docs **out, const ct_docs_opts *o);
/* The next document into *doc and *got = 1, or *got = 0 at the end of the last input. */
ct_status ct_docs_next(ct_docs *d, ct_doc *doc, int *got);
void ct_docs_counts_get(const ct_docs *d, ct_docs_counts *c);
/* Names the inputs for messages: the one input, or "the inputs". */
const char *ct_docs_inputs_name(const ct_docs *d);
void ct_docs_close(ct_docs *d);

#endif /* CT_DOCS_H */
