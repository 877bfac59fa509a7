/*
** Fast batch normalization over (M,C) activations, M = N*H*W rows of C
** contiguous channels, with the fusions the model runner uses:
**   - forward + ReLU (RN_FUSE_RELU): y = max(bn(x), 0) in the apply pass;
**   - forward + residual add (+ ReLU): y = bn(x) + add (max(..., 0)) in the
**     apply pass, a ResNet block's last BN, sum and ReLU in one pass;
**   - ReLU backward + BN backward (RN_FUSE_RELU): dy is masked by y > 0
**     (y the ReLU's output) as it is read, in both passes; given the
**     forward's dmu and scale (rn_bn_relu_mask), the mask is recomputed
**     from x in the forward's exact arithmetic instead of read from y, so
**     the backward passes stream x, dy (and dx) but not y;
**   - RN_FUSE_SET: the backward writes dx instead of adding into it, so the
**     caller need not zero dx when this is its first contribution;
**   - RN_BF16_GRAD: the backward writes dx rounded to bf16, for the bf16
**     convolution before the BN, which would round it anyway;
**   - RN_BF16_ACT: x, the output of a bf16 convolution, is held in bf16
**     and widened as it is read (every pass reads x: half the bytes);
**   - RN_BF16_X: the forward writes y rounded to bf16, for the bf16
**     convolutions reading it, which would round it anyway;
**   - RN_BF16_DX: dy, the input gradient of the bf16 convolution reading
**     y, comes in bf16 and is widened as it is read (both backward passes
**     read dy: half the bytes);
**   - rn_bn_fold: eval-mode BN folded into the preceding convolution.
**
** Each kernel is two passes at most over memory: the per-channel reductions
** (sum and sum of squares for the forward, sum(dy) and sum(dy*xhat) for the
** backward) in one pass, then the elementwise apply. The reductions are
** summed in float over blocks of 16 rows and the blocks accumulated in
** double into per-thread partials over a static, contiguous
** share of the rows, then added into the shared totals one thread at a time
** in thread order (an ordered loop), so the statistics are bit-identical
** from run to run for a given thread count.
**
** The row loops are separate functions carrying target_clones, so GCC emits
** AVX-512, AVX2 and baseline versions and the loader picks one for the CPU
** (the build stays portable: no -march=native). They vectorize over the
** contiguous channels.
**
** The partials live on the threads' stacks (2*C doubles each, 32 KiB at
** C = 2048) and the totals on the caller's stack; the kernels allocate
** nothing on the heap.
*/
#include "cpu.h"
#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>

/* First row of thread tid's static contiguous share of m rows among nt. */
static size_t share_begin(size_t m, int tid, int nt) { return m * (size_t)tid / (size_t)nt; }

/* Adds src[0..n) into dst[0..n), one thread after the other in thread
** order; must be called by every thread of the team. Ends with a barrier.
** dst, src: (n) */
static void ordered_add(int n, double *dst, const double *src) {
    const int nt = omp_get_num_threads();
#pragma omp for ordered schedule(static, 1)
    for (int t = 0; t < nt; t++) {
#pragma omp ordered
        for (int i = 0; i < n; i++) dst[i] += src[i];
    }
}

/* Rows summed in float before a block's sums are added into the double
** partials: float vectors hold twice the lanes of double ones, and a sum
** of 16 terms loses at most a few float ulps (|x - shift| is about the
** spread of the channel, not its mean). */
#define BN_BLOCK 16

/* Element k of x: an fp32 array, or (xb: RN_BF16_ACT) a bf16 one, widened
** exactly. xb is a constant in every caller, so the loops vectorize. */
static RN_INLINE float xat(const void *x, const int xb, size_t k) {
    return xb ? rn_bf16_to_f32(((const uint16_t *)x)[k]) : ((const float *)x)[k];
}

