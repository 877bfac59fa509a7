/*
** The training loop (see trainer.h for phases, groups and determinism).
**
** One epoch: start the loader at the saved position, and for every batch
** take the phase's learning rates and momentum for this step from the
** schedule, run forward/backward, clip, step the optimizer and update the
** smoothed loss and the progress bar. Then validate, print the table row,
** append to log.csv, redraw the curves and write the checkpoints.
*/
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "dist/dist.h"
#include "train/checkpoint.h"
#include "train/plot.h"

enum { G_BODY0, G_BODY1, G_HEAD, G_BN0, G_BN1, NGROUPS };

/* The schedule, rate multipliers and frozen groups of one phase. */
typedef struct {
    int first, count;       /* epochs [first, first + count) */
    rn_schedule sched;
    double mult[NGROUPS];
    int frozen[NGROUPS];
} phase;

/* What one epoch's validation gave, kept for the curves. */
typedef struct {
    double train_loss, valid_loss, acc;
} epoch_row;

struct rn_trainer {
    rn_model *m;
    rn_loader *train, *valid;
    const rn_train_config *cfg;
    rn_report *report;
    rn_optim *opt;
    rn_param_range *ranges;
    int nranges;
    size_t nbatches;        /* training batches per epoch */
    rn_train_state st;
    rn_smooth smooth;
    epoch_row *hist;        /* one row per finished epoch */
    rn_epoch_info last;     /* the last finished epoch, for cfg->on_epoch */
    float *bn_backup;       /* skip_nonfinite: BN running stats before the step, restored on a skip */
    int64_t *nbt_backup;
    long skipped, first_skipped;
    long saved_step;        /* step of the last checkpoint written or resumed from (-1: none) */
};

/* Seconds on a monotonic clock. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The optimizer group of a parameter tensor: the head, a batchnorm
** parameter (1-D, outside the head) or a convolution weight, each in the
** body half its stage falls in (the stem and the first ceil(S/2) stages are
** half 0, as fastai's resnet split puts the stem, layer1 and layer2 first). */
static int tensor_group(const rn_model *m, const rn_tensor_entry *t) {
    if (!strncmp(t->name, "fc.", 3)) return G_HEAD;
    int stage = 0, half = 0;
    if (sscanf(t->name, "layer%d.", &stage) == 1) half = stage > (m->spec.nstages + 1) / 2;
    if (t->ndim == 1) return half ? G_BN1 : G_BN0;
    return half ? G_BODY1 : G_BODY0;
}

/* One range per parameter tensor with its group and whether it decays. */
static rn_status make_ranges(rn_trainer *t, rn_error *err) {
    const rn_model *m = t->m;
    t->ranges = calloc((size_t)m->ntensors, sizeof *t->ranges);
    if (!t->ranges) return rn_fail(err, RN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->ntensors; i++) {
        const rn_tensor_entry *e = &m->tensors[i];
        if (e->home != RN_T_PARAM) continue;
        size_t len = 1;
        for (int d = 0; d < e->ndim; d++) len *= (size_t)e->shape[d];
        t->ranges[t->nranges++] = (rn_param_range){e->off, len, tensor_group(m, e), t->cfg->wd_all || e->ndim > 1};
    }
    return RN_OK;
}

/* Number of phases: two when fine-tuning. */
static int nphases(const rn_trainer *t) { return t->cfg->freeze_epochs > 0 ? 2 : 1; }

/* Total epochs over all phases. */
static int total_epochs(const rn_trainer *t) { return t->cfg->freeze_epochs + t->cfg->epochs; }

/* A one-cycle schedule over `epochs` epochs (fastai's fit_one_cycle). */
static rn_schedule one_cycle(const rn_trainer *t, double lr, int epochs, double pct, double div) {
    const rn_train_config *c = t->cfg;
    rn_schedule s = {.kind = RN_SCHED_ONECYCLE, .lr_max = lr, .total_steps = (long)epochs * (long)t->nbatches,
                     .pct_start = pct, .div_factor = div, .final_div = c->final_div, .mom_max = c->mom_max,
                     .mom_min = c->mom_min};
    return s;
}

