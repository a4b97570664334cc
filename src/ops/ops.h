/* ops.h: the compute kernels. Every op has a forward and a backward; backward functions
 * ACCUMULATE (+=) into parameter gradients and into the input gradient where noted, and
 * OVERWRITE (=) activation gradients otherwise. Shapes: N = B*T rows, C channels, V vocab,
 * H heads, hd = C/H. All loops are parallel over OpenMP threads and deterministic for a
 * given thread count.
 *
 * Each function here is an entry point that forwards to the current backend (backend.h,
 * dispatch.c); the CPU backend's kernels behind them are the ct_cpu_* of cpu.h. */
#ifndef CT_OPS_H
#define CT_OPS_H

#include "cetus.h"
#include <stdint.h>
#include <stddef.h>

/* The matrix product every other op builds on, row-major:
 *   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C
 * op(A) is A[M,K] (leading dimension lda) or, with trans_a, the transpose of A[K,M]; likewise
 * B. beta = 0 overwrites C (whatever it held). In fp32 on the library chosen for the shape,
 * in bf16 inputs with fp32 accumulation when the precision is bf16 (ct_gemm_configure). */
void ct_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* The CPU backend's products (ops/gemm.h): library = "auto" (each shape class on the library
 * that ran it faster on this machine: OpenBLAS or oneDNN, measured once in about 0.2 s and
 * cached per machine and library versions), "openblas" or "onednn"; precision = "fp32" or
 * "bf16" (inputs rounded to bf16, fp32 accumulation; refused on a processor without bf16
 * instructions). Called between passes. ct_gemm_check only checks the names. */
ct_status ct_gemm_check(const char *library, const char *precision);
ct_status ct_gemm_configure(const char *library, const char *precision);
int ct_gemm_is_bf16(void);
/* Times the libraries again now (auto, fp32) and caches the choice, which then counts. */
void ct_gemm_measure(void);
/* One line: the libraries and versions, each class's library (with the rates measured,
 * GFLOP/s OpenBLAS/oneDNN), the precision. */
void ct_gemm_describe(char *out, size_t cap);

/* out[N,OC] = inp[N,IC] @ w[IC,OC] + bias[OC]   (bias may be NULL) */
void ct_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int IC, int OC);
/* dinp[N,IC] = dout @ w^T (overwrites; skipped if dinp NULL), dw[IC,OC] += inp^T @ dout,
 * dbias[OC] += column sums of dout (skipped if NULL) */
void ct_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                        const float *w, int N, int IC, int OC);

/* out[N,C] = (inp - mean) * rstd * g + b; saves mean[N], rstd[N]. eps = 1e-5 */
void ct_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *g,
                          const float *b, int N, int C);
/* dinp[N,C] += ..., dg[C] += ..., db[C] += ... */
void ct_layernorm_backward(float *dinp, float *dg, float *db, const float *dout, const float *inp,
                           const float *g, const float *mean, const float *rstd, int N, int C);

/* The residual connection: y[n] = x[n] + delta[n] (y may alias x or delta). */
void ct_residual_add(float *y, const float *x, const float *delta, size_t n);

/* GELU, tanh approximation (GPT-2's "gelu_new"). out[n] = gelu(inp[n]) */
void ct_gelu_forward(float *out, const float *inp, size_t n);
/* dinp[n] = gelu'(inp[n]) * dout[n] (overwrites; dinp may alias dout) */
void ct_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Multi-head attention on a packed qkv[B,T,3C] (q | k | v, heads contiguous inside each).
 * Mask: position i attends to j iff j <= max(i, prefix_len[b] - 1); prefix_len NULL means
 * causal. Fused: no [T, T] matrix is stored; each thread works on tiles of at most 128 x 128
 * scores. out[B,T,C]; lse[B,H,T] saved for backward: each row's log-sum-exp of its scaled
 * scores q.k / sqrt(hd) over the columns it sees. */
void ct_attention_forward(float *out, float *lse, const float *qkv, const int32_t *prefix_len, int B, int T,
                          int C, int H);
/* dqkv[B,T,3C] (overwrites) from dout[B,T,C] and what forward gave: qkv, out[B,T,C] and
 * lse[B,H,T]; the probabilities are recomputed tile by tile. Same bits for any thread count. */
void ct_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out, const float *lse,
                           const int32_t *prefix_len, int B, int T, int C, int H);

