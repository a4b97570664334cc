/* machine.c: who this machine is (and whether it has AMX) and where its measurements are kept. The processor's
 * identity (name, family, model, logical CPUs) keys every cached measurement (the FLOP peak,
 * the GEMM library choice), so a cache copied from another machine is ignored; the cache files
 * live in $XDG_CACHE_HOME/cetus/ (else ~/.cache/cetus/, else /tmp/cetus-NAME) and are opened
 * under an exclusive lock so that the ranks of one node measure one at a time. */
#include "core.h"
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

void ct_machine_key(char *key, size_t cap) {
    char name[256] = "?", family[32] = "?", model[32] = "?", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *v = strchr(line, ':');
        if (!v) continue;
        v += v[1] == ' ' ? 2 : 1;
        v[strcspn(v, "\n")] = 0;
        if (!strncmp(line, "model name", 10) && name[0] == '?') snprintf(name, sizeof name, "%s", v);
        else if (!strncmp(line, "cpu family", 10) && family[0] == '?')
            snprintf(family, sizeof family, "%s", v);
        else if (!strncmp(line, "model\t", 6) && model[0] == '?')
            snprintf(model, sizeof model, "%s", v);
    }
    if (f) fclose(f);
    snprintf(key, cap, "%s|%s|%s|%ld", name, family, model, sysconf(_SC_NPROCESSORS_ONLN));
}

/* CPUID leaf 7: subleaf 0's EDX bit 22 is AMX-BF16, bit 24 AMX-TILE (read directly: not every
 * compiler's __builtin_cpu_supports knows them). */
int ct_cpu_has_amx_bf16(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (d >> 22 & 1u) && (d >> 24 & 1u);
}

static void cache_path(const char *name, char *path, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(path, cap, "%s/cetus/%s", xdg, name);
    else if (home && *home)
        snprintf(path, cap, "%s/.cache/cetus/%s", home, name);
    else
        snprintf(path, cap, "/tmp/cetus-%s", name);
}

FILE *ct_machine_cache_open(const char *name) {
    char path[1024], dir[1024];
    cache_path(name, path, sizeof path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    FILE *f = slash && ct_mkdirs(dir) == CT_OK ? fopen(path, "a+") : NULL;
    if (f) flock(fileno(f), LOCK_EX);
    return f;
}

void ct_machine_cache_close(FILE *f) {
    if (!f) return;
    fflush(f);
    flock(fileno(f), LOCK_UN);
    fclose(f);
}
