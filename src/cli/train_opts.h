/*
** The optimization options shared by `resnet train` and `resnet lr-find`
** and their conversion into an rn_train_config.
*/
#ifndef RN_TRAIN_OPTS_H
#define RN_TRAIN_OPTS_H

#include "cli/args.h"
#include "train/trainer.h"

typedef struct {
    const char *epochs, *fine_tune, *lr, *lr_mult, *opt, *momentum, *mom_min, *wd, *beta2, *eps, *sched,
        *pct_start, *div, *final_div, *warmup, *milestones, *gamma, *label_smoothing, *clip;
    int nesterov, wd_all;
} rn_train_args;

#define RN_TRAIN_OPTS(t)                                                                                         \
    {"epochs", &(t).epochs, 0}, {"fine-tune", &(t).fine_tune, 0}, {"lr", &(t).lr, 0},                            \
    {"lr-mult", &(t).lr_mult, 0}, {"opt", &(t).opt, 0}, {"momentum", &(t).momentum, 0},                          \
    {"mom-min", &(t).mom_min, 0}, {"wd", &(t).wd, 0}, {"beta2", &(t).beta2, 0}, {"eps", &(t).eps, 0},            \
    {"sched", &(t).sched, 0}, {"pct-start", &(t).pct_start, 0}, {"div", &(t).div, 0},                            \
    {"final-div", &(t).final_div, 0}, {"warmup", &(t).warmup, 0}, {"milestones", &(t).milestones, 0},            \
    {"gamma", &(t).gamma, 0}, {"label-smoothing", &(t).label_smoothing, 0}, {"clip", &(t).clip, 0},              \
    {"nesterov", 0, &(t).nesterov}, {"wd-all", 0, &(t).wd_all}

#define RN_TRAIN_HELP                                                                                   \
    "optimization (defaults: fastai's fit_one_cycle with AdamW):\n"                                      \
    "  --epochs E           epochs (default 5)\n"                                                       \
    "  --lr R               peak learning rate (default 3e-3 AdamW/Adam, 0.1 SGD)\n"                    \
    "  --opt NAME           adamw (default) | adam | sgd\n"                                              \
    "  --momentum M         SGD momentum / Adam beta1; one-cycle peak (default 0.95)\n"                  \
    "  --mom-min M          one-cycle momentum at peak lr (default 0.85)\n"                            \
    "  --nesterov           Nesterov momentum (SGD)\n"                                                   \
    "  --wd W               weight decay (default 0.01 AdamW, 5e-4 SGD, 0 Adam)\n"                       \
    "  --wd-all             decay batchnorm parameters and biases too (default: not)\n"                 \
    "  --beta2 B --eps E    Adam (default 0.99 and 1e-5, fastai's)\n"                                    \
    "  --sched NAME         onecycle (default) | cosine | step | constant\n"                             \
    "  --pct-start F        one-cycle warm-up fraction (default 0.25)\n"                                 \
    "  --div D --final-div F   one-cycle start lr/D, end lr/F (default 25, 1e5)\n"                    \
    "  --warmup E           cosine: epochs of linear warm-up (default 0)\n"                              \
    "  --milestones 30,60   step: epochs where lr is multiplied by --gamma (default 0.1)\n"            \
    "  --fine-tune F        fastai fine_tune: F epochs with the body frozen, then --epochs unfrozen\n"  \
    "  --lr-mult X          fine-tune: body lr = head lr / X (default 100)\n"                            \
    "  --label-smoothing E  label smoothing (default 0)\n"                                               \
    "  --clip N             clip the gradient 2-norm to N (default off)\n"

/* Fills cfg from the options (defaults as in RN_TRAIN_HELP); prints an
** error and returns -1 when an option is invalid. */
int rn_train_config_from_args(const rn_train_args *t, rn_train_config *cfg);

#endif
