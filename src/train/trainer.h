/*
** The training loop: epochs of optimizer steps over a loader, validation
** after each epoch, the epoch table, the log and checkpoints.
**
** A run is one or two phases. A plain run is one phase of `epochs` epochs
** under one schedule. Fine-tuning (fastai's fine_tune) is two: first
** `freeze_epochs` epochs of one-cycle at `lr` with the body frozen (its
** batchnorm layers stay trainable), then `epochs` epochs of one-cycle at
** lr/2 with discriminative rates (body lr/2/lr_mult ... lr/2), pct_start 0.3
** and div 5, everything trainable.
**
** Parameters fall into five optimizer groups: the body's first half (stem
** and the first half of the stages), its second half, the head (fc), and the
** batchnorm parameters of each body half. Weight decay skips batchnorm
** parameters and biases unless wd_all is set (fastai's default).
**
** Data-parallel (cfg->dist with several ranks): the loaders hand each rank
** its slice of every global batch, the gradients and the loss are averaged
** across ranks before each step, rank 0's batchnorm running statistics are
** broadcast before each evaluation, and evaluation sums its counts across
** ranks. Only the rank given an out_dir and a report writes anything.
**
** Everything random is a function of the seed (initialization, the order
** of every epoch, every sample's augmentation), so a run resumed from a
** checkpoint continues exactly where it stopped: with the same thread
** count the weights are bit-identical to an uninterrupted run.
*/
#ifndef RN_TRAINER_H
#define RN_TRAINER_H

#include <signal.h>

#include "data/augment.h"
#include "data/loader.h"
#include "model/model.h"
#include "train/optim.h"
#include "train/report.h"
#include "train/schedule.h"

typedef struct {
    int epochs;            /* epochs of the main phase */
    int freeze_epochs;     /* fine-tune: epochs training only the head (and BN) first; 0 = plain run */
    long max_steps;        /* stop after this many optimizer steps in all (0 = no limit) */
    double lr;             /* peak (one-cycle) or base learning rate */
    double mom_max, mom_min; /* SGD momentum or Adam beta1; one-cycle cycles max -> min -> max */
    rn_optim_config optim;
    rn_sched_kind sched;
    double pct_start, div, final_div;
    int warmup_epochs;     /* cosine schedule */
    double gamma;          /* step schedule: lr *= gamma at each milestone epoch */
    int milestones[8], nmilestones;
    int wd_all;            /* weight decay on batchnorm parameters and biases too */
    double lr_mult;        /* fine-tune: body rate = head rate / lr_mult (fastai 100) */
    float label_smoothing;
    double clip;           /* gradient 2-norm limit, 0 = off */
    const char *out_dir;   /* checkpoints, log.csv and curves; NULL = none */
    const char *args_json; /* the command line, kept in checkpoints for --resume */
    struct rn_dist *dist;  /* data-parallel training (attached to the model), or NULL for one process */
    rn_step_callback on_step;   /* after every step; non-zero stops the run there (NULL: none) */
    rn_epoch_callback on_epoch; /* after every epoch's validation and checkpoint; non-zero stops */
    void *user;            /* passed to both */
    long save_every;       /* also checkpoint every this many steps (0: at epoch ends and stops only) */
    int skip_nonfinite;    /* skip a step whose loss or gradient is not finite (default: stop there) */
    volatile sig_atomic_t *stop; /* when set (a signal handler), stop after the current step with a
                                  ** checkpoint, as max_steps does; NULL = never */
    long test_nan_step;    /* test hook: make a gradient NaN at this step (RN_TEST_NAN_GRAD_STEP); 0 = off */
} rn_train_config;

/* Where a run is: what a checkpoint must hold besides weights and optimizer state. */
typedef struct {
    int epoch;             /* epoch in progress (0-based, over both phases) */
    size_t batch;          /* next batch of that epoch */
    long step;             /* optimizer steps taken */
    double smooth_avg;     /* the running (smoothed) training loss */
    long smooth_n;
    double best;           /* best validation accuracy so far (-1: none) */
} rn_train_state;

/* Results of one pass over a validation loader. */
typedef struct {
    double loss, top1, top5;
    size_t n;
    int64_t *confusion;    /* k x k (row: actual, column: predicted) when asked for, else NULL */
} rn_eval_result;

typedef struct rn_trainer rn_trainer;

/* Sets up training of m on the two loaders (valid may be NULL) with cfg.
** report may be NULL (quiet). Nothing is owned but the optimizer. */
rn_status rn_trainer_create(rn_model *m, rn_loader *train, rn_loader *valid, const rn_train_config *cfg,
                            rn_report *report, rn_trainer **out, rn_error *err);
void rn_trainer_free(rn_trainer *t);
/* Restores weights, optimizer state and position from a checkpoint directory. */
rn_status rn_trainer_resume(rn_trainer *t, const char *dir, rn_error *err);
/* Runs the remaining epochs (or until max_steps). */
rn_status rn_trainer_fit(rn_trainer *t, rn_error *err);
/* The position reached. */
const rn_train_state *rn_trainer_state(const rn_trainer *t);
/* Steps skipped by skip_nonfinite so far in this process, and the first one (0: none). */
long rn_trainer_skipped(const rn_trainer *t, long *first);

/* Runs m in eval mode over every batch of `valid` (epoch 0): mean loss
** (with label smoothing eps), top-1 and top-5 accuracy, and the confusion
** matrix when want_confusion. Free res->confusion with free(). */
rn_status rn_evaluate(rn_model *m, rn_loader *valid, float smoothing, int want_confusion, rn_eval_result *res,
                      rn_error *err);

/* rn_evaluate on a data-parallel rank: each rank scores its slice of every
** batch and the totals are summed across ranks (dist NULL: one process;
** the confusion matrix stays this rank's). */
rn_status rn_evaluate_dist(rn_model *m, rn_loader *valid, float smoothing, int want_confusion, struct rn_dist *dist,
                           rn_eval_result *res, rn_error *err);
/* Stores what inference needs in m from the training data d and its
** augmentation: class names, input size, evaluation resize, mean/std. */
rn_status rn_model_describe(rn_model *m, const rn_dataset *d, const rn_augment *aug, rn_error *err);

/* Reads the `args` JSON array saved in DIR/last.state.safetensors (the
** command line of the run), for --resume. Caller frees *json. */
rn_status rn_checkpoint_args(const char *dir, char **json, rn_error *err);

#endif
