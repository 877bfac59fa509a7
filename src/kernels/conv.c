/*
** Fast convolution on the CPU: direct convolution in NHWC / HWIO, written
** as portable C that GCC vectorizes over the contiguous channel dimension.
**
** All three passes reduce to one building block, gemv_acc: a row vector of
** output channels (or input channels) accumulated as a sum of scaled rows of
** a contiguous matrix, y[j] += sum_k a[k] * B[k][j], with j contiguous.
**   - forward:          y[ow][:]   += x[ih][iw..][:]   . w[kh][kw..][:][:]
**   - backward data:    dx[iw][:]  += dy[oh][ow..][:]  . wt[kh][kw..][:][:]
**     (wt is the weight with ci and co swapped and kw reversed, built in the
**     workspace, so that the reduction runs over contiguous memory and the
**     accumulation is again over the contiguous channel of dx);
**   - backward weights: dw[kh][kw][ci][:] += x[ih][iw(ow)][ci] . dy[oh][ow][:]
**
** Parallelism and determinism: forward and backward-data give each thread
** whole output rows (disjoint writes), so their results do not depend on
** the thread count. Backward-weights sums over the whole batch, so each
** thread accumulates a private partial dw/db over a static, contiguous share
** of the (n, oh) rows, and the partials are reduced in thread order. The
** result is bit-identical from run to run for a given thread count.
**
** The row functions carry target_clones so that GCC emits AVX-512, AVX2 and
** baseline versions and picks one at load time from the CPU features; the
** build stays portable (no -march=native).
*/
#include "kernels.h"

#include <omp.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define RN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RN_CLONES
#endif

/* Floats per thread slot in the workspace, rounded up to a 64-byte line so
** that two threads' partial sums never share a cache line. */
static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Number of weights K*K*Ci*Co. */
static size_t weight_count(const rn_conv_shape *s) {
    return (size_t)s->k * s->k * s->ci * s->co;
}

/* Floats of scratch rn_conv_backward needs when run by up to nthreads
** threads (nthreads < 1 means omp_get_max_threads()). Layout, each part
** padded to 64 bytes: [transposed weights][nthreads x partial dw]
** [nthreads x partial db]. */
size_t rn_conv_workspace(const rn_conv_shape *s, int nthreads) {
    if (nthreads < 1) nthreads = omp_get_max_threads();
    size_t nw = pad16(weight_count(s));
    return nw + (size_t)nthreads * (nw + pad16((size_t)s->co));
}

/* y[j] += sum_{k<kd} a[k*as] * b[k*ldb + j] for j < n: a row vector times a
** (kd x n) row-major matrix, accumulated into y. The reduction is unrolled by
** four so that y is loaded and stored once per four rows of b; the order of
** the additions is fixed, so the result is deterministic. Inlined into the
** cloned row functions, where it is vectorized over j.
** a: (kd) with stride as   b: (kd, ldb)   y: (n) */
static inline __attribute__((always_inline)) void gemv_acc(int n, int kd, const float *restrict a, ptrdiff_t as,
                                                            const float *restrict b, ptrdiff_t ldb,
                                                            float *restrict y) {
    int k = 0;
    for (; k + 4 <= kd; k += 4) {
        float a0 = a[(ptrdiff_t)k * as], a1 = a[(ptrdiff_t)(k + 1) * as];
        float a2 = a[(ptrdiff_t)(k + 2) * as], a3 = a[(ptrdiff_t)(k + 3) * as];
        const float *b0 = b + (ptrdiff_t)k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
        for (int j = 0; j < n; j++) y[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
    }
    for (; k < kd; k++) {
        float a0 = a[(ptrdiff_t)k * as];
        const float *b0 = b + (ptrdiff_t)k * ldb;
        for (int j = 0; j < n; j++) y[j] += a0 * b0[j];
    }
}

/* One output row of the forward convolution: initializes it with the bias
** (or zero) and accumulates, per kernel row kh, the in-bounds kw range of
** every output pixel as one contiguous (kw, ci) reduction.
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  b: (Co) or NULL  yr: (OW,Co), the row (n, oh) */
RN_CLONES static void fwd_row(const rn_conv_shape *s, int n, int oh, const float *restrict x,
                              const float *restrict w, const float *restrict b, float *restrict yr) {
    const int K = s->k, S = s->stride, P = s->pad, Ci = s->ci, Co = s->co, W = s->w;
    for (int ow = 0; ow < s->ow; ow++) {
        float *yp = yr + (size_t)ow * Co;
        if (b)
            for (int co = 0; co < Co; co++) yp[co] = b[co];
        else
            for (int co = 0; co < Co; co++) yp[co] = 0.0f;
    }
    for (int kh = 0; kh < K; kh++) {
        int ih = oh * S - P + kh;
        if (ih < 0 || ih >= s->h) continue;
        const float *xr = x + ((size_t)n * s->h + ih) * W * Ci;
        const float *wk = w + (size_t)kh * K * Ci * Co;
        for (int ow = 0; ow < s->ow; ow++) {
            int iw0 = ow * S - P;
            int kw0 = iw0 < 0 ? -iw0 : 0, kw1 = W - iw0 < K ? W - iw0 : K;
            if (kw0 >= kw1) continue;
            gemv_acc(Co, (kw1 - kw0) * Ci, xr + (ptrdiff_t)(iw0 + kw0) * Ci, 1, wk + (size_t)kw0 * Ci * Co, Co,
                     yr + (size_t)ow * Co);
        }
    }
}

/* y = conv(x, w) + b, parallel over (n, output row).
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  b: (Co) or NULL  y: (N,OH,OW,Co) */
void rn_conv_forward(const rn_conv_shape *s, const float *x, const float *w, const float *b, float *y) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            fwd_row(s, n, oh, x, w, b, y + ((size_t)n * s->oh + oh) * s->ow * s->co);
}

