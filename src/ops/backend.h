/* backend.h: the seam between the model and the kernels. A backend is a table of the ops,
 * one function pointer each, with the signatures of the ct_* entry points of ops.h; those
 * entry points (dispatch.c) forward every call to the current backend. The model, the data
 * parallel code and the optimizer call the entry points only, so a backend (a GPU one on
 * cuBLAS, a bf16 path) slots in by filling a table and registering it: no file above ops
 * changes. The CPU backend (backend_cpu.c, the kernels of cpu.h) is registered from the
 * start and is the default; runtime.backend selects another by name. See docs/backends.md.
 *
 * Every table entry comes from the one list below, so the table, the entry points, the CPU
 * backend's declarations and any backend built with the macro stay in step (dispatch.c
 * defines the prototypes of ops.h from it: the compiler refuses a signature that differs). */
#ifndef CT_BACKEND_H
#define CT_BACKEND_H

#include "cetus.h"
#include "ops/ops.h"
#include <stddef.h>
#include <stdint.h>

/* X(return type, op, (parameters), (arguments)) for every op, in table order. The return
 * type is one token: void, float or double (see CT_BACKEND_RETURN). */
#define CT_BACKEND_OPS(X) \
    X(void, gemm, \
      (int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B, \
       int ldb, float beta, float *C, int ldc), \
      (trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) \
    X(void, matmul_forward, \
      (float *out, const float *inp, const float *w, const float *bias, int N, int IC, int OC), \
      (out, inp, w, bias, N, IC, OC)) \
    X(void, matmul_backward, \
      (float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int N, \
       int IC, int OC), \
      (dinp, dw, dbias, dout, inp, w, N, IC, OC)) \
    X(void, colsum_accumulate, (float *dst, const float *src, int N, int C), (dst, src, N, C)) \
    X(double, sum_squares, (const float *x, size_t n), (x, n)) \
    X(void, layernorm_forward, \
      (float *out, float *mean, float *rstd, const float *inp, const float *g, const float *b, int N, int C), \
      (out, mean, rstd, inp, g, b, N, C)) \
    X(void, layernorm_backward, \
      (float *dinp, float *dg, float *db, const float *dout, const float *inp, const float *g, \
       const float *mean, const float *rstd, int N, int C), \
      (dinp, dg, db, dout, inp, g, mean, rstd, N, C)) \
    X(void, residual_add, (float *y, const float *x, const float *delta, size_t n), (y, x, delta, n)) \
    X(void, gelu_forward, (float *out, const float *inp, size_t n), (out, inp, n)) \
    X(void, gelu_backward, (float *dinp, const float *inp, const float *dout, size_t n), (dinp, inp, dout, n)) \
    X(void, attention_forward, \
      (float *out, float *lse, const float *qkv, const int32_t *prefix_len, int B, int T, int C, int H), \
      (out, lse, qkv, prefix_len, B, T, C, H)) \
    X(void, attention_backward, \
      (float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse, \
       const int32_t *prefix_len, int B, int T, int C, int H), \
      (dqkv, dout, qkv, out, lse, prefix_len, B, T, C, H)) \
    X(void, embedding_forward, \
      (float *x, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C), \
      (x, tokens, wte, wpe, B, T, C)) \
    X(void, embedding_backward, \
      (float *dwte, float *dwpe, const float *dx, const int32_t *tokens, int v0, int v1, int B, int T, int C), \
      (dwte, dwpe, dx, tokens, v0, v1, B, T, C)) \
    X(void, embedding_lookup, \
      (float *x, const int32_t *tokens, const float *wte, int v0, int v1, int B, int T, int C), \
      (x, tokens, wte, v0, v1, B, T, C)) \
    X(void, embedding_add_positions, (float *x, const float *wpe, int B, int T, int C), (x, wpe, B, T, C)) \
    X(void, patches_cut, (float *out, const float *pixels, int H, int W, int P), (out, pixels, H, W, P)) \
    X(void, patch_embed_forward, \
      (float *x, const float *patches, const float *w, const float *bias, const float *row, const float *col, \
       int Np, int Wp, int K, int C), \
      (x, patches, w, bias, row, col, Np, Wp, K, C)) \
    X(void, patch_embed_backward, \
      (float *dw, float *dbias, float *drow, float *dcol, const float *dx, const float *patches, int Np, \
       int Wp, int K, int C), \
      (dw, dbias, drow, dcol, dx, patches, Np, Wp, K, C)) \
    X(float, crossentropy_forward, \
      (float *lse, const float *logits, const int32_t *targets, int N, int V, int *counted), \
      (lse, logits, targets, N, V, counted)) \
    X(void, crossentropy_backward, \
      (float *logits, const float *lse, const int32_t *targets, int N, int V, float scale), \
      (logits, lse, targets, N, V, scale)) \
    X(void, rowmax, (const float *logits, int N, int V, float *out), (logits, N, V, out)) \
    X(void, crossentropy_partials, \
      (const float *logits, const int32_t *targets, int N, int V, int v0, const float *shift, float *sum_exp, \
       float *target), \
      (logits, targets, N, V, v0, shift, sum_exp, target)) \
    X(void, crossentropy_backward_part, \
      (float *logits, const float *lse, const int32_t *targets, int N, int V, int v0, float scale), \
      (logits, lse, targets, N, V, v0, scale)) \
    X(void, adamw_kernel, (float *p, const float *g, float *m, float *v, size_t n, const ct_adamw_hparams *h), \
      (p, g, m, v, n, h)) \
    X(void, copy, (void *dst, const void *src, size_t bytes), (dst, src, bytes))

/* `return call;` where the op returns a value, `call;` where it returns void (ISO C allows
 * no return of a void expression): CT_BACKEND_RETURN(ret, call) in a function built from
 * the list forwards to another implementation of the same op. */
#define CT_BACKEND_RETURN(ret, call) CT_BACKEND_RETURN_##ret(call)
#define CT_BACKEND_RETURN_void(call) call
#define CT_BACKEND_RETURN_float(call) return call
#define CT_BACKEND_RETURN_double(call) return call

typedef struct ct_backend {
    const char *name; /* what runtime.backend names it by */
#define CT_BACKEND_FIELD(ret, op, params, args) ret(*op) params;
    CT_BACKEND_OPS(CT_BACKEND_FIELD)
#undef CT_BACKEND_FIELD
} ct_backend;

/* The CPU backend (OpenBLAS and OpenMP): registered from the start, the default. */
extern const ct_backend ct_backend_cpu;

/* Adds a backend to the registry (at most 8; the table must outlive its use). Refused with a
 * message: no name, a name taken by another table, a missing op (named), a full registry.
 * Registering the same table again is a no-op. */
ct_status ct_backend_register(const ct_backend *b);
/* The registered backend of that name, or NULL. */
const ct_backend *ct_backend_find(const char *name);
/* The registered names, comma separated, into buf ("cpu, ..."). */
const char *ct_backend_names(char *buf, size_t cap);
/* CT_OK if a backend of that name is registered, else CT_EINVAL with a message naming it
 * and the registered ones. */
ct_status ct_backend_check(const char *name);
/* Makes the backend of that name current (or fails as ct_backend_check). */
ct_status ct_backend_select(const char *name);
/* The backend every ct_* op of ops.h forwards to from now on; NULL: the CPU backend. Set it
 * between passes, not while ops run (an offload transfer in flight included). */
void ct_backend_set(const ct_backend *b);
const ct_backend *ct_backend_get(void);

#endif
