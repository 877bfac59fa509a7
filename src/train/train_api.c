/*
** rn_train: the public training loop. It sets up what `resnet train` sets
** up with its default flags (dataset, the data kind's augmentation preset,
** normalization, loaders, the one-cycle configuration) and runs the
** trainer with the caller's callbacks and no printing.
**
** The defaults here are those of the CLI (train_opts.c, session.c); the
** test suite checks that both give bit-identical weights.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "train/trainer.h"

/* Everything a run holds, for one cleanup path. */
typedef struct {
    rn_dataset train, valid;
    rn_augment aug, eval_aug;
    rn_loader *tl, *vl;
    rn_trainer *trainer;
    rn_train_config cfg;
} api_run;

/* Fills *o with the documented defaults. */
void rn_train_defaults(rn_train_options *o) {
    memset(o, 0, sizeof *o);
    o->data = "fashion-mnist";
    o->epochs = 5;
    o->batch = 128;
    o->optimizer = "adamw";
    o->weight_decay = -1;
    o->workers = -1;
}

/* The one-cycle configuration of `resnet train` for an optimizer name
** (its default rate and weight decay unless given). */
static rn_status train_config(const rn_train_options *o, rn_train_config *c, rn_error *err) {
    const char *name = o->optimizer ? o->optimizer : "adamw";
    double lr, wd;
    memset(c, 0, sizeof *c);
    if (!strcmp(name, "adamw")) c->optim.kind = RN_OPTIM_ADAMW, lr = 3e-3, wd = 0.01;
    else if (!strcmp(name, "adam")) c->optim.kind = RN_OPTIM_ADAM, lr = 3e-3, wd = 0;
    else if (!strcmp(name, "sgd")) c->optim.kind = RN_OPTIM_SGD, lr = 0.1, wd = 5e-4;
    else return rn_fail(err, RN_ERR_ARG, "rn_train: optimizer '%s' must be adamw, adam or sgd", name);
    if (o->lr > 0) lr = o->lr;
    if (o->weight_decay >= 0) wd = o->weight_decay;
    if (o->epochs < 1 || o->batch < 1 || o->max_steps < 0 || !(lr < 1e3) || !(wd <= 10))
        return rn_fail(err, RN_ERR_ARG, "rn_train: epochs and batch must be >= 1, max_steps >= 0, lr < 1000 and "
                       "weight decay <= 10 (got %d, %d, %ld, %g, %g)", o->epochs, o->batch, o->max_steps, lr, wd);
    c->sched = RN_SCHED_ONECYCLE;
    c->epochs = o->epochs, c->lr = lr, c->lr_mult = 100, c->mom_max = 0.95, c->mom_min = 0.85;
    c->optim.weight_decay = (float)wd, c->optim.beta2 = 0.99, c->optim.eps = 1e-5;
    c->pct_start = 0.25, c->div = 25, c->final_div = 1e5, c->gamma = 0.1;
    c->max_steps = o->max_steps, c->out_dir = o->out_dir;
    c->on_step = o->on_step, c->on_epoch = o->on_epoch, c->user = o->user;
    return RN_OK;
}

/* Image channels of a dataset: its own for in-memory data, 3 for folders. */
static int data_channels(const rn_dataset *d) { return d->kind == RN_DS_MEMORY ? d->c : 3; }

/* Class count and channels of a dataset spec (see resnet.h). */
rn_status rn_data_info(const char *data, int *classes, int *channels, rn_error *err) {
    rn_dataset d;
    if (!data || !classes || !channels) return rn_fail(err, RN_ERR_ARG, "rn_data_info: every argument must be given");
    rn_status st = rn_dataset_open(data, NULL, &d, NULL, err);
    if (st) return st;
    *classes = d.nclasses, *channels = data_channels(&d);
    rn_dataset_free(&d);
    return RN_OK;
}

/* Checks that the model fits the data: class count and input channels. */
static rn_status check_fit(const rn_model *m, const rn_dataset *d, rn_error *err) {
    int c = data_channels(d);
    if (m->spec.classes != d->nclasses || m->spec.in_channels != c)
        return rn_fail(err, RN_ERR_MISMATCH, "%s has %d classes of %d-channel images; the model takes %d classes "
                       "and %d channels", d->source, d->nclasses, c, m->spec.classes, m->spec.in_channels);
    return RN_OK;
}

