/*
** The public API of include/resnet.h as a program embedding the library
** sees it (only resnet.h is included, beside the test helpers):
**   - rn_classify_pixels against a reference computed here (normalize by
**     hand, rn_model_forward, softmax in double) on an image already at the
**     model's input size, and every pixel layout and type giving the same
**     probabilities as RGB8 NHWC;
**   - one model classifying from two threads at once gives bit-identical
**     probabilities to one thread;
**   - rn_train's callbacks: step numbering, the one-cycle start rate,
**     stopping from a step and from an epoch, the class-count check;
**   - error codes and messages.
** `test_api same A B` instead checks that two model files hold identical
** parameters (tests/api.sh: library vs CLI training).
*/
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resnet.h"
#include "check.h"

typedef struct {
    int pass, fail;
    char dir[256];
} ctx;

/* A tiny CIFAR-stem network with the given channels and classes, initialized. */
static rn_model *tiny_model(int in_channels, int classes) {
    rn_spec s;
    rn_model *m = NULL;
    if (rn_spec_custom("1,1", "4,8", "basic", "cifar", &s, NULL)) return NULL;
    s.in_channels = in_channels, s.classes = classes;
    if (rn_model_create(&s, &m, NULL)) return NULL;
    rn_model_init(m, 11, 0);
    return m;
}

/* A deterministic h x w x 3 RGB8 image (NHWC). */
static uint8_t *test_image(int h, int w, unsigned seed) {
    uint8_t *px = malloc((size_t)h * w * 3);
    for (size_t i = 0; px && i < (size_t)h * w * 3; i++) px[i] = (uint8_t)((i * 2654435761u + seed * 97u) >> 13);
    return px;
}

/* The probabilities of a 32x32 RGB8 image computed without the library's
** preprocessing: (v/255 - mean)/std with ImageNet's statistics (what a
** created model carries), forward, softmax in double. */
static void reference_probs(rn_model *m, const uint8_t *px, int k, double *p) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float *x = malloc(32 * 32 * 3 * sizeof(float)), *z = malloc((size_t)k * sizeof(float));
    for (int i = 0; i < 32 * 32 * 3; i++) x[i] = (px[i] / 255.0f - mean[i % 3]) / std[i % 3];
    rn_model_forward(m, x, 1, 32, 32, 0, z, NULL);
    double mx = z[0], sum = 0;
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < k; j++) sum += p[j] = exp(z[j] - mx);
    for (int j = 0; j < k; j++) p[j] /= sum;
    free(x), free(z);
}

/* Classifies px (h x w RGB8 NHWC) after converting it to type/layout/channels. */
static rn_status classify_as(rn_model *m, const uint8_t *px, int h, int w, rn_pixel_type type, rn_layout layout,
                             int channels, float *probs) {
    size_t hw = (size_t)h * w, n = hw * channels;
    void *buf = malloc(n * (type == RN_PIXELS_FLOAT ? sizeof(float) : 1));
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < channels; c++) {
            uint8_t v = c < 3 ? px[i * 3 + c] : (uint8_t)(i * 7); /* alpha: noise that must be ignored */
            size_t at = layout == RN_LAYOUT_NCHW ? c * hw + i : i * channels + c;
            if (type == RN_PIXELS_FLOAT) ((float *)buf)[at] = v / 255.0f;
            else ((uint8_t *)buf)[at] = v;
        }
    rn_pixels p = {buf, type, layout, h, w, channels};
    rn_status st = rn_classify_pixels(m, &p, probs, NULL);
    free(buf);
    return st;
}