/* The schedule of a plain run, from the configuration; epochs become steps. */
static rn_schedule plain_schedule(const rn_trainer *t) {
    const rn_train_config *c = t->cfg;
    if (c->sched == RN_SCHED_ONECYCLE) return one_cycle(t, c->lr, c->epochs, c->pct_start, c->div);
    rn_schedule s = {.kind = c->sched, .lr_max = c->lr, .total_steps = (long)c->epochs * (long)t->nbatches,
                     .div_factor = c->div, .final_div = c->final_div, .mom_max = c->mom_max, .mom_min = c->mom_max,
                     .warmup_steps = (long)c->warmup_epochs * (long)t->nbatches, .gamma = c->gamma,
                     .nmilestones = c->nmilestones};
    for (int i = 0; i < c->nmilestones; i++) s.milestones[i] = (long)c->milestones[i] * (long)t->nbatches;
    return s;
}

/* Describes phase k: plain, or fastai's fine_tune (frozen, then unfrozen). */
static void make_phase(const rn_trainer *t, int k, phase *p) {
    const rn_train_config *c = t->cfg;
    memset(p, 0, sizeof *p);
    for (int g = 0; g < NGROUPS; g++) p->mult[g] = 1;
    if (nphases(t) == 1) {
        p->count = c->epochs;
        p->sched = plain_schedule(t);
    } else if (k == 0) {
        /* fit_one_cycle(freeze_epochs, slice(lr), pct_start=0.99): body groups at lr/10 */
        p->count = c->freeze_epochs;
        p->sched = one_cycle(t, c->lr, c->freeze_epochs, 0.99, c->div);
        p->mult[G_BODY0] = p->mult[G_BODY1] = p->mult[G_BN0] = p->mult[G_BN1] = 0.1;
        p->frozen[G_BODY0] = p->frozen[G_BODY1] = 1;
    } else {
        /* lr /= 2; fit_one_cycle(epochs, slice(lr/lr_mult, lr), pct_start=0.3, div=5) */
        double mults[3];
        rn_even_mults(1.0 / c->lr_mult, 1.0, 3, mults);
        p->first = c->freeze_epochs;
        p->count = c->epochs;
        p->sched = one_cycle(t, c->lr / 2, c->epochs, 0.3, 5.0);
        p->mult[G_BODY0] = p->mult[G_BN0] = mults[0];
        p->mult[G_BODY1] = p->mult[G_BN1] = mults[1];
    }
}

/* Sets up a run (see trainer.h). */
rn_status rn_trainer_create(rn_model *m, rn_loader *train, rn_loader *valid, const rn_train_config *cfg,
                            rn_report *report, rn_trainer **out, rn_error *err) {
    rn_trainer *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t) return rn_fail(err, RN_ERR_NOMEM, "out of memory");
    *t = (rn_trainer){.m = m, .train = train, .valid = valid, .cfg = cfg, .report = report};
    t->nbatches = rn_loader_batches(train);
    t->st.best = -1;
    t->smooth = (rn_smooth)RN_SMOOTH_INIT;
    t->hist = calloc((size_t)total_epochs(t) + 1, sizeof *t->hist);
    t->saved_step = -1;
    if (cfg->skip_nonfinite) {
        t->bn_backup = malloc((m->nbuffers + 1) * sizeof(float));
        t->nbt_backup = malloc(((size_t)m->nbn + 1) * sizeof(int64_t));
    }
    int nomem = !t->hist || (cfg->skip_nonfinite && (!t->bn_backup || !t->nbt_backup));
    rn_status st = !nomem ? make_ranges(t, err) : rn_fail(err, RN_ERR_NOMEM, "out of memory");
    if (!st && t->nbatches == 0)
        st = rn_fail(err, RN_ERR_ARG, "the training set gives no batch (fewer samples than the batch size with drop-last?)");
    if (!st) st = rn_optim_create(&cfg->optim, t->ranges, t->nranges, NGROUPS, &t->opt, err);
    if (st) {
        rn_trainer_free(t);
        return st;
    }
    *out = t;
    return RN_OK;
}