/* The training augmentation: the kind's preset and its normalization. */
static rn_status make_augment(const rn_train_options *o, const rn_model *m, api_run *r, rn_error *err) {
    const char *kind = rn_dataset_preset_name(o->data);
    int imagenet = !strcmp(kind, "imagenet"), d = !strcmp(kind, "cifar") ? 32 : imagenet ? 224 : 28;
    int h = o->height > 0 ? o->height : d, w = o->width > 0 ? o->width : h;
    rn_status st = rn_augment_preset(kind, h, w, m->spec.in_channels < 3 ? m->spec.in_channels : 3, &r->aug, err);
    if (st) return st;
    static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};
    if (!imagenet) return rn_dataset_stats(&r->train, 2000, r->aug.mean, r->aug.std, err);
    memcpy(r->aug.mean, in_mean, sizeof in_mean), memcpy(r->aug.std, in_std, sizeof in_std);
    return RN_OK;
}

/* Stores what inference needs in the model: class names, input size,
** evaluation resize and normalization (what a model file carries). */
rn_status rn_model_describe(rn_model *m, const rn_dataset *d, const rn_augment *aug, rn_error *err) {
    char **names = calloc((size_t)d->nclasses, sizeof(char *));
    for (int i = 0; names && i < d->nclasses; i++)
        if (!(names[i] = strdup(d->class_names[i]))) {
            while (i > 0) free(names[--i]);
            free(names), names = NULL;
        }
    if (!names) return rn_fail(err, RN_ERR_NOMEM, "out of memory for the class names of %s", d->source);
    if (m->class_names)
        for (int i = 0; i < m->spec.classes; i++) free(m->class_names[i]);
    free(m->class_names);
    m->class_names = names;
    m->input_h = aug->out_h, m->input_w = aug->out_w, m->eval_resize = aug->eval_resize;
    for (int i = 0; i < 3; i++) m->mean[i] = aug->mean[i], m->std[i] = aug->std[i];
    return RN_OK;
}

/* Creates the two loaders as `resnet train` does (validation unshuffled, unaugmented). */
static rn_status make_loaders(const rn_train_options *o, api_run *r, rn_error *err) {
    int workers = o->workers >= 0 ? o->workers : r->train.kind == RN_DS_MEMORY ? 0 : 1;
    rn_loader_config c = {.batch = o->batch, .shuffle = 1, .train = 1, .workers = workers,
                          .prefetch = 2 * (workers > 0 ? workers : 1), .seed = o->seed};
    rn_status st = rn_loader_create(&r->train, &r->aug, &c, &r->tl, err);
    c.shuffle = c.train = 0;
    if (!st) st = rn_loader_create(&r->valid, &r->eval_aug, &c, &r->vl, err);
    return st;
}

/* Frees everything a run holds. */
static void run_free(api_run *r) {
    rn_trainer_free(r->trainer);
    rn_loader_free(r->tl);
    rn_loader_free(r->vl);
    rn_dataset_free(&r->train);
    rn_dataset_free(&r->valid);
}

/* Trains m as documented in resnet.h. */
rn_status rn_train(rn_model *m, const rn_train_options *o, rn_error *err) {
    if (!m || !o) return rn_fail(err, RN_ERR_ARG, "rn_train: model and options must be given");
    api_run r;
    memset(&r, 0, sizeof r);
    rn_status st = train_config(o, &r.cfg, err);
    if (!st) st = rn_dataset_open(o->data ? o->data : "fashion-mnist", NULL, &r.train, &r.valid, err);
    if (!st) st = check_fit(m, &r.train, err);
    if (!st) st = make_augment(o, m, &r, err);
    if (!st) st = rn_model_describe(m, &r.train, &r.aug, err);
    if (!st) {
        rn_model_eval_augment(m, &r.eval_aug);
        st = make_loaders(o, &r, err);
    }
    if (!st) st = rn_trainer_create(m, r.tl, r.vl, &r.cfg, NULL, &r.trainer, err);
    if (!st) st = rn_trainer_fit(r.trainer, err);
    run_free(&r);
    return st;
}
