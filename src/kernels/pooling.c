/*
** Pooling and subsampling: max pooling of the ImageNet stem, global
** average pooling before the classifier, and the option-A shortcut of the
** CIFAR ResNets (stride-2 subsampling with zero-padded channels).
*/
#include "kernels.h"

#include <math.h>

/* Max pooling, -inf padding, first maximum in (kh,kw) order wins.
** x: (N,H,W,C)  y: (N,OH,OW,C) */
void rn_maxpool_forward(const rn_conv_shape *s, const float *x, float *y) {
    int c = s->ci;
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                float *yp = y + (((size_t)n * s->oh + oh) * s->ow + ow) * c;
                for (int ch = 0; ch < c; ch++) yp[ch] = -INFINITY;
                for (int kh = 0; kh < s->k; kh++) {
                    int ih = oh * s->stride - s->pad + kh;
                    if (ih < 0 || ih >= s->h) continue;
                    for (int kw = 0; kw < s->k; kw++) {
                        int iw = ow * s->stride - s->pad + kw;
                        if (iw < 0 || iw >= s->w) continue;
                        const float *xp = x + (((size_t)n * s->h + ih) * s->w + iw) * c;
                        for (int ch = 0; ch < c; ch++)
                            if (xp[ch] > yp[ch]) yp[ch] = xp[ch];
                    }
                }
            }
}

/* Routes each output gradient to the first input position holding the
** maximum, the one the forward chose.  dx: (N,H,W,C) += */
void rn_maxpool_backward(const rn_conv_shape *s, const float *x, const float *y, const float *dy, float *dx) {
    int c = s->ci;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++) {
                size_t o = (((size_t)n * s->oh + oh) * s->ow + ow) * c;
                for (int ch = 0; ch < c; ch++) {
                    int done = 0;
                    for (int kh = 0; kh < s->k && !done; kh++) {
                        int ih = oh * s->stride - s->pad + kh;
                        if (ih < 0 || ih >= s->h) continue;
                        for (int kw = 0; kw < s->k; kw++) {
                            int iw = ow * s->stride - s->pad + kw;
                            if (iw < 0 || iw >= s->w) continue;
                            size_t i = (((size_t)n * s->h + ih) * s->w + iw) * c + ch;
                            if (x[i] == y[o + ch]) {
                                dx[i] += dy[o + ch];
                                done = 1;
                                break;
                            }
                        }
                    }
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
