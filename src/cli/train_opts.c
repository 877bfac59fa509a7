/*
** Optimization options -> rn_train_config; see train_opts.h.
*/
#include "cli/train_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads the optimizer name and its defaults (lr, weight decay). */
static int optimizer(const rn_train_args *t, rn_train_config *c, double *lr, double *wd) {
    const char *name = t->opt ? t->opt : "adamw";
    if (!strcmp(name, "adamw")) c->optim.kind = RN_OPTIM_ADAMW, *lr = 3e-3, *wd = 0.01;
    else if (!strcmp(name, "adam")) c->optim.kind = RN_OPTIM_ADAM, *lr = 3e-3, *wd = 0;
    else if (!strcmp(name, "sgd")) c->optim.kind = RN_OPTIM_SGD, *lr = 0.1, *wd = 5e-4;
    else {
        rn_cli_error("--opt: '%s' must be adamw, adam or sgd", name);
        return -1;
    }
    return 0;
}

/* Reads the schedule name and the step schedule's milestone list. */
static int schedule(const rn_train_args *t, rn_train_config *c) {
    const char *name = t->sched ? t->sched : "onecycle";
    static const struct { const char *name; rn_sched_kind kind; } kinds[] = {
        {"onecycle", RN_SCHED_ONECYCLE}, {"cosine", RN_SCHED_COSINE}, {"step", RN_SCHED_STEP}, {"constant", RN_SCHED_CONSTANT}};
    int found = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(name, kinds[i].name)) c->sched = kinds[i].kind, found = 1;
    if (!found) {
        rn_cli_error("--sched: '%s' must be onecycle, cosine, step or constant", name);
        return -1;
    }
    const char *p = t->milestones;
    while (p && *p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1000000 || c->nmilestones == 8 || (*end && *end != ',')) {
            rn_cli_error("--milestones: '%s' is not a list of at most 8 epochs in [1, 1000000] like 30,60", t->milestones);
            return -1;
        }
        c->milestones[c->nmilestones++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Fills cfg from the options; see train_opts.h. */
int rn_train_config_from_args(const rn_train_args *t, rn_train_config *c) {
    double lr, wd, mom = 0.95, mom_min = 0.85, beta2 = 0.99, eps = 1e-5, pct = 0.25, div = 25, fdiv = 1e5;
    double gamma = 0.1, ls = 0, clip = 0, lr_mult = 100;
    long epochs = 5, freeze = 0, warmup = 0;
    memset(c, 0, sizeof *c);
    if (optimizer(t, c, &lr, &wd) || schedule(t, c)) return -1;
    if (rn_args_int("epochs", t->epochs, 1, 1000000, &epochs) || rn_args_int("fine-tune", t->fine_tune, 0, 1000000, &freeze) ||
        rn_args_int("warmup", t->warmup, 0, 1000000, &warmup) || rn_args_float("lr", t->lr, 1e-12, 1e3, &lr) ||
        rn_args_float("lr-mult", t->lr_mult, 1, 1e6, &lr_mult) || rn_args_float("momentum", t->momentum, 0, 0.9999, &mom) ||
        rn_args_float("mom-min", t->mom_min, 0, 0.9999, &mom_min) || rn_args_float("wd", t->wd, 0, 10, &wd) ||
        rn_args_float("beta2", t->beta2, 0, 0.999999, &beta2) || rn_args_float("eps", t->eps, 1e-30, 1, &eps) ||
        rn_args_float("pct-start", t->pct_start, 0.001, 0.999, &pct) || rn_args_float("div", t->div, 1, 1e9, &div) ||
        rn_args_float("final-div", t->final_div, 1, 1e12, &fdiv) || rn_args_float("gamma", t->gamma, 0, 1, &gamma) ||
        rn_args_float("label-smoothing", t->label_smoothing, 0, 0.999, &ls) || rn_args_float("clip", t->clip, 0, 1e9, &clip))
        return -1;
    if (!t->mom_min && c->sched != RN_SCHED_ONECYCLE) mom_min = mom;
    c->epochs = (int)epochs, c->freeze_epochs = (int)freeze, c->warmup_epochs = (int)warmup;
    c->lr = lr, c->lr_mult = lr_mult, c->mom_max = mom, c->mom_min = mom_min;
    c->optim.weight_decay = (float)wd, c->optim.nesterov = t->nesterov, c->optim.beta2 = beta2;
    c->optim.eps = eps, c->wd_all = t->wd_all;
    c->pct_start = pct, c->div = div, c->final_div = fdiv, c->gamma = gamma;
    c->label_smoothing = (float)ls, c->clip = clip;
    return 0;
}