/* fwd_moments_rows for x in fp32 or (xb) bf16. */
static RN_INLINE void fwd_moments_as(const int xb, size_t r0, size_t r1, int c, const void *x, const float *shift,
                                     double *s1, double *s2) {
    float f1[c], f2[c];
    for (size_t b = r0; b < r1; b += BN_BLOCK) {
        const size_t e = b + BN_BLOCK < r1 ? b + BN_BLOCK : r1;
        for (int ch = 0; ch < c; ch++) f1[ch] = f2[ch] = 0.0f;
        for (size_t i = b; i < e; i++) {
            for (int ch = 0; ch < c; ch++) {
                float d = xat(x, xb, i * (size_t)c + ch) - shift[ch];
                f1[ch] += d;
                f2[ch] += d * d;
            }
        }
        for (int ch = 0; ch < c; ch++) {
            s1[ch] += f1[ch];
            s2[ch] += f2[ch];
        }
    }
}

/* Forward moments of rows [r0, r1): s1 += x - shift, s2 += (x - shift)^2,
** summed in float over blocks of BN_BLOCK rows, the blocks in double; x is
** bf16 when xb.  x: (M,C)  shift: (C)  s1, s2: (C) */
static RN_CLONES void fwd_moments_rows(size_t r0, size_t r1, int c, const void *x, int xb, const float *shift,
                                       double *s1, double *s2) {
    if (xb)
        fwd_moments_as(1, r0, r1, c, x, shift, s1, s2);
    else
        fwd_moments_as(0, r0, r1, c, x, shift, s1, s2);
}

/* The BN output before a ReLU, in the training forward's exact arithmetic
** (apply_rows), so that the backward can recompute the ReLU's mask from x
** bit for bit. */
static RN_INLINE float bn_out(float x, float shift, float dmu, float scale, float beta) {
    return ((x - shift) - dmu) * scale + beta;
}

/* Where the backward takes a fused ReLU's mask from: nowhere (no ReLU),
** the forward's output y (y > 0), or recomputed from x with the forward's
** shift (x's first row), dmu, scale and beta (rn_bn_relu_mask). */
typedef struct {
    const float *y;
    const float *shift, *dmu, *scale, *beta;
} bn_mask;

/* dy at channel ch of row i, zero where the fused ReLU was off: mode 0 no
** ReLU, 1 from y, 2 recomputed from xv, x's value there (a constant in
** every caller, so the select vectorizes; gv is loaded unconditionally for
** the same reason). dy is bf16 when gb (a constant too). */
static RN_INLINE float masked_grad(const int mode, const int gb, const bn_mask *mk, float xv, const void *dy, size_t i,
                                   int c, int ch) {
    const float gv = xat(dy, gb, i * (size_t)c + ch);
    if (mode == 1) return mk->y[i * (size_t)c + ch] > 0.0f ? gv : 0.0f;
    if (mode == 2) return bn_out(xv, mk->shift[ch], mk->dmu[ch], mk->scale[ch], mk->beta[ch]) > 0.0f ? gv : 0.0f;
    return gv;
}

/* bwd_moments_rows for one mask mode, x's type and dy's (constants). */
static RN_INLINE void bwd_moments_mode(const int mode, const int xb, const int gb, size_t r0, size_t r1, int c,
                                       const void *x, const bn_mask *mk, const float *mean, const void *dy, double *s1,
                                       double *s2) {
    float f1[c], f2[c];
    for (size_t b = r0; b < r1; b += BN_BLOCK) {
        const size_t e = b + BN_BLOCK < r1 ? b + BN_BLOCK : r1;
        for (int ch = 0; ch < c; ch++) f1[ch] = f2[ch] = 0.0f;
        for (size_t i = b; i < e; i++) {
            for (int ch = 0; ch < c; ch++) {
                const float xv = xat(x, xb, i * (size_t)c + ch), g = masked_grad(mode, gb, mk, xv, dy, i, c, ch);
                f1[ch] += g;
                f2[ch] += g * (xv - mean[ch]);
            }
        }
        for (int ch = 0; ch < c; ch++) {
            s1[ch] += f1[ch];
            s2[ch] += f2[ch];
        }
    }
}

/* bwd_moments_rows for x's and dy's types (constants). */
static RN_INLINE void bwd_moments_as(const int xb, const int gb, size_t r0, size_t r1, int c, const void *x,
                                     const bn_mask *mk, const float *mean, const void *dy, double *s1, double *s2) {
    if (mk->y)
        bwd_moments_mode(1, xb, gb, r0, r1, c, x, mk, mean, dy, s1, s2);
    else if (mk->shift)
        bwd_moments_mode(2, xb, gb, r0, r1, c, x, mk, mean, dy, s1, s2);
    else
        bwd_moments_mode(0, xb, gb, r0, r1, c, x, mk, mean, dy, s1, s2);
}

