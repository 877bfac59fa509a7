/*
** The model subcommands of the first milestone:
**   resnet summary  the layer table, parameter and MAC counts
**   resnet init     a freshly initialized model file
**   resnet forward  logits of a model on a tensor file (to check ports)
*/
#include "cli/commands.h"
#include "cli/args.h"
#include "core/layout.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>

/* Builds and creates the model the architecture options describe. */
static rn_model *make_model(const rn_arch_args *a) {
    rn_spec spec;
    rn_model *m;
    rn_error err;
    if (rn_arch_spec(a, &spec)) return NULL;
    if (rn_model_create(&spec, &m, &err)) {
        rn_cli_error("%s", err.msg);
        return NULL;
    }
    return m;
}

/* resnet summary: prints one row per layer and the totals. */
int rn_cmd_summary(int argc, char **argv) {
    rn_arch_args a = {0};
    const char *size = NULL;
    rn_opt opts[] = {RN_ARCH_OPTS(a), {"size", &size, 0}, {0}};
    int r = rn_args_parse("summary", argc, argv, opts);
    if (r) {
        if (r > 0) printf("usage: resnet summary [--arch NAME | custom options] [--size H[xW]]\n\n"
                          "Prints one row per layer (name, output shape, parameters, multiply-accumulates)\n"
                          "and the totals as 'params: N' and 'MACs: N'.\n\n" RN_ARCH_HELP
                          "  --size H[xW]         input size (default 224, CIFAR nets 32)\n");
        return r > 0 ? 0 : 2;
    }
    rn_model *m = make_model(&a);
    if (!m) return 2;
    int h = rn_model_spec(m)->stem == RN_STEM_CIFAR ? 32 : 224, w = h;
    if (rn_args_size("size", size, &h, &w)) return rn_model_free(m), 2;
    size_t need = rn_model_summary(m, h, w, NULL, 0) + 1;
    char *text = malloc(need);
    int bad = rn_model_macs(m, h, w) == 0;
    if (text) rn_model_summary(m, h, w, text, need);
    if (text && bad) rn_cli_error("%s", text);
    else if (text) fputs(text, stdout);
    else rn_cli_error("out of memory");
    free(text);
    rn_model_free(m);
    return text && !bad ? 0 : 1;
}

/* resnet init: writes a freshly initialized model. */
int rn_cmd_init(int argc, char **argv) {
    rn_arch_args a = {0};
    const char *seed = NULL, *out = NULL;
    int zero = 0;
    rn_opt opts[] = {RN_ARCH_OPTS(a), {"seed", &seed, 0}, {"out", &out, 0}, {"zero-init-residual", 0, &zero}, {0}};
    int r = rn_args_parse("init", argc, argv, opts);
    if (r) {
        if (r > 0) printf("usage: resnet init [--arch NAME | custom options] --out M.safetensors [--seed S]\n\n"
                          "Writes a freshly initialized model: Kaiming-normal (fan_out) convolutions,\n"
                          "BN weight 1 / bias 0, PyTorch's Linear init for fc.\n\n" RN_ARCH_HELP
                          "  --seed S             random seed (default 0)\n"
                          "  --zero-init-residual last BN of every residual branch starts at 0\n"
                          "  --out FILE           where to write the model (required)\n");
        return r > 0 ? 0 : 2;
    }
    long s = 0;
    if (!out) {
        rn_cli_error("init: --out FILE is required");
        return 2;
    }
    if (rn_args_int("seed", seed, 0, 0x7fffffffffffffffL, &s)) return 2;
    rn_model *m = make_model(&a);
    if (!m) return 2;
    rn_error err;
    rn_model_init(m, (uint64_t)s, zero);
    int st = rn_model_save(m, out, &err);
    if (st) rn_cli_error("%s", err.msg);
    else printf("wrote %s: %s, %zu parameters\n", out, rn_model_spec(m)->arch, rn_model_param_count(m));
    rn_model_free(m);
    return st ? 1 : 0;
}

