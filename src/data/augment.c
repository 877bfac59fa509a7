/*
** Augmentation: random parameters, the composed coordinate map, the
** bilinear sampler, photometric changes, normalization, random erasing,
** presets and dataset statistics. See augment.h for the conventions.
*/
#include "data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

#define PI 3.14159265358979323846

/* AlexNet's PCA of ImageNet RGB on [0,1] pixels (as in fb.resnet.torch):
** eigenvalues and eigenvectors (columns). */
static const double k_eigval[3] = {0.2175, 0.0188, 0.0045};
static const double k_eigvec[3][3] = {
    {-0.5675, 0.7192, 0.4009}, {-0.5808, -0.0045, -0.8140}, {-0.5836, -0.6948, 0.4203}};

static const float k_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float k_imagenet_std[3] = {0.229f, 0.224f, 0.225f};
static const float k_cifar_mean[3] = {0.4914f, 0.4822f, 0.4465f};
static const float k_cifar_std[3] = {0.2470f, 0.2435f, 0.2616f};

/* ---- configuration ----------------------------------------------------- */

/* Everything off, identity normalization; the ratio range and the
** probabilities get their usual values so setting a magnitude suffices. */
void rn_augment_default(rn_augment *a, int out_h, int out_w, int out_c) {
    memset(a, 0, sizeof *a);
    a->out_h = out_h;
    a->out_w = out_w;
    a->out_c = out_c;
    a->min_ratio = 3.0f / 4.0f;
    a->max_ratio = 4.0f / 3.0f;
    a->p_affine = 0.75f;
    a->p_lighting = 0.75f;
    for (int i = 0; i < 3; i++) a->std[i] = 1.0f;
}

/* Sets per-channel normalization from RGB values; a gray model gets the
** luma-weighted value (the mean exactly, the std as an approximation). */
static void set_stats(rn_augment *a, const float mean[3], const float std[3]) {
    if (a->out_c == 1) {
        float m = 0.299f * mean[0] + 0.587f * mean[1] + 0.114f * mean[2];
        float s = 0.299f * std[0] + 0.587f * std[1] + 0.114f * std[2];
        for (int i = 0; i < 3; i++) a->mean[i] = m, a->std[i] = s;
        return;
    }
    memcpy(a->mean, mean, sizeof a->mean);
    memcpy(a->std, std, sizeof a->std);
}

/* v (a size defined for 224-pixel outputs, or `base`) scaled to this
** output's larger side, at least 1. */
static int scaled(const rn_augment *a, double v, double base) {
    int s = a->out_h > a->out_w ? a->out_h : a->out_w;
    long r = lround(v * s / base);
    return r < 1 ? 1 : (int)r;
}

/* Fills *a with a named recipe (see augment.h). */
rn_status rn_augment_preset(const char *kind, int out_h, int out_w, int out_c, rn_augment *a,
                            rn_error *err) {
    rn_augment_default(a, out_h, out_w, out_c);
    if (!kind) kind = "";
    if (!strcmp(kind, "fashion-mnist") || !strcmp(kind, "idx")) {
        /* 2 px of 28 (7%): a 4 px shift is large for centered 28 px
        ** garments; flips are label-preserving for clothing. */
        a->pad = scaled(a, 2, 28);
        a->flip = 1;
    } else if (!strcmp(kind, "cifar")) {
        a->pad = scaled(a, 4, 32);
        a->flip = 1;
        set_stats(a, k_cifar_mean, k_cifar_std);
    } else if (!strcmp(kind, "imagenet")) {
        a->min_scale = 0.35f;
        a->max_scale = 1.0f;
        a->flip = 1;
        a->eval_resize = scaled(a, 256, 224);
        set_stats(a, k_imagenet_mean, k_imagenet_std);
    } else if (!strcmp(kind, "fastai")) {
        a->presize = scaled(a, 460, 224);
        a->min_scale = 0.75f;
        a->max_scale = 1.0f;
        a->min_ratio = a->max_ratio = 1.0f; /* aug_transforms' RandomResizedCropGPU ratio=(1,1) */
        a->flip = 1;
        a->max_rotate = 10.0f;
        a->max_zoom = 1.1f;
        a->max_warp = 0.2f;
        a->max_lighting = 0.2f;
        a->eval_resize = scaled(a, 224, 224); /* center crop of the presized square */
        set_stats(a, k_imagenet_mean, k_imagenet_std);
    } else if (!strcmp(kind, "paper")) {
        a->scale_lo = scaled(a, 256, 224);
        a->scale_hi = scaled(a, 480, 224);
        a->flip = 1;
        a->pca_std = 0.1f;
        a->eval_resize = scaled(a, 256, 224);
        set_stats(a, k_imagenet_mean, k_imagenet_std);
    } else if (strcmp(kind, "none") != 0) {
        return rn_fail(err, RN_ERR_ARG,
                       "augmentation \"%s\": expected one of fashion-mnist, idx, cifar, imagenet, "
                       "fastai, paper, none",
                       kind);
    }
    return RN_OK;
}

