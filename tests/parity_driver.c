/*
** The C side of the PyTorch parity tests (tests/parity.py).
**
**   parity_driver grads MODEL BATCH OUT [SMOOTH]
**       BATCH holds "input" (float32 N,C,H,W) and "labels" (int64 N).
**       Writes OUT with "logits_eval", "logits_train" and "loss", and
**       OUT.grads with the gradients under the parameters' names and the
**       running statistics as they are after the training-mode forward.
**   parity_driver sgd MODEL BATCH OUT STEPS LR MOMENTUM WD NESTEROV [SMOOTH]
**       STEPS training steps of SGD on BATCH; writes the model to OUT.
*/
#include "resnet.h"
#include "model/model.h"
#include "io/safetensors.h"
#include "core/layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the error and exits: a test driver may die loudly. */
static void die(const char *what, const rn_error *e) {
    fprintf(stderr, "parity_driver: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

typedef struct {
    float *x;
    int *labels;
    int n, c, h, w;
} batch;

/* Reads "input" and "labels" from a safetensors file. */
static batch read_batch(const char *path) {
    rn_st_file f;
    rn_error e;
    batch b = {0};
    if (rn_st_read(path, &f, &e)) die(path, &e);
    const rn_st_tensor *x = rn_st_find(&f, "input"), *y = rn_st_find(&f, "labels");
    if (!x || !y || x->ndim != 4 || x->dtype != RN_DT_F32 || y->dtype != RN_DT_I64) die(path, NULL);
    b.n = (int)x->shape[0], b.c = (int)x->shape[1], b.h = (int)x->shape[2], b.w = (int)x->shape[3];
    b.x = malloc(x->nbytes);
    b.labels = malloc(sizeof(int) * b.n);
    if (!b.x || !b.labels) die("out of memory", NULL);
    rn_nchw_to_nhwc(x->data, b.x, b.n, b.c, b.h, b.w);
    for (int i = 0; i < b.n; i++) b.labels[i] = (int)((const int64_t *)y->data)[i];
    rn_st_free(&f);
    return b;
}

/* Eval logits, train logits, loss and gradients. */
static void grads(rn_model *m, batch b, const char *out, float smooth) {
    rn_error e;
    int k = m->spec.classes;
    float *le = malloc(sizeof(float) * b.n * k), *lt = malloc(sizeof(float) * b.n * k);
    double loss;
    if (!le || !lt) die("out of memory", NULL);
    if (rn_model_forward(m, b.x, b.n, b.h, b.w, 0, le, &e)) die("eval forward", &e);
    if (rn_model_train_step(m, b.x, b.labels, b.n, b.h, b.w, smooth, lt, &loss, &e)) die("train step", &e);
    rn_st_out o[3] = {{"logits_eval", RN_DT_F32, 2, {b.n, k}, le},
                      {"logits_train", RN_DT_F32, 2, {b.n, k}, lt},
                      {"loss", RN_DT_F64, 0, {0}, &loss}};
    if (rn_st_write(out, o, 3, NULL, 0, &e)) die(out, &e);
    /* Saving with params and grads swapped writes the gradients under the
    ** parameters' names, in PyTorch's layouts. */
    char path[4096];
    snprintf(path, sizeof path, "%s.grads", out);
    float *p = m->params;
    m->params = m->grads;
    if (rn_model_save(m, path, &e)) die(path, &e);
    m->params = p;
    free(le);
    free(lt);
}

/* STEPS steps of SGD on the batch. */
static void sgd(rn_model *m, batch b, const char *out, char **a) {
    rn_error e;
    rn_sgd *opt;
    rn_sgd_config c = {strtof(a[1], NULL), strtof(a[2], NULL), strtof(a[3], NULL), atoi(a[4])};
    float smooth = a[5] ? strtof(a[5], NULL) : 0.0f;
    if (rn_sgd_create(m->nparams, &opt, &e)) die("sgd", &e);
    for (int s = 0; s < atoi(a[0]); s++) {
        double loss;
        if (rn_model_train_step(m, b.x, b.labels, b.n, b.h, b.w, smooth, NULL, &loss, &e)) die("train step", &e);
        rn_sgd_step(opt, &c, m->params, m->grads, m->nparams);
    }
    if (rn_model_save(m, out, &e)) die(out, &e);
    rn_sgd_free(opt);
}

/* Dispatches to the mode named by argv[1]. */
int main(int argc, char **argv) {
    rn_model *m;
    rn_error e;
    if (argc < 5 || (strcmp(argv[1], "grads") && strcmp(argv[1], "sgd")) || (!strcmp(argv[1], "sgd") && argc < 10)) {
        fprintf(stderr, "usage: parity_driver grads MODEL BATCH OUT [SMOOTH] | sgd MODEL BATCH OUT STEPS LR MOMENTUM WD NESTEROV [SMOOTH]\n");
        return 2;
    }
    if (rn_model_open(argv[2], &m, &e)) die(argv[2], &e);
    batch b = read_batch(argv[3]);
    if (!strcmp(argv[1], "grads")) grads(m, b, argv[4], argc > 5 ? strtof(argv[5], NULL) : 0.0f);
    else sgd(m, b, argv[4], argv + 5);
    free(b.x);
    free(b.labels);
    rn_model_free(m);
    return 0;
}
