/* rng.c: xoshiro256** with splitmix64 seeding: fast, reproducible, four words of state. */
#include "core.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ct_rng_seed(ct_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ct_rng_u64(ct_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t ct_rng_below(ct_rng *r, uint64_t n) {
    CT_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* rejection keeps it unbiased */
    uint64_t x;
    do x = ct_rng_u64(r);
    while (x >= limit);
    return x % n;
}

float ct_rng_uniform(ct_rng *r) { return (float)(ct_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float ct_rng_normal(ct_rng *r) {
    double u1 = ((double)(ct_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(ct_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