void rn_trainer_free(rn_trainer *t) {
    if (!t) return;
    rn_optim_free(t->opt);
    free(t->ranges);
    free(t->hist);
    free(t->bn_backup);
    free(t->nbt_backup);
    free(t);
}

const rn_train_state *rn_trainer_state(const rn_trainer *t) { return &t->st; }

/* Steps skipped for a non-finite loss or gradient (see trainer.h). */
long rn_trainer_skipped(const rn_trainer *t, long *first) {
    *first = t->first_skipped;
    return t->skipped;
}

/* Reads finished epochs' rows back from log.csv, for the curves of a resumed run. */
static void reload_history(rn_trainer *t) {
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/log.csv", t->cfg->out_dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        int e;
        double tl, vl, acc;
        if (sscanf(line, "%d,%lf,%lf,%lf", &e, &tl, &vl, &acc) == 4 && e >= 0 && e < t->st.epoch)
            t->hist[e] = (epoch_row){tl, vl, acc};
    }
    fclose(f);
}

/* Restores everything from a checkpoint directory (see checkpoint.h). */
rn_status rn_trainer_resume(rn_trainer *t, const char *dir, rn_error *err) {
    rn_status st = rn_ckpt_load(dir, t->m, t->opt, &t->st, err);
    if (st) return st;
    if (t->st.epoch > total_epochs(t))
        return rn_fail(err, RN_ERR_ARG, "%s: the checkpoint is at epoch %d, beyond the %d epochs asked for", dir,
                       t->st.epoch, total_epochs(t));
    if (t->st.batch > t->nbatches)
        return rn_fail(err, RN_ERR_ARG, "%s: the checkpoint is at batch %zu, but an epoch has %zu batches (another "
                       "batch size or data set?)", dir, t->st.batch, t->nbatches);
    t->smooth.avg = t->st.smooth_avg, t->smooth.n = t->st.smooth_n;
    t->saved_step = t->st.step;
    if (t->cfg->out_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/log.csv", t->cfg->out_dir);
        rn_status st2 = rn_log_csv_truncate(path, t->st.epoch, err);
        if (st2) return st2;
        reload_history(t);
    }
    return RN_OK;
}

/* Writes last.* (and best.safetensors when asked) if there is an output directory. */
static rn_status save(rn_trainer *t, int best, rn_error *err) {
    if (!t->cfg->out_dir) return RN_OK;
    t->st.smooth_avg = t->smooth.avg, t->st.smooth_n = t->smooth.n;
    rn_status st = rn_ckpt_save(t->cfg->out_dir, t->m, t->opt, &t->st, t->cfg->args_json, err);
    if (!st) t->saved_step = t->st.step;
    if (st || !best) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/best.safetensors", t->cfg->out_dir);
    return rn_model_save(t->m, path, err);
}

/* Zeroes the gradients of frozen groups, so that clipping measures only the
** trainable ones (PyTorch's clip_grad_norm_ skips parameters without a grad). */
static void zero_frozen(rn_trainer *t, const phase *p) {
    for (int i = 0; i < t->nranges; i++)
        if (p->frozen[t->ranges[i].group]) memset(t->m->grads + t->ranges[i].off, 0, t->ranges[i].len * sizeof(float));
}

/* Whether all n values are finite: NaN or Inf anywhere makes the sum of
** v * 0 NaN (one vectorized pass, small beside a training step). */
static int all_finite(const float *v, size_t n) {
    float acc = 0;
    for (size_t i = 0; i < n; i++) acc += v[i] * 0.0f;
    return acc == 0;
}

/* Fails for a diverged step: names the step, what went wrong and the last
** good checkpoint, which is left as it is. */
static rn_status diverged(const rn_trainer *t, const char *what, double loss, rn_error *err) {
    char where[4200] = "no checkpoint was written";
    if (t->cfg->out_dir && t->saved_step >= 0)
        snprintf(where, sizeof where, "the last good checkpoint is %s/last.safetensors (step %ld)", t->cfg->out_dir,
                 t->saved_step);
    return rn_fail(err, RN_ERR_ARG, "step %ld: %s (loss %g); training stopped (lower --lr, add --clip, or skip such "
                   "steps with --skip-nonfinite); %s", t->st.step + 1, what, loss, where);
}

