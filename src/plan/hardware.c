/* hardware.c: the hardware file: reading it strictly (every key known, every number in range,
 * each refusal naming the file, the group and the key), writing it back in the same keys and
 * units, and the planner's look-ups: devices, the group of a device, and a product's GEMM rate
 * interpolated over the measured table. */
#include "plan/hardware.h"
#include "core/core.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#define HW_FILE_MAX (1 << 20) /* bytes a hardware file may have */
#define GIB 1073741824.0
#define GBPS 1e9
#define TFLOPS 1e12
#define GFLOPS 1e9
#define US 1e-6
#define NUMBER_MAX 1e15    /* any number of the file, in its unit */
#define COUNT_MAX 10000000 /* devices of a group */
#define DIM_MAX (1 << 24)  /* m, n, k of a GEMM entry */

/* A real-valued key of a group: the field it fills and the unit the file writes it in. */
typedef struct num_key {
    const char *key;
    size_t offset; /* of the double in ct_hw_group */
    double unit;
    int optional;
    const char *help;
} num_key;

static const num_key num_keys[] = {
    {"memory_gib", offsetof(ct_hw_group, memory_bytes), GIB, 0, "device memory in GiB"},
    {"host_memory_gib", offsetof(ct_hw_group, host_bytes), GIB, 0, "host memory per node in GiB"},
    {"matmul_tflops", offsetof(ct_hw_group, matmul_flops), TFLOPS, 0, "large-GEMM rate in TFLOP/s"},
    {"matmul_tflops_bf16", offsetof(ct_hw_group, matmul_bf16), TFLOPS, 1, "bf16 GEMM rate in TFLOP/s"},
    {"memory_gbps", offsetof(ct_hw_group, memory_bw), GBPS, 0, "device memory bandwidth in GB/s"},
    {"host_link_gbps", offsetof(ct_hw_group, host_bw), GBPS, 0, "device <-> host bandwidth in GB/s"},
    {"disk_read_gbps", offsetof(ct_hw_group, disk_read_bw), GBPS, 0, "disk read bandwidth per node in GB/s"},
    {"disk_write_gbps", offsetof(ct_hw_group, disk_write_bw), GBPS, 0, "disk write bandwidth per node in GB/s"},
    {"intra_gbps", offsetof(ct_hw_group, intra_bw), GBPS, 0, "bandwidth between devices of a node in GB/s"},
    {"intra_latency_us", offsetof(ct_hw_group, intra_latency), US, 0, "latency in a node in microseconds"},
    {"inter_gbps", offsetof(ct_hw_group, inter_bw), GBPS, 0, "bandwidth between nodes in GB/s"},
    {"inter_latency_us", offsetof(ct_hw_group, inter_latency), US, 0, "latency between nodes in microseconds"},
    {"process_mib", offsetof(ct_hw_group, base_rss), GIB / 1024.0, 1,
     "a rank's resident memory before any model (libraries, MPI) in MiB"},
    {"process_leader_mib", offsetof(ct_hw_group, leader_rss), GIB / 1024.0, 1,
     "rank 0's resident memory before any model (it also holds the tokenizer) in MiB"},
};
#define N_NUM_KEYS (sizeof num_keys / sizeof num_keys[0])

static const char *const top_keys[] = {"name", "groups", NULL};
static const char *const group_other_keys[] = {"name", "count", "per_node", "cores", "gemm", NULL};
static const char *const gemm_keys[] = {"m", "n", "k", "gflops", NULL};

/* ---- reading ----------------------------------------------------------------------------- */

static int in_list(const char *const *list, const char *key) {
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], key) == 0) return 1;
    return 0;
}

static int group_key(const char *key) {
    for (size_t i = 0; i < N_NUM_KEYS; i++)
        if (strcmp(num_keys[i].key, key) == 0) return 1;
    return in_list(group_other_keys, key);
}

/* "a, b, c": the keys of list, or of a group when list is NULL. */
static const char *key_names(const char *const *list, char *buf, size_t cap) {
    const char *const *names = list ? list : group_other_keys;
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; names[i] && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", names[i]);
    for (size_t i = 0; !list && i < N_NUM_KEYS && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, ", %s", num_keys[i].key);
    return buf;
}

/* Every key of obj is allowed (by list, or by group_key when list is NULL) and given once. */
static ct_status check_keys(const cJSON *obj, const char *const *list, const char *at) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        char names[512];
        if (!(list ? in_list(list, it->string) : group_key(it->string)))
            return ct_fail(CT_EINVAL, "%s: unknown key \"%s\" (allowed: %s)", at, it->string,
                           key_names(list, names, sizeof names));
        for (const cJSON *e = obj->child; e != it; e = e->next)
            if (strcmp(e->string, it->string) == 0)
                return ct_fail(CT_EINVAL, "%s: key \"%s\" is given twice", at, it->string);
    }
    return CT_OK;
}

