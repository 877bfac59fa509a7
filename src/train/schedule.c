/*
** Learning-rate and momentum schedules (see schedule.h for the formulas).
** Every expression is written in the order PyTorch's Python code evaluates
** it, in double, so one-cycle and step decay give torch's values exactly.
*/
#include "train/schedule.h"
#include "core/error.h"

#include <math.h>

#define SCHED_PI 3.141592653589793 /* Python's math.pi */

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* no fused multiply-adds: torch's Python does not fuse */
#endif

/* Fills *s with kind, lr_max, total_steps and fastai's defaults. */
void rn_sched_init(rn_schedule *s, rn_sched_kind kind, double lr_max, long total_steps) {
    *s = (rn_schedule){0};
    s->kind = kind;
    s->lr_max = lr_max;
    s->total_steps = total_steps;
    s->pct_start = 0.25;
    s->div_factor = kind == RN_SCHED_COSINE ? 0.0 : 25.0;
    s->final_div = kind == RN_SCHED_COSINE ? 0.0 : 1e5;
    s->mom_max = 0.95;
    s->mom_min = 0.85;
    s->gamma = 0.1;
    s->lr_end = 10.0 * lr_max;
}

/* Checks the fields the schedule's kind uses. */
rn_status rn_sched_check(const rn_schedule *s, rn_error *err) {
    if (s->kind < RN_SCHED_ONECYCLE || s->kind > RN_SCHED_EXP)
        return rn_fail(err, RN_ERR_ARG, "schedule: unknown kind %d", (int)s->kind);
    if (s->total_steps < 1)
        return rn_fail(err, RN_ERR_ARG, "schedule: total_steps is %ld, expected at least 1", s->total_steps);
    if (!(s->lr_max > 0) || !isfinite(s->lr_max))
        return rn_fail(err, RN_ERR_ARG, "schedule: lr %g, expected a positive finite value", s->lr_max);
    if (!(s->mom_max >= 0 && s->mom_max < 1) ||
        (s->kind == RN_SCHED_ONECYCLE && !(s->mom_min >= 0 && s->mom_min < 1)))
        return rn_fail(err, RN_ERR_ARG, "schedule: momentum %g/%g, expected values in [0, 1)", s->mom_max,
                       s->mom_min);
    switch (s->kind) {
    case RN_SCHED_ONECYCLE:
        if (!(s->pct_start >= 0 && s->pct_start <= 1))
            return rn_fail(err, RN_ERR_ARG, "schedule: pct_start %g, expected a value in [0, 1]", s->pct_start);
        if (!(s->div_factor > 0) || !(s->final_div > 0))
            return rn_fail(err, RN_ERR_ARG, "schedule: div_factor %g and final_div %g must be positive",
                           s->div_factor, s->final_div);
        break;
    case RN_SCHED_COSINE:
        if (s->warmup_steps < 0 || s->warmup_steps > s->total_steps)
            return rn_fail(err, RN_ERR_ARG, "schedule: warmup_steps %ld, expected 0..%ld", s->warmup_steps,
                           s->total_steps);
        if (!(s->div_factor == 0 || s->div_factor >= 1) || !(s->final_div == 0 || s->final_div >= 1))
            return rn_fail(err, RN_ERR_ARG, "schedule: div_factor %g and final_div %g must be 0 or >= 1",
                           s->div_factor, s->final_div);
        break;
    case RN_SCHED_STEP:
        if (s->nmilestones < 0 || s->nmilestones > RN_SCHED_MAX_MILESTONES)
            return rn_fail(err, RN_ERR_ARG, "schedule: %d milestones, expected 0..%d", s->nmilestones,
                           RN_SCHED_MAX_MILESTONES);
        if (!(s->gamma > 0))
            return rn_fail(err, RN_ERR_ARG, "schedule: gamma %g, expected a positive value", s->gamma);
        for (int i = 0; i < s->nmilestones; i++)
            if (s->milestones[i] < 0 || (i > 0 && s->milestones[i] < s->milestones[i - 1]))
                return rn_fail(err, RN_ERR_ARG, "schedule: milestone %d (%ld) is negative or out of order", i,
                               s->milestones[i]);
        break;
    case RN_SCHED_EXP:
        if (!(s->lr_end > 0) || !isfinite(s->lr_end))
            return rn_fail(err, RN_ERR_ARG, "schedule: lr_end %g, expected a positive finite value", s->lr_end);
        break;
    case RN_SCHED_CONSTANT:
        break;
    }
    return RN_OK;
}