/* Backward moments of rows [r0, r1): with g = dy, masked by the fused
** ReLU (mk): s1 += g, s2 += g * (x - mean), summed as fwd_moments_rows does;
** x is bf16 when xb, dy when gb.  x, dy: (M,C)  mean, s1, s2: (C) */
static RN_CLONES void bwd_moments_rows(size_t r0, size_t r1, int c, const void *x, int xb, const bn_mask *mk,
                                       const float *mean, const void *dy, int gb, double *s1, double *s2) {
    if (xb && gb)
        bwd_moments_as(1, 1, r0, r1, c, x, mk, mean, dy, s1, s2);
    else if (xb)
        bwd_moments_as(1, 0, r0, r1, c, x, mk, mean, dy, s1, s2);
    else if (gb)
        bwd_moments_as(0, 1, r0, r1, c, x, mk, mean, dy, s1, s2);
    else
        bwd_moments_as(0, 0, r0, r1, c, x, mk, mean, dy, s1, s2);
}

/* apply_rows for one form (constants): plus add (a row of it) when sum,
** then max(v, 0) when relu: the arithmetic of rn_add_relu_forward on bn's
** output, so fusing changes no bit. */
static RN_INLINE void apply_form(const int sum, const int relu, const int xb, const int yb, size_t r0, size_t r1,
                                 int c, const void *x, const float *shift, const float *dmu, const float *scale,
                                 const float *beta, const float *add, void *y) {
    for (size_t i = r0; i < r1; i++) {
        const float *ar = sum ? add + i * (size_t)c : NULL;
        float *yr = (float *)y + i * (size_t)c;
        uint16_t *hr = (uint16_t *)y + i * (size_t)c;
        for (int ch = 0; ch < c; ch++) {
            float v = bn_out(xat(x, xb, i * (size_t)c + ch), shift[ch], dmu[ch], scale[ch], beta[ch]);
            if (sum)
                v = v + ar[ch];
            v = relu ? (v > 0.0f ? v : 0.0f) : v;
            if (yb)
                hr[ch] = rn_bf16_from_f32(v);
            else
                yr[ch] = v;
        }
    }
}

/* apply_rows for x's and y's types (constants). */
static RN_INLINE void apply_as(const int xb, const int yb, size_t r0, size_t r1, int c, const void *x,
                               const float *shift, const float *dmu, const float *scale, const float *beta,
                               const float *add, int relu, void *y) {
    if (add && relu)
        apply_form(1, 1, xb, yb, r0, r1, c, x, shift, dmu, scale, beta, add, y);
    else if (add)
        apply_form(1, 0, xb, yb, r0, r1, c, x, shift, dmu, scale, beta, add, y);
    else if (relu)
        apply_form(0, 1, xb, yb, r0, r1, c, x, shift, dmu, scale, beta, NULL, y);
    else
        apply_form(0, 0, xb, yb, r0, r1, c, x, shift, dmu, scale, beta, NULL, y);
}

/* Apply pass of rows [r0, r1): y = (x - sub) * scale + beta, plus add when
** not NULL (a residual), then max(y, 0) when relu. Serves both the training
** forward (sub = the batch mean, taken as shift + dmu so that it does not
** cancel) and the eval forward. y may be x (both fp32); x is bf16 when
** xb, y is written rounded to bf16 when yb.
** x, add, y: (M,C)  sub, scale, beta: (C) */
static RN_CLONES void apply_rows(size_t r0, size_t r1, int c, const void *x, int xb, const float *shift,
                                 const float *dmu, const float *scale, const float *beta, const float *add, int relu,
                                 void *y, int yb) {
    if (xb && yb)
        apply_as(1, 1, r0, r1, c, x, shift, dmu, scale, beta, add, relu, y);
    else if (xb)
        apply_as(1, 0, r0, r1, c, x, shift, dmu, scale, beta, add, relu, y);
    else if (yb)
        apply_as(0, 1, r0, r1, c, x, shift, dmu, scale, beta, add, relu, y);
    else
        apply_as(0, 0, r0, r1, c, x, shift, dmu, scale, beta, add, relu, y);
}

