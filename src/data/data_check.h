/* data_check.h: checking a data directory that `cetus prepare` wrote (token shards
 * <split>_<digits>.bin, scene shards scenes_<split>.bin) shard by shard, with the same
 * validation the loaders apply when they open them, without loading anything else. */
#ifndef CT_DATA_CHECK_H
#define CT_DATA_CHECK_H

#include "core/core.h"

/* One shard's verdict. */
typedef struct ct_data_item {
    const char *path;
    ct_status status; /* CT_OK, or the error (its message is ct_last_error()) */
    char detail[192]; /* when ok: what it holds, e.g. "143418 tokens, vocab 50257, version 2" */
} ct_data_item;

typedef void (*ct_data_item_fn)(void *ctx, const ct_data_item *item);

/* Opens and closes every train/val token shard and scene shard in dir, in name order,
 * calling fn on each with its verdict; *count says how many items there were (0: none, not
 * a data directory). A directory an unfinished prepare left (CT_UNFINISHED_MARKER) is first
 * reported as one bad item, the marker's path. Fails only when dir cannot be listed. */
ct_status ct_data_check_dir(const char *dir, ct_data_item_fn fn, void *ctx, int *count);

#endif /* CT_DATA_CHECK_H */
