/* Trains a ResNet-20 with the library's training loop and saves it:
** a progress line every 100 steps from the per-step callback, one line per
** epoch from the per-epoch callback, and early stopping when the validation
** accuracy has not improved for PATIENCE epochs.
**     cc train.c $(pkg-config --cflags --libs resnet) -o train
**     ./train [DATA [OUT.safetensors [EPOCHS [MAX_STEPS [BATCH [SEED]]]]]]
** DATA is fashion-mnist (default), idx:DIR, cifar10:DIR or an image folder. */
#include <resnet.h>
#include <stdio.h>
#include <stdlib.h>

#define PATIENCE 2

typedef struct {
    double best;
    int since_best;
} progress;

/* Per step: a line every 100 steps; never stops the run. */
static int on_step(const rn_step_info *s, void *user) {
    (void)user;
    if (s->step % 100 == 0)
        printf("step %ld  epoch %d  batch %zu/%zu  loss %.4f  lr %.2e\n", s->step, s->epoch, s->batch, s->batches,
               s->smooth_loss, s->lr);
    return 0;
}

/* Per epoch: prints the results; stops after PATIENCE epochs without a better accuracy. */
static int on_epoch(const rn_epoch_info *e, void *user) {
    progress *p = user;
    printf("epoch %d/%d  train_loss %.4f  valid_loss %.4f  accuracy %.4f  %.1f s\n", e->epoch + 1, e->epochs,
           e->train_loss, e->valid_loss, e->accuracy, e->seconds);
    if (e->accuracy > p->best) p->best = e->accuracy, p->since_best = 0;
    else if (++p->since_best >= PATIENCE) return printf("early stop: no better accuracy for %d epochs\n", PATIENCE), 1;
    return 0;
}

/* Builds the model for the data's classes and channels, trains it, saves it. */
int main(int argc, char **argv) {
    rn_train_options o;
    rn_train_defaults(&o);
    if (argc > 1) o.data = argv[1];
    const char *out = argc > 2 ? argv[2] : "model.safetensors";
    if (argc > 3) o.epochs = atoi(argv[3]);
    if (argc > 4) o.max_steps = atol(argv[4]);
    if (argc > 5) o.batch = atoi(argv[5]);
    if (argc > 6) o.seed = strtoull(argv[6], NULL, 10);
    progress p = {-1, 0};
    o.on_step = on_step, o.on_epoch = on_epoch, o.user = &p;

    rn_spec spec;
    rn_model *m = NULL;
    rn_error err;
    if (rn_spec_from_name("resnet20", &spec, &err) || rn_data_info(o.data, &spec.classes, &spec.in_channels, &err) ||
        rn_model_create(&spec, &m, &err))
        return fprintf(stderr, "train: %s\n", err.msg), 1;
    rn_model_init(m, o.seed, 0);
    rn_status st = rn_train(m, &o, &err);
    if (!st) st = rn_model_save(m, out, &err);
    if (st) fprintf(stderr, "train: %s (%s)\n", err.msg, rn_status_name(st));
    else printf("model: %s\n", out);
    rn_model_free(m);
    return st ? 1 : 0;
}