/* How the backward's apply pass writes dx: adding into it, overwriting it
** (RN_FUSE_SET), or overwriting it in bf16 (RN_BF16_GRAD: dx then holds
** uint16_t, each value rounded as rn_bf16_from_f32 does). */
enum { DX_ADD, DX_SET, DX_BF16 };

/* bwd_apply_rows for one mask mode, output form `set` (DX_*), x's type and
** dy's (constants). */
static RN_INLINE void bwd_apply_mode(const int mode, const int set, const int xb, const int gb, size_t r0, size_t r1,
                                     int c, const void *x, const bn_mask *mk, const float *mean, const float *coef,
                                     const void *dy, void *dx) {
    const float *k = coef, *c1 = coef + c, *c2 = coef + 2 * c;
    for (size_t i = r0; i < r1; i++) {
        float *dr = (float *)dx + i * (size_t)c;
        uint16_t *hr = (uint16_t *)dx + i * (size_t)c;
        for (int ch = 0; ch < c; ch++) {
            const float xv = xat(x, xb, i * (size_t)c + ch);
            const float v = k[ch] * masked_grad(mode, gb, mk, xv, dy, i, c, ch) - c1[ch] - c2[ch] * (xv - mean[ch]);
            if (set == DX_BF16)
                hr[ch] = rn_bf16_from_f32(v);
            else
                dr[ch] = set == DX_SET ? v : dr[ch] + v;
        }
    }
}

/* bwd_apply_mode for mk's mask mode, `set`, xb and gb constants. */
static RN_INLINE void bwd_apply_masked(const int set, const int xb, const int gb, size_t r0, size_t r1, int c,
                                       const void *x, const bn_mask *mk, const float *mean, const float *coef,
                                       const void *dy, void *dx) {
    if (mk->y)
        bwd_apply_mode(1, set, xb, gb, r0, r1, c, x, mk, mean, coef, dy, dx);
    else if (mk->shift)
        bwd_apply_mode(2, set, xb, gb, r0, r1, c, x, mk, mean, coef, dy, dx);
    else
        bwd_apply_mode(0, set, xb, gb, r0, r1, c, x, mk, mean, coef, dy, dx);
}

/* bwd_apply_masked for x's and dy's types (constants). */
static RN_INLINE void bwd_apply_as(const int xb, const int gb, size_t r0, size_t r1, int c, const void *x,
                                   const bn_mask *mk, const float *mean, const float *coef, const void *dy, int set,
                                   void *dx) {
    if (set == DX_BF16)
        bwd_apply_masked(DX_BF16, xb, gb, r0, r1, c, x, mk, mean, coef, dy, dx);
    else if (set == DX_SET)
        bwd_apply_masked(DX_SET, xb, gb, r0, r1, c, x, mk, mean, coef, dy, dx);
    else
        bwd_apply_masked(DX_ADD, xb, gb, r0, r1, c, x, mk, mean, coef, dy, dx);
}

/* Backward apply of rows [r0, r1), g = dy masked by the fused ReLU (mk):
** dx (+)= k*g - c1 - c2*(x - mean), k = gamma*invstd, c1 = k*mean(g),
** c2 = k*invstd*mean(g*xhat), written as `set` (DX_*) says; x is bf16
** when xb, dy when gb.
** x, dy, dx: (M,C)  mean, coef (3C: k, c1, c2): (C) */
static RN_CLONES void bwd_apply_rows(size_t r0, size_t r1, int c, const void *x, int xb, const bn_mask *mk,
                                     const float *mean, const float *coef, const void *dy, int gb, int set, void *dx) {
    if (xb && gb)
        bwd_apply_as(1, 1, r0, r1, c, x, mk, mean, coef, dy, set, dx);
    else if (xb)
        bwd_apply_as(1, 0, r0, r1, c, x, mk, mean, coef, dy, set, dx);
    else if (gb)
        bwd_apply_as(0, 1, r0, r1, c, x, mk, mean, coef, dy, set, dx);
    else
        bwd_apply_as(0, 0, r0, r1, c, x, mk, mean, coef, dy, set, dx);
}

