/*
** Parameter initialization, as torchvision's ResNet constructor does it:
** Kaiming-normal with fan_out and ReLU gain for convolutions, BN weight 1
** and bias 0, and nn.Linear's default for the classifier
** (uniform in +-1/sqrt(fan_in) for weight and bias).
*/
#include "model/model.h"
#include "core/rng.h"

#include <math.h>
#include <string.h>

/* Fills n floats with normal(0, std). */
static void fill_normal(rn_rng *r, float *p, size_t n, double std) {
    for (size_t i = 0; i < n; i++) p[i] = (float)(rn_rng_normal(r) * std);
}

/* Fills n floats with uniform(-bound, bound). */
static void fill_uniform(rn_rng *r, float *p, size_t n, double bound) {
    for (size_t i = 0; i < n; i++) p[i] = (float)((2.0 * rn_rng_uniform(r) - 1.0) * bound);
}

/* Initializes every parameter and buffer; see resnet.h. */
void rn_model_init(rn_model *m, uint64_t seed, int zero_init_residual) {
    rn_rng r = {seed};
    rn_model_touch(m);
    for (int i = 0; i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        float *P = m->params;
        size_t c = (size_t)l->c_out;
        if (l->kind == RN_L_CONV) {
            size_t fan_in = (size_t)l->k * l->k * l->c_in, fan_out = (size_t)l->k * l->k * c;
            fill_normal(&r, P + l->w, fan_in * c, sqrt(2.0 / (double)fan_out));
            if (l->bias) fill_uniform(&r, P + l->b, c, 1.0 / sqrt((double)fan_in));
        } else if (l->kind == RN_L_BN) {
            float g = zero_init_residual && l->zero_init ? 0.0f : 1.0f;
            for (size_t j = 0; j < c; j++) {
                P[l->w + j] = g, P[l->b + j] = 0.0f;
                m->buffers[l->rmean + j] = 0.0f, m->buffers[l->rvar + j] = 1.0f;
            }
            m->nbt[l->bn] = 0;
        } else if (l->kind == RN_L_FC) {
            double bound = 1.0 / sqrt((double)l->c_in);
            fill_uniform(&r, P + l->w, c * l->c_in, bound);
            fill_uniform(&r, P + l->b, c, bound);
        }
    }
}