/* A step whose loss, gradient or BN statistics are not finite: with
** skip_nonfinite, puts the BN running statistics back and counts the step
** as skipped (no optimizer update, *loss NaN so that it stays out of the
** smoothed loss); otherwise fails (see diverged). */
static rn_status nonfinite_step(rn_trainer *t, double *loss, rn_error *err) {
    rn_model *m = t->m;
    if (!t->cfg->skip_nonfinite)
        return diverged(t, isfinite(*loss) ? "a gradient or batchnorm statistic is not finite" : "the loss is not finite",
                        *loss, err);
    memcpy(m->buffers, t->bn_backup, m->nbuffers * sizeof(float));
    memcpy(m->nbt, t->nbt_backup, (size_t)m->nbn * sizeof(int64_t));
    if (!t->skipped++) t->first_skipped = t->st.step + 1;
    t->st.step++;
    *loss = NAN;
    return RN_OK;
}

/* One optimizer step on batch b with the phase's rates for step s of the phase. */
static rn_status train_batch(rn_trainer *t, const phase *p, long s, const rn_batch *b, double *loss, rn_error *err) {
    rn_model *m = t->m;
    double lrs[NGROUPS];
    double lr = rn_sched_lr(&p->sched, s), mom = rn_sched_mom(&p->sched, s);
    for (int g = 0; g < NGROUPS; g++) lrs[g] = lr * p->mult[g];
    rn_dist *d = t->cfg->dist;
    if (b->n == 0) /* only a data-parallel rank gets an empty slice */
        return rn_fail(err, RN_ERR_FORMAT, "rank %d: every image of its share of batch %zu was undecodable",
                       rn_dist_rank(d), t->st.batch);
    rn_dist_step(d, t->st.step);
    if (t->bn_backup) {
        memcpy(t->bn_backup, m->buffers, m->nbuffers * sizeof(float));
        memcpy(t->nbt_backup, m->nbt, (size_t)m->nbn * sizeof(int64_t));
    }
    rn_status st = rn_model_train_step(m, b->x, b->labels, b->n, m->input_h, m->input_w, t->cfg->label_smoothing,
                                       NULL, loss, err);
    if (st) return st;
    if (t->cfg->test_nan_step == t->st.step + 1) m->grads[m->nparams / 2] = NAN;
    /* Data-parallel: a NaN gradient reaches every rank through the sums; a
    ** rank's own non-finite BN statistics are made a NaN loss, so that every
    ** rank stops (or skips) at this step together. */
    const int stats_ok = all_finite(m->buffers, m->nbuffers);
    if (rn_dist_size(d) > 1 && !stats_ok) *loss = NAN;
    if ((st = rn_dist_finish_grads(d, loss, err))) return st;
    if (!isfinite(*loss) || !all_finite(m->grads, m->nparams) || !stats_ok)
        return nonfinite_step(t, loss, err);
    if (t->cfg->clip > 0) {
        zero_frozen(t, p);
        rn_clip_grad_norm(m->grads, m->nparams, t->cfg->clip);
    }
    rn_optim_step(t->opt, lrs, mom, p->frozen, m->params, m->grads);
    if (!all_finite(m->params, m->nparams)) return diverged(t, "the update made a weight infinite", *loss, err);
    t->st.step++;
    return RN_OK;
}

/* The phase the current epoch belongs to. */
static void current_phase(const rn_trainer *t, phase *p) {
    make_phase(t, 0, p);
    if (t->st.epoch >= p->first + p->count && nphases(t) > 1) make_phase(t, 1, p);
}