/* Checks a configuration, naming the first field out of range. */
rn_status rn_augment_check(const rn_augment *a, rn_error *err) {
    if (a->out_h < 1 || a->out_w < 1 || a->out_h > 16384 || a->out_w > 16384)
        return rn_fail(err, RN_ERR_ARG, "augmentation: output size %dx%d out of range 1..16384",
                       a->out_h, a->out_w);
    if (a->out_c != 1 && a->out_c != 3)
        return rn_fail(err, RN_ERR_ARG, "augmentation: %d output channels, expected 1 or 3", a->out_c);
    float smax = a->max_scale > 0 ? a->max_scale : 1.0f;
    if (a->min_scale < 0 || a->min_scale > smax || smax > 1)
        return rn_fail(err, RN_ERR_ARG, "augmentation: crop scale %g..%g, expected 0 < min <= max <= 1",
                       a->min_scale, smax);
    if (a->min_scale > 0 && !(a->min_ratio > 0 && a->min_ratio <= a->max_ratio))
        return rn_fail(err, RN_ERR_ARG, "augmentation: crop ratio %g..%g, expected 0 < min <= max",
                       a->min_ratio, a->max_ratio);
    if (a->scale_lo < 0 || (a->scale_lo > 0 && a->scale_hi < a->scale_lo))
        return rn_fail(err, RN_ERR_ARG, "augmentation: scale range %d..%d, expected 0 < lo <= hi",
                       a->scale_lo, a->scale_hi);
    if (a->pad < 0 || a->presize < 0 || a->eval_resize < 0)
        return rn_fail(err, RN_ERR_ARG, "augmentation: pad, presize and eval resize must be >= 0");
    if (!(a->p_affine >= 0 && a->p_affine <= 1) || !(a->p_lighting >= 0 && a->p_lighting <= 1) ||
        !(a->erase_p >= 0 && a->erase_p <= 1))
        return rn_fail(err, RN_ERR_ARG, "augmentation: probabilities must be in [0,1]");
    if (!(a->max_rotate >= 0) || !(a->max_zoom >= 0) || !(a->max_warp >= 0 && a->max_warp < 1) ||
        !(a->max_lighting >= 0 && a->max_lighting < 1) || !(a->pca_std >= 0))
        return rn_fail(err, RN_ERR_ARG,
                       "augmentation: rotate, zoom, pca >= 0 and warp, lighting in [0,1) expected");
    for (int i = 0; i < a->out_c; i++)
        if (!(a->std[i] != 0 && isfinite(a->std[i]) && isfinite(a->mean[i])))
            return rn_fail(err, RN_ERR_ARG, "augmentation: channel %d: mean %g / std %g, expected "
                           "finite values and std != 0", i, a->mean[i], a->std[i]);
    return RN_OK;
}

/* The smallest source shorter side the recipe needs (see augment.h). */
int rn_augment_min_side(const rn_augment *a, int train) {
    int s = a->out_h > a->out_w ? a->out_h : a->out_w;
    int eval = a->eval_resize > 0 ? a->eval_resize : s;
    if (!train) return eval;
    double need = eval;
    if (a->scale_lo > 0)
        need = a->scale_hi;
    else if (a->presize > 0)
        need = a->presize;
    else if (a->min_scale > 0)
        need = s / sqrt(a->min_scale);
    else if (a->pad > 0)
        need = s;
    if (a->max_zoom > 1) need *= a->max_zoom;
    return (int)ceil(need);
}

/* ---- drawing the random parameters ------------------------------------ */

/* Uniform integer in [0, n) (0 when n <= 1), like torch.randint(0, n). */
static int randint(rn_rng *r, int n) { return n <= 1 ? 0 : (int)(rn_rng_uniform(r) * n); }

/* Uniform double in [lo, hi). */
static double uniform(rn_rng *r, double lo, double hi) { return lo + (hi - lo) * rn_rng_uniform(r); }

/* torchvision Resize(size) of an h x w image: shorter side -> size, longer
** side int(size * long / short). */
static void resized_size(int h, int w, int size, int *rh, int *rw) {
    int sh = h < w ? h : w, lg = h < w ? w : h;
    int nl = (int)((double)size * lg / sh);
    *rh = h <= w ? size : nl;
    *rw = h <= w ? nl : size;
}

/* Sets the source box of p. */
static void set_box(rn_augment_params *p, double x0, double y0, double bw, double bh) {
    p->x0 = x0;
    p->y0 = y0;
    p->bw = bw;
    p->bh = bh;
}

/* Evaluation geometry: Resize(eval_resize) + CenterCrop(out) as torchvision
** computes them (Python's round is half-to-even, so rint), or a straight
** resize to the output size. */
static void eval_box(const rn_augment *a, int h, int w, rn_augment_params *p) {
    if (a->eval_resize <= 0) {
        set_box(p, 0, 0, w, h);
        return;
    }
    int rh, rw;
    resized_size(h, w, a->eval_resize, &rh, &rw);
    double sx = (double)w / rw, sy = (double)h / rh;
    double top = rint((rh - a->out_h) / 2.0), left = rint((rw - a->out_w) / 2.0);
    set_box(p, left * sx, top * sy, a->out_w * sx, a->out_h * sy);
}

/* torchvision RandomResizedCrop.get_params on an H x W image: an integer
** box (i = top, j = left, ch x cw), 10 attempts then the center-crop
** fallback. */
static void rrc_params(const rn_augment *a, rn_rng *r, int H, int W, int *i, int *j, int *ch, int *cw) {
    double area = (double)H * W, smax = a->max_scale > 0 ? a->max_scale : 1.0;
    double lr0 = log(a->min_ratio), lr1 = log(a->max_ratio);
    for (int t = 0; t < 10; t++) {
        double target = area * uniform(r, a->min_scale, smax);
        double ar = exp(uniform(r, lr0, lr1));
        int w = (int)rint(sqrt(target * ar)), h = (int)rint(sqrt(target / ar));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            *i = randint(r, H - h + 1);
            *j = randint(r, W - w + 1);
            *ch = h;
            *cw = w;
            return;
        }
    }
    double in_ratio = (double)W / H;
    int w = W, h = H;
    if (in_ratio < a->min_ratio)
        h = (int)rint(w / a->min_ratio);
    else if (in_ratio > a->max_ratio)
        w = (int)rint(h * a->max_ratio);
    *i = (H - h) / 2;
    *j = (W - w) / 2;
    *ch = h;
    *cw = w;
}

