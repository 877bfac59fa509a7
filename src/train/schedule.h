/*
** Learning-rate and momentum schedules as pure functions of the step, so a
** resumed run continues exactly. Each matches a PyTorch scheduler stepped
** once per optimizer step (step 0 is the value used by the first step):
**
**   ONECYCLE  torch.optim.lr_scheduler.OneCycleLR(max_lr=lr_max, total_steps,
**             pct_start, anneal_strategy='cos', cycle_momentum=True,
**             base_momentum=mom_min, max_momentum=mom_max, div_factor,
**             final_div_factor=final_div, three_phase=False), the same
**             double arithmetic: lr and momentum (Adam: beta1) identical.
**             Where torch divides by zero (a phase of length 0) the phase's
**             end value is used.
**   COSINE    linear warm-up then cosine annealing, i.e. LambdaLR with
**                 a = div_factor > 0 ? 1/div_factor : 0   (warm-up start)
**                 m = final_div  > 0 ? 1/final_div  : 0   (floor)
**                 f(s) = a + (1 - a) * s / W                      s < W
**                 f(s) = m + (1 - m) * 0.5 * (1 + cos(pi * (s - W) / (T - W)))  W <= s < T
**                 f(s) = m                                        s >= T
**                 lr = lr_max * f(s),  W = warmup_steps, T = total_steps;
**             equal to SequentialLR([LinearLR(start_factor=a, total_iters=W),
**             CosineAnnealingLR(T_max=T-W, eta_min=lr_max*m)], [W]) to rounding.
**   STEP      MultiStepLR(milestones, gamma): lr_max * gamma^(number of
**             milestones <= step), multiplied milestone by milestone as torch.
**   CONSTANT  lr_max.
**   EXP       the lr finder's sweep (fastai SchedExp, pos = step/total_steps):
**             lr_max * (lr_end/lr_max)^(step/total_steps); equal to
**             ExponentialLR(gamma=(lr_end/lr_max)^(1/total_steps)) to rounding.
** Momentum is cycled by ONECYCLE only; the others return mom_max.
*/
#ifndef RN_TRAIN_SCHEDULE_H
#define RN_TRAIN_SCHEDULE_H

#include "resnet.h"

typedef enum { RN_SCHED_ONECYCLE, RN_SCHED_COSINE, RN_SCHED_STEP, RN_SCHED_CONSTANT, RN_SCHED_EXP } rn_sched_kind;

#define RN_SCHED_MAX_MILESTONES 8

typedef struct {
    rn_sched_kind kind;
    double lr_max;          /* peak / base lr */
    long total_steps;
    double pct_start;       /* one-cycle: fraction of steps warming up (fastai 0.25) */
    double div_factor;      /* one-cycle: start lr = lr_max/div_factor (25); cosine: see above */
    double final_div;       /* one-cycle: final lr = start lr/final_div (1e5); cosine: see above */
    double mom_max, mom_min;/* one-cycle: 0.95 -> 0.85 -> 0.95; other schedules: constant mom_max */
    long warmup_steps;      /* cosine: linear warm-up steps */
    double gamma;           /* step decay factor (0.1) */
    long milestones[RN_SCHED_MAX_MILESTONES]; /* step decay: nondecreasing steps */
    int nmilestones;
    double lr_end;          /* EXP: sweep end */
} rn_schedule;

/* Fills *s with kind, lr_max, total_steps and the defaults: pct_start 0.25,
** div_factor 25, final_div 1e5 (one-cycle) -- cosine: 0 and 0, warm-up from
** 0 to lr_max and anneal to 0 --, momentum 0.95/0.85, gamma 0.1, no
** milestones, no warm-up, lr_end = 10 * lr_max. */
void rn_sched_init(rn_schedule *s, rn_sched_kind kind, double lr_max, long total_steps);

/* Checks that *s is usable (positive total steps and lr, pct_start in [0,1],
** positive factors, sorted milestones, ...); RN_ERR_ARG naming the field. */
rn_status rn_sched_check(const rn_schedule *s, rn_error *err);

/* The learning rate used by optimizer step `step` (0-based). */
double rn_sched_lr(const rn_schedule *s, long step);

/* The momentum (SGD) or beta1 (Adam) used by optimizer step `step`. */
double rn_sched_mom(const rn_schedule *s, long step);

/* fastai's even_mults: n values from lo to hi evenly spaced in log scale,
** lo * step^i with step = (hi/lo)^(1/(n-1)); n == 1 gives hi. out: (n). */
void rn_even_mults(double lo, double hi, int n, double *out);

#endif