/* Reads tensor "input" (float32 N,C,H,W) from path into NHWC. */
static float *read_input(const char *path, const rn_model *m, int *n, int *h, int *w) {
    rn_st_file f;
    rn_error err;
    float *x = NULL;
    if (rn_st_read(path, &f, &err)) {
        rn_cli_error("%s", err.msg);
        return NULL;
    }
    const rn_st_tensor *t = rn_st_find(&f, "input");
    int c = rn_model_spec(m)->in_channels;
    if (!t || t->dtype != RN_DT_F32 || t->ndim != 4 || t->shape[1] != c || t->shape[0] < 1 || t->shape[2] < 1 ||
        t->shape[3] < 1)
        rn_cli_error("%s: expected a float32 tensor 'input' of shape (N, %d, H, W)", path, c);
    else if ((x = malloc(t->nbytes))) {
        *n = (int)t->shape[0], *h = (int)t->shape[2], *w = (int)t->shape[3];
        rn_nchw_to_nhwc(t->data, x, *n, c, *h, *w);
    } else {
        rn_cli_error("%s: out of memory", path);
    }
    rn_st_free(&f);
    return x;
}

/* A seeded uniform [-1, 1) batch of n x h x w x c, for smoke tests. */
static float *random_input(const char *shape, const rn_model *m, int *n, int *h, int *w) {
    int c = rn_model_spec(m)->in_channels, cc;
    if (sscanf(shape, "%dx%dx%dx%d", n, &cc, h, w) != 4 || *n < 1 || *n > 4096 || cc != c || *h < 1 || *w < 1 ||
        *h > 4096 || *w > 4096) {
        rn_cli_error("--random: '%s' is not NxCxHxW with C = %d and N, H, W in [1, 4096]", shape, c);
        return NULL;
    }
    size_t len = (size_t)*n * c * *h * *w;
    float *x = malloc(len * sizeof(float));
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; x && i < len; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((s >> 40) * (2.0 / 16777216.0) - 1.0);
    }
    if (!x) rn_cli_error("out of memory");
    return x;
}

/* Prints logits (N,K) as text, one row per sample. */
static void print_logits(const float *y, int n, int k) {
    for (int i = 0; i < n; i++) {
        printf("sample %d:", i);
        for (int j = 0; j < k; j++) printf(" %.5f", y[(size_t)i * k + j]);
        printf("\n");
    }
}

/* resnet forward: logits of a model on an input tensor file. */
int rn_cmd_forward(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *output = NULL, *random = NULL;
    int train = 0;
    rn_opt opts[] = {{"model", &model, 0}, {"input", &input, 0}, {"output", &output, 0},
                     {"random", &random, 0}, {"train", 0, &train}, {0}};
    int r = rn_args_parse("forward", argc, argv, opts);
    if (r) {
        if (r > 0) printf("usage: resnet forward --model M.safetensors (--input X.safetensors | --random NxCxHxW)\n"
                          "                      [--output Y.safetensors] [--train]\n\n"
                          "Runs the model on the float32 tensor 'input' (N x C x H x W, PyTorch's layout)\n"
                          "and writes the tensor 'logits' (N x K), or prints the logits without --output.\n\n"
                          "  --random SHAPE  a seeded uniform [-1, 1) input instead of --input, e.g. 2x1x28x28\n"
                          "  --train         use batch statistics in batchnorm (training mode)\n");
        return r > 0 ? 0 : 2;
    }
    if (!model || !input == !random) {
        rn_cli_error("forward: --model and one of --input or --random are required");
        return 2;
    }
    rn_model *m;
    rn_error err;
    if (rn_model_open(model, &m, &err)) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    int n, h, w, k = rn_model_spec(m)->classes, rc = 1;
    float *x = input ? read_input(input, m, &n, &h, &w) : random_input(random, m, &n, &h, &w);
    float *y = x ? malloc((size_t)n * k * sizeof(float)) : NULL;
    if (x && !y) rn_cli_error("out of memory");
    if (y && rn_model_forward(m, x, n, h, w, train, y, &err)) rn_cli_error("%s", err.msg);
    else if (y && !output) {
        print_logits(y, n, k);
        rc = 0;
    } else if (y) {
        rn_st_out o = {"logits", RN_DT_F32, 2, {n, k}, y};
        if (rn_st_write(output, &o, 1, NULL, 0, &err)) rn_cli_error("%s", err.msg);
        else rc = 0;
    }
    free(x);
    free(y);
    rn_model_free(m);
    return rc;
}
