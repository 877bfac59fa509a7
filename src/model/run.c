/*
** Running the layer list: planning activation memory for an input shape,
** the forward pass (inference or training), the loss and the backward pass.
*/
#include "model/model.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Elements of layer l's output for one sample (after planning). */
size_t rn_layer_size(const rn_layer *l) { return (size_t)l->h_out * l->w_out * l->c_out; }

/* The window shape of a CONV, MAXPOOL or PADSKIP layer for batch n. */
static rn_conv_shape window(const rn_layer *l, int n) {
    rn_conv_shape s = {n, l->h_in, l->w_in, l->c_in, l->h_out, l->w_out, l->c_out, l->k, l->stride, l->pad};
    return s;
}

/* Computes every layer's spatial size for an h x w input. */
rn_status rn_model_shapes(rn_model *m, int h, int w, rn_error *err) {
    if (h < 1 || w < 1 || h > 65536 || w > 65536)
        return rn_fail(err, RN_ERR_ARG, "input size %dx%d is out of range [1, 65536]", h, w);
    for (int i = 0; i < m->nlayers; i++) {
        rn_layer *l = &m->layers[i];
        l->h_in = l->src < 0 ? h : m->layers[l->src].h_out;
        l->w_in = l->src < 0 ? w : m->layers[l->src].w_out;
        switch (l->kind) {
        case RN_L_CONV:
        case RN_L_MAXPOOL:
            l->h_out = rn_out_size(l->h_in, l->k, l->stride, l->pad);
            l->w_out = rn_out_size(l->w_in, l->k, l->stride, l->pad);
            break;
        case RN_L_PADSKIP:
            l->h_out = (l->h_in + l->stride - 1) / l->stride;
            l->w_out = (l->w_in + l->stride - 1) / l->stride;
            break;
        case RN_L_GAP:
        case RN_L_FC: l->h_out = l->w_out = 1; break;
        default: l->h_out = l->h_in, l->w_out = l->w_in; break;
        }
        if (l->h_out < 1 || l->w_out < 1)
            return rn_fail(err, RN_ERR_ARG, "input %dx%d is too small for %s: layer %s would have an empty output",
                           h, w, m->spec.arch, l->name);
    }
    return RN_OK;
}

/* Number of threads kernels will use (for per-thread scratch). */
static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Makes sure activation memory is planned for (n, h, w, train): one arena
** holds every layer's output, with training also their gradients, the BN
** batch statistics and the convolution scratch. */
rn_status rn_model_plan(rn_model *m, int n, int h, int w, int train, rn_error *err) {
    if (m->arena && m->plan_n == n && m->plan_h == h && m->plan_w == w && m->plan_train >= train) return RN_OK;
    if (n < 1) return rn_fail(err, RN_ERR_ARG, "batch size must be positive, got %d", n);
    rn_status st = rn_model_shapes(m, h, w, err);
    if (st) return st;
    size_t total = 2 * m->nstats, ws = 0;
    for (int i = 0; i < m->nlayers; i++) {
        rn_layer *l = &m->layers[i];
        total += (size_t)n * rn_layer_size(l) * (train ? 2 : 1);
        if (l->kind == RN_L_CONV) {
            rn_conv_shape s = window(l, n);
            size_t need = rn_conv_workspace(&s, max_threads());
            if (need > ws) ws = need;
        }
    }
    total += ws;
    free(m->arena);
    free(m->act);
    m->arena = NULL;
    m->act = calloc(2 * (size_t)m->nlayers, sizeof(float *));
    m->arena = malloc(total * sizeof(float));
    if (!m->act || !m->arena)
        return rn_fail(err, RN_ERR_NOMEM, "out of memory planning %s for batch %d at %dx%d (%.1f GB)", m->spec.arch,
                       n, h, w, total * 4.0 / 1e9);
    m->dact = m->act + m->nlayers;
    float *p = m->arena;
    for (int i = 0; i < m->nlayers; i++) {
        size_t sz = (size_t)n * rn_layer_size(&m->layers[i]);
        m->act[i] = p, p += sz;
        if (train) m->dact[i] = p, p += sz;
    }
    m->bn_mean = p, p += m->nstats;
    m->bn_invstd = p, p += m->nstats;
    m->ws = p;
    m->plan_n = n, m->plan_h = h, m->plan_w = w, m->plan_train = train;
    return RN_OK;
}

/* Runs layer l forward on a batch of n. */
static void layer_forward(rn_model *m, const rn_layer *l, int i, int n, int train) {
    const float *x = l->src < 0 ? m->input : m->act[l->src];
    float *y = m->act[i], *P = m->params;
    size_t rows = (size_t)n * l->h_out * l->w_out;
    rn_conv_shape s = window(l, n);
    switch (l->kind) {
    case RN_L_CONV: rn_conv_forward(&s, x, P + l->w, l->bias ? P + l->b : NULL, y); break;
    case RN_L_BN:
        if (train) {
            rn_bn_forward_train(rows, l->c_out, x, P + l->w, P + l->b, m->spec.bn_eps, m->spec.bn_momentum,
                                m->buffers + l->rmean, m->buffers + l->rvar, m->bn_mean + l->stat,
                                m->bn_invstd + l->stat, y);
            m->nbt[l->bn]++;
        } else {
            rn_bn_forward_eval(rows, l->c_out, x, P + l->w, P + l->b, m->spec.bn_eps, m->buffers + l->rmean,
                               m->buffers + l->rvar, y);
        }
        break;
    case RN_L_RELU: rn_relu_forward(rows * l->c_out, x, y); break;
    case RN_L_ADD: rn_add_forward(rows * l->c_out, x, m->act[l->src2], y); break;
    case RN_L_MAXPOOL: rn_maxpool_forward(&s, x, y); break;
    case RN_L_PADSKIP: rn_padskip_forward(&s, l->pad, x, y); break;
    case RN_L_GAP: rn_gap_forward(n, l->h_in * l->w_in, l->c_in, x, y); break;
    case RN_L_FC: rn_fc_forward(n, l->c_in, l->c_out, x, P + l->w, P + l->b, y); break;
    }
}

