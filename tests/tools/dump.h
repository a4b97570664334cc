/* dump.h: the tagged binary dump the reference tools write and the Python checks read
 * (tests/tools/dump_format.py): per entry u32 name length, name, u32 dtype (0 f32, 1 i32), u32 ndim,
 * u32 shape[ndim], then the values. Header-only: each tool sets dump_out first. */
#ifndef CT_TEST_DUMP_H
#define CT_TEST_DUMP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *dump_out;

static void put_u32(uint32_t v) {
    if (fwrite(&v, sizeof v, 1, dump_out) != 1) {
        perror("write");
        exit(1);
    }
}

static void put(const char *name, int dtype, int ndim, const int *shape, const void *data) {
    size_t n = 1;
    put_u32((uint32_t)strlen(name));
    if (fwrite(name, 1, strlen(name), dump_out) != strlen(name)) {
        perror("write");
        exit(1);
    }
    put_u32((uint32_t)dtype);
    put_u32((uint32_t)ndim);
    for (int i = 0; i < ndim; i++) {
        put_u32((uint32_t)shape[i]);
        n *= (size_t)shape[i];
    }
    if (n && fwrite(data, 4, n, dump_out) != n) {
        perror("write");
        exit(1);
    }
}

#endif