/* Pixel buffers: the reference, then every layout/type/channel variant equal. */
static void test_pixels(ctx *T) {
    enum { K = 7 };
    rn_model *m = tiny_model(3, K);
    uint8_t *px = test_image(32, 32, 1), *odd = test_image(45, 23, 2);
    float p[K], q[K];
    double ref[K];
    if (!CHECK(T, m && px && odd)) return;
    CHECK(T, classify_as(m, px, 32, 32, RN_PIXELS_RGB8, RN_LAYOUT_NHWC, 3, p) == RN_OK);
    reference_probs(m, px, K, ref);
    double worst = 0, sum = 0;
    for (int j = 0; j < K; j++) worst = fmax(worst, fabs(p[j] - ref[j])), sum += p[j];
    printf("classify vs hand-made preprocessing: max |dp| %.2e\n", worst);
    CHECK(T, worst < 1e-6 && fabs(sum - 1) < 1e-5);
    /* any size, every layout and type: the same numbers as RGB8 NHWC */
    CHECK(T, classify_as(m, odd, 45, 23, RN_PIXELS_RGB8, RN_LAYOUT_NHWC, 3, p) == RN_OK);
    static const struct { rn_pixel_type t; rn_layout l; int c; } v[] = {
        {RN_PIXELS_RGB8, RN_LAYOUT_NCHW, 3}, {RN_PIXELS_FLOAT, RN_LAYOUT_NHWC, 3}, {RN_PIXELS_FLOAT, RN_LAYOUT_NCHW, 3},
        {RN_PIXELS_RGB8, RN_LAYOUT_NHWC, 4}, {RN_PIXELS_FLOAT, RN_LAYOUT_NCHW, 4}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        memset(q, 0, sizeof q);
        CHECK(T, classify_as(m, odd, 45, 23, v[i].t, v[i].l, v[i].c, q) == RN_OK && !memcmp(p, q, sizeof p));
    }
    int idx[3];
    CHECK(T, rn_top_k(p, K, 3, idx) == 3 && p[idx[0]] >= p[idx[1]] && p[idx[1]] >= p[idx[2]]);
    for (int j = 0; j < K; j++) CHECK(T, p[j] <= p[idx[0]]);
    CHECK(T, rn_model_class_name(m, 0) == NULL); /* a created model has no names */
    free(px), free(odd);
    rn_model_free(m);
}

/* Errors: bad descriptions and missing files give a code and a message. */
static void test_errors(ctx *T) {
    rn_model *m = tiny_model(3, 4);
    rn_error err;
    float p[4];
    uint8_t px[12] = {0};
    rn_pixels bad = {px, RN_PIXELS_RGB8, RN_LAYOUT_NHWC, 2, 2, 2};
    if (!CHECK(T, m != NULL)) return;
    CHECK(T, rn_classify_pixels(m, &bad, p, &err) == RN_ERR_ARG && strstr(err.msg, "2 channels"));
    bad.channels = 3, bad.width = 0;
    CHECK(T, rn_classify_pixels(m, &bad, p, &err) == RN_ERR_ARG && strstr(err.msg, "2x0"));
    CHECK(T, rn_classify_file(m, "/nonexistent/cat.jpg", p, &err) == RN_ERR_IO && strstr(err.msg, "/nonexistent/cat.jpg"));
    CHECK(T, !strcmp(rn_status_name(RN_ERR_IO), "I/O error") && !strcmp(rn_status_name((rn_status)99), "unknown status"));
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", RN_VERSION_MAJOR, RN_VERSION_MINOR, RN_VERSION_PATCH);
    CHECK(T, !strcmp(rn_version(), v) && !strcmp(RN_VERSION, v));
    rn_model_free(m);
}

/* One worker of the thread test: classifies its images `rounds` times. */
typedef struct {
    rn_model *m;
    uint8_t **img;
    int nimg, rounds, k, bad;
    float *out; /* nimg x k, the last round's */
} worker;

/* Thread body: classify, and count rounds whose numbers changed. */
static void *work(void *arg) {
    worker *w = arg;
    float *p = malloc((size_t)w->k * sizeof(float));
    for (int r = 0; p && r < w->rounds; r++)
        for (int i = 0; i < w->nimg; i++) {
            if (classify_as(w->m, w->img[i], 40 + i, 30, RN_PIXELS_RGB8, RN_LAYOUT_NHWC, 3, p)) w->bad++;
            if (r > 0 && memcmp(p, w->out + (size_t)i * w->k, (size_t)w->k * sizeof(float))) w->bad++;
            memcpy(w->out + (size_t)i * w->k, p, (size_t)w->k * sizeof(float));
        }
    free(p);
    return NULL;
}