/* He et al. scale augmentation: shorter side uniform in [lo, hi], then a
** random out_h x out_w crop (centered if the resized image is smaller). */
static void he_box(const rn_augment *a, rn_rng *r, int h, int w, rn_augment_params *p) {
    int S = a->scale_lo + randint(r, a->scale_hi - a->scale_lo + 1), rh, rw;
    resized_size(h, w, S, &rh, &rw);
    int top = rh >= a->out_h ? randint(r, rh - a->out_h + 1) : (rh - a->out_h) / 2;
    int left = rw >= a->out_w ? randint(r, rw - a->out_w + 1) : (rw - a->out_w) / 2;
    double sx = (double)w / rw, sy = (double)h / rh;
    set_box(p, left * sx, top * sy, a->out_w * sx, a->out_h * sy);
}

/* CIFAR pad-and-crop on the image resized to the output size: a random
** out_h x out_w window of the zero-padded image. */
static void pad_box(const rn_augment *a, rn_rng *r, int h, int w, rn_augment_params *p) {
    double sx = (double)w / a->out_w, sy = (double)h / a->out_h;
    int top = randint(r, 2 * a->pad + 1), left = randint(r, 2 * a->pad + 1);
    set_box(p, (left - a->pad) * sx, (top - a->pad) * sy, a->out_w * sx, a->out_h * sy);
    p->border = RN_BORDER_ZERO;
}

/* fastai presize: a random square of side min(h,w), seen as a presize x
** presize canvas; with min_scale a random-resized crop of that canvas. */
static void presize_box(const rn_augment *a, rn_rng *r, int h, int w, rn_augment_params *p) {
    int s = h < w ? h : w;
    int ox = randint(r, w - s + 1), oy = randint(r, h - s + 1);
    double k = (double)s / a->presize;
    if (a->min_scale <= 0) {
        set_box(p, ox, oy, s, s);
        return;
    }
    int i, j, ch, cw;
    rrc_params(a, r, a->presize, a->presize, &i, &j, &ch, &cw);
    set_box(p, ox + j * k, oy + i * k, cw * k, ch * k);
}

/* Training geometry: the first configured recipe, else the eval one. */
static void train_box(const rn_augment *a, rn_rng *r, int h, int w, rn_augment_params *p) {
    if (a->scale_lo > 0) {
        he_box(a, r, h, w, p);
    } else if (a->presize > 0) {
        presize_box(a, r, h, w, p);
    } else if (a->min_scale > 0) {
        int i, j, ch, cw;
        rrc_params(a, r, h, w, &i, &j, &ch, &cw);
        set_box(p, j, i, cw, ch);
    } else if (a->pad > 0) {
        pad_box(a, r, h, w, p);
    } else {
        eval_box(a, h, w, p);
    }
}

/* fastai's affine and warp draws, each applied with p_affine. */
static void draw_affine(const rn_augment *a, rn_rng *r, rn_augment_params *p) {
    if (a->max_warp > 0 && rn_rng_uniform(r) < a->p_affine) {
        p->warp_x = uniform(r, -a->max_warp, a->max_warp);
        p->warp_y = uniform(r, -a->max_warp, a->max_warp);
    }
    if (a->max_rotate > 0 && rn_rng_uniform(r) < a->p_affine)
        p->angle = uniform(r, -a->max_rotate, a->max_rotate);
    if (a->max_zoom > 1 && rn_rng_uniform(r) < a->p_affine) {
        p->zoom = uniform(r, 1.0, a->max_zoom);
        p->zoom_cx = (1 - 1 / p->zoom) * (2 * rn_rng_uniform(r) - 1);
        p->zoom_cy = (1 - 1 / p->zoom) * (2 * rn_rng_uniform(r) - 1);
    }
    int moved = p->warp_x != 0 || p->warp_y != 0 || p->angle != 0 || p->zoom != 1;
    if (moved && p->border != RN_BORDER_ZERO) p->border = RN_BORDER_REFLECT;
}

/* fastai lighting (brightness, contrast in logit space), PCA lighting. */
static void draw_photometric(const rn_augment *a, rn_rng *r, rn_augment_params *p) {
    if (a->max_lighting > 0) {
        double ml = a->max_lighting;
        if (rn_rng_uniform(r) < a->p_lighting) p->brightness = uniform(r, 0.5 * (1 - ml), 0.5 * (1 + ml));
        if (rn_rng_uniform(r) < a->p_lighting) p->contrast = exp(uniform(r, log(1 - ml), -log(1 - ml)));
    }
    if (a->pca_std > 0 && a->out_c == 3)
        for (int k = 0; k < 3; k++) p->pca[k] = rn_rng_normal(r) * a->pca_std;
}