/* Copies x's first row, widened from bf16 when xb, into first: the shift
** the statistics are taken about (and a fused ReLU's mask recomputed with).
** x: (M,C)  first: (C) */
static void first_row(int c, const void *x, int xb, float *first) {
    for (int ch = 0; ch < c; ch++) first[ch] = xat(x, xb, (size_t)ch);
}

/* Turns this rank's forward moments into the global batch's, for
** synchronized batchnorm: tot holds sum(x - shift) and sum((x - shift)^2)
** over m local rows; on return the same sums over all ranks' rows, about
** the same (local) shift, and the global row count. Two sums across ranks
** (the mean first, then squared deviations about it) keep the variance
** free of the cancellation a single sum of squares would suffer.
** shift, tot: (C), (2C) */
static double sync_fwd_moments(const rn_bn_sync *s, int c, size_t m, const float *shift, double *tot) {
    double v[(size_t)c + 1], w[c];
    for (int ch = 0; ch < c; ch++) v[ch] = m ? (double)m * shift[ch] + tot[ch] : 0.0; /* sum(x) */
    v[c] = (double)m;
    s->sum(s->ctx, v, c + 1);
    const double total = v[c];
    for (int ch = 0; ch < c; ch++) {
        double mu = v[ch] / total, d = m ? (double)shift[ch] + tot[ch] / (double)m - mu : 0.0;
        w[ch] = m ? tot[c + ch] - tot[ch] * tot[ch] / (double)m + (double)m * d * d : 0.0; /* about mu */
    }
    s->sum(s->ctx, w, c);
    for (int ch = 0; ch < c; ch++) {
        double d = v[ch] / total - (double)shift[ch];
        tot[ch] = total * d;
        tot[c + ch] = w[ch] + total * d * d;
    }
    return total;
}

/* Training-mode batch normalization, optionally fused with the ReLU that
** follows (see kernels.h), over this rank's rows or, with sync, over every
** rank's. Statistics are taken about a per-channel shift (the first row)
** so that the one-pass sum/sum-of-squares does not cancel when
** |mean| >> std; y is formed as ((x - shift) - (mean - shift)) *
** gamma*invstd + beta for the same reason.
** x, y: (M,C)  gamma, beta, mean, invstd, running_*: (C) */
void rn_bn_forward_train_sync(size_t m, int c, const void *x, const float *gamma, const float *beta, float eps,
                              float momentum, float *running_mean, float *running_var, float *mean, float *invstd,
                              void *y, int flags, const rn_bn_sync *sync, const rn_bn_relu_mask *keep,
                              const float *add) {
    if ((m == 0 && !sync) || c <= 0) return;
    double tot[2 * (size_t)c];   /* sum(x - shift), then sum((x - shift)^2) */
    float coef[2 * (size_t)c], shift[c]; /* mean - shift, then gamma * invstd; x's first row (or 0) */
    double total = (double)m;    /* rows over all ranks */
    const int xb = (flags & RN_BF16_ACT) != 0;
    for (int ch = 0; ch < 2 * c; ch++) tot[ch] = 0.0;
    for (int ch = 0; ch < c; ch++) shift[ch] = 0.0f;
    if (m) first_row(c, x, xb, shift);
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const size_t r0 = share_begin(m, tid, nt), r1 = share_begin(m, tid + 1, nt);
        double part[2 * (size_t)c];
        for (int ch = 0; ch < 2 * c; ch++) part[ch] = 0.0;
        fwd_moments_rows(r0, r1, c, x, xb, shift, part, part + c);
        ordered_add(2 * c, tot, part);
        if (sync) {
#pragma omp master
            total = sync_fwd_moments(sync, c, m, shift, tot);
#pragma omp barrier
        }
#pragma omp single
        for (int ch = 0; ch < c; ch++) {
            double dmu = tot[ch] / total;
            double var = tot[c + ch] / total - dmu * dmu;
            if (var < 0.0) var = 0.0;
            double mu = (double)shift[ch] + dmu, is = 1.0 / sqrt(var + eps);
            mean[ch] = (float)mu;
            invstd[ch] = (float)is;
            coef[ch] = (float)dmu;
            coef[c + ch] = (float)(is * gamma[ch]);
            if (keep)
                keep->dmu[ch] = coef[ch], keep->scale[ch] = coef[c + ch];
            if (running_mean) {
                double unbiased = total > 1 ? var * total / (total - 1) : var;
                running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mu);
                running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
            }
        }
        /* implicit barrier: coef is complete */
        apply_rows(r0, r1, c, x, xb, shift, coef, coef + c, beta, add, flags & RN_FUSE_RELU, y,
                   (flags & RN_BF16_X) != 0);
    }
}