/* Two threads on one model give what one thread gives, bit for bit. */
static void test_threads(ctx *T) {
    enum { K = 5, N = 4 };
    rn_model *m = tiny_model(3, K);
    uint8_t *img[N];
    float alone[N * K], a[N * K], b[N * K];
    for (int i = 0; i < N; i++) img[i] = test_image(40 + i, 30, 10 + i);
    worker w0 = {m, img, N, 1, K, 0, alone}, w1 = {m, img, N, 6, K, 0, a}, w2 = {m, img, N, 6, K, 0, b};
    work(&w0);
    pthread_t t1, t2;
    int started = !pthread_create(&t1, NULL, work, &w1) + !pthread_create(&t2, NULL, work, &w2);
    if (CHECK(T, started == 2)) pthread_join(t1, NULL), pthread_join(t2, NULL);
    CHECK(T, w0.bad == 0 && w1.bad == 0 && w2.bad == 0);
    CHECK(T, !memcmp(alone, a, sizeof a) && !memcmp(alone, b, sizeof b));
    for (int i = 0; i < N; i++) free(img[i]);
    rn_model_free(m);
}

/* Writes an IDX file: magic (type 8, ndim), dims, then data. */
static int write_idx(const char *path, int ndim, const int *dims, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    uint8_t head[4] = {0, 0, 8, (uint8_t)ndim};
    fwrite(head, 1, 4, f);
    for (int i = 0; i < ndim; i++) {
        uint8_t d[4] = {(uint8_t)(dims[i] >> 24), (uint8_t)(dims[i] >> 16), (uint8_t)(dims[i] >> 8), (uint8_t)dims[i]};
        fwrite(d, 1, 4, f);
    }
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* A 3-class, 8x8 gray IDX dataset in dir: class c is brighter in band c. */
static int make_idx(const char *dir, int ntrain, int ntest) {
    char p[512];
    const char *split[2] = {"train", "t10k"};
    int count[2] = {ntrain, ntest}, ok = 1;
    for (int s = 0; s < 2; s++) {
        int n = count[s], idims[3] = {n, 8, 8}, ldims[1] = {n};
        uint8_t *px = malloc((size_t)n * 64), *lab = malloc((size_t)n);
        for (int i = 0; px && lab && i < n; i++) {
            lab[i] = (uint8_t)(i % 3);
            for (int j = 0; j < 64; j++) px[i * 64 + j] = (uint8_t)(((j / 8) / 3 == lab[i] ? 180 : 40) + (i * 31 + j * 7) % 50);
        }
        snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, split[s]);
        ok &= px && lab && write_idx(p, 3, idims, px, (size_t)n * 64);
        snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, split[s]);
        ok &= px && lab && write_idx(p, 1, ldims, lab, (size_t)n);
        free(px), free(lab);
    }
    return ok;
}

/* What the callbacks saw. */
typedef struct {
    long steps, last_step, stop_step;
    int epochs, stop_epoch, bad_order;
    double first_lr, acc, vloss;
    size_t batches;
} seen;

/* Step callback: checks numbering, stops at stop_step. */
static int on_step(const rn_step_info *s, void *user) {
    seen *v = user;
    if (s->step != v->last_step + 1 || !isfinite(s->loss) || s->batch < 1 || s->batch > s->batches) v->bad_order++;
    if (v->steps++ == 0) v->first_lr = s->lr;
    v->last_step = s->step, v->batches = s->batches;
    return v->stop_step && s->step >= v->stop_step;
}

/* Epoch callback: records the results, stops after epoch stop_epoch. */
static int on_epoch(const rn_epoch_info *e, void *user) {
    seen *v = user;
    if (e->epoch != v->epochs++) v->bad_order++;
    v->acc = e->accuracy, v->vloss = e->valid_loss;
    return v->stop_epoch >= 0 && e->epoch >= v->stop_epoch;
}

/* Counts the lines of a file (0 if missing). */
static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