/* Runs layer l backward: its input gradients and parameter gradients. */
static void layer_backward(rn_model *m, const rn_layer *l, int i, int n) {
    const float *x = l->src < 0 ? m->input : m->act[l->src];
    const float *dy = m->dact[i], *P = m->params;
    float *dx = l->src < 0 ? NULL : m->dact[l->src], *G = m->grads;
    size_t rows = (size_t)n * l->h_out * l->w_out;
    rn_conv_shape s = window(l, n);
    switch (l->kind) {
    case RN_L_CONV: rn_conv_backward(&s, x, P + l->w, dy, dx, G + l->w, l->bias ? G + l->b : NULL, m->ws); break;
    case RN_L_BN:
        rn_bn_backward(rows, l->c_out, x, P + l->w, m->bn_mean + l->stat, m->bn_invstd + l->stat, dy, dx,
                       G + l->w, G + l->b);
        break;
    case RN_L_RELU: rn_relu_backward(rows * l->c_out, m->act[i], dy, dx); break;
    case RN_L_ADD: rn_add_backward(rows * l->c_out, dy, dx, m->dact[l->src2]); break;
    case RN_L_MAXPOOL: rn_maxpool_backward(&s, x, m->act[i], dy, dx); break;
    case RN_L_PADSKIP: rn_padskip_backward(&s, l->pad, dy, dx); break;
    case RN_L_GAP: rn_gap_backward(n, l->h_in * l->w_in, l->c_in, dy, dx); break;
    case RN_L_FC: rn_fc_backward(n, l->c_in, l->c_out, x, P + l->w, dy, dx, G + l->w, G + l->b); break;
    }
}

/* Runs the network on x: (N,H,W,C) and copies the logits (N,K) out. */
rn_status rn_model_forward(rn_model *m, const float *x, int n, int h, int w, int train, float *logits,
                           rn_error *err) {
    rn_status st = rn_model_plan(m, n, h, w, train, err);
    if (st) return st;
    for (int i = 0; train && i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        if (l->kind == RN_L_BN && (size_t)n * l->h_out * l->w_out < 2)
            return rn_fail(err, RN_ERR_ARG,
                           "batch %d at %dx%d is too small to train %s: %s would normalize a single value "
                           "per channel", n, h, w, m->spec.arch, l->name);
    }
    m->input = x;
    for (int i = 0; i < m->nlayers; i++) layer_forward(m, &m->layers[i], i, n, train);
    if (logits) memcpy(logits, m->act[m->nlayers - 1], (size_t)n * m->spec.classes * sizeof(float));
    return RN_OK;
}

/* Backward pass from dlogits: (N,K), which may already sit in the last
** layer's gradient buffer. Zeroes every other gradient first, because the
** kernels accumulate. */
void rn_model_backward(rn_model *m, const float *dlogits) {
    int n = m->plan_n, last = m->nlayers - 1;
    for (int i = 0; i < last; i++) memset(m->dact[i], 0, (size_t)n * rn_layer_size(&m->layers[i]) * sizeof(float));
    memset(m->grads, 0, m->nparams * sizeof(float));
    if (dlogits != m->dact[last]) memcpy(m->dact[last], dlogits, (size_t)n * m->spec.classes * sizeof(float));
    for (int i = m->nlayers - 1; i >= 0; i--) layer_backward(m, &m->layers[i], i, n);
}

/* Forward in training mode, loss, backward; grads hold d(loss)/d(params). */
rn_status rn_model_train_step(rn_model *m, const float *x, const int *labels, int n, int h, int w,
                              float label_smoothing, float *logits, double *loss, rn_error *err) {
    int k = m->spec.classes;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return rn_fail(err, RN_ERR_ARG, "label %d of sample %d is outside [0, %d)", labels[i], i, k);
    if (!(label_smoothing >= 0 && label_smoothing < 1))
        return rn_fail(err, RN_ERR_ARG, "label smoothing must be in [0, 1), got %g", label_smoothing);
    rn_status st = rn_model_forward(m, x, n, h, w, 1, logits, err);
    if (st) return st;
    /* The loss writes dlogits straight into the FC output's gradient. */
    float *dz = m->dact[m->nlayers - 1];
    double l = rn_softmax_xent(n, k, m->act[m->nlayers - 1], labels, label_smoothing, dz);
    rn_model_backward(m, dz);
    if (loss) *loss = l;
    return RN_OK;
}