/* Trains the rest of the current epoch; *stopped = 1 when max_steps was reached. */
static rn_status train_epoch(rn_trainer *t, int *stopped, rn_error *err) {
    phase p;
    current_phase(t, &p);
    rn_status st = rn_loader_start(t->train, t->st.epoch, t->st.batch, err);
    if (st) return st;
    if (t->report) rn_report_epoch_begin(t->report, t->st.epoch, t->nbatches, "train");
    double t0 = now();
    size_t images = 0;
    for (;;) {
        const rn_batch *b;
        double loss;
        if ((st = rn_loader_next(t->train, &b, err)) || !b) break;
        long s = (long)(t->st.epoch - p.first) * (long)t->nbatches + (long)t->st.batch;
        if ((st = train_batch(t, &p, s, b, &loss, err))) break;
        t->st.batch++;
        images += (size_t)b->n * (size_t)rn_dist_size(t->cfg->dist);
        double avg = isfinite(loss) ? rn_smooth_update(&t->smooth, loss) : rn_smooth_value(&t->smooth);
        if (t->report) rn_report_batch(t->report, t->st.batch, avg, images / (now() - t0 + 1e-9));
        rn_step_info info = {t->st.epoch, t->st.step, t->st.batch, t->nbatches, loss, avg,
                             rn_sched_lr(&p.sched, s) * p.mult[G_HEAD]};
        int stop = (t->cfg->stop && *t->cfg->stop) || (t->cfg->on_step && t->cfg->on_step(&info, t->cfg->user));
        if ((st = rn_dist_any(t->cfg->dist, &stop, err))) break; /* every rank stops at the same step */
        if ((t->cfg->max_steps && t->st.step >= t->cfg->max_steps) || stop) {
            *stopped = 1;
            break;
        }
        if (t->cfg->save_every && t->st.step % t->cfg->save_every == 0 && t->st.batch < t->nbatches &&
            (st = save(t, 0, err)))
            break;
    }
    if (t->report) rn_report_epoch_end(t->report);
    return st;
}

/* Validates, prints the row, logs, plots and checkpoints after an epoch. */
static rn_status finish_epoch(rn_trainer *t, double seconds_so_far, double t0, double lr, rn_error *err) {
    rn_eval_result r = {0};
    rn_model *m = t->m;
    /* rank 0's running statistics are the model's (DDP's broadcast_buffers) */
    rn_status st = rn_dist_bcast(t->cfg->dist, m->buffers, m->nbuffers * sizeof(float), err);
    if (!st && t->valid) st = rn_evaluate_dist(m, t->valid, t->cfg->label_smoothing, 0, t->cfg->dist, &r, err);
    if (st) return st;
    int e = t->st.epoch;
    double secs = seconds_so_far + (now() - t0), train_loss = rn_smooth_value(&t->smooth);
    double acc = t->valid ? r.top1 : NAN, vl = t->valid ? r.loss : NAN;
    t->hist[e] = (epoch_row){train_loss, vl, acc};
    if (t->report) rn_report_row(t->report, e, train_loss, vl, acc, r.top5, secs);
    t->last = (rn_epoch_info){e, total_epochs(t), train_loss, vl, acc, t->valid ? r.top5 : NAN, secs};
    int best = t->valid && acc > t->st.best;
    if (best) t->st.best = acc;
    t->st.epoch++, t->st.batch = 0;
    if (!t->cfg->out_dir) return RN_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/log.csv", t->cfg->out_dir);
    st = rn_log_csv_append(path, e, train_loss, vl, acc, r.top5, secs, lr, err);
    if (!st) st = save(t, best, err);
    if (st) return st;
    double x[1024], tl[1024], v[1024], a[1024];
    int n = t->st.epoch < 1024 ? t->st.epoch : 1024;
    for (int i = 0; i < n; i++) x[i] = i, tl[i] = t->hist[i].train_loss, v[i] = t->hist[i].valid_loss, a[i] = t->hist[i].acc;
    snprintf(path, sizeof path, "%s/curves.png", t->cfg->out_dir);
    return rn_plot_training(path, x, tl, v, a, n, err);
}

