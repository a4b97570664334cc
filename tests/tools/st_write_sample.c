/* st_write_sample.c: a small program for tests/e2e/t_safetensors_python.sh.
 *   st_write_sample write OUTDIR   writes OUTDIR/sample.safetensors (known values, a scalar,
 *                                  a 4-D tensor, special floats), OUTDIR/pad_<0..7>.safetensors
 *                                  (headers of every length mod 8) and a checkpoint OUTDIR/ckpt
 *   st_write_sample dump FILE      reads FILE and prints, per tensor in data order,
 *                                  "name|ndim|d0,d1,...|bits bits ..." (float32 bits in hex)
 * Values are sample_value(k, i) = ((i % 97) - 48) / 8 + k, exact in float32; the Python
 * side recomputes them. */
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include <string.h>

static float sample_value(int k, size_t i) { return (float)((int)(i % 97) - 48) * 0.125f + (float)k; }

static float *filled(int k, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = sample_value(k, i);
    return p;
}

static int fail(void) {
    fprintf(stderr, "st_write_sample: %s\n", ct_last_error());
    return 1;
}

static int write_sample(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/sample.safetensors", dir);
    static const uint32_t special_bits[8] = {0x00000000, 0x80000000, 0x7f800000, 0xff800000,
                                             0x7fc00000, 0x00000001, 0x7f7fffff, 0x3eaaaaab};
    float special[8];
    memcpy(special, special_bits, sizeof special);
    float *a = filled(0, 24 * 5), *b = filled(1, 7), *c = filled(2, 120), *s = filled(3, 1);
    ct_st_tensor t[] = {{"wte.weight", 2, {24, 5}, a},
                        {"h.0.attn.c_attn.bias", 1, {7}, b},
                        {"patch.proj.weight", 4, {2, 3, 4, 5}, c},
                        {"scale", 0, {0}, s},
                        {"special", 1, {8}, special}};
    const char *meta[] = {"format", "pt", "note", "written by st_write_sample", NULL};
    ct_status st = ct_safetensors_save(path, t, 5, meta);
    free(a);
    free(b);
    free(c);
    free(s);
    if (st != CT_OK) return fail();

    /* pad_<j>.safetensors: one tensor, metadata of growing length: every header residue */
    float one = 1.5f;
    char note[8] = "";
    for (int j = 0; j < 8; j++) {
        ct_st_tensor t1 = {"x", 1, {1}, &one};
        const char *m1[] = {"note", note, NULL};
        snprintf(path, sizeof path, "%s/pad_%d.safetensors", dir, j);
        if (ct_safetensors_save(path, &t1, 1, m1) != CT_OK) return fail();
        note[j] = 'x';
    }

    /* a checkpoint: two tensors over flat buffers, moments k = 10, 20 */
    ct_ckpt_tensor ct[] = {{"wte.weight", 2, {6, 4}, 0, 24}, {"ln_f.weight", 1, {4}, 24, 4}};
    float *p = filled(4, 28), *m = filled(10, 28), *v = filled(20, 28);
    ct_ckpt_view view = {
        .tensors = ct, .n_tensors = 2, .num_params = 28, .params = p, .adam_m = m, .adam_v = v};
    cJSON *state = cJSON_Parse("{\"step\": 5, \"rng\": \"00ff\"}");
    snprintf(path, sizeof path, "%s/ckpt", dir);
    st = ct_checkpoint_save(path, &view, state);
    cJSON_Delete(state);
    free(p);
    free(m);
    free(v);
    return st == CT_OK ? 0 : fail();
}

static int dump(const char *path) {
    ct_safetensors *st;
    if (ct_safetensors_open(&st, path) != CT_OK) return fail();
    for (size_t i = 0; i < ct_safetensors_count(st); i++) {
        int ndim;
        int64_t shape[4];
        const char *name = ct_safetensors_name(st, i, &ndim, shape);
        const float *x = ct_safetensors_find(st, name, NULL, NULL);
        size_t n = 1;
        printf("%s|%d|", name, ndim);
        for (int d = 0; d < ndim; d++) {
            printf("%s%lld", d ? "," : "", (long long)shape[d]);
            n *= (size_t)shape[d];
        }
        printf("|");
        for (size_t j = 0; j < n; j++) {
            uint32_t bits;
            memcpy(&bits, &x[j], 4);
            printf("%s%08x", j ? " " : "", bits);
        }
        printf("\n");
    }
    ct_safetensors_close(st);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "write") == 0) return write_sample(argv[2]);
    if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2]);
    fprintf(stderr, "usage: st_write_sample write OUTDIR | dump FILE\n");
    return 2;
}
