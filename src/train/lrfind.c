/*
** fastai's learning-rate finder: train for up to `iters` steps while the
** rate grows exponentially from start to end, record the smoothed loss at
** each step, stop early once it exceeds 4x the best seen (divergence), and
** suggest a rate with fastai's "valley" rule. The model's weights, buffers
** and counters are restored afterwards, so the sweep changes nothing.
*/
#include "train/lrfind.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/report.h"

/* Copies of everything training changes in a model. */
typedef struct {
    float *params, *buffers;
    int64_t *nbt;
} snapshot;

/* Saves the model's weights, buffers and counters. */
static rn_status take(const rn_model *m, snapshot *s, rn_error *err) {
    s->params = malloc(m->nparams * sizeof(float));
    s->buffers = malloc((m->nbuffers + 1) * sizeof(float));
    s->nbt = malloc(((size_t)m->nbn + 1) * sizeof(int64_t));
    if (!s->params || !s->buffers || !s->nbt) return rn_fail(err, RN_ERR_NOMEM, "out of memory saving the weights");
    memcpy(s->params, m->params, m->nparams * sizeof(float));
    memcpy(s->buffers, m->buffers, m->nbuffers * sizeof(float));
    memcpy(s->nbt, m->nbt, (size_t)m->nbn * sizeof(int64_t));
    return RN_OK;
}

/* Puts the saved state back and frees the copies. */
static void restore(rn_model *m, snapshot *s) {
    if (s->params && s->buffers && s->nbt) {
        rn_model_touch(m);
        memcpy(m->params, s->params, m->nparams * sizeof(float));
        memcpy(m->buffers, s->buffers, m->nbuffers * sizeof(float));
        memcpy(m->nbt, s->nbt, (size_t)m->nbn * sizeof(int64_t));
    }
    free(s->params), free(s->buffers), free(s->nbt);
}

/* One sweep step: batch b at rate lr; returns the raw loss in *loss. */
static rn_status sweep_step(rn_model *m, rn_optim *o, const rn_lr_find_config *c, const rn_batch *b, double lr,
                            double *loss, rn_error *err) {
    rn_status st = rn_model_train_step(m, b->x, b->labels, b->n, m->input_h, m->input_w, c->label_smoothing, NULL,
                                       loss, err);
    if (st) return st;
    double lrs[1] = {lr};
    int frozen[1] = {0};
    rn_optim_step(o, lrs, c->mom, frozen, m->params, m->grads);
    return RN_OK;
}

/* The sweep proper, over as many epochs of the loader as it takes. */
static rn_status sweep(rn_model *m, rn_loader *l, rn_optim *o, const rn_lr_find_config *c, rn_lr_curve *out,
                       rn_error *err) {
    rn_smooth sm = RN_SMOOTH_INIT;
    double best = INFINITY;
    rn_status st = RN_OK;
    for (int epoch = 0; !st && out->n < c->iters; epoch++) {
        const rn_batch *b = NULL;
        int before = out->n;
        if ((st = rn_loader_start(l, epoch, 0, err))) break;
        while (out->n < c->iters && !(st = rn_loader_next(l, &b, err)) && b) {
            double lr = c->start * pow(c->end / c->start, (double)out->n / c->iters), loss;
            if ((st = sweep_step(m, o, c, b, lr, &loss, err))) break;
            double s = rn_smooth_update(&sm, loss);
            out->lr[out->n] = lr, out->loss[out->n] = s, out->n++;
            if (!isfinite(s) || s > 4 * best) return RN_OK; /* diverged: fastai's stop_div */
            if (s < best) best = s;
        }
        if (out->n == before) break; /* an empty epoch: nothing more to learn from */
    }
    return st;
}

/* Runs the finder (see lrfind.h). */
rn_status rn_lr_find(rn_model *m, rn_loader *l, const rn_optim_config *oc, const rn_lr_find_config *c, rn_lr_curve *out,
                     rn_error *err) {
    memset(out, 0, sizeof *out);
    if (!(c->start > 0 && c->end > c->start && c->iters >= 10))
        return rn_fail(err, RN_ERR_ARG, "lr-find needs 0 < start < end and at least 10 iterations");
    out->lr = calloc((size_t)c->iters, sizeof(double));
    out->loss = calloc((size_t)c->iters, sizeof(double));
    if (!out->lr || !out->loss) return rn_fail(err, RN_ERR_NOMEM, "out of memory");
    rn_param_range all = {0, m->nparams, 0, 1};
    rn_optim *o = NULL;
    snapshot s = {0};
    rn_status st = rn_optim_create(oc, &all, 1, 1, &o, err);
    if (!st) st = take(m, &s, err);
    if (!st) st = sweep(m, l, o, c, out, err);
    restore(m, &s);
    rn_optim_free(o);
    if (!st) out->suggested = rn_lr_valley(out, c->iters, &out->suggested_index);
    return st;
}

/* fastai's valley rule: on the curve without its first iters/10 and last 5
** points, find the longest decreasing subsequence of the losses and take
** the point int(len/3) + int(len/6) into it, about half way down the
** valley. Returns the rate, or NAN when the curve is too short. */
double rn_lr_valley(const rn_lr_curve *c, int iters, int *index) {
    int lo = iters / 10, n = c->n - 5 - lo;
    if (n < 2) return NAN;
    const double *loss = c->loss + lo;
    int *lds = malloc((size_t)n * sizeof(int)), max_start = 0, max_end = 0;
    if (!lds) return NAN;
    for (int i = 0; i < n; i++) lds[i] = 1;
    for (int i = 1; i < n; i++) {
        for (int j = 0; j < i; j++) {
            if (loss[i] < loss[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
            if (lds[max_end] < lds[i]) max_end = i, max_start = max_end - lds[max_end]; /* inside, as fastai */
        }
    }
    free(lds);
    double sections = (max_end - max_start) / 3.0;
    int idx = max_start + (int)sections + (int)(sections / 2);
    *index = lo + idx;
    return c->lr[lo + idx];
}

void rn_lr_curve_free(rn_lr_curve *c) {
    free(c->lr), free(c->loss);
    memset(c, 0, sizeof *c);
}