/* Fills wt[kh][K-1-kw][co][ci] = w[kh][kw][ci][co]: input channel innermost
** for the backward-data axpy, and kw reversed so that, at stride 1, the
** kernel columns touching one input pixel meet increasing output columns
** and the whole in-bounds range is one contiguous reduction.
** w: (K,K,Ci,Co)  wt: (K,K,Co,Ci) */
static void transpose_weights(const rn_conv_shape *s, const float *w, float *wt) {
    const int K = s->k, Ci = s->ci, Co = s->co;
#pragma omp for schedule(static) collapse(2)
    for (int kh = 0; kh < K; kh++)
        for (int kw = 0; kw < K; kw++) {
            const float *src = w + ((size_t)kh * K + kw) * Ci * Co;
            float *dst = wt + ((size_t)kh * K + (K - 1 - kw)) * Co * Ci;
            for (int co = 0; co < Co; co++)
                for (int ci = 0; ci < Ci; ci++) dst[(size_t)co * Ci + ci] = src[(size_t)ci * Co + co];
        }
}

/* One input row of the backward-data pass in gather form: dx[n, ih, :, :]
** += the sum over the (kh, kw, ow, oh) that read each input pixel of
** dy[n, oh, ow, :] . wt[kh, kw, :, :]. Only this call writes the row.
** dy: (N,OH,OW,Co)  wt: (K,K,Co,Ci) kw-reversed  dxr: (W,Ci), the row (n, ih) */
RN_CLONES static void bwd_data_row(const rn_conv_shape *s, int n, int ih, const float *restrict dy,
                                   const float *restrict wt, float *restrict dxr) {
    const int K = s->k, S = s->stride, P = s->pad, Ci = s->ci, Co = s->co, OW = s->ow;
    for (int kh = 0; kh < K; kh++) {
        int t = ih + P - kh;
        if (t < 0 || t % S != 0 || t / S >= s->oh) continue;
        const float *dyr = dy + ((size_t)n * s->oh + t / S) * OW * Co;
        const float *wk = wt + (size_t)kh * K * Co * Ci;
        for (int iw = 0; iw < s->w; iw++) {
            float *dxp = dxr + (size_t)iw * Ci;
            if (S == 1) {
                /* ow = base + kf for reversed column kf = K-1-kw: one contiguous run. */
                int base = iw + P - (K - 1);
                int kf0 = base < 0 ? -base : 0, kf1 = OW - base < K ? OW - base : K;
                if (kf0 < kf1)
                    gemv_acc(Ci, (kf1 - kf0) * Co, dyr + (ptrdiff_t)(base + kf0) * Co, 1,
                             wk + (size_t)kf0 * Co * Ci, Ci, dxp);
            } else {
                for (int kw = 0; kw < K; kw++) {
                    int u = iw + P - kw;
                    if (u < 0 || u % S != 0 || u / S >= OW) continue;
                    gemv_acc(Ci, Co, dyr + (size_t)(u / S) * Co, 1, wk + (size_t)(K - 1 - kw) * Co * Ci, Ci, dxp);
                }
            }
        }
    }
}