/* torchvision RandomErasing.get_params on the output (scale 0.02-0.33,
** ratio 0.3-3.3, 10 attempts, else nothing is erased). */
static void draw_erase(const rn_augment *a, rn_rng *r, rn_augment_params *p) {
    if (!(a->erase_p > 0 && rn_rng_uniform(r) < a->erase_p)) return;
    double area = (double)a->out_h * a->out_w, lr0 = log(0.3), lr1 = log(3.3);
    for (int t = 0; t < 10; t++) {
        double ea = area * uniform(r, 0.02, 0.33), ar = exp(uniform(r, lr0, lr1));
        int h = (int)rint(sqrt(ea * ar)), w = (int)rint(sqrt(ea / ar));
        if (!(h < a->out_h && w < a->out_w)) continue;
        p->erase_y = randint(r, a->out_h - h + 1);
        p->erase_x = randint(r, a->out_w - w + 1);
        p->erase_h = h;
        p->erase_w = w;
        p->erase = h > 0 && w > 0;
        p->erase_seed = rn_rng_next(r);
        return;
    }
}

/* Draws every random choice of one sample (see augment.h). */
void rn_augment_draw(const rn_augment *a, int in_h, int in_w, int train, uint64_t seed,
                     rn_augment_params *p) {
    rn_rng r = {seed};
    memset(p, 0, sizeof *p);
    p->zoom = 1;
    p->contrast = 1;
    p->brightness = 0.5;
    p->border = RN_BORDER_CLAMP;
    if (in_h < 1) in_h = 1;
    if (in_w < 1) in_w = 1;
    if (!train) {
        eval_box(a, in_h, in_w, p);
        return;
    }
    train_box(a, &r, in_h, in_w, p);
    if (a->flip) p->flip = rn_rng_uniform(&r) < 0.5;
    draw_affine(a, &r, p);
    draw_photometric(a, &r, p);
    draw_erase(a, &r, p);
}

/* ---- the composed map ------------------------------------------------- */

/* acc = x * acc (3x3 row-major): applies x after what acc already does. */
static void premul(double acc[9], const double x[9]) {
    double t[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            t[i * 3 + j] = x[i * 3] * acc[j] + x[i * 3 + 1] * acc[3 + j] + x[i * 3 + 2] * acc[6 + j];
    memcpy(acc, t, sizeof t);
}

/* acc = [[sx,0,tx],[0,sy,ty],[0,0,1]] * acc. */
static void premul_st(double acc[9], double sx, double sy, double tx, double ty) {
    const double x[9] = {sx, 0, tx, 0, sy, ty, 0, 0, 1};
    premul(acc, x);
}

/* Solves the 8x8 system a (augmented with its right-hand side in column 8)
** by Gaussian elimination with partial pivoting; the solution is left in
** column 8. Returns 0 if the system is singular. */
static int solve8(double a[8][9]) {
    for (int c = 0; c < 8; c++) {
        int piv = c;
        for (int r = c + 1; r < 8; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c])) piv = r;
        if (fabs(a[piv][c]) < 1e-12) return 0;
        for (int k = 0; k < 9; k++) {
            double t = a[c][k];
            a[c][k] = a[piv][k];
            a[piv][k] = t;
        }
        for (int r = 0; r < 8; r++) {
            if (r == c) continue;
            double f = a[r][c] / a[c][c];
            for (int k = c; k < 9; k++) a[r][k] -= f * a[c][k];
        }
    }
    for (int r = 0; r < 8; r++) a[r][8] /= a[r][r];
    return 1;
}

/* fastai's perspective warp in normalized [-1,1] coordinates: the
** homography h taking the moved corners (targets) back to the square's
** corners, as fastai's find_coeffs(orig, targ) does. */
static void warp_homography(double wx, double wy, double h[9]) {
    const double ox[4] = {-1, -1, 1, 1}, oy[4] = {-1, 1, -1, 1};
    const double tx[4] = {-1 - wy, -1 + wy, 1 + wy, 1 - wy}, ty[4] = {-1 - wx, 1 + wx, -1 + wx, 1 - wx};
    double a[8][9];
    for (int i = 0; i < 4; i++) {
        double x = tx[i], y = ty[i], u = ox[i], v = oy[i];
        const double r0[9] = {x, y, 1, 0, 0, 0, -x * u, -y * u, u};
        const double r1[9] = {0, 0, 0, x, y, 1, -x * v, -y * v, v};
        memcpy(a[2 * i], r0, sizeof r0);
        memcpy(a[2 * i + 1], r1, sizeof r1);
    }
    const double id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(h, id, sizeof id);
    if (!solve8(a)) return;
    for (int k = 0; k < 8; k++) h[k] = a[k][8];
    h[8] = 1;
}