/* Training-mode batch normalization of this rank's rows (see kernels.h). */
void rn_bn_forward_train_ex(size_t m, int c, const float *x, const float *gamma, const float *beta, float eps,
                            float momentum, float *running_mean, float *running_var, float *mean, float *invstd,
                            float *y, int flags) {
    rn_bn_forward_train_sync(m, c, x, gamma, beta, eps, momentum, running_mean, running_var, mean, invstd, y, flags,
                             NULL, NULL, NULL);
}

/* The unfused training forward (see kernels.h). */
void rn_bn_forward_train(size_t m, int c, const float *x, const float *gamma, const float *beta,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *mean, float *invstd, float *y) {
    rn_bn_forward_train_ex(m, c, x, gamma, beta, eps, momentum, running_mean, running_var, mean, invstd, y, 0);
}

/* Eval-mode batch normalization with the running statistics, optionally
** fused with a ReLU: y = (x - running_mean) * (gamma / sqrt(running_var + eps))
** + beta. y may be x (in place).  x, y: (M,C)  gamma, beta, running_*: (C) */
void rn_bn_forward_eval_ex(size_t m, int c, const void *x, const float *gamma, const float *beta, float eps,
                           const float *running_mean, const float *running_var, void *y, int flags) {
    if (m == 0 || c <= 0) return;
    float scale[c], zero[c];
    for (int ch = 0; ch < c; ch++) {
        scale[ch] = (float)(gamma[ch] / sqrt((double)running_var[ch] + eps));
        zero[ch] = 0.0f;
    }
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        apply_rows(share_begin(m, tid, nt), share_begin(m, tid + 1, nt), c, x, (flags & RN_BF16_ACT) != 0,
                   running_mean, zero, scale, beta, NULL, flags & RN_FUSE_RELU, y, (flags & RN_BF16_X) != 0);
    }
}

/* The unfused eval forward (see kernels.h). */
void rn_bn_forward_eval(size_t m, int c, const float *x, const float *gamma, const float *beta,
                        float eps, const float *running_mean, const float *running_var, float *y) {
    rn_bn_forward_eval_ex(m, c, x, gamma, beta, eps, running_mean, running_var, y, 0);
}