static ct_status get_string(const cJSON *obj, const char *key, const char *at, char *out, size_t cap) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return ct_fail(CT_EINVAL, "%s: missing key \"%s\" (a string)", at, key);
    if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) >= cap)
        return ct_fail(CT_EINVAL, "%s: \"%s\" must be a non-empty string of at most %zu bytes", at, key,
                       cap - 1);
    memcpy(out, it->valuestring, strlen(it->valuestring) + 1);
    return CT_OK;
}

/* The number at key, > 0 (>= 0 when zero_ok) and at most max; *present = 0 when an optional
 * key is absent (then *out is left alone). whole: it must be a whole number. */
static ct_status get_number(const cJSON *obj, const char *key, const char *at, const char *help, int optional,
                            int whole, int zero_ok, double max, double *out, int *present) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    *present = it != NULL;
    if (!it && optional) return CT_OK;
    if (!it) return ct_fail(CT_EINVAL, "%s: missing key \"%s\" (%s)", at, key, help);
    if (!cJSON_IsNumber(it)) return ct_fail(CT_EINVAL, "%s: \"%s\" is not a number (%s)", at, key, help);
    double v = it->valuedouble;
    if (!isfinite(v) || v > max || (zero_ok ? v < 0 : v <= 0))
        return ct_fail(CT_EINVAL, "%s: \"%s\" = %g: must be %s 0 and at most %g (%s)", at, key, v,
                       zero_ok ? ">=" : ">", max, help);
    if (whole && v != floor(v))
        return ct_fail(CT_EINVAL, "%s: \"%s\" = %g must be a whole number (%s)", at, key, v, help);
    *out = v;
    return CT_OK;
}

/* A whole number at key: >= 1, or for an optional key >= 0 (absent: *out left alone). */
static ct_status get_int(const cJSON *obj, const char *key, const char *at, const char *help, int optional,
                         int max, int *out) {
    double v = 0;
    int present;
    CT_TRY(get_number(obj, key, at, help, optional, 1, optional, max, &v, &present));
    if (present) *out = (int)v;
    return CT_OK;
}

static ct_status parse_gemm_entry(const cJSON *e, const char *at, int i, ct_gemm_rate *r) {
    char where[448];
    snprintf(where, sizeof where, "%s: gemm[%d]", at, i);
    if (!cJSON_IsObject(e))
        return ct_fail(CT_EINVAL, "%s: must be an object {\"m\", \"n\", \"k\", \"gflops\"}", where);
    CT_TRY(check_keys(e, gemm_keys, where));
    CT_TRY(get_int(e, "m", where, "rows of the product, a whole number >= 1", 0, DIM_MAX, &r->m));
    CT_TRY(get_int(e, "n", where, "columns of the product, a whole number >= 1", 0, DIM_MAX, &r->n));
    CT_TRY(get_int(e, "k", where, "the inner dimension, a whole number >= 1", 0, DIM_MAX, &r->k));
    int present;
    CT_TRY(get_number(e, "gflops", where, "the measured rate in GFLOP/s", 0, 0, 0, NUMBER_MAX, &r->flops,
                      &present));
    r->flops *= GFLOPS;
    return CT_OK;
}

static ct_status parse_gemm(const cJSON *obj, const char *at, ct_hw_group *g) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "gemm");
    g->n_gemm = 0;
    if (!arr) return CT_OK;
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1 || n > CT_HW_MAX_GEMM)
        return ct_fail(CT_EINVAL,
                       "%s: \"gemm\" must be an array of 1 to %d entries {\"m\", \"n\", \"k\", \"gflops\"}", at,
                       CT_HW_MAX_GEMM);
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) CT_TRY(parse_gemm_entry(e, at, i, &g->gemm[i]));
    g->n_gemm = n;
    return CT_OK;
}

static ct_status parse_counts(const cJSON *obj, const char *at, ct_hw_group *g) {
    CT_TRY(get_int(obj, "count", at, "devices in the group, a whole number >= 1", 0, COUNT_MAX, &g->count));
    CT_TRY(get_int(obj, "per_node", at, "devices per node, a whole number >= 1", 0, COUNT_MAX, &g->per_node));
    if (g->per_node > g->count)
        return ct_fail(CT_EINVAL, "%s: \"per_node\" = %d exceeds \"count\" = %d (allowed 1 to count)", at,
                       g->per_node, g->count);
    g->cores = 0;
    return get_int(obj, "cores", at, "CPU cores a node's ranks share, 0 = a device each", 1, 1 << 20,
                   &g->cores);
}

