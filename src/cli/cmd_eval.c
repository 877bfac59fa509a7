/*
** `resnet eval`: a model file against a dataset's validation half: loss,
** top-1 and top-5 accuracy, accuracy per class, the confusion matrix and
** fastai's most_confused pairs. The model's own preprocessing (input size,
** mean/std, resize) comes from its metadata.
*/
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/session.h"
#include "train/plot.h"
#include "train/trainer.h"

static const char *usage_text =
    "usage: resnet eval --model M.safetensors [options]\n"
    "\n"
    "Evaluates a model on the validation half of a dataset.\n"
    "\n"
    "  --model FILE         the model (its metadata gives input size and normalization)\n"
    "  --data SPEC          fashion-mnist (default) | idx:DIR | cifar10:DIR | cifar100:DIR | DIR\n"
    "  --labels FILE        readable class names for folder ids\n"
    "  --bs N               batch size (default 128)\n"
    "  --workers N          loader threads (default 1)\n"
    "  --strict             an undecodable image is an error\n"
    "  --confusion FILE     draw the confusion matrix (PNG or SVG)\n"
    "  --most-confused N    list the N most confused pairs (default 10)\n"
    "  --threads T          compute threads (default: all cores)\n"
    RN_DTYPE_HELP;

/* Prints per-class accuracy and, for up to 20 classes, the confusion matrix. */
static void print_classes(const rn_model *m, const int64_t *cm) {
    int k = m->spec.classes;
    printf("\nper class:\n");
    for (int i = 0; i < k; i++) {
        int64_t row = 0;
        for (int j = 0; j < k; j++) row += cm[(size_t)i * k + j];
        printf("  %-24s %8.4f  (%lld images)\n", m->class_names ? m->class_names[i] : "?",
               row ? (double)cm[(size_t)i * k + i] / row : 0.0, (long long)row);
    }
    if (k > 20) return;
    printf("\nconfusion matrix (rows: actual, columns: predicted):\n");
    for (int i = 0; i < k; i++) {
        printf("  ");
        for (int j = 0; j < k; j++) printf("%6lld", (long long)cm[(size_t)i * k + j]);
        printf("   %s\n", m->class_names ? m->class_names[i] : "");
    }
}

/* One off-diagonal cell of the confusion matrix. */
typedef struct {
    int actual, predicted;
    int64_t count;
} pair;

/* Orders pairs by count, largest first, then by position. */
static int by_count(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return x->actual != y->actual ? x->actual - y->actual : x->predicted - y->predicted;
}

/* Prints the `top` most confused (actual, predicted) pairs, as fastai's most_confused. */
static int print_most_confused(const rn_model *m, const int64_t *cm, long top) {
    int k = m->spec.classes, n = 0;
    pair *p = malloc((size_t)k * k * sizeof *p);
    if (!p) return -1;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++)
            if (i != j && cm[(size_t)i * k + j] > 0) p[n++] = (pair){i, j, cm[(size_t)i * k + j]};
    qsort(p, (size_t)n, sizeof *p, by_count);
    printf("\nmost confused (actual -> predicted, count):\n");
    for (int i = 0; i < n && i < top; i++)
        printf("  %-20s -> %-20s %lld\n", m->class_names ? m->class_names[p[i].actual] : "?",
               m->class_names ? m->class_names[p[i].predicted] : "?", (long long)p[i].count);
    free(p);
    return 0;
}

/* Evaluates and prints; returns the exit code. */
static int evaluate(rn_model *m, rn_loader *l, const char *confusion, long top) {
    rn_eval_result r;
    rn_error err;
    if (rn_evaluate(m, l, 0, 1, &r, &err)) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    printf("images: %zu\nloss: %.6f\ntop1: %.6f\ntop5: %.6f\n", r.n, r.loss, r.top1, r.top5);
    print_classes(m, r.confusion);
    int code = print_most_confused(m, r.confusion, top) ? 1 : 0;
    if (confusion && rn_plot_confusion(confusion, m->spec.classes, (const char *const *)m->class_names, r.confusion, &err)) {
        rn_cli_error("%s", err.msg);
        code = 1;
    }
    free(r.confusion);
    return code;
}

/* `resnet eval`: see usage_text. */
int rn_cmd_eval(int argc, char **argv) {
    rn_data_args d = {0};
    const char *model = NULL, *confusion = NULL, *most = NULL, *threads = NULL, *dtype = NULL;
    const rn_opt opts[] = {RN_DATA_OPTS(d), {"model", &model, 0}, {"confusion", &confusion, 0},
                           {"most-confused", &most, 0}, {"threads", &threads, 0}, {"dtype", &dtype, 0}, {0, 0, 0}};
    rn_precision prec;
    int pr = rn_args_parse("eval", argc, argv, opts);
    long top = 10, nthreads = 0;
    if (pr == 1) return fputs(usage_text, stdout), 0;
    if (pr < 0 || rn_args_int("most-confused", most, 0, 1000000, &top) || rn_args_int("threads", threads, 1, 1024, &nthreads) ||
        rn_session_check(&d) || rn_session_dtype("eval", dtype, &prec))
        return 2;
    if (!model) {
        rn_cli_error("eval: --model is required (see 'resnet eval --help')");
        return 2;
    }
    if (nthreads) omp_set_num_threads((int)nthreads);
    rn_model *m = NULL;
    rn_dataset valid = {0};
    rn_loader *l = NULL;
    rn_augment aug;
    rn_error err;
    int code = 1;
    if (rn_model_open(model, &m, &err)) {
        rn_cli_error("%s", err.msg);
    } else if (rn_session_set_precision("eval", m, prec)) {
        /* printed */
    } else if (!rn_session_open_data(d.data, d.labels, NULL, &valid)) {
        rn_session_model_augment(m, &aug);
        if (valid.nclasses != m->spec.classes)
            rn_cli_error("%s has %d classes but %s predicts %d", valid.source, valid.nclasses, model, m->spec.classes);
        else if (!rn_session_loader(&valid, &aug, &d, 0, 0, &l))
            code = evaluate(m, l, confusion, top);
    }
    rn_loader_free(l);
    rn_dataset_free(&valid);
    rn_model_free(m);
    return code;
}
