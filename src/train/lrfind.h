/*
** The learning-rate finder (fastai's lr_find): see lrfind.c.
*/
#ifndef RN_LRFIND_H
#define RN_LRFIND_H

#include "data/loader.h"
#include "model/model.h"
#include "train/optim.h"

typedef struct {
    double start, end;      /* rate range (fastai: 1e-7 to 10) */
    int iters;              /* at most this many steps (fastai: 100) */
    double mom;             /* SGD momentum / Adam beta1 during the sweep */
    float label_smoothing;
} rn_lr_find_config;

/* The recorded curve: rates and smoothed losses, and the suggestion. */
typedef struct {
    double *lr, *loss;
    int n;
    double suggested;
    int suggested_index;
} rn_lr_curve;

/* Sweeps the rate on m over batches of l (epochs 0, 1, ...) with a fresh
** optimizer of kind oc; restores m's weights afterwards. */
rn_status rn_lr_find(rn_model *m, rn_loader *l, const rn_optim_config *oc, const rn_lr_find_config *c, rn_lr_curve *out,
                     rn_error *err);
/* fastai's "valley" suggestion on a curve recorded with `iters` asked for. */
double rn_lr_valley(const rn_lr_curve *c, int iters, int *index);
void rn_lr_curve_free(rn_lr_curve *c);

#endif
