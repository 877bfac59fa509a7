/*
** Reference kernels: the plain loop nests that define what each layer
** computes. They are written for obviousness, not speed; the tests hold
** the fast kernels (conv.c, batchnorm.c) to these, and these to finite
** differences and to PyTorch.
*/
#include "kernels.h"

#include <math.h>

/* Returns x[n, ih, iw, c] or 0 when (ih, iw) falls in the zero padding. */
static float at(const rn_conv_shape *s, const float *x, int n, int ih, int iw, int c) {
    if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) return 0.0f;
    return x[(((size_t)n * s->h + ih) * s->w + iw) * s->ci + c];
}

/* Direct convolution, one output value at a time, summed in double.
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  b: (Co) or NULL  y: (N,OH,OW,Co) */
void rn_ref_conv_forward(const rn_conv_shape *s, const float *x, const float *w, const float *b, float *y) {
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int co = 0; co < s->co; co++) {
                    double acc = b ? b[co] : 0.0;
                    for (int kh = 0; kh < s->k; kh++)
                        for (int kw = 0; kw < s->k; kw++)
                            for (int ci = 0; ci < s->ci; ci++) {
                                float v = at(s, x, n, oh * s->stride - s->pad + kh, ow * s->stride - s->pad + kw, ci);
                                acc += (double)v * w[(((size_t)kh * s->k + kw) * s->ci + ci) * s->co + co];
                            }
                    y[(((size_t)n * s->oh + oh) * s->ow + ow) * s->co + co] = (float)acc;
                }
}

/* Backward of the convolution by scattering each output gradient back
** along the same index map the forward used.
** dx: (N,H,W,Ci) += ; dw: (K,K,Ci,Co) += ; db: (Co) += ; any may be NULL. */
void rn_ref_conv_backward(const rn_conv_shape *s, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db) {
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int co = 0; co < s->co; co++) {
                    float g = dy[(((size_t)n * s->oh + oh) * s->ow + ow) * s->co + co];
                    if (db) db[co] += g;
                    for (int kh = 0; kh < s->k; kh++)
                        for (int kw = 0; kw < s->k; kw++) {
                            int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            for (int ci = 0; ci < s->ci; ci++) {
                                size_t xi = (((size_t)n * s->h + ih) * s->w + iw) * s->ci + ci;
                                size_t wi = (((size_t)kh * s->k + kw) * s->ci + ci) * s->co + co;
                                if (dx) dx[xi] += g * w[wi];
                                if (dw) dw[wi] += g * x[xi];
                            }
                        }
                }
}

/* Per-channel mean and biased variance over the m rows, in double. */
static void channel_stats(size_t m, int c, const float *x, int ch, double *mean, double *var) {
    double s = 0, ss = 0;
    for (size_t i = 0; i < m; i++) s += x[i * c + ch];
    double mu = s / (double)m;
    for (size_t i = 0; i < m; i++) {
        double d = x[i * c + ch] - mu;
        ss += d * d;
    }
    *mean = mu;
    *var = ss / (double)m;
}

/* Training-mode batch normalization; see kernels.h.  x, y: (M,C) */
void rn_ref_bn_forward_train(size_t m, int c, const float *x, const float *gamma, const float *beta,
                             float eps, float momentum, float *running_mean, float *running_var,
                             float *mean, float *invstd, float *y) {
    for (int ch = 0; ch < c; ch++) {
        double mu, var;
        channel_stats(m, c, x, ch, &mu, &var);
        double is = 1.0 / sqrt(var + eps);
        mean[ch] = (float)mu;
        invstd[ch] = (float)is;
        for (size_t i = 0; i < m; i++)
            y[i * c + ch] = (float)((x[i * c + ch] - mu) * is * gamma[ch] + beta[ch]);
        if (running_mean) {
            double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mu);
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
        }
    }
}

/* Eval-mode batch normalization with the running statistics.  x, y: (M,C) */
void rn_ref_bn_forward_eval(size_t m, int c, const float *x, const float *gamma, const float *beta,
                            float eps, const float *running_mean, const float *running_var, float *y) {
    for (int ch = 0; ch < c; ch++) {
        double is = 1.0 / sqrt((double)running_var[ch] + eps);
        for (size_t i = 0; i < m; i++)
            y[i * c + ch] = (float)((x[i * c + ch] - running_mean[ch]) * is * gamma[ch] + beta[ch]);
    }
}

/* Backward of training-mode batch normalization:
**   dx = gamma * invstd / M * (M*dy - sum(dy) - xhat * sum(dy*xhat)).  (M,C) */
void rn_ref_bn_backward(size_t m, int c, const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, float *dgamma, float *dbeta) {
    for (int ch = 0; ch < c; ch++) {
        double sdy = 0, sdyx = 0;
        for (size_t i = 0; i < m; i++) {
            double xh = (x[i * c + ch] - mean[ch]) * (double)invstd[ch];
            sdy += dy[i * c + ch];
            sdyx += dy[i * c + ch] * xh;
        }
        dgamma[ch] += (float)sdyx;
        dbeta[ch] += (float)sdy;
        if (!dx) continue;
        double k = (double)gamma[ch] * invstd[ch] / (double)m;
        for (size_t i = 0; i < m; i++) {
            double xh = (x[i * c + ch] - mean[ch]) * (double)invstd[ch];
            dx[i * c + ch] += (float)(k * ((double)m * dy[i * c + ch] - sdy - xh * sdyx));
        }
    }
}