/* Adds one output row's contribution to a thread's partial weight and bias
** gradients: pdb[co] += sum_ow dy, and for every (kh, kw, ci)
** pdw[kh][kw][ci][:] += sum over in-bounds ow of x[ih][iw(ow)][ci] * dy[ow][:].
** x: (N,H,W,Ci)  dy: (N,OH,OW,Co)  pdw: (K,K,Ci,Co) or NULL  pdb: (Co) or NULL */
RN_CLONES static void bwd_weight_row(const rn_conv_shape *s, int n, int oh, const float *restrict x,
                                     const float *restrict dy, float *restrict pdw, float *restrict pdb) {
    const int K = s->k, S = s->stride, P = s->pad, Ci = s->ci, Co = s->co, W = s->w, OW = s->ow;
    const float *dyr = dy + ((size_t)n * s->oh + oh) * OW * Co;
    if (pdb)
        for (int ow = 0; ow < OW; ow++)
            for (int co = 0; co < Co; co++) pdb[co] += dyr[(size_t)ow * Co + co];
    if (!pdw) return;
    for (int kh = 0; kh < K; kh++) {
        int ih = oh * S - P + kh;
        if (ih < 0 || ih >= s->h) continue;
        const float *xr = x + ((size_t)n * s->h + ih) * W * Ci;
        for (int kw = 0; kw < K; kw++) {
            /* In-bounds output columns: 0 <= ow*S - P + kw <= W-1. */
            int lo = P - kw, hi = W - 1 + P - kw;
            if (hi < 0) continue;
            int ow0 = lo > 0 ? (lo + S - 1) / S : 0, ow1 = hi / S + 1;
            if (ow1 > OW) ow1 = OW;
            if (ow0 >= ow1) continue;
            const float *xp = xr + (ptrdiff_t)(ow0 * S - P + kw) * Ci;
            float *dwk = pdw + ((size_t)kh * K + kw) * Ci * Co;
            for (int ci = 0; ci < Ci; ci++)
                gemv_acc(Co, ow1 - ow0, xp + ci, (ptrdiff_t)S * Ci, dyr + (size_t)ow0 * Co, Co,
                         dwk + (size_t)ci * Co);
        }
    }
}

/* dx += conv_transpose(dy, w); dw += x (*) dy; db += sum dy; each may be NULL.
** ws holds rn_conv_workspace(s, T) floats, T >= the number of threads of the
** parallel region (omp_get_max_threads() of the caller).
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  dy: (N,OH,OW,Co)  dx: (N,H,W,Ci)  dw: (K,K,Ci,Co)  db: (Co) */
void rn_conv_backward(const rn_conv_shape *s, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db, float *ws) {
    const size_t nw = pad16(weight_count(s)), nb = pad16((size_t)s->co);
    float *wt = ws, *pdw_all = ws + nw;
    const size_t rows = (size_t)s->n * s->oh;
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        float *pdw = dw ? pdw_all + (size_t)tid * nw : NULL;
        float *pdb = db ? pdw_all + (size_t)nt * nw + (size_t)tid * nb : NULL;

        if (dx) {
            transpose_weights(s, w, wt); /* ends with a barrier */
#pragma omp for schedule(static) collapse(2) nowait
            for (int n = 0; n < s->n; n++)
                for (int ih = 0; ih < s->h; ih++)
                    bwd_data_row(s, n, ih, dy, wt, dx + ((size_t)n * s->h + ih) * s->w * s->ci);
        }

        if (dw || db) {
            /* Static contiguous share of the (n, oh) rows: fixed for a given nt. */
            size_t r0 = rows * (size_t)tid / (size_t)nt, r1 = rows * (size_t)(tid + 1) / (size_t)nt;
            if (pdw) memset(pdw, 0, weight_count(s) * sizeof(float));
            if (pdb) memset(pdb, 0, (size_t)s->co * sizeof(float));
            for (size_t r = r0; r < r1; r++) bwd_weight_row(s, (int)(r / s->oh), (int)(r % s->oh), x, dy, pdw, pdb);
#pragma omp barrier
            /* Reduce the partials in thread order; each j is summed by one thread. */
            if (dw) {
                const size_t cnt = weight_count(s);
#pragma omp for schedule(static) nowait
                for (size_t j = 0; j < cnt; j++) {
                    float acc = 0.0f;
                    for (int t = 0; t < nt; t++) acc += pdw_all[(size_t)t * nw + j];
                    dw[j] += acc;
                }
            }
            if (db) {
                const float *pb = pdw_all + (size_t)nt * nw;
#pragma omp single nowait
                for (int co = 0; co < s->co; co++) {
                    float acc = 0.0f;
                    for (int t = 0; t < nt; t++) acc += pb[(size_t)t * nb + co];
                    db[co] += acc;
                }
            }
        }
    }
}