/* x[B,T,C] = wte[tokens[b,t]] + wpe[t] */
void ct_embedding_forward(float *x, const int32_t *tokens, const float *wte, const float *wpe, int B, int T,
                          int C);
/* dwte[V,C] += scatter of dx by token, dwpe[T,C] += sum over batch. Vocabulary-parallel:
 * dwte holds rows [v0, v1) only and other tokens are skipped (0, V: every row). */
void ct_embedding_backward(float *dwte, float *dwpe, const float *dx, const int32_t *tokens, int v0, int v1,
                           int B, int T, int C);
/* Vocabulary-parallel forward in two steps: x[B,T,C] = wte[token - v0] for tokens in
 * [v0, v1), 0 otherwise (the ranks' x are then summed); then x += wpe[t]. */
void ct_embedding_lookup(float *x, const int32_t *tokens, const float *wte, int v0, int v1, int B, int T,
                         int C);
void ct_embedding_add_positions(float *x, const float *wpe, int B, int T, int C);

/* Image patches (patch.c). An image [H, W] (H, W multiples of P) cut into its Hp x Wp patches
 * in raster order: out [Hp * Wp, P * P], each patch's pixels row-major. */
void ct_patches_cut(float *out, const float *pixels, int H, int W, int P);
/* x[Np, C] = patches[Np, K] w[K, C] + bias + row[n / Wp] + col[n % Wp] (K = P * P pixels). */
void ct_patch_embed_forward(float *x, const float *patches, const float *w, const float *bias, const float *row,
                            const float *col, int Np, int Wp, int K, int C);
/* The gradients of the four tensors from dx[Np, C], accumulated. */
void ct_patch_embed_backward(float *dw, float *dbias, float *drow, float *dcol, const float *dx,
                             const float *patches, int Np, int Wp, int K, int C);

/* Softmax cross-entropy over logits[N,V]. Rows whose target < 0 are ignored. Saves the
 * log-sum-exp of each row in lse[N]. Returns the mean loss over counted rows (0 if none)
 * and the count in *counted. */
float ct_crossentropy_forward(float *lse, const float *logits, const int32_t *targets, int N, int V,
                              int *counted);
/* In place: logits[N,V] becomes dlogits = scale * (softmax - onehot) (0 rows if ignored).
 * scale is typically grad_scale / counted. */
void ct_crossentropy_backward(float *logits, const float *lse, const int32_t *targets, int N, int V,
                              float scale);
/* Vocabulary-parallel pieces. logits [N, V] are columns [v0, v0 + V) of the whole
 * vocabulary. rowmax: out[n] = max_v logits[n, v]. partials: sum_exp[n] = sum_v
 * exp(logits[n, v] - shift[n]); target[n] = logits[n, targets[n] - v0] when the target
 * is among these columns, else 0. backward_part: the backward above with the whole-vocab
 * lse and the target's column shifted by v0. */
void ct_rowmax(const float *logits, int N, int V, float *out);
void ct_crossentropy_partials(const float *logits, const int32_t *targets, int N, int V, int v0,
                              const float *shift, float *sum_exp, float *target);
void ct_crossentropy_backward_part(float *logits, const float *lse, const int32_t *targets, int N, int V,
                                   int v0, float scale);

/* sum of x[i]^2 over n floats, in double, in fixed chunks (the same for any thread count). */
double ct_sum_squares(const float *x, size_t n);

/* dst[C] += sum over rows of src[N,C], in a fixed row-chunk order (deterministic). */
void ct_colsum_accumulate(float *dst, const float *src, int N, int C);

/* AdamW on n elements: the moments m, v and the parameters p updated in place from the
 * gradients g, each element on its own:
 *   grad = g * clip_scale; m = beta1 m + (1 - beta1) grad; v = beta2 v + (1 - beta2) grad^2
 *   p -= lr ((m / bc1) / (sqrt(v / bc2) + eps) + weight_decay p)
 * bc1, bc2: the bias corrections 1 - beta^t. What to update with which settings (weight
 * decay per tensor, clipping, the schedule, where the moments live) is the optimizer's. */
typedef struct ct_adamw_hparams {
    float lr, weight_decay, clip_scale, beta1, beta2, eps, bc1, bc2;
} ct_adamw_hparams;
void ct_adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, const ct_adamw_hparams *h);

/* Copies bytes between buffers of any tiers (core.h's compute and host tiers): the offload
 * prefetch and write-back. A backend whose compute tier is a device knows its pointers. */
void ct_copy(void *dst, const void *src, size_t bytes);

#endif
