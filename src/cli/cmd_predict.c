/*
** `resnet predict`: class names and probabilities for image files, with the
** model's own preprocessing (input size, channels, mean/std and resize
** from its metadata). `--show DIR` also draws each image with its top-k.
*/
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/session.h"
#include "model/model.h"
#include "train/plot.h"

static const char *usage_text =
    "usage: resnet predict --model M.safetensors [options] IMAGE...\n"
    "\n"
    "Prints the top-k classes and probabilities of each JPEG or PNG image.\n"
    "\n"
    "  --model FILE     the model (its metadata gives input size and normalization)\n"
    "  --topk K         classes to show per image (default 5)\n"
    "  --show DIR       also write DIR/<n>.png: the image with its top-k beside it\n"
    "  --threads T      compute threads (default: all cores)\n"
    "  --dtype T        fp32 (default), bf16 (convolutions in bfloat16, AVX512_BF16) or bf16-direct\n"
    "                   (bf16 without Winograd for the 3x3 layers)\n";

/* Classifies one image file with the library's preprocessing (the path
** of rn_classify_file, keeping the decoded image for --show) and prints
** its top-k; returns 0 or -1. */
static int predict_one(rn_model *m, const char *path, int topk, const char *show, int index, float *p) {
    rn_image im;
    rn_error err;
    int idx[64];
    if (rn_model_decode_file(m, path, &im, &err)) {
        rn_cli_error("%s", err.msg);
        return -1;
    }
    int st = rn_classify_image(m, &im, p, &err);
    if (!st) {
        rn_top_k(p, m->spec.classes, topk, idx);
        printf("%s\n", path);
        for (int i = 0; i < topk; i++)
            printf("  %-28s %.4f\n", m->class_names ? m->class_names[idx[i]] : "?", p[idx[i]]);
    }
    if (!st && show) {
        char out[4096];
        const char *names[64];
        double probs[64];
        for (int i = 0; i < topk; i++) names[i] = m->class_names ? m->class_names[idx[i]] : "?", probs[i] = p[idx[i]];
        snprintf(out, sizeof out, "%s/%d.png", show, index);
        st = rn_plot_prediction(out, im.px, im.h, im.w, names, probs, topk, &err);
    }
    rn_image_free(&im);
    if (st) rn_cli_error("%s", err.msg);
    return st ? -1 : 0;
}

/* Splits argv into options and image paths (images are the non-option words). */
static void split_args(int argc, char **argv, char **opt_argv, int *opt_argc, char **images, int *nimages) {
    static const char *valued[] = {"--model", "--topk", "--show", "--threads", "--dtype"};
    *opt_argc = 1, *nimages = 0;
    opt_argv[0] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) && strcmp(argv[i], "-h")) {
            images[(*nimages)++] = argv[i];
            continue;
        }
        opt_argv[(*opt_argc)++] = argv[i];
        for (size_t v = 0; v < sizeof valued / sizeof valued[0] && i + 1 < argc; v++)
            if (!strcmp(argv[i], valued[v])) opt_argv[(*opt_argc)++] = argv[++i];
    }
}

/* Opens the model and classifies every image; a failing image is reported
** and the others still run. Returns the exit code. */
static int predict_all(const char *model, char **images, int ni, long topk, const char *show, rn_precision prec) {
    rn_model *m = NULL;
    rn_error err;
    if (rn_model_open(model, &m, &err)) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    if (rn_session_set_precision("predict", m, prec)) return rn_model_free(m), 1;
    int k = m->spec.classes, failed = 0;
    if (topk > k) topk = k;
    float *p = malloc((size_t)k * sizeof(float));
    if (!p) {
        rn_cli_error("out of memory");
        failed = 1;
    }
    for (int i = 0; p && i < ni; i++) failed |= predict_one(m, images[i], (int)topk, show, i, p) != 0;
    free(p);
    rn_model_free(m);
    return failed ? 1 : 0;
}

/* The options of `resnet predict`, parsed and checked; images point into
** an array of argc + 1 entries the caller frees. */
typedef struct {
    const char *model, *topk_s, *show, *threads, *dtype;
    rn_precision prec;
    long topk, nthreads;
    char **images;
    int nimages;
} predict_args;

/* Splits and checks the arguments without opening anything; returns -1
** for --help, 0 when valid, 1 out of memory, 2 after printing a usage error. */
static int predict_parse(int argc, char **argv, predict_args *p) {
    const rn_opt opts[] = {{"model", &p->model, 0},     {"topk", &p->topk_s, 0}, {"show", &p->show, 0},
                           {"threads", &p->threads, 0}, {"dtype", &p->dtype, 0}, {0, 0, 0}};
    char **ov = calloc((size_t)argc + 1, sizeof(char *));
    int oc, code = 2;
    p->images = calloc((size_t)argc + 1, sizeof(char *));
    p->prec = RN_PREC_FP32, p->topk = 5, p->nthreads = 0;
    if (!ov || !p->images) return free(ov), 1;
    split_args(argc, argv, ov, &oc, p->images, &p->nimages);
    int pr = rn_args_parse("predict", oc, ov, opts);
    free(ov);
    if (pr == 1) return -1;
    if (pr == 0 && !rn_args_int("topk", p->topk_s, 1, 64, &p->topk) &&
        !rn_args_int("threads", p->threads, 1, 1024, &p->nthreads) && !rn_session_dtype("predict", p->dtype, &p->prec)) {
        struct stat st;
        if (!p->model || p->nimages == 0)
            rn_cli_error("predict: --model and at least one image are required (see 'resnet predict --help')");
        else if (p->show && (stat(p->show, &st) != 0 || !S_ISDIR(st.st_mode)))
            rn_cli_error("predict: --show %s: not an existing directory (the images are drawn into it)", p->show);
        else
            code = 0;
    }
    return code;
}

/* Parse-only entry of `resnet predict` (see commands.h). */
int rn_cmd_predict_check(int argc, char **argv) {
    predict_args p = {0};
    int r = predict_parse(argc, argv, &p);
    free(p.images);
    return r < 0 ? 0 : r;
}

/* `resnet predict`: see usage_text. */
int rn_cmd_predict(int argc, char **argv) {
    predict_args p = {0};
    int code = predict_parse(argc, argv, &p);
    if (code < 0) {
        fputs(usage_text, stdout);
        code = 0;
    } else if (code == 0) {
        if (p.nthreads) omp_set_num_threads((int)p.nthreads);
        code = predict_all(p.model, p.images, p.nimages, p.topk, p.show, p.prec);
    }
    free(p.images);
    return code;
}
