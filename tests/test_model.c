/*
** Model-level tests in C: parameter counts against torchvision's and the
** papers' published figures, MAC counts, shapes for any input size and
** channel count, error messages for bad arguments, and model files (round
** trip, and refusal of missing, unknown, mis-shaped and mis-typed tensors).
** Prints one line per failure and "N passed, M failed" last.
*/
#include "resnet.h"
#include "io/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;

/* Records one check. */
static void check(int ok, const char *what) {
    if (ok) passed++;
    else failed++, printf("FAIL %s\n", what);
}

/* Creates a named model with K classes and C input channels (NULL on error). */
static rn_model *make(const char *arch, int classes, int channels) {
    rn_spec s;
    rn_model *m = NULL;
    if (rn_spec_from_name(arch, &s, NULL)) return NULL;
    if (classes) s.classes = classes;
    if (channels) s.in_channels = channels;
    rn_model_create(&s, &m, NULL);
    return m;
}

/* Parameter counts: torchvision's for 1000 classes, the paper's CIFAR nets
** (option A, as in He et al. Table 6 and akamaster's implementation). */
static void test_param_counts(void) {
    static const struct { const char *arch; size_t n; } tv[] = {
        {"resnet18", 11689512}, {"resnet34", 21797672}, {"resnet50", 25557032},
        {"resnet101", 44549160}, {"resnet152", 60192808}, {"resnet50-v1", 25557032}};
    for (size_t i = 0; i < sizeof tv / sizeof tv[0]; i++) {
        rn_model *m = make(tv[i].arch, 0, 0);
        char what[96];
        snprintf(what, sizeof what, "%s has %zu parameters", tv[i].arch, tv[i].n);
        check(m && rn_model_param_count(m) == tv[i].n, what);
        rn_model_free(m);
    }
    static const struct { const char *arch; size_t n; } cifar[] = {
        {"resnet20", 269722}, {"resnet32", 464154}, {"resnet44", 658586}, {"resnet56", 853018}, {"resnet110", 1727962}};
    for (size_t i = 0; i < sizeof cifar / sizeof cifar[0]; i++) {
        rn_spec s;
        rn_model *m = NULL;
        rn_spec_from_name(cifar[i].arch, &s, NULL);
        s.shortcut = 'A';
        rn_model_create(&s, &m, NULL);
        check(m && rn_model_param_count(m) == cifar[i].n, cifar[i].arch);
        rn_model_free(m);
    }
}

/* MACs: torchvision's resnet50 is 4.09 GMACs and resnet18 1.82 at 224. */
static void test_macs(void) {
    rn_model *m = make("resnet50", 0, 0), *r = make("resnet18", 0, 0);
    check(m && fabs(rn_model_macs(m, 224, 224) / 4.09e9 - 1) < 0.005, "resnet50 MACs about 4.09 G");
    check(r && fabs(rn_model_macs(r, 224, 224) / 1.82e9 - 1) < 0.005, "resnet18 MACs about 1.82 G");
    check(m && rn_model_macs(m, 16, 16) > 0 && rn_model_macs(m, 16, 16) < rn_model_macs(m, 224, 224),
          "resnet50 runs at 16x16 with fewer MACs");
    rn_model_free(m);
    rn_model_free(r);
}

/* Any input size, channel count and class count; too small is an error. */
static void test_shapes(void) {
    rn_model *m = make("resnet18", 7, 1);
    rn_error err;
    float *x = calloc(2 * 37 * 53, sizeof(float)), y[14];
    for (int i = 0; x && i < 2 * 37 * 53; i++) x[i] = (float)sin(i * 0.37);
    check(m && x && rn_model_forward(m, x, 2, 37, 53, 0, y, &err) == RN_OK, "resnet18 on 2 x 1 x 37 x 53");
    int finite = 1;
    for (int i = 0; i < 14; i++) finite &= isfinite(y[i]);
    check(finite, "logits are finite");
    rn_model *cifar = make("resnet20", 0, 0);
    check(cifar && rn_model_forward(cifar, x, 1, 1, 1, 0, y, &err) == RN_OK, "resnet20 accepts 1x1 input");
    rn_model_free(cifar);
    rn_model *big = make("resnet50", 0, 0);
    float tiny[3] = {0};
    check(big && rn_model_forward(big, tiny, 1, 1, 1, 0, NULL, &err) == RN_OK, "resnet50 infers on 1x1 input");
    int st = big ? (int)rn_model_forward(big, tiny, 1, 1, 1, 1, NULL, &err) : -1;
    check(st == RN_ERR_ARG && strstr(err.msg, "too small to train"), "resnet50 refuses to train on one 1x1 image");

    rn_model_free(big);
    int labels[2] = {0, 9};
    double loss;
    st = m ? (int)rn_model_train_step(m, x, labels, 2, 37, 53, 0, NULL, &loss, &err) : -1;
    check(st == RN_ERR_ARG && strstr(err.msg, "label 9"), "out-of-range label is refused");
    free(x);
    rn_model_free(m);
}

