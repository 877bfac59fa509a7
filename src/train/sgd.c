/*
** SGD with momentum, PyTorch's torch.optim.SGD rule (dampening 0):
**     g = grad + wd * p
**     buf = g                      on the first step
**     buf = momentum * buf + g     afterwards
**     d = g + momentum * buf  (Nesterov)  or  d = buf
**     p -= lr * d
** over one flat parameter buffer, so the whole update is a single loop.
*/
#include "resnet.h"
#include "core/error.h"

#include <stdlib.h>

struct rn_sgd {
    float *buf; /* momentum buffer, one per parameter */
    size_t n;
    long steps;
};

/* Allocates the momentum buffer for n parameters. */
rn_status rn_sgd_create(size_t n, rn_sgd **out, rn_error *err) {
    rn_sgd *o = calloc(1, sizeof *o);
    if (o) o->buf = calloc(n ? n : 1, sizeof(float));
    if (!o || !o->buf) {
        free(o);
        return rn_fail(err, RN_ERR_NOMEM, "out of memory for SGD state of %zu parameters", n);
    }
    o->n = n;
    *out = o;
    return RN_OK;
}

/* Frees the optimizer. */
void rn_sgd_free(rn_sgd *o) {
    if (!o) return;
    free(o->buf);
    free(o);
}

/* One SGD update of params from grads; see the rule above. */
void rn_sgd_step(rn_sgd *o, const rn_sgd_config *c, float *p, const float *grad, size_t n) {
    float lr = c->lr, mu = c->momentum, wd = c->weight_decay;
    int first = o->steps == 0;
    if (n > o->n) n = o->n;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + wd * p[i];
        if (mu != 0.0f) {
            float b = first ? g : mu * o->buf[i] + g;
            o->buf[i] = b;
            g = c->nesterov ? g + mu * b : b;
        }
        p[i] -= lr * g;
    }
    o->steps++;
}
