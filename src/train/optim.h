/*
** Optimizers over the flat parameter buffer: SGD (momentum, Nesterov,
** coupled weight decay), Adam (coupled weight decay) and AdamW (decoupled),
** with parameter groups (discriminative learning rates), per-range weight
** decay switches, frozen groups, checkpointable state and gradient clipping.
**
** The arithmetic is PyTorch 1.13's single-tensor path (foreach=False, its
** CPU default) operation by operation in float32, with the same fused
** multiply-adds where ATen's vectorized kernels use them, so results agree
** with torch.optim bit for bit in the common case and to rounding always:
**   SGD    g = grad + wd*p;  buf = g (first step) | buf*mu + g;
**          d = g + mu*buf (Nesterov) | buf;  p -= lr*d
**   Adam   g = grad + wd*p;  m = m*b1 + (1-b1)*g;  v = v*b2 + (1-b2)*g*g;
**          p += -(lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps),
**          bc1 = 1 - b1^t, bc2 = 1 - b2^t, t = the range's own step count
**   AdamW  p *= 1 - lr*wd first, then Adam without the coupled term.
** Scalars (lr, momentum, betas, eps, wd) are doubles because torch keeps
** them as Python floats and computes lr/bc1, 1-b2, 1-lr*wd in double
** before rounding to float; float inputs would already differ.
*/
#ifndef RN_TRAIN_OPTIM_H
#define RN_TRAIN_OPTIM_H

#include "resnet.h"

#include <stddef.h>
#include <stdint.h>

/* One tensor's slice of the flat parameter buffer. */
typedef struct {
    size_t off, len; /* slice of the flat parameter buffer */
    int group;       /* parameter group 0..ngroups-1 (body groups + head) */
    int decay;       /* 1: weight decay applies; 0: BN weights/biases and biases (fastai's default) */
} rn_param_range;

typedef enum { RN_OPTIM_SGD, RN_OPTIM_ADAM, RN_OPTIM_ADAMW } rn_optim_kind;

typedef struct {
    rn_optim_kind kind;
    double weight_decay; /* SGD/Adam: coupled (added to the gradient); AdamW: decoupled p *= 1 - lr*wd */
    int nesterov;        /* SGD */
    double beta2, eps;   /* Adam/AdamW (fastai: 0.99, 1e-5; torch: 0.999, 1e-8) */
} rn_optim_config;

typedef struct rn_optim rn_optim;

/* Creates an optimizer for `nranges` non-overlapping ranges in `ngroups`
** groups. State buffers span the whole parameter buffer up to the end of the
** last range, start at zero, and every range's step count at 0. Fails with
** RN_ERR_ARG on a bad config or overlapping/out-of-group ranges. */
rn_status rn_optim_create(const rn_optim_config *cfg, const rn_param_range *ranges, int nranges,
                          int ngroups, rn_optim **out, rn_error *err);

/* Frees the optimizer (NULL is fine). */
void rn_optim_free(rn_optim *o);

/* One step. lr[g] per group (the schedule times the group's multiplier),
** mom = SGD momentum or Adam beta1 (cycled by one-cycle). frozen may be NULL;
** frozen[g] != 0 leaves group g's parameters and state (incl. Adam step
** counts) untouched, as PyTorch does for parameters whose grad is None.
** SGD with mom == 0 neither reads nor creates the momentum buffer (torch).
** Elementwise, OpenMP over chunks: the result does not depend on threads. */
void rn_optim_step(rn_optim *o, const double *lr, double mom, const int *frozen, float *params,
                   const float *grads);

/* Number of named state buffers: SGD 1 ("momentum_buffer"), Adam/AdamW 2
** ("exp_avg", "exp_avg_sq"). */
int rn_optim_nstate(const rn_optim *o);

/* State buffer i (0..nstate-1): its name and length (the parameter buffer's
** length up to the last range). Writable, for loading a checkpoint. NULL if
** i is out of range. */
float *rn_optim_state(rn_optim *o, int i, const char **name, size_t *len);

/* Per-range step counts (writable, for checkpoints), *nranges set. Adam:
** torch's state['step']; SGD: the steps in which momentum was applied, so
** 0 means "no momentum buffer yet" exactly as torch's None. */
int64_t *rn_optim_steps(rn_optim *o, int *nranges);

/* torch.nn.utils.clip_grad_norm_ over the flat buffer: the total 2-norm
** (double accumulation in fixed chunks, so independent of threads; torch
** accumulates in float32, so norms differ by ~1e-7 relative); when
** max_norm/(norm+1e-6) < 1 the gradients are scaled by it. Returns the norm
** before clipping. torch leaves out parameters without a grad: zero the
** gradients of frozen groups first. grads: (n). */
double rn_clip_grad_norm(float *grads, size_t n, double max_norm);

#endif
