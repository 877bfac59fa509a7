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

/* The in-bounds positions of the window of output pixel (n, oh, ow), in
** (kh,kw) order: their source pixels' first elements in off and their
** indices kh*k + kw in tap; returns how many (at most k*k). */
static int window_taps(const rn_conv_shape *s, int n, int oh, int ow, size_t *off, int *tap) {
    int cnt = 0;
    for (int kh = 0; kh < s->k; kh++) {
        int ih = oh * s->stride - s->pad + kh;
        if (ih < 0 || ih >= s->h) continue;
        for (int kw = 0; kw < s->k; kw++) {
            int iw = ow * s->stride - s->pad + kw;
            if (iw < 0 || iw >= s->w) continue;
            off[cnt] = (((size_t)n * s->h + ih) * s->w + iw) * s->ci, tap[cnt++] = kh * s->k + kw;
        }
    }
    return cnt;
}

/* One output pixel of max pooling: yp[c] = max over the window, scanned in
** (kh,kw) order with a strict >, so the first maximum wins. The select
** form (no conditional store) vectorizes over the channels.
** x: (N,H,W,C)  yp: (C) */
static RN_CLONES void maxpool_pixel(const rn_conv_shape *s, const float *x, int n, int oh, int ow, float *yp) {
    int c = s->ci, tap[s->k * s->k];
    size_t off[s->k * s->k];
    const int cnt = window_taps(s, n, oh, ow, off, tap);
    for (int ch = 0; ch < c; ch++) yp[ch] = -INFINITY;
    for (int q = 0; q < cnt; q++) {
        const float *xp = x + off[q];
        for (int ch = 0; ch < c; ch++) {
            float v = xp[ch], m = yp[ch];
            yp[ch] = v > m ? v : m;
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

/* For the channels whose pick is still RN_POOL_NONE, the index kh*k + kw
** of the first window position (in (kh,kw) order) holding yp's value, if
** any: where rn_maxpool_backward routes the gradient of a window whose
** maximum stayed -inf (every tap -inf or NaN).  pk: (C) */
static RN_CLONES void maxpool_pixel_first_equal(const rn_conv_shape *s, const float *x, int n, int oh, int ow,
                                                const float *yp, unsigned char *pk) {
    int c = s->ci, tap[s->k * s->k];
    size_t off[s->k * s->k];
    const int cnt = window_taps(s, n, oh, ow, off, tap);
    for (int q = 0; q < cnt; q++) {
        const float *xp = x + off[q];
        const unsigned char t = (unsigned char)tap[q];
        for (int ch = 0; ch < c; ch++) pk[ch] = pk[ch] == RN_POOL_NONE && xp[ch] == yp[ch] ? t : pk[ch];
    }
}

/* maxpool_pixel that also picks, per channel, the position of the last
** strict increase of the running maximum: the first position holding the
** maximum, which rn_maxpool_backward routes the gradient to (an earlier
** equal value would have raised the maximum first; NaNs raise nothing).
** A maximum that stayed -inf is left to maxpool_pixel_first_equal. The
** picks are kept as 32-bit lanes, like the floats they follow, and
** narrowed at the end (byte selects beside float compares vectorize badly).
** x: (N,H,W,C)  yp, pk: (C); returns whether a channel has no pick */
static RN_CLONES int maxpool_pixel_pick(const rn_conv_shape *s, const float *x, int n, int oh, int ow, float *yp,
                                        unsigned char *pk) {
    int c = s->ci, none = 0, p[c], tap[s->k * s->k];
    size_t off[s->k * s->k];
    const int cnt = window_taps(s, n, oh, ow, off, tap);
    for (int ch = 0; ch < c; ch++) yp[ch] = -INFINITY, p[ch] = RN_POOL_NONE;
    for (int q = 0; q < cnt; q++) {
        const float *xp = x + off[q];
        const int t = tap[q];
        for (int ch = 0; ch < c; ch++) {
            float v = xp[ch], m = yp[ch];
            yp[ch] = v > m ? v : m;
            p[ch] = v > m ? t : p[ch];
        }
    }
    for (int ch = 0; ch < c; ch++) {
        pk[ch] = (unsigned char)p[ch];
        none |= p[ch] == RN_POOL_NONE;
    }
    return none;
}

/* Max pooling for training: y as rn_maxpool_forward, and per output value
** the window position its gradient goes to (maxpool_pixel_pick), so that
** the backward reads neither x nor y. Needs k*k < RN_POOL_NONE.
** x: (N,H,W,C)  y, pick: (N,OH,OW,C) */
void rn_maxpool_forward_pick(const rn_conv_shape *s, const float *x, float *y, unsigned char *pick) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                const size_t o = (((size_t)n * s->oh + oh) * s->ow + ow) * s->ci;
                if (maxpool_pixel_pick(s, x, n, oh, ow, y + o, pick + o))
                    maxpool_pixel_first_equal(s, x, n, oh, ow, y + o, pick + o);
            }
}

/* The gradient of input pixel (n, ih, iw) from the picks: the sum, over
** the windows covering it in (oh, ow) order, of dy where that window
** picked it, started from dx's value (set: from zero). The same additions
** in the same order as rn_maxpool_backward's scatter, so the same bits;
** but each dx value is written once, with no zeroing pass.
** pick, dy: (N,OH,OW,C)  dxp: (C) */
static RN_CLONES void maxpool_pixel_gather(const rn_conv_shape *s, const unsigned char *pick, const float *dy, int n,
                                           int ih, int iw, int set, float *dxp) {
    const int c = s->ci, S = s->stride, P = s->pad, K = s->k;
    if (set)
        for (int ch = 0; ch < c; ch++) dxp[ch] = 0.0f;
    const int ohi = (ih + P) / S, owi = (iw + P) / S; /* the last windows starting at or before the pixel */
    for (int oh = ohi - (K - 1) / S; oh <= ohi; oh++) {
        const int kh = ih + P - oh * S;
        if (oh < 0 || oh >= s->oh || kh >= K) continue;
        for (int ow = owi - (K - 1) / S; ow <= owi; ow++) {
            const int kw = iw + P - ow * S;
            if (ow < 0 || ow >= s->ow || kw >= K) continue;
            const size_t o = (((size_t)n * s->oh + oh) * s->ow + ow) * c;
            const unsigned char tap = (unsigned char)(kh * K + kw);
            for (int ch = 0; ch < c; ch++) {
                const float g = dy[o + ch];
                dxp[ch] += pick[o + ch] == tap ? g : 0.0f;
            }
        }
    }
}

/* rn_maxpool_backward from the forward's picks: dx = (or += without set)
** the gradient, each input pixel gathering from the windows covering it.
** pick, dy: (N,OH,OW,C)  dx: (N,H,W,C) */
void rn_maxpool_backward_pick(const rn_conv_shape *s, const unsigned char *pick, const float *dy, float *dx, int set) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < s->n; n++)
        for (int ih = 0; ih < s->h; ih++)
            for (int iw = 0; iw < s->w; iw++)
                maxpool_pixel_gather(s, pick, dy, n, ih, iw, set, dx + (((size_t)n * s->h + ih) * s->w + iw) * s->ci);
}

/* Backward of one output pixel: its gradient goes, per channel, to the
** first window position (in (kh,kw) order) holding the maximum, the one the
** forward chose. A per-channel "done" flag instead of an early exit keeps
** the loop branch-free, so it vectorizes over the channels.
** x, dx: (N,H,W,C)  yp, dyp: (C)  done: (C) scratch */
static RN_CLONES void maxpool_pixel_backward(const rn_conv_shape *s, const float *x, int n, int oh, int ow,
                                             const float *yp, const float *dyp, float *dx, float *done) {
    int c = s->ci, tap[s->k * s->k];
    size_t off[s->k * s->k];
    const int cnt = window_taps(s, n, oh, ow, off, tap);
    for (int ch = 0; ch < c; ch++) done[ch] = 0.0f;
    for (int q = 0; q < cnt; q++) {
        const size_t i = off[q];
        for (int ch = 0; ch < c; ch++) {
            float g = dyp[ch], d = done[ch];
            int hit = x[i + ch] == yp[ch] && d == 0.0f;
            dx[i + ch] += hit ? g : 0.0f;
            done[ch] = hit ? 1.0f : d;
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