/* Output continuous coordinates -> source continuous coordinates:
** center, flip, rotate, zoom, warp (normalized units), uncenter, then the
** source box. */
void rn_augment_matrix(const rn_augment *a, const rn_augment_params *p, double m[9]) {
    double W = a->out_w, H = a->out_h;
    const double id[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(m, id, sizeof id);
    premul_st(m, 1, 1, -W / 2, -H / 2);
    if (p->flip) premul_st(m, -1, 1, 0, 0);
    if (p->angle != 0) {
        double t = p->angle * PI / 180, c = cos(t), s = sin(t);
        const double r[9] = {c, -s, 0, s, c, 0, 0, 0, 1};
        premul(m, r);
    }
    if (p->zoom != 1 || p->zoom_cx != 0 || p->zoom_cy != 0)
        premul_st(m, 1 / p->zoom, 1 / p->zoom, p->zoom_cx * W / 2, p->zoom_cy * H / 2);
    if (p->warp_x != 0 || p->warp_y != 0) {
        double h[9];
        warp_homography(p->warp_x, p->warp_y, h);
        premul_st(m, 2 / W, 2 / H, 0, 0);
        premul(m, h);
        premul_st(m, W / 2, H / 2, 0, 0);
    }
    premul_st(m, 1, 1, W / 2, H / 2);
    premul_st(m, p->bw / W, p->bh / H, p->x0, p->y0);
}

/* ---- sampling --------------------------------------------------------- */

/* A source plane: uint8 pixels, or the float prefiltered copy. */
typedef struct {
    const uint8_t *u8;
    const float *f;
    int h, w, c;
} src_view;

/* Pixel value at a valid index (y, x, channel). */
static inline float src_px(const src_view *s, long y, long x, int ch) {
    size_t i = ((size_t)y * s->w + (size_t)x) * s->c + ch;
    return s->u8 ? (float)s->u8[i] : s->f[i];
}

/* Box-average downsampling by (kx, ky) into a new float image of
** ceil(w/kx) x ceil(h/ky) (partial blocks at the edges average fewer
** pixels). Sums are exact integers, one block row at a time. Returns NULL
** if memory is short. */
static float *box_down(const rn_image *in, int kx, int ky, int *dw, int *dh) {
    int w = in->w, h = in->h, c = in->c;
    *dw = (w + kx - 1) / kx;
    *dh = (h + ky - 1) / ky;
    size_t nrow = (size_t)*dw * c;
    float *o = malloc((size_t)*dh * nrow * sizeof *o);
    uint32_t *acc = malloc(nrow * sizeof *acc);
    if (!o || !acc) {
        free(o);
        free(acc);
        return NULL;
    }
    for (int by = 0; by < *dh; by++) {
        int y1 = (by + 1) * ky < h ? (by + 1) * ky : h;
        memset(acc, 0, nrow * sizeof *acc);
        for (int y = by * ky; y < y1; y++) {
            const uint8_t *px = in->px + (size_t)y * w * c;
            for (int bx = 0; bx < *dw; bx++) {
                int n = ((bx + 1) * kx < w ? (bx + 1) * kx : w) - bx * kx;
                const uint8_t *q = px + (size_t)bx * kx * c;
                uint32_t *t = acc + (size_t)bx * c;
                if (c == 3) { /* the common case, in registers */
                    uint32_t s0 = 0, s1 = 0, s2 = 0;
                    for (int i = 0; i < 3 * n; i += 3) s0 += q[i], s1 += q[i + 1], s2 += q[i + 2];
                    t[0] += s0, t[1] += s1, t[2] += s2;
                } else {
                    for (int i = 0; i < n * c; i += c)
                        for (int ch = 0; ch < c; ch++) t[ch] += q[i + ch];
                }
            }
        }
        float *row = o + (size_t)by * nrow;
        for (int bx = 0; bx < *dw; bx++) {
            int nx = w - bx * kx < kx ? w - bx * kx : kx;
            float inv = 1.0f / (float)(nx * (y1 - by * ky));
            for (int ch = 0; ch < c; ch++) row[bx * c + ch] = (float)acc[bx * c + ch] * inv;
        }
    }
    free(acc);
    return o;
}

/* Integer prefilter factors (kx, ky): the map's source extent per output
** pixel along each source axis at the output center, floored, when it
** exceeds 2; else 1. */
static void prefilter_factors(const rn_augment *a, const double m[9], int *kx, int *ky) {
    double pts[3][2] = {{a->out_w / 2.0, a->out_h / 2.0}, {a->out_w / 2.0 + 1, a->out_h / 2.0},
                        {a->out_w / 2.0, a->out_h / 2.0 + 1}};
    double s[3][2];
    for (int i = 0; i < 3; i++) {
        double X = m[0] * pts[i][0] + m[1] * pts[i][1] + m[2];
        double Y = m[3] * pts[i][0] + m[4] * pts[i][1] + m[5];
        double Z = m[6] * pts[i][0] + m[7] * pts[i][1] + m[8];
        s[i][0] = X / Z;
        s[i][1] = Y / Z;
    }
    double fx = hypot(s[1][0] - s[0][0], s[2][0] - s[0][0]);
    double fy = hypot(s[1][1] - s[0][1], s[2][1] - s[0][1]);
    *kx = fx > 2 && isfinite(fx) ? (int)fx : 1;
    *ky = fy > 2 && isfinite(fy) ? (int)fy : 1;
}

/* Reflects a continuous coordinate into [0, n] (fastai/grid_sample
** "reflection", align_corners=False). */
static double reflect(double x, double n) {
    double period = 2 * n;
    x = fmod(x, period);
    if (x < 0) x += period;
    if (x > n) x = period - x;
    return x;
}

/* Bilinear sample of the first nc channels at index-space (sx, sy), with
** the border rule for taps outside the image. */
static void sample_edge(const src_view *s, int border, int nc, double sx, double sy, float *v) {
    /* far outside only edge or zero values matter; keeps the casts safe */
    sx = sx < -2 ? -2 : sx > s->w + 1 ? s->w + 1 : sx;
    sy = sy < -2 ? -2 : sy > s->h + 1 ? s->h + 1 : sy;
    double fx0 = floor(sx), fy0 = floor(sy);
    float fx = (float)(sx - fx0), fy = (float)(sy - fy0);
    long x0 = (long)fx0, y0 = (long)fy0, x1 = x0 + 1, y1 = y0 + 1;
    float wx0 = 1 - fx, wx1 = fx, wy0 = 1 - fy, wy1 = fy;
    if (border == RN_BORDER_ZERO) {
        if (x0 < 0 || x0 >= s->w) wx0 = 0;
        if (x1 < 0 || x1 >= s->w) wx1 = 0;
        if (y0 < 0 || y0 >= s->h) wy0 = 0;
        if (y1 < 0 || y1 >= s->h) wy1 = 0;
    }
    x0 = x0 < 0 ? 0 : x0 >= s->w ? s->w - 1 : x0;
    x1 = x1 < 0 ? 0 : x1 >= s->w ? s->w - 1 : x1;
    y0 = y0 < 0 ? 0 : y0 >= s->h ? s->h - 1 : y0;
    y1 = y1 < 0 ? 0 : y1 >= s->h ? s->h - 1 : y1;
    for (int ch = 0; ch < nc; ch++) {
        float top = wx0 * src_px(s, y0, x0, ch) + wx1 * src_px(s, y0, x1, ch);
        float bot = wx0 * src_px(s, y1, x0, ch) + wx1 * src_px(s, y1, x1, ch);
        v[ch] = wy0 * top + wy1 * bot;
    }
}

/* Bilinear sample at continuous source coordinates (the common case, all
** four taps inside the image, without any clamping). */
static inline void sample_at(const src_view *s, int border, int nc, double cx, double cy, float *v) {
    if (border == RN_BORDER_REFLECT) {
        cx = reflect(cx, s->w);
        cy = reflect(cy, s->h);
    }
    double sx = cx - 0.5, sy = cy - 0.5;
    if (!(sx >= 0 && sy >= 0 && sx < s->w - 1 && sy < s->h - 1)) {
        sample_edge(s, border, nc, sx, sy, v);
        return;
    }
    long x0 = (long)sx, y0 = (long)sy;
    float fx = (float)(sx - (double)x0), fy = (float)(sy - (double)y0);
    float wx0 = 1 - fx, wy0 = 1 - fy;
    size_t i00 = ((size_t)y0 * s->w + (size_t)x0) * s->c, i10 = i00 + (size_t)s->w * s->c;
    int c = s->c;
    if (s->u8) {
        const uint8_t *p = s->u8;
        for (int ch = 0; ch < nc; ch++) {
            float top = wx0 * p[i00 + ch] + fx * p[i00 + c + ch];
            float bot = wx0 * p[i10 + ch] + fx * p[i10 + c + ch];
            v[ch] = wy0 * top + fy * bot;
        }
    } else {
        const float *p = s->f;
        for (int ch = 0; ch < nc; ch++) {
            float top = wx0 * p[i00 + ch] + fx * p[i00 + c + ch];
            float bot = wx0 * p[i10 + ch] + fx * p[i10 + c + ch];
            v[ch] = wy0 * top + fy * bot;
        }
    }
}

/* Per-sample constants of the photometric and normalization step:
** fastai's lighting as a table of f(v) over [0,255] (linear between
** LIGHT_SEG + 1 knots: the logit/exp pair per value would dominate the
** sample's cost), the PCA shift, and normalization as v * scale + bias. */
#define LIGHT_SEG 1024
typedef struct {
    int light, pca;
    float lut[LIGHT_SEG + 1];
    float shift[3];     /* PCA: sum_j eigvec[i][j] * alpha_j * eigval_j */
    float mean[3], std[3];
    float scale[3], bias[3]; /* no lighting/PCA: (v/255 - mean)/std = v*scale + bias */
} photo;

/* fastai's lighting of one [0,1] value: sigmoid((logit(x) + logit(b)) * c),
** x clamped to [1e-7, 1 - 1e-7] as fastai's logit does. */
static double lighting(double x, double logit_b, double contrast) {
    double q = x < 1e-7 ? 1e-7 : x > 1 - 1e-7 ? 1 - 1e-7 : x;
    return 1 / (1 + exp(-(log(q / (1 - q)) + logit_b) * contrast));
}

/* Prepares the photometric constants of one sample. */
static void photo_init(const rn_augment *a, const rn_augment_params *p, photo *ph) {
    ph->light = p->brightness != 0.5 || p->contrast != 1;
    ph->pca = a->out_c == 3 && (p->pca[0] != 0 || p->pca[1] != 0 || p->pca[2] != 0);
    if (ph->light) {
        double lb = log(p->brightness / (1 - p->brightness));
        for (int i = 0; i <= LIGHT_SEG; i++) ph->lut[i] = (float)lighting((double)i / LIGHT_SEG, lb, p->contrast);
    }
    for (int i = 0; i < 3; i++) {
        double d = 0;
        for (int j = 0; j < 3; j++) d += k_eigvec[i][j] * p->pca[j] * k_eigval[j];
        ph->shift[i] = (float)d;
        ph->mean[i] = a->mean[i];
        ph->std[i] = a->std[i];
        ph->scale[i] = (float)(1.0 / (255.0 * a->std[i]));
        ph->bias[i] = -a->mean[i] / a->std[i];
    }
}

/* One channel value v in [0,255] -> lighting, PCA, normalization. */
static inline float photo_apply(const photo *ph, float v, int ch) {
    if (!ph->light && !ph->pca) return v * ph->scale[ch] + ph->bias[ch];
    float x = v * (1.0f / 255.0f);
    if (ph->light) {
        float t = x * LIGHT_SEG;
        t = t < 0 ? 0 : t > LIGHT_SEG ? LIGHT_SEG : t;
        int i = (int)t;
        if (i == LIGHT_SEG) i--;
        x = ph->lut[i] + (t - (float)i) * (ph->lut[i + 1] - ph->lut[i]);
    }
    if (ph->pca) x += ph->shift[ch];
    return (x - ph->mean[ch]) / ph->std[ch];
}

/* Random erasing of the drawn box with standard normal values (after
** normalization, as torchvision does).  out: (out_h,out_w,out_c) */
static void erase_box(const rn_augment *a, const rn_augment_params *p, float *out) {
    rn_rng r = {p->erase_seed};
    for (int y = p->erase_y; y < p->erase_y + p->erase_h; y++)
        for (int x = p->erase_x; x < p->erase_x + p->erase_w; x++)
            for (int ch = 0; ch < a->out_c; ch++)
                out[((size_t)y * a->out_w + x) * a->out_c + ch] = (float)rn_rng_normal(&r);
}

/* Per-column sampling positions of an axis-aligned map (the common case:
** crops, resizes, flips), computed once per sample instead of per pixel. */
#define COLMAP_MAX 1024
typedef struct {
    int x0[COLMAP_MAX];
    float fx[COLMAP_MAX];
    unsigned char inside[COLMAP_MAX]; /* both taps inside the image */
} colmap;

/* Fills cm for the map's columns; returns 0 when the map is not
** axis-aligned or the output is too wide for the table. */
static int colmap_init(const rn_augment *a, const src_view *s, const double m[9], colmap *cm) {
    if (m[1] != 0 || m[3] != 0 || a->out_w > COLMAP_MAX) return 0;
    for (int ox = 0; ox < a->out_w; ox++) {
        double sx = m[0] * (ox + 0.5) + m[2] - 0.5; /* = the general formula, m[1] * v being 0 */
        cm->inside[ox] = sx >= 0 && sx < s->w - 1;
        cm->x0[ox] = cm->inside[ox] ? (int)sx : 0;
        cm->fx[ox] = cm->inside[ox] ? (float)(sx - cm->x0[ox]) : 0;
    }
    return 1;
}

/* Fast path of one output row: an affine map, a uint8 source with as many
** channels as the output, plain normalization, no reflection. Interior
** pixels are interpolated inline (column positions from cm when given);
** the rest go through sample_at.  o: (out_w, c) */
static void render_row_fast(const rn_augment *a, const src_view *s, const double m[9], int border,
                            const photo *ph, const colmap *cm, double v, float *o) {
    int c = s->c, w = s->w, h = s->h;
    size_t stride = (size_t)w * c;
    double sy_row = m[4] * v + m[5] - 0.5;
    int row_in = sy_row >= 0 && sy_row < h - 1;
    for (int ox = 0; ox < a->out_w; ox++, o += c) {
        double u = ox + 0.5, sx, sy;
        long x0, y0;
        float fx, fy;
        int in;
        if (cm) {
            in = row_in && cm->inside[ox];
            sx = m[0] * u + m[2] - 0.5;
            sy = sy_row;
            x0 = cm->x0[ox];
            fx = cm->fx[ox];
        } else {
            sx = m[0] * u + m[1] * v + m[2] - 0.5;
            sy = m[3] * u + m[4] * v + m[5] - 0.5;
            in = sx >= 0 && sy >= 0 && sx < w - 1 && sy < h - 1;
            x0 = in ? (long)sx : 0;
            fx = (float)(sx - (double)x0);
        }
        if (!in) {
            float val[3] = {0, 0, 0};
            sample_at(s, border, c, sx + 0.5, sy + 0.5, val);
            for (int ch = 0; ch < c; ch++) o[ch] = val[ch] * ph->scale[ch] + ph->bias[ch];
            continue;
        }
        y0 = (long)sy;
        fy = (float)(sy - (double)y0);
        float wx0 = 1 - fx, wy0 = 1 - fy;
        const uint8_t *q = s->u8 + (size_t)y0 * stride + (size_t)x0 * c;
        if (c == 3) {
            for (int ch = 0; ch < 3; ch++) {
                float top = wx0 * q[ch] + fx * q[3 + ch], bot = wx0 * q[stride + ch] + fx * q[stride + 3 + ch];
                o[ch] = (wy0 * top + fy * bot) * ph->scale[ch] + ph->bias[ch];
            }
        } else {
            float top = wx0 * q[0] + fx * q[1], bot = wx0 * q[stride] + fx * q[stride + 1];
            o[0] = (wy0 * top + fy * bot) * ph->scale[0] + ph->bias[0];
        }
    }
}

/* Samples, converts channels and normalizes every output pixel.
** out: (out_h,out_w,out_c) */
static void render_pixels(const rn_augment *a, const src_view *s, const double m[9], int border,
                          const photo *ph, float *out) {
    int oc = a->out_c, ic = s->c >= 3 ? 3 : 1;
    int affine = m[6] == 0 && m[7] == 0 && m[8] == 1;
    int fast = affine && s->u8 && s->c == oc && !ph->light && !ph->pca && border != RN_BORDER_REFLECT;
    colmap *cm = NULL;
    if (fast) { /* the table is too big for a worker's stack: one allocation, optional */
        cm = malloc(sizeof *cm);
        if (cm && !colmap_init(a, s, m, cm)) {
            free(cm);
            cm = NULL;
        }
    }
    for (int oy = 0; oy < a->out_h; oy++) {
        float *o = out + (size_t)oy * a->out_w * oc;
        double v = oy + 0.5;
        if (fast) {
            render_row_fast(a, s, m, border, ph, cm, v, o);
            continue;
        }
        for (int ox = 0; ox < a->out_w; ox++, o += oc) {
            double u = ox + 0.5, X = m[0] * u + m[1] * v + m[2], Y = m[3] * u + m[4] * v + m[5];
            float val[3] = {0, 0, 0};
            if (affine) {
                sample_at(s, border, ic, X, Y, val);
            } else {
                double Z = m[6] * u + m[7] * v + m[8];
                if (fabs(Z) > 1e-12) sample_at(s, border, ic, X / Z, Y / Z, val);
            }
            if (ic == 1 && oc == 3) val[1] = val[2] = val[0];
            if (ic == 3 && oc == 1) val[0] = 0.299f * val[0] + 0.587f * val[1] + 0.114f * val[2];
            for (int ch = 0; ch < oc; ch++) o[ch] = photo_apply(ph, val[ch], ch);
        }
    }
    free(cm);
}

/* Renders one sample: the composed map sampled once (after a box
** prefilter when it shrinks more than 2x), then photometric changes,
** normalization and erasing.  in: (h,w,c) uint8  out: (out_h,out_w,out_c) */
void rn_augment_render(const rn_augment *a, const rn_image *in, const rn_augment_params *p,
                       float *out) {
    static const uint8_t zero_px[3] = {0, 0, 0};
    double m[9];
    rn_augment_matrix(a, p, m);
    src_view s = {in->px, NULL, in->h, in->w, in->c};
    int empty = in->h < 1 || in->w < 1 || !in->px;
    if (empty) s = (src_view){zero_px, NULL, 1, 1, 1};
    float *ds = NULL;
    int kx, ky;
    prefilter_factors(a, m, &kx, &ky);
    if ((kx > 1 || ky > 1) && !empty) {
        int dw, dh;
        ds = box_down(in, kx, ky, &dw, &dh);
        if (ds) { /* else: degrade to sampling the full image (aliasing, still valid) */
            s = (src_view){NULL, ds, dh, dw, in->c};
            premul_st(m, 1.0 / kx, 1.0 / ky, 0, 0);
        }
    }
    photo ph;
    photo_init(a, p, &ph);
    render_pixels(a, &s, m, p->border, &ph, out);
    if (p->erase) erase_box(a, p, out);
    free(ds);
}

/* Draws and renders one sample; a function of the seed only. */
void rn_augment_sample(const rn_augment *a, const rn_image *in, int train, uint64_t seed, float *out) {
    rn_augment_params p;
    rn_augment_draw(a, in->h, in->w, train, seed, &p);
    rn_augment_render(a, in, &p, out);
}

/* ---- dataset statistics ----------------------------------------------- */

/* Running per-channel count, mean and sum of squared deviations (Chan et
** al.'s pairwise combination, exact per-image sums in integers). */
typedef struct {
    double n, mean[3], m2[3];
} moments;

/* Adds one image's pixels to the running moments. */
static void moments_add(moments *mo, const rn_image *im) {
    int c = im->c >= 3 ? 3 : 1;
    size_t np = (size_t)im->h * im->w;
    if (np == 0) return;
    for (int ch = 0; ch < c; ch++) {
        uint64_t s = 0, q = 0;
        for (size_t i = 0; i < np; i++) {
            uint64_t v = im->px[i * im->c + ch];
            s += v;
            q += v * v;
        }
        double nb = (double)np, mb = (double)s / nb, m2b = (double)q - (double)s * (double)s / nb;
        double delta = mb - mo->mean[ch], tot = mo->n + nb;
        mo->mean[ch] += delta * nb / tot;
        mo->m2[ch] += m2b + delta * delta * mo->n * nb / tot;
    }
    mo->n += (double)np;
}

/* Per-channel mean and std of pixel/255 (see augment.h). */
rn_status rn_dataset_stats(const rn_dataset *d, size_t max_samples, float mean[3], float std[3],
                           rn_error *err) {
    if (!d || d->n == 0) return rn_fail(err, RN_ERR_ARG, "dataset statistics: the dataset is empty");
    size_t m = d->n;
    if (d->kind == RN_DS_FILES && max_samples > 0 && max_samples < d->n) m = max_samples;
    moments mo;
    memset(&mo, 0, sizeof mo);
    int c = d->kind == RN_DS_MEMORY ? (d->c >= 3 ? 3 : 1) : 3;
    for (size_t k = 0; k < m; k++) {
        size_t idx = (size_t)((double)k * (double)d->n / (double)m);
        if (d->kind == RN_DS_MEMORY) {
            size_t sz = (size_t)d->h * d->w * d->c;
            rn_image im = {d->h, d->w, d->c, d->pixels + idx * sz};
            moments_add(&mo, &im);
            continue;
        }
        rn_image im = {0, 0, 0, NULL};
        rn_error e;
        rn_status st = rn_dataset_get(d, idx, 0, &im, &e);
        if (st == RN_ERR_FORMAT || st == RN_ERR_IO) continue;
        if (st != RN_OK) return rn_fail(err, st, "%s", e.msg);
        moments_add(&mo, &im);
        rn_image_free(&im);
    }
    if (mo.n == 0)
        return rn_fail(err, RN_ERR_FORMAT, "%s: no sample could be decoded for statistics", d->source);
    for (int ch = 0; ch < 3; ch++) {
        int s = ch < c ? ch : 0;
        mean[ch] = (float)(mo.mean[s] / 255.0);
        std[ch] = (float)(sqrt(mo.m2[s] / mo.n) / 255.0);
    }
    return RN_OK;
}