/* rn_train: callbacks, early stopping from a step and from an epoch. */
static void test_train(ctx *T) {
    char data[300], log[300];
    if (!CHECK(T, make_idx(T->dir, 64, 30))) return;
    snprintf(data, sizeof data, "idx:%s", T->dir);
    int classes = 0, channels = 0;
    CHECK(T, rn_data_info(data, &classes, &channels, NULL) == RN_OK && classes == 3 && channels == 1);
    rn_train_options o;
    rn_train_defaults(&o);
    CHECK(T, o.epochs == 5 && o.batch == 128 && !strcmp(o.data, "fashion-mnist"));
    seen v = {.stop_step = 6, .stop_epoch = -1};
    o.data = data, o.batch = 16, o.epochs = 3, o.height = o.width = 8, o.on_step = on_step, o.on_epoch = on_epoch, o.user = &v;
    rn_model *m = tiny_model(1, 3);
    rn_error err;
    CHECK(T, rn_train(m, &o, &err) == RN_OK);
    printf("step stop: %ld steps, %d epochs, first lr %.3g\n", v.steps, v.epochs, v.first_lr);
    CHECK(T, v.steps == 6 && v.last_step == 6 && v.epochs == 1 && v.batches == 4 && v.bad_order == 0);
    CHECK(T, fabs(v.first_lr - 3e-3 / 25) < 1e-9); /* one-cycle starts at lr/div */
    CHECK(T, rn_model_class_name(m, 2) && !strcmp(rn_model_class_name(m, 2), "2"));
    rn_model_free(m);
    /* epoch stop, with checkpoints: two epochs of 4 steps, two log rows */
    v = (seen){.stop_epoch = 1};
    o.out_dir = T->dir;
    m = tiny_model(1, 3);
    CHECK(T, rn_train(m, &o, &err) == RN_OK);
    printf("epoch stop: %ld steps, %d epochs, accuracy %.3f, valid loss %.3f\n", v.steps, v.epochs, v.acc, v.vloss);
    CHECK(T, v.steps == 8 && v.epochs == 2 && v.bad_order == 0 && v.acc >= 0 && v.acc <= 1 && isfinite(v.vloss));
    CHECK(T, count_lines(path_in(T->dir, "log.csv", log, sizeof log)) == 3);
    rn_model_free(m);
    /* a model with the wrong class count */
    m = tiny_model(1, 4);
    CHECK(T, rn_train(m, &o, &err) == RN_ERR_MISMATCH && strstr(err.msg, "3 classes"));
    rn_model_free(m);
    o.optimizer = "lion";
    m = tiny_model(1, 3);
    CHECK(T, rn_train(m, &o, &err) == RN_ERR_ARG && strstr(err.msg, "lion"));
    rn_model_free(m);
}

/* Compares two model files' parameters, bit for bit. */
static int same_models(const char *a, const char *b) {
    rn_model *ma = NULL, *mb = NULL;
    rn_error err;
    ctx T = {0};
    if (CHECK(&T, !rn_model_open(a, &ma, &err) && !rn_model_open(b, &mb, &err))) {
        size_t n = rn_model_param_count(ma);
        CHECK(&T, n == rn_model_param_count(mb) && !memcmp(rn_model_params(ma), rn_model_params(mb), n * sizeof(float)));
        size_t diff = 0;
        for (size_t i = 0; i < n && n == rn_model_param_count(mb); i++) diff += rn_model_params(ma)[i] != rn_model_params(mb)[i];
        printf("%s vs %s: %zu of %zu parameters differ\n", a, b, diff, n);
    } else {
        printf("%s\n", err.msg);
    }
    rn_model_free(ma), rn_model_free(mb);
    printf("%d passed, %d failed\n", T.pass, T.fail);
    return T.fail != 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "same")) return same_models(argv[2], argv[3]);
    ctx T = {0};
    snprintf(T.dir, sizeof T.dir, "/tmp/rn_api_XXXXXX");
    if (!mkdtemp(T.dir)) return printf("cannot make a temporary directory\n0 passed, 1 failed\n"), 1;
    test_pixels(&T);
    test_errors(&T);
    test_threads(&T);
    test_train(&T);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T.dir);
    if (system(cmd)) printf("could not remove %s\n", T.dir);
    printf("%d passed, %d failed\n", T.pass, T.fail);
    return T.fail != 0;
}