/* OneCycleLR._annealing_cos: from start to end as pct goes 0 -> 1. */
static double anneal_cos(double start, double end, double pct) {
    double cos_out = cos(SCHED_PI * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
}

/* (step - start) / (end - start) as OneCycleLR computes it; a phase of
** length 0 (where torch raises ZeroDivisionError) counts as finished. */
static double phase_pct(long step, double start, double end) {
    double len = end - start;
    return len == 0 ? 1.0 : ((double)step - start) / len;
}

/* OneCycleLR.get_lr for one group: the lr (want_mom 0) or momentum (1). */
static double onecycle(const rn_schedule *s, long step, int want_mom) {
    double end1 = s->pct_start * (double)s->total_steps - 1; /* float(pct_start * total_steps) - 1 */
    double end2 = (double)(s->total_steps - 1);
    double initial = s->lr_max / s->div_factor;
    double min_lr = initial / s->final_div;
    if ((double)step <= end1) {
        double pct = phase_pct(step, 0.0, end1);
        return want_mom ? anneal_cos(s->mom_max, s->mom_min, pct) : anneal_cos(initial, s->lr_max, pct);
    }
    double pct = phase_pct(step, end1, end2);
    return want_mom ? anneal_cos(s->mom_min, s->mom_max, pct) : anneal_cos(s->lr_max, min_lr, pct);
}

/* The cosine schedule's LambdaLR factor f(step) (schedule.h). */
static double cosine_factor(const rn_schedule *s, long step) {
    double a = s->div_factor > 0 ? 1.0 / s->div_factor : 0.0;
    double m = s->final_div > 0 ? 1.0 / s->final_div : 0.0;
    long w = s->warmup_steps, t = s->total_steps;
    if (step < w) return a + (1.0 - a) * (double)step / (double)w;
    if (step < t) return m + (1.0 - m) * 0.5 * (1.0 + cos(SCHED_PI * (double)(step - w) / (double)(t - w)));
    return m;
}

/* MultiStepLR: the lr times gamma^count at each distinct milestone passed,
** in order, as torch's chained updates multiply it. */
static double step_decay(const rn_schedule *s, long step) {
    double lr = s->lr_max;
    for (int i = 0; i < s->nmilestones && s->milestones[i] <= step;) {
        int count = 1;
        while (i + count < s->nmilestones && s->milestones[i + count] == s->milestones[i]) count++;
        lr = lr * pow(s->gamma, count);
        i += count;
    }
    return lr;
}

/* The learning rate of optimizer step `step`. */
double rn_sched_lr(const rn_schedule *s, long step) {
    switch (s->kind) {
    case RN_SCHED_ONECYCLE: return onecycle(s, step, 0);
    case RN_SCHED_COSINE: return s->lr_max * cosine_factor(s, step);
    case RN_SCHED_STEP: return step_decay(s, step);
    case RN_SCHED_EXP: return s->lr_max * pow(s->lr_end / s->lr_max, (double)step / (double)s->total_steps);
    case RN_SCHED_CONSTANT: break;
    }
    return s->lr_max;
}

/* The momentum (Adam: beta1) of optimizer step `step`. */
double rn_sched_mom(const rn_schedule *s, long step) {
    return s->kind == RN_SCHED_ONECYCLE ? onecycle(s, step, 1) : s->mom_max;
}

/* fastai even_mults(start, stop, n): [start * step**i], step = (stop/start)**(1/(n-1)). */
void rn_even_mults(double lo, double hi, int n, double *out) {
    if (n == 1) {
        out[0] = hi;
        return;
    }
    double step = pow(hi / lo, 1.0 / (n - 1));
    for (int i = 0; i < n; i++) out[i] = lo * pow(step, i);
}
