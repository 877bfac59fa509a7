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

/* The options of `resnet eval`, parsed and checked. */
typedef struct {
    rn_data_args d;
    const char *model, *confusion, *most, *threads, *dtype;
    rn_precision prec;
    long top, nthreads;
} eval_args;

/* Parses and checks the options without opening anything; returns -1
** for --help, 0 when valid, 2 after printing a usage error. */
static int eval_parse(int argc, char **argv, eval_args *e) {
    const rn_opt opts[] = {RN_DATA_OPTS(e->d), {"model", &e->model, 0}, {"confusion", &e->confusion, 0},
                           {"most-confused", &e->most, 0}, {"threads", &e->threads, 0}, {"dtype", &e->dtype, 0}, {0, 0, 0}};
    int pr = rn_args_parse("eval", argc, argv, opts);
    e->top = 10, e->nthreads = 0;
    if (pr == 1) return -1;
    if (pr < 0 || rn_args_int("most-confused", e->most, 0, 1000000, &e->top) ||
        rn_args_int("threads", e->threads, 1, 1024, &e->nthreads) || rn_session_check(&e->d) ||
        rn_session_dtype("eval", e->dtype, &e->prec))
        return 2;
    if (!e->model) {
        rn_cli_error("eval: --model is required (see 'resnet eval --help')");
        return 2;
    }
    return 0;
}

/* Parse-only entry of `resnet eval` (see commands.h). */
int rn_cmd_eval_check(int argc, char **argv) {
    eval_args e = {0};
    int r = eval_parse(argc, argv, &e);
    return r < 0 ? 0 : r;
}

/* `resnet eval`: see usage_text. */
int rn_cmd_eval(int argc, char **argv) {
    eval_args e = {0};
    int pr = eval_parse(argc, argv, &e);
    if (pr < 0) return fputs(usage_text, stdout), 0;
    if (pr) return pr;
    if (e.nthreads) omp_set_num_threads((int)e.nthreads);
    rn_model *m = NULL;
    rn_dataset valid = {0};
    rn_loader *l = NULL;
    rn_augment aug;
    rn_error err;
    int code = 1;
    if (rn_model_open(e.model, &m, &err)) {
        rn_cli_error("%s", err.msg);
    } else if (rn_session_set_precision("eval", m, e.prec)) {
        /* printed */
    } else if (!rn_session_open_data(e.d.data, e.d.labels, NULL, &valid)) {
        rn_session_model_augment(m, &aug);
        if (valid.nclasses != m->spec.classes)
            rn_cli_error("%s has %d classes but %s predicts %d", valid.source, valid.nclasses, e.model, m->spec.classes);
        else if (!rn_session_loader(&valid, &aug, &e.d, 0, 0, &l))
            code = evaluate(m, l, e.confusion, e.top);
        rn_session_print_skipped(l, 1);
    }
    rn_loader_free(l);
    rn_dataset_free(&valid);
    rn_model_free(m);
    return code;
}