/* Backward of training-mode batch normalization, optionally through the
** ReLU that followed it (g = dy where y > 0, else 0), with xhat = (x-mean)*invstd:
**   dx (+)= gamma*invstd * (g - sum(g)/M - xhat * sum(g*xhat)/M),
**   dgamma += sum(g*xhat), dbeta += sum(g).  dx may be NULL. With
** RN_BF16_GRAD dx is written (not added to) in bf16, as uint16_t.
** With RN_BF16_DX dy holds bf16 values (uint16_t), widened as read.
** With sync, the sums in dx and M run over every rank's rows, while
** dgamma and dbeta take this rank's own (see rn_bn_sync).
** x, y, dy, dx: (M,C)  gamma, mean, invstd, dgamma, dbeta: (C) */
void rn_bn_backward_sync(size_t m, int c, const void *x, const float *y, const float *gamma, const float *mean,
                         const float *invstd, const void *dy, void *dx, float *dgamma, float *dbeta, int flags,
                         const rn_bn_sync *sync, const rn_bn_relu_mask *kept) {
    if ((m == 0 && !sync) || c <= 0) return;
    double tot[2 * (size_t)c + 1]; /* sum(g), then sum(g * (x - mean)), then rows (sync) */
    float coef[3 * (size_t)c];     /* k = gamma*invstd, k*sum(g)/M, k*invstd*sum(g*xhat)/M */
    float shift[c];                /* x's first row, the forward's shift */
    const int xb = (flags & RN_BF16_ACT) != 0, gb = (flags & RN_BF16_DX) != 0;
    bn_mask mk = {NULL, NULL, NULL, NULL, NULL}; /* the fused ReLU's mask: recomputed from x when kept, else y */
    if ((flags & RN_FUSE_RELU) && kept && m > 0)
        first_row(c, x, xb, shift), mk.shift = shift, mk.dmu = kept->dmu, mk.scale = kept->scale, mk.beta = kept->beta;
    else if (flags & RN_FUSE_RELU)
        mk.y = y;
    for (int ch = 0; ch < 2 * c; ch++) tot[ch] = 0.0;
    tot[2 * c] = (double)m;
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const size_t r0 = share_begin(m, tid, nt), r1 = share_begin(m, tid + 1, nt);
        double part[2 * (size_t)c];
        for (int ch = 0; ch < 2 * c; ch++) part[ch] = 0.0;
        bwd_moments_rows(r0, r1, c, x, xb, &mk, mean, dy, gb, part, part + c);
        ordered_add(2 * c, tot, part);
#pragma omp master
        for (int ch = 0; ch < c; ch++) { /* this rank's own parameter gradients */
            if (dgamma) dgamma[ch] += (float)(tot[c + ch] * (double)invstd[ch]);
            if (dbeta) dbeta[ch] += (float)tot[ch];
        }
        if (sync) {
#pragma omp master
            sync->sum(sync->ctx, tot, 2 * c + 1);
#pragma omp barrier
        }
#pragma omp single
        for (int ch = 0; ch < c; ch++) {
            double sx = tot[c + ch] * (double)invstd[ch]; /* sum(g * xhat) */
            double k = (double)gamma[ch] * invstd[ch];
            coef[ch] = (float)k;
            coef[c + ch] = (float)(k * tot[ch] / tot[2 * c]);
            coef[2 * c + ch] = (float)(k * invstd[ch] * sx / tot[2 * c]);
        }
        /* implicit barrier: coef is complete */
        const int set = (flags & RN_BF16_GRAD) ? DX_BF16 : (flags & RN_FUSE_SET) ? DX_SET : DX_ADD;
        if (dx) bwd_apply_rows(r0, r1, c, x, xb, &mk, mean, coef, dy, gb, set, dx);
    }
}

/* Backward of training-mode batch normalization over this rank's rows. */
void rn_bn_backward_ex(size_t m, int c, const float *x, const float *y, const float *gamma, const float *mean,
                       const float *invstd, const float *dy, float *dx, float *dgamma, float *dbeta, int flags) {
    rn_bn_backward_sync(m, c, x, y, gamma, mean, invstd, dy, dx, dgamma, dbeta, flags, NULL, NULL);
}

/* The unfused backward (see kernels.h). */
void rn_bn_backward(size_t m, int c, const float *x, const float *gamma, const float *mean,
                    const float *invstd, const float *dy, float *dx, float *dgamma, float *dbeta) {
    rn_bn_backward_ex(m, c, x, NULL, gamma, mean, invstd, dy, dx, dgamma, dbeta, 0);
}

/* Folds an eval-mode BN into the convolution before it: with
** s = gamma / sqrt(running_var + eps), conv(x, w) + b followed by the BN is
** conv(x, w*s) + (b - running_mean)*s + beta.
** w, wf: (rows, Co), the output channel contiguous (HWIO with rows = K*K*Ci)
** bias: (Co) or NULL   gamma, beta, running_*, bf: (Co) */
void rn_bn_fold(size_t rows, int co, const float *w, const float *bias, const float *gamma, const float *beta,
                float eps, const float *running_mean, const float *running_var, float *wf, float *bf) {
    float s[co > 0 ? co : 1];
    for (int o = 0; o < co; o++) {
        s[o] = (float)(gamma[o] / sqrt((double)running_var[o] + eps));
        bf[o] = ((bias ? bias[o] : 0.0f) - running_mean[o]) * s[o] + beta[o];
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < co; o++) wf[r * (size_t)co + o] = w[r * (size_t)co + o] * s[o];
}