/* Runs the remaining epochs (see trainer.h). */
rn_status rn_trainer_fit(rn_trainer *t, rn_error *err) {
    rn_status st = rn_dist_check_same(t->cfg->dist, rn_model_crc(t->m), "the model's CRC-32 at the start", err);
    if (st) return st;
    if (t->report && t->st.epoch < total_epochs(t)) rn_report_header(t->report);
    while (!st && t->st.epoch < total_epochs(t) && !(t->cfg->stop && *t->cfg->stop)) {
        int stopped = 0;
        double t0 = now();
        phase p;
        current_phase(t, &p);
        long s = (long)(t->st.epoch - p.first) * (long)t->nbatches + (long)t->st.batch;
        double lr = rn_sched_lr(&p.sched, s);
        st = train_epoch(t, &stopped, err);
        if (st) break;
        if (stopped && t->st.batch < t->nbatches) return save(t, 0, err);
        st = finish_epoch(t, 0, t0, lr, err);
        if (stopped || (!st && t->cfg->on_epoch && t->cfg->on_epoch(&t->last, t->cfg->user))) break;
    }
    return st;
}

/* Indices of the 5 largest of k values (fewer when k < 5), largest first;
** ties keep the lower index first, as argmax does. */
static int top5(const float *z, int k, int *idx) {
    int n = 0;
    for (int j = 0; j < k; j++) {
        if (n == 5 && z[j] <= z[idx[4]]) continue; /* not among the best five */
        int pos = n < 5 ? n++ : 4;
        while (pos > 0 && z[j] > z[idx[pos - 1]]) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = j;
    }
    return n;
}

/* Adds one batch's logits to the running loss, accuracy and confusion counts. */
static void score_batch(const float *logits, const rn_batch *b, int k, float smoothing, rn_eval_result *r,
                        double *loss_sum) {
    *loss_sum += rn_softmax_xent(b->n, k, logits, b->labels, smoothing, NULL) * b->n;
    for (int i = 0; i < b->n; i++) {
        int idx[5] = {0}, n = top5(logits + (size_t)i * k, k, idx), y = b->labels[i];
        r->top1 += idx[0] == y;
        for (int j = 0; j < n; j++) r->top5 += idx[j] == y;
        if (r->confusion) r->confusion[(size_t)y * k + idx[0]]++;
    }
    r->n += (size_t)b->n;
}

/* Evaluates m over the whole validation loader (see trainer.h). */
rn_status rn_evaluate(rn_model *m, rn_loader *valid, float smoothing, int want_confusion, rn_eval_result *res,
                      rn_error *err) {
    return rn_evaluate_dist(m, valid, smoothing, want_confusion, NULL, res, err);
}

/* Evaluates m over this rank's share of the validation loader and sums the
** counts across ranks (see trainer.h). */
rn_status rn_evaluate_dist(rn_model *m, rn_loader *valid, float smoothing, int want_confusion, struct rn_dist *dist,
                           rn_eval_result *res, rn_error *err) {
    int k = m->spec.classes;
    double loss_sum = 0;
    memset(res, 0, sizeof *res);
    float *logits = NULL;
    if (want_confusion && !(res->confusion = calloc((size_t)k * k, sizeof(int64_t))))
        return rn_fail(err, RN_ERR_NOMEM, "out of memory");
    rn_status st = rn_loader_start(valid, 0, 0, err);
    for (;;) {
        const rn_batch *b;
        if (st || (st = rn_loader_next(valid, &b, err)) || !b) break;
        if (b->n == 0) continue; /* a data-parallel rank's empty slice */
        float *bigger = realloc(logits, (size_t)b->n * k * sizeof(float));
        if (!bigger) {
            st = rn_fail(err, RN_ERR_NOMEM, "out of memory");
            break;
        }
        logits = bigger;
        st = rn_model_forward(m, b->x, b->n, m->input_h, m->input_w, 0, logits, err);
        if (!st) score_batch(logits, b, k, smoothing, res, &loss_sum);
    }
    free(logits);
    double sums[4] = {loss_sum, res->top1, res->top5, (double)res->n};
    if (!st && rn_dist_size(dist) > 1 && !(st = rn_dist_sum(dist, sums, 4, err)))
        loss_sum = sums[0], res->top1 = sums[1], res->top5 = sums[2], res->n = (size_t)sums[3];
    if (st) {
        free(res->confusion);
        res->confusion = NULL;
        return st;
    }
    if (res->n) res->loss = loss_sum / res->n, res->top1 /= res->n, res->top5 /= res->n;
    return RN_OK;
}
