/*
** Pooling and subsampling: max pooling of the ImageNet stem, global
** average pooling before the classifier, and the option-A shortcut of the
** CIFAR ResNets (stride-2 subsampling with zero-padded channels).
**
** The per-pixel loops over the contiguous channels carry target_clones
** (AVX-512, AVX2 and baseline versions, picked at load time).
*/
#include "cpu.h"
#include "kernels.h"

#include <math.h>

/* One output pixel of max pooling: yp[c] = max over the window, scanned in
** (kh,kw) order with a strict >, so the first maximum wins. The select
** form (no conditional store) vectorizes over the channels.
** x: (N,H,W,C)  yp: (C) */
static RN_CLONES void maxpool_pixel(const rn_conv_shape *s, const float *x, int n, int oh, int ow, float *yp) {
    int c = s->ci;
    for (int ch = 0; ch < c; ch++) yp[ch] = -INFINITY;
    for (int kh = 0; kh < s->k; kh++) {
        int ih = oh * s->stride - s->pad + kh;
        if (ih < 0 || ih >= s->h) continue;
        for (int kw = 0; kw < s->k; kw++) {
            int iw = ow * s->stride - s->pad + kw;
            if (iw < 0 || iw >= s->w) continue;
            const float *xp = x + (((size_t)n * s->h + ih) * s->w + iw) * c;
            for (int ch = 0; ch < c; ch++) {
                float v = xp[ch], m = yp[ch];
                yp[ch] = v > m ? v : m;
            }
        }
    }
}

/* Max pooling, -inf padding, first maximum in (kh,kw) order wins.
** x: (N,H,W,C)  y: (N,OH,OW,C) */
void rn_maxpool_forward(const rn_conv_shape *s, const float *x, float *y) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                maxpool_pixel(s, x, n, oh, ow, y + (((size_t)n * s->oh + oh) * s->ow + ow) * s->ci);
}

/* Backward of one output pixel: its gradient goes, per channel, to the
** first window position (in (kh,kw) order) holding the maximum, the one the
** forward chose. A per-channel "done" flag instead of an early exit keeps
** the loop branch-free, so it vectorizes over the channels.
** x, dx: (N,H,W,C)  yp, dyp: (C)  done: (C) scratch */
static RN_CLONES void maxpool_pixel_backward(const rn_conv_shape *s, const float *x, int n, int oh, int ow,
                                             const float *yp, const float *dyp, float *dx, float *done) {
    int c = s->ci;
    for (int ch = 0; ch < c; ch++) done[ch] = 0.0f;
    for (int kh = 0; kh < s->k; kh++) {
        int ih = oh * s->stride - s->pad + kh;
        if (ih < 0 || ih >= s->h) continue;
        for (int kw = 0; kw < s->k; kw++) {
            int iw = ow * s->stride - s->pad + kw;
            if (iw < 0 || iw >= s->w) continue;
            size_t i = (((size_t)n * s->h + ih) * s->w + iw) * c;
            for (int ch = 0; ch < c; ch++) {
                float g = dyp[ch], d = done[ch];
                int hit = x[i + ch] == yp[ch] && d == 0.0f;
                dx[i + ch] += hit ? g : 0.0f;
                done[ch] = hit ? 1.0f : d;
            }
        }
    }
}

/* Routes each output gradient to the first input position holding the
** maximum, the one the forward chose. Parallel over samples (windows of
** one sample overlap, those of two never do).  dx: (N,H,W,C) += */
void rn_maxpool_backward(const rn_conv_shape *s, const float *x, const float *y, const float *dy, float *dx) {
#pragma omp parallel
    {
        float done[s->ci > 0 ? s->ci : 1];
#pragma omp for schedule(static)
        for (int n = 0; n < s->n; n++)
            for (int oh = 0; oh < s->oh; oh++)
                for (int ow = 0; ow < s->ow; ow++) {
                    size_t o = (((size_t)n * s->oh + oh) * s->ow + ow) * s->ci;
                    maxpool_pixel_backward(s, x, n, oh, ow, y + o, dy + o, dx, done);
                }
    }
}

/* Mean over the spatial positions.  x: (N,HW,C)  y: (N,C) */
void rn_gap_forward(int n, int hw, int c, const float *x, float *y) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *yp = y + (size_t)i * c;
        for (int ch = 0; ch < c; ch++) yp[ch] = 0.0f;
        for (int p = 0; p < hw; p++) {
            const float *xp = x + ((size_t)i * hw + p) * c;
            for (int ch = 0; ch < c; ch++) yp[ch] += xp[ch];
        }
        for (int ch = 0; ch < c; ch++) yp[ch] /= (float)hw;
    }
}

/* Spreads each gradient evenly over the positions.  dx: (N,HW,C) += */
void rn_gap_backward(int n, int hw, int c, const float *dy, float *dx) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++) {
            float *dp = dx + ((size_t)i * hw + p) * c;
            for (int ch = 0; ch < c; ch++) dp[ch] += dy[(size_t)i * c + ch] / (float)hw;
        }
}

/* Option-A shortcut: y[n,oh,ow,lo+c] = x[n,oh*s,ow*s,c], other channels 0.
** x: (N,H,W,Ci)  y: (N,OH,OW,Co) */
void rn_padskip_forward(const rn_conv_shape *s, int lo, const float *x, float *y) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                float *yp = y + (((size_t)n * s->oh + oh) * s->ow + ow) * s->co;
                const float *xp = x + (((size_t)n * s->h + oh * s->stride) * s->w + ow * s->stride) * s->ci;
                for (int c = 0; c < s->co; c++) yp[c] = 0.0f;
                for (int c = 0; c < s->ci; c++) yp[lo + c] = xp[c];
            }
}

/* Backward of the option-A shortcut.  dx: (N,H,W,Ci) += */
void rn_padskip_backward(const rn_conv_shape *s, int lo, const float *dy, float *dx) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                const float *dp = dy + (((size_t)n * s->oh + oh) * s->ow + ow) * s->co;
                float *xp = dx + (((size_t)n * s->h + oh * s->stride) * s->w + ow * s->stride) * s->ci;
                for (int c = 0; c < s->ci; c++) xp[c] += dp[lo + c];
            }
}
