/*
** Classifying one image with a model's own preprocessing: the evaluation
** transform its file describes (input size, shorter-side resize and center
** crop, gray<->RGB, mean/std), a forward pass, softmax. `resnet predict`
** and the public rn_classify_* calls share this path, so the library and
** the program give the same probabilities.
**
** Every buffer is allocated per call, so several threads may classify with
** one model: only the forward pass (locked inside rn_model_forward) touches
** the model's memory.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"

/* The evaluation transform stored with a model (see model.h). */
void rn_model_eval_augment(const rn_model *m, rn_augment *aug) {
    int h = m->input_h > 0 ? m->input_h : 224, w = m->input_w > 0 ? m->input_w : 224;
    rn_augment_default(aug, h, w, m->spec.in_channels < 3 ? m->spec.in_channels : 3);
    aug->eval_resize = m->eval_resize;
    for (int i = 0; i < 3; i++) aug->mean[i] = m->mean[i], aug->std[i] = m->std[i] > 0 ? m->std[i] : 1;
}

/* Softmax of k logits into p, summed in double for accuracy. */
static void softmax(const float *z, int k, float *p) {
    double mx = z[0], sum = 0;
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < k; j++) sum += exp(z[j] - mx);
    for (int j = 0; j < k; j++) p[j] = (float)(exp(z[j] - mx) / sum);
}

/* Classifies a decoded image (see model.h): preprocess, forward, softmax. */
rn_status rn_classify_image(rn_model *m, const rn_image *im, float *probs, rn_error *err) {
    if (m->spec.in_channels != 1 && m->spec.in_channels != 3)
        return rn_fail(err, RN_ERR_ARG, "%s takes %d input channels; images give 1 or 3", m->spec.arch,
                       m->spec.in_channels);
    rn_augment aug;
    rn_model_eval_augment(m, &aug);
    int k = m->spec.classes;
    float *x = malloc((size_t)aug.out_h * aug.out_w * aug.out_c * sizeof(float));
    float *logits = malloc((size_t)k * sizeof(float));
    rn_status st = x && logits ? RN_OK : rn_fail(err, RN_ERR_NOMEM, "out of memory classifying an image");
    if (!st) {
        rn_augment_sample(&aug, im, 0, 0, x);
        st = rn_model_forward(m, x, 1, aug.out_h, aug.out_w, 0, logits, err);
    }
    if (!st) softmax(logits, k, probs);
    free(x);
    free(logits);
    return st;
}

/* Decodes path at the smallest scale the model's preprocessing allows. */
rn_status rn_model_decode_file(const rn_model *m, const char *path, rn_image *im, rn_error *err) {
    rn_augment aug;
    rn_model_eval_augment(m, &aug);
    return rn_image_decode_file(path, rn_augment_min_side(&aug, 0), im, err);
}

/* Classifies a JPEG or PNG file (see resnet.h). */
rn_status rn_classify_file(rn_model *m, const char *path, float *probs, rn_error *err) {
    if (!m || !path || !probs) return rn_fail(err, RN_ERR_ARG, "rn_classify_file: model, path and probs must be given");
    rn_image im;
    rn_status st = rn_model_decode_file(m, path, &im, err);
    if (st) return st;
    st = rn_classify_image(m, &im, probs, err);
    rn_image_free(&im);
    return st;
}

/* Element (y, x, ch) of a pixel buffer as a byte. */
static uint8_t pixel_at(const rn_pixels *p, int y, int x, int ch) {
    size_t hw = (size_t)p->height * p->width, i = p->layout == RN_LAYOUT_NCHW
                                                     ? (size_t)ch * hw + (size_t)y * p->width + x
                                                     : ((size_t)y * p->width + x) * p->channels + ch;
    if (p->type == RN_PIXELS_RGB8) return ((const uint8_t *)p->data)[i];
    float v = ((const float *)p->data)[i] * 255.0f;
    return v <= 0 || v != v ? 0 : v >= 255 ? 255 : (uint8_t)lrintf(v);
}

/* Checks a pixel buffer's description. */
static rn_status check_pixels(const rn_pixels *p, rn_error *err) {
    if (!p || !p->data) return rn_fail(err, RN_ERR_ARG, "rn_classify_pixels: no pixels given");
    if (p->type != RN_PIXELS_RGB8 && p->type != RN_PIXELS_FLOAT)
        return rn_fail(err, RN_ERR_ARG, "rn_classify_pixels: type %d is neither RN_PIXELS_RGB8 nor RN_PIXELS_FLOAT",
                       (int)p->type);
    if (p->layout != RN_LAYOUT_NHWC && p->layout != RN_LAYOUT_NCHW)
        return rn_fail(err, RN_ERR_ARG, "rn_classify_pixels: layout %d is neither NHWC nor NCHW", (int)p->layout);
    if (p->channels != 1 && p->channels != 3 && p->channels != 4)
        return rn_fail(err, RN_ERR_ARG, "rn_classify_pixels: %d channels; expected 1, 3 or 4", p->channels);
    if (p->height < 1 || p->width < 1 || p->height > 65536 || p->width > 65536)
        return rn_fail(err, RN_ERR_ARG, "rn_classify_pixels: size %dx%d is outside 1..65536", p->height, p->width);
    return RN_OK;
}

/* Classifies a pixel buffer (see resnet.h): converts it to an 8-bit HWC
** image (alpha dropped), then the same path as a decoded file. */
rn_status rn_classify_pixels(rn_model *m, const rn_pixels *p, float *probs, rn_error *err) {
    rn_status st = m && probs ? check_pixels(p, err) : rn_fail(err, RN_ERR_ARG, "rn_classify_pixels: model and probs must be given");
    if (st) return st;
    int c = p->channels == 1 ? 1 : 3;
    rn_image im = {p->height, p->width, c, malloc((size_t)p->height * p->width * c)};
    if (!im.px) return rn_fail(err, RN_ERR_NOMEM, "out of memory for a %dx%d image", p->height, p->width);
    for (int y = 0; y < p->height; y++)
        for (int x = 0; x < p->width; x++)
            for (int ch = 0; ch < c; ch++) im.px[((size_t)y * p->width + x) * c + ch] = pixel_at(p, y, x, ch);
    st = rn_classify_image(m, &im, probs, err);
    free(im.px);
    return st;
}

/* Indices of the k largest values, largest first, ties to the lower index. */
int rn_top_k(const float *v, int n, int k, int *idx) {
    if (k > n) k = n;
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int j = 0; j < n; j++) {
            int used = 0;
            for (int q = 0; q < i; q++) used |= idx[q] == j;
            if (!used && (best < 0 || v[j] > v[best])) best = j;
        }
        idx[i] = best;
    }
    return k < 0 ? 0 : k;
}

/* Class i's readable name, or NULL. */
const char *rn_model_class_name(const rn_model *m, int i) {
    return m && m->class_names && i >= 0 && i < m->spec.classes ? m->class_names[i] : NULL;
}