static ct_status parse_group(const cJSON *obj, const char *name, int index, ct_hw_group *g) {
    char at[384];
    snprintf(at, sizeof at, "%s: group %d", name, index);
    if (!cJSON_IsObject(obj)) return ct_fail(CT_EINVAL, "%s: must be an object", at);
    CT_TRY(get_string(obj, "name", at, g->name, sizeof g->name));
    snprintf(at, sizeof at, "%s: group %d (\"%s\")", name, index, g->name);
    CT_TRY(check_keys(obj, NULL, at));
    CT_TRY(parse_counts(obj, at, g));
    for (size_t i = 0; i < N_NUM_KEYS; i++) {
        const num_key *k = &num_keys[i];
        double v = 0;
        int present;
        CT_TRY(get_number(obj, k->key, at, k->help, k->optional, 0, 0, NUMBER_MAX, &v, &present));
        *(double *)((char *)g + k->offset) = v * k->unit;
    }
    return parse_gemm(obj, at, g);
}

static ct_status parse_root(const cJSON *root, const char *name, ct_hardware *hw) {
    if (!cJSON_IsObject(root)) return ct_fail(CT_EINVAL, "%s: a hardware file must be a JSON object", name);
    CT_TRY(check_keys(root, top_keys, name));
    CT_TRY(get_string(root, "name", name, hw->name, sizeof hw->name));
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
    int n = cJSON_GetArraySize(groups);
    if (!cJSON_IsArray(groups) || n < 1 || n > CT_HW_MAX_GROUPS)
        return ct_fail(CT_EINVAL, "%s: \"groups\" must be an array of 1 to %d groups", name, CT_HW_MAX_GROUPS);
    int i = 0;
    for (const cJSON *g = groups->child; g; g = g->next, i++) CT_TRY(parse_group(g, name, i, &hw->groups[i]));
    hw->n_groups = n;
    return CT_OK;
}

ct_status ct_hw_parse(ct_hardware *hw, const char *text, const char *name) {
    const char *err_at = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &err_at, 1);
    if (!root) {
        int line = 1;
        for (const char *p = text; err_at && p < err_at; p++) line += *p == '\n';
        return ct_fail(CT_EINVAL, "%s: malformed JSON near line %d", name, line);
    }
    ct_hardware tmp;
    memset(&tmp, 0, sizeof tmp);
    ct_status s = parse_root(root, name, &tmp);
    cJSON_Delete(root);
    if (s == CT_OK) *hw = tmp;
    return s;
}

