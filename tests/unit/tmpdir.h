/* tmpdir.h: a scratch directory for Criterion tests that write files: make_tmpdir() creates
 * it from TMPDIR_TEMPLATE (a mkdtemp template the including test defines, e.g.
 * "/tmp/cetus_data_XXXXXX"); cleanup() removes it with everything in it. */
#ifndef CT_TEST_TMPDIR_H
#define CT_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s", TMPDIR_TEMPLATE);
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char sub[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        remove_tree(sub);
    }
    closedir(d);
    rmdir(path);
}

static void cleanup(void) { remove_tree(tmpdir); }

#endif
