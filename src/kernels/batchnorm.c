/*
** Fast batch normalization over (M,C) activations, M = N*H*W rows of C
** contiguous channels.
**
** Each pass is parallel over rows, with the inner loop over the contiguous
** channels so that it vectorizes. The per-channel reductions (sum and sum of
** squares for the forward, sum(dy) and sum(dy*xhat) for the backward) are
** accumulated in double into per-thread partials over a static, contiguous
** share of the rows, then added into the shared totals one thread at a time
** in thread order (an ordered loop), so the statistics are bit-identical
** from run to run for a given thread count.
**
** The partials live on the threads' stacks (2*C doubles each, 32 KiB at
** C = 2048) and the totals on the caller's stack; the kernels allocate
** nothing on the heap.
*/
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

/* Per-channel sums over all m rows, s1 = sum(a - a0) and
** s2 = sum((a - a0) * (b - b0)), in double: each thread sums its static share
** of rows, then the shares are added in thread order (deterministic). a0 may
** be NULL for zero. Must be called by every thread of the team; ends with a
** barrier.  a, b: (M,C)  a0, b0: (C)  tot: (2C) zeroed, receives [s1, s2] */
static void channel_moments(size_t m, int c, const float *a, const float *a0, const float *b, const float *b0,
                            double *tot) {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    const size_t r0 = share_begin(m, tid, nt), r1 = share_begin(m, tid + 1, nt);
    double part[2 * (size_t)c];
    double *s1 = part, *s2 = part + c;
    for (int ch = 0; ch < 2 * c; ch++) part[ch] = 0.0;
    for (size_t i = r0; i < r1; i++) {
        const float *ar = a + i * (size_t)c, *br = b + i * (size_t)c;
        for (int ch = 0; ch < c; ch++) {
            double d = (double)ar[ch] - (a0 ? (double)a0[ch] : 0.0);
            s1[ch] += d;
            s2[ch] += d * ((double)br[ch] - (double)b0[ch]);
        }
    }
    ordered_add(2 * c, tot, part);
}

/* Training-mode batch normalization (see kernels.h). Statistics are taken
** about a per-channel shift (the first row) so that the one-pass
** sum/sum-of-squares does not cancel when |mean| >> std; y is formed as
** ((x - shift) - (mean - shift)) * gamma*invstd + beta for the same reason.
** x, y: (M,C)  gamma, beta, mean, invstd, running_*: (C) */
void rn_bn_forward_train(size_t m, int c, const float *x, const float *gamma, const float *beta,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *mean, float *invstd, float *y) {
    if (m == 0 || c <= 0) return;
    double tot[2 * (size_t)c];   /* sum(x - shift), then sum((x - shift)^2) */
    float coef[2 * (size_t)c];   /* mean - shift, then gamma * invstd */
    for (int ch = 0; ch < 2 * c; ch++) tot[ch] = 0.0;
    const float *shift = x;      /* first row */
#pragma omp parallel
    {
        channel_moments(m, c, x, shift, x, shift, tot);
#pragma omp single
        for (int ch = 0; ch < c; ch++) {
            double dmu = tot[ch] / (double)m;
            double var = tot[c + ch] / (double)m - dmu * dmu;
            if (var < 0.0) var = 0.0;
            double mu = (double)shift[ch] + dmu, is = 1.0 / sqrt(var + eps);
            mean[ch] = (float)mu;
            invstd[ch] = (float)is;
            coef[ch] = (float)dmu;
            coef[c + ch] = (float)(is * gamma[ch]);
            if (running_mean) {
                double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
                running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mu);
                running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
            }
        }
        /* implicit barrier: coef is complete */
        const float *dmu = coef, *scale = coef + c;
#pragma omp for schedule(static)
        for (size_t i = 0; i < m; i++) {
            const float *xr = x + i * (size_t)c;
            float *yr = y + i * (size_t)c;
            for (int ch = 0; ch < c; ch++) yr[ch] = ((xr[ch] - shift[ch]) - dmu[ch]) * scale[ch] + beta[ch];
        }
    }
}

/* Eval-mode batch normalization with the running statistics:
** y = (x - running_mean) * (gamma / sqrt(running_var + eps)) + beta.
** x, y: (M,C)  gamma, beta, running_*: (C) */
void rn_bn_forward_eval(size_t m, int c, const float *x, const float *gamma, const float *beta,
                        float eps, const float *running_mean, const float *running_var, float *y) {
    if (m == 0 || c <= 0) return;
    float scale[c];
    for (int ch = 0; ch < c; ch++) scale[ch] = (float)(gamma[ch] / sqrt((double)running_var[ch] + eps));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m; i++) {
        const float *xr = x + i * (size_t)c;
        float *yr = y + i * (size_t)c;
        for (int ch = 0; ch < c; ch++) yr[ch] = (xr[ch] - running_mean[ch]) * scale[ch] + beta[ch];
    }
}

/* Backward of training-mode batch normalization, with xhat = (x-mean)*invstd:
**   dx += gamma*invstd * (dy - sum(dy)/M - xhat * sum(dy*xhat)/M),
**   dgamma += sum(dy*xhat), dbeta += sum(dy).  dx may be NULL.
** x, dy, dx: (M,C)  gamma, mean, invstd, dgamma, dbeta: (C) */
void rn_bn_backward(size_t m, int c, const float *x, const float *gamma, const float *mean,
                    const float *invstd, const float *dy, float *dx, float *dgamma, float *dbeta) {
    if (m == 0 || c <= 0) return;
    double tot[2 * (size_t)c];   /* sum(dy), then sum(dy * (x - mean)) */
    float coef[3 * (size_t)c];   /* gamma*invstd, sum(dy)/M, sum(dy*xhat)/M */
    for (int ch = 0; ch < 2 * c; ch++) tot[ch] = 0.0;
#pragma omp parallel
    {
        channel_moments(m, c, dy, NULL, x, mean, tot);
#pragma omp single
        for (int ch = 0; ch < c; ch++) {
            double sx = tot[c + ch] * (double)invstd[ch]; /* sum(dy * xhat) */
            if (dgamma) dgamma[ch] += (float)sx;
            if (dbeta) dbeta[ch] += (float)tot[ch];
            coef[ch] = (float)((double)gamma[ch] * invstd[ch]);
            coef[c + ch] = (float)(tot[ch] / (double)m);
            coef[2 * c + ch] = (float)(sx / (double)m);
        }
        if (dx) {
            const float *k = coef, *mdy = coef + c, *mdyx = coef + 2 * c;
#pragma omp for schedule(static)
            for (size_t i = 0; i < m; i++) {
                const float *xr = x + i * (size_t)c, *gr = dy + i * (size_t)c;
                float *dr = dx + i * (size_t)c;
                for (int ch = 0; ch < c; ch++) {
                    float xh = (xr[ch] - mean[ch]) * invstd[ch];
                    dr[ch] += k[ch] * (gr[ch] - mdy[ch] - xh * mdyx[ch]);
                }
            }
        }
    }
}