/* Spec parsing errors say what is allowed. */
static void test_spec_errors(void) {
    rn_spec s;
    rn_error err;
    check(rn_spec_from_name("resnet19", &s, &err) == RN_ERR_ARG && strstr(err.msg, "resnet18"),
          "unknown architecture lists the known ones");
    check(rn_spec_from_name("resnet18-v1", &s, &err) == RN_ERR_ARG, "resnet18-v1 refused");
    check(rn_spec_custom("3,4", "64", "basic", "imagenet", &s, &err) == RN_ERR_ARG, "blocks/widths length mismatch");
    check(rn_spec_custom("3,x", "64,128", "basic", NULL, &s, &err) == RN_ERR_ARG, "non-integer block count");
    check(rn_spec_custom("2,2", "64,128", "wide", NULL, &s, &err) == RN_ERR_ARG && strstr(err.msg, "bottleneck"),
          "unknown block kind");
    check(rn_spec_custom("1,1", "8,16", "preact-bottleneck", "cifar", &s, &err) == RN_OK &&
              s.nstages == 2 && s.block == RN_BLOCK_PREACT_BOTTLENECK && s.stem == RN_STEM_CIFAR,
          "custom spec parsed");
}

/* Saves a model and loads it back; every parameter must be bit-identical. */
static void test_roundtrip(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    rn_model *m = make("resnet20", 0, 0), *back = NULL;
    rn_error err;
    rn_model_init(m, 42, 0);
    check(rn_model_save(m, path, &err) == RN_OK, "save resnet20");
    check(rn_model_open(path, &back, &err) == RN_OK, "open resnet20");
    check(back && rn_model_param_count(back) == rn_model_param_count(m) &&
              !memcmp(rn_model_params(back), rn_model_params(m), rn_model_param_count(m) * sizeof(float)),
          "parameters survive the round trip bit for bit");
    rn_model *wrong = make("resnet32", 0, 0);
    check(rn_model_load(wrong, path, &err) == RN_ERR_MISMATCH && strstr(err.msg, "missing tensor layer1.3"),
          "loading resnet20 into resnet32 names the missing tensor");
    rn_model *wide = make("resnet20", 11, 0);
    check(rn_model_load(wide, path, &err) == RN_ERR_MISMATCH && strstr(err.msg, "fc.weight") &&
              strstr(err.msg, "[10, 64]") && strstr(err.msg, "[11, 64]"),
          "class-count mismatch names the tensor and both shapes");
    rn_model_free(wrong);
    rn_model_free(wide);
    rn_model_free(back);
    rn_model_free(m);
}

/* Writes a copy of a model file with tensor `name` dropped (mode 0) or
** retyped (1), an unknown tensor added (2), or the metadata dropped (3). */
static void write_edited(const char *src, const char *dst, const char *name, int mode) {
    rn_st_file f;
    rn_st_read(src, &f, NULL);
    rn_st_out *o = calloc((size_t)f.ntensors + 1, sizeof *o);
    int n = 0;
    for (int i = 0; i < f.ntensors; i++) {
        rn_st_tensor *t = &f.tensors[i];
        if (!strcmp(t->name, name) && mode == 0) continue; /* drop it */
        o[n].name = t->name, o[n].dtype = t->dtype, o[n].ndim = t->ndim, o[n].data = t->data;
        memcpy(o[n].shape, t->shape, sizeof t->shape);
        if (!strcmp(t->name, name) && mode == 1) o[n].dtype = RN_DT_I32; /* same bytes, wrong dtype */
        n++;
    }
    static const float extra[2] = {1, 2};
    if (mode == 2) o[n].name = "layer9.0.conv1.weight", o[n].dtype = RN_DT_F32, o[n].ndim = 1, o[n].shape[0] = 2,
                   o[n++].data = extra;
    rn_st_write(dst, o, n, mode == 3 ? NULL : f.meta, mode == 3 ? 0 : f.nmeta, NULL);
    free(o);
    rn_st_free(&f);
}

/* Missing, mis-typed and unknown tensors are refused by name. */
static void test_refusals(const char *dir) {
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/m.safetensors", dir);
    snprintf(dst, sizeof dst, "%s/bad.safetensors", dir);
    rn_model *m = NULL;
    rn_error err;
    write_edited(src, dst, "layer2.0.bn1.running_var", 0);
    check(rn_model_open(dst, &m, &err) == RN_ERR_MISMATCH && strstr(err.msg, "layer2.0.bn1.running_var") &&
              strstr(err.msg, dst),
          "missing tensor named with the file");
    write_edited(src, dst, "fc.bias", 1);
    check(rn_model_open(dst, &m, &err) == RN_ERR_MISMATCH && strstr(err.msg, "fc.bias") && strstr(err.msg, "I32"),
          "wrong dtype named");
    write_edited(src, dst, "", 2);
    check(rn_model_open(dst, &m, &err) == RN_ERR_MISMATCH && strstr(err.msg, "layer9.0.conv1.weight"),
          "unknown tensor named");
    write_edited(src, dst, "", 3);
    check(rn_model_open(dst, &m, &err) == RN_OK && !strcmp(rn_model_spec(m)->arch, "resnet20"),
          "a file without metadata is recognized as resnet20 from its tensors");
    rn_model_free(m);
    check(rn_model_open("/nonexistent/m.safetensors", &m, &err) == RN_ERR_IO && strstr(err.msg, "/nonexistent"),
          "missing file named");
}

/* Runs every test in a temporary directory. */
int main(void) {
    char dir[] = "/tmp/rn_test_model_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_param_counts();
    test_macs();
    test_shapes();
    test_spec_errors();
    test_roundtrip(dir);
    test_refusals(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("could not remove %s\n", dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