ct_status ct_hw_load(ct_hardware *hw, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return ct_fail(CT_EIO, "cannot open %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return ct_fail(CT_EINVAL, "%s: not a regular file", path);
    if (st.st_size > HW_FILE_MAX)
        return ct_fail(CT_EINVAL, "%s: %lld bytes: a hardware file has at most %d", path, (long long)st.st_size,
                       HW_FILE_MAX);
    char *text;
    size_t n;
    CT_TRY(ct_read_file(path, &text, &n));
    ct_status s;
    if (n > HW_FILE_MAX)
        s = ct_fail(CT_EINVAL, "%s: %zu bytes: a hardware file has at most %d", path, n, HW_FILE_MAX);
    else if (strlen(text) != n)
        s = ct_fail(CT_EINVAL, "%s: holds a NUL byte (not a JSON text)", path);
    else
        s = ct_hw_parse(hw, text, path);
    ct_free(text);
    return s;
}

/* ---- writing ----------------------------------------------------------------------------- */

static int add_number(cJSON *obj, const char *key, double v) {
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

static int add_gemm(cJSON *obj, const ct_hw_group *g) {
    if (g->n_gemm <= 0) return 1;
    cJSON *arr = cJSON_AddArrayToObject(obj, "gemm");
    if (!arr) return 0;
    for (int i = 0; i < g->n_gemm && i < CT_HW_MAX_GEMM; i++) {
        const ct_gemm_rate *r = &g->gemm[i];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            return 0;
        }
        if (!add_number(e, "m", r->m) || !add_number(e, "n", r->n) || !add_number(e, "k", r->k) ||
            !add_number(e, "gflops", r->flops / GFLOPS))
            return 0;
    }
    return 1;
}

static int add_group(cJSON *arr, const ct_hw_group *g) {
    cJSON *obj = cJSON_CreateObject();
    if (!obj || !cJSON_AddItemToArray(arr, obj)) {
        cJSON_Delete(obj);
        return 0;
    }
    if (!cJSON_AddStringToObject(obj, "name", g->name) || !add_number(obj, "count", g->count) ||
        !add_number(obj, "per_node", g->per_node))
        return 0;
    for (size_t i = 0; i < N_NUM_KEYS; i++) {
        const num_key *k = &num_keys[i];
        double v = *(const double *)((const char *)g + k->offset);
        if (k->optional && v == 0) continue; /* 0: not given */
        if (!add_number(obj, k->key, v / k->unit)) return 0;
    }
    return add_number(obj, "cores", g->cores) && add_gemm(obj, g);
}

/* The hardware file's text (free with cJSON_free), or NULL when out of memory. */
static char *hw_text(const ct_hardware *hw) {
    cJSON *root = cJSON_CreateObject(), *arr = NULL;
    int ok = root && cJSON_AddStringToObject(root, "name", hw->name) &&
             (arr = cJSON_AddArrayToObject(root, "groups")) != NULL;
    for (int i = 0; ok && i < hw->n_groups && i < CT_HW_MAX_GROUPS; i++) ok = add_group(arr, &hw->groups[i]);
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return text;
}

ct_status ct_hw_save(const ct_hardware *hw, const char *path) {
    char *text = hw_text(hw);
    if (!text) return ct_fail(CT_ENOMEM, "out of memory building the hardware file %s", path);
    ct_hardware check; /* what is written must read back: the same checks as a load */
    ct_status s = ct_hw_parse(&check, text, path);
    if (s != CT_OK) {
        cJSON_free(text);
        return ct_fail_context(s, "refusing to write an invalid hardware file");
    }
    ct_atomic_file *f = NULL;
    s = ct_atomic_open(&f, path);
    if (s == CT_OK) s = ct_atomic_write(f, text, strlen(text));
    if (s == CT_OK) s = ct_atomic_write(f, "\n", 1);
    if (s == CT_OK) s = ct_atomic_commit(f);
    else if (f)
        ct_atomic_abort(f);
    cJSON_free(text);
    return s;
}

/* ---- look-ups ---------------------------------------------------------------------------- */

int ct_hw_devices(const ct_hardware *hw) {
    int n = 0;
    for (int i = 0; i < hw->n_groups; i++) n += hw->groups[i].count;
    return n;
}

const ct_hw_group *ct_hw_group_of(const ct_hardware *hw, int d) {
    if (d < 0) return NULL;
    for (int i = 0; i < hw->n_groups; i++) {
        if (d < hw->groups[i].count) return &hw->groups[i];
        d -= hw->groups[i].count;
    }
    return NULL;
}

/* The table as points (log FLOP, log rate) sorted by FLOP count, entries of one FLOP count
 * merged (their log rates averaged); returns how many. */
static int gemm_points(const ct_hw_group *g, double *x, double *y) {
    int n = 0, used[CT_HW_MAX_GEMM];
    for (int i = 0; i < g->n_gemm && i < CT_HW_MAX_GEMM; i++) {
        const ct_gemm_rate *r = &g->gemm[i];
        double f = 2.0 * r->m * r->n * r->k;
        if (!(f > 0) || !(r->flops > 0)) continue;
        double lx = log(f), ly = log(r->flops);
        int j = 0;
        while (j < n && x[j] < lx) j++;
        if (j < n && x[j] == lx) {
            y[j] = (y[j] * used[j] + ly) / (used[j] + 1);
            used[j]++;
            continue;
        }
        memmove(x + j + 1, x + j, sizeof *x * (size_t)(n - j));
        memmove(y + j + 1, y + j, sizeof *y * (size_t)(n - j));
        memmove(used + j + 1, used + j, sizeof *used * (size_t)(n - j));
        x[j] = lx, y[j] = ly, used[j] = 1;
        n++;
    }
    return n;
}

double ct_hw_gemm_flops(const ct_hw_group *g, int m, int n, int k) {
    double x[CT_HW_MAX_GEMM], y[CT_HW_MAX_GEMM];
    int np = gemm_points(g, x, y);
    if (np == 0) return g->matmul_flops;
    double f = 2.0 * (m > 1 ? m : 1) * (n > 1 ? n : 1) * (k > 1 ? k : 1), lx = log(f);
    if (lx <= x[0]) return exp(y[0]);
    for (int i = 1; i < np; i++)
        if (lx <= x[i]) return exp(y[i - 1] + (lx - x[i - 1]) / (x[i] - x[i - 1]) * (y[i] - y[i - 1]));
    return exp(y[np - 1]);
}
