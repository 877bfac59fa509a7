/*
** Tests for src/data/augment and src/data/loader.
**
** Geometry against exact expectations (flip, pad-and-crop, unscaled crop,
** rotations by 90 degrees, warp corners, zoom) and against PIL/torchvision
** (eval resize + center crop, random-resized crop, grid_sample with
** reflection) computed by tests/augment_ref.py with /usr/bin/python3;
** anti-aliasing on a checkerboard; statistics and normalization; lighting,
** PCA and erasing against their definitions; determinism. The loader:
** permutations, identical batches for 0, 1 and 3 workers, drop_last,
** resume, restarts and shutdown mid-epoch, skipped and strict handling of
** broken files in a small PNG folder.
** Prints failed checks, and last the line "N passed, M failed"; exits
** non-zero if anything failed.
*/
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "data/augment.h"
#include "data/loader.h"
#include "check.h"

#define MAX_PENDING 16
#define MAX_FILES 64

/* A comparison waiting for the Python reference: our floats and the file
** the reference will write. */
typedef struct {
    char name[64], path[512];
    float *ours;
    size_t n;
    float tol;
} pending;

/* Counters, the scratch directory, files to remove, pending comparisons. */
typedef struct {
    int pass, fail;
    char dir[256];
    char *files[MAX_FILES];
    int nfiles;
    FILE *jobs;
    pending pend[MAX_PENDING];
    int npend;
} tctx;

/* Builds "<scratch dir>/<name>" into buf and remembers it for removal. */
static const char *scratch(tctx *T, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", T->dir, name);
    if (T->nfiles < MAX_FILES) T->files[T->nfiles++] = strdup(buf);
    return buf;
}

/* A pixel as the augmentation computes it with mean 0 and std 1. */
static float px01(uint8_t v) { return ((float)v * (1.0f / 255.0f) - 0.0f) / 1.0f; }

/* A random image, h x w x c. */
static uint8_t *random_image(int h, int w, int c, uint64_t seed) {
    rn_rng r = {seed};
    uint8_t *p = malloc((size_t)h * w * c);
    for (size_t i = 0; p && i < (size_t)h * w * c; i++) p[i] = (uint8_t)(rn_rng_next(&r) >> 56);
    return p;
}

/* A smooth image: gradients plus low-frequency waves, different per
** channel, so a one-pixel shift changes values noticeably but bilinear
** and antialiased resampling agree closely. */
static uint8_t *smooth_image(int h, int w, int c) {
    uint8_t *p = malloc((size_t)h * w * c);
    for (int y = 0; p && y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                double u = (double)x / w, v = (double)y / h;
                double f = 0.45 * u + 0.25 * v + 0.15 * sin(6.0 * u + 2.0 * ch) * cos(4.0 * v - ch) + 0.1 * ch;
                double q = 255.0 * (0.1 + 0.8 * (f < 0 ? 0 : f > 1 ? 1 : f));
                p[((size_t)y * w + x) * c + ch] = (uint8_t)lround(q);
            }
    return p;
}

/* Largest absolute difference of two float arrays, skipping positions
** where a is NaN. */
static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i])) continue; /* not compared */
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Writes an input image for the reference, returns its path in buf. */
static const char *ref_input(tctx *T, const char *name, const uint8_t *px, size_t n, char *buf,
                             size_t cap) {
    scratch(T, name, buf, cap);
    if (!write_raw(buf, px, n)) printf("cannot write %s\n", buf);
    return buf;
}

/* Queues a comparison of `ours` (n floats, copied) with the reference
** output file `out`. */
static void expect_ref(tctx *T, const char *name, const char *out, const float *ours, size_t n, float tol) {
    if (T->npend == MAX_PENDING) return;
    pending *p = &T->pend[T->npend++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->path, sizeof p->path, "%s", out);
    p->ours = malloc(n * sizeof(float));
    if (p->ours) memcpy(p->ours, ours, n * sizeof(float));
    p->n = n;
    p->tol = tol;
}

/* ---- augmentation ------------------------------------------------------ */

/* Flip: the flipped eval sample is the mirror of the unflipped one, and
** the unflipped identity-size eval sample is the image itself. */
static void test_flip(tctx *T) {
    enum { H = 12, W = 16, C = 3 };
    uint8_t *px = random_image(H, W, C, 1);
    rn_image im = {H, W, C, px};
    rn_augment a;
    rn_augment_default(&a, H, W, C);
    a.flip = 1;
    float id[H * W * C], fl[H * W * C];
    rn_augment_sample(&a, &im, 0, 0, id);
    int same = 1;
    for (int i = 0; i < H * W * C; i++) same &= id[i] == px01(px[i]);
    CHECK(T, same);
    int nflip = 0, checked_flip = 0, checked_keep = 0;
    for (uint64_t seed = 0; seed < 64; seed++) {
        rn_augment_params p;
        rn_augment_draw(&a, H, W, 1, seed, &p);
        nflip += p.flip;
        if (checked_flip && checked_keep) continue;
        rn_augment_render(&a, &im, &p, fl);
        int ok = 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    ok &= fl[(y * W + x) * C + c] == id[(y * W + (p.flip ? W - 1 - x : x)) * C + c];
        CHECK(T, ok);
        if (p.flip) checked_flip = 1; else checked_keep = 1;
    }
    CHECK(T, checked_flip && checked_keep);
    CHECK(T, nflip >= 20 && nflip <= 44);
    free(px);
}

/* Pad-and-crop equals the zero-padded crop exactly; the offsets cover
** -pad..pad. */
static void test_pad_crop(tctx *T) {
    enum { S = 32, C = 3, P = 4 };
    uint8_t *px = random_image(S, S, C, 2);
    rn_image im = {S, S, C, px};
    rn_augment a;
    rn_augment_default(&a, S, S, C);
    a.pad = P;
    static float out[S * S * C];
    int lo = 99, hi = -99, ok_params = 1, ok_px = 1;
    for (uint64_t seed = 0; seed < 200; seed++) {
        rn_augment_params p;
        rn_augment_draw(&a, S, S, 1, seed, &p);
        int dx = (int)p.x0, dy = (int)p.y0;
        ok_params &= p.x0 == dx && p.y0 == dy && p.bw == S && p.bh == S && p.border == RN_BORDER_ZERO;
        ok_params &= dx >= -P && dx <= P && dy >= -P && dy <= P;
        lo = dx < lo ? dx : lo;
        hi = dy > hi ? dy : hi;
        if (seed >= 20) continue;
        rn_augment_render(&a, &im, &p, out);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < C; c++) {
                    int sy = y + dy, sx = x + dx;
                    float e = sy < 0 || sy >= S || sx < 0 || sx >= S ? 0.0f : px01(px[(sy * S + sx) * C + c]);
                    ok_px &= out[(y * S + x) * C + c] == e;
                }
    }
    CHECK(T, ok_params);
    CHECK(T, ok_px);
    CHECK(T, lo == -P && hi == P);
    free(px);
}

/* He et al. scale augmentation with the shorter side kept: an unscaled
** crop at integer offsets, exactly the right box. */
static void test_unscaled_crop(tctx *T) {
    enum { H = 40, W = 50, C = 3, O = 24 };
    uint8_t *px = random_image(H, W, C, 3);
    rn_image im = {H, W, C, px};
    rn_augment a;
    rn_augment_default(&a, O, O, C);
    a.scale_lo = a.scale_hi = H;
    static float out[O * O * C];
    int ok = 1, okp = 1, maxl = 0, maxt = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        rn_augment_params p;
        rn_augment_draw(&a, H, W, 1, seed, &p);
        int l = (int)p.x0, t = (int)p.y0;
        okp &= p.x0 == l && p.y0 == t && p.bw == O && p.bh == O && l >= 0 && l <= W - O && t >= 0 && t <= H - O;
        maxl = l > maxl ? l : maxl;
        maxt = t > maxt ? t : maxt;
        rn_augment_render(&a, &im, &p, out);
        for (int y = 0; y < O; y++)
            for (int x = 0; x < O; x++)
                for (int c = 0; c < C; c++)
                    ok &= out[(y * O + x) * C + c] == px01(px[((y + t) * W + x + l) * C + c]);
    }
    CHECK(T, okp);
    CHECK(T, ok);
    CHECK(T, maxl > (W - O) / 2 && maxt > (H - O) / 2);
    free(px);
}

/* Eval resize + center crop against PIL (torchvision Resize/CenterCrop),
** with and without the prefilter, RGB and gray. */
static void test_eval_vs_pil(tctx *T) {
    static const struct { int h, w, c, resize, oh, ow; float tol; } cs[] = {
        {75, 100, 3, 40, 32, 32, 1.5f / 255}, /* 1.9x down, crop offset rounds half to even */
        {300, 400, 3, 48, 40, 40, 1.5f / 255}, /* 6.25x down: box prefilter */
        {60, 45, 1, 30, 28, 24, 1.5f / 255},  /* gray, non-square output */
        {20, 30, 3, 36, 32, 32, 1.5f / 255},  /* upscale (PIL rounds between its two passes) */
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        uint8_t *px = smooth_image(cs[k].h, cs[k].w, cs[k].c);
        rn_image im = {cs[k].h, cs[k].w, cs[k].c, px};
        rn_augment a;
        rn_augment_default(&a, cs[k].oh, cs[k].ow, cs[k].c);
        a.eval_resize = cs[k].resize;
        size_t n = (size_t)cs[k].oh * cs[k].ow * cs[k].c;
        float *out = malloc(n * sizeof *out);
        rn_augment_sample(&a, &im, 0, 0, out);
        char in[512], ref[512], name[64];
        snprintf(name, sizeof name, "eval%zu.u8", k);
        ref_input(T, name, px, (size_t)cs[k].h * cs[k].w * cs[k].c, in, sizeof in);
        snprintf(name, sizeof name, "eval%zu.f32", k);
        scratch(T, name, ref, sizeof ref);
        fprintf(T->jobs, "resize %s %d %d %d %d %d %d %s\n", in, cs[k].h, cs[k].w, cs[k].c, cs[k].resize,
                cs[k].oh, cs[k].ow, ref);
        snprintf(name, sizeof name, "eval resize case %zu", k);
        expect_ref(T, name, ref, out, n, cs[k].tol);
        free(out);
        free(px);
    }
    /* the crop offset: Resize(40) of 75x100 is 40x53, CenterCrop 32 starts
    ** at round(10.5) = 10 (half to even), i.e. 10 * 100/53 source pixels */
    rn_augment a;
    rn_augment_params p;
    rn_augment_default(&a, 32, 32, 3);
    a.eval_resize = 40;
    rn_augment_draw(&a, 75, 100, 0, 0, &p);
    CHECK(T, fabs(p.x0 - 10 * 100.0 / 53) < 1e-12 && fabs(p.y0 - 4 * 75.0 / 40) < 1e-12);
    CHECK(T, fabs(p.bw - 32 * 100.0 / 53) < 1e-12 && fabs(p.bh - 32 * 75.0 / 40) < 1e-12);
}

/* Downscaling one-pixel checkerboards and stripes must average them (no
** aliasing), along each axis. */
static void test_antialias(tctx *T) {
    enum { S = 256 };
    uint8_t *px = malloc(S * S);
    rn_image im = {S, S, 1, px};
    static const int outs[] = {32, 40, 100};
    for (int k = 0; k < 9; k++) { /* checkerboard, vertical stripes, horizontal stripes */
        int o = outs[k % 3], pat = k / 3;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) px[y * S + x] = (pat == 0 ? x + y : pat == 1 ? x : y) % 2 ? 255 : 0;
        rn_augment a;
        rn_augment_default(&a, o, o, 1);
        float *out = malloc((size_t)o * o * sizeof *out);
        rn_augment_sample(&a, &im, 0, 0, out);
        double worst = 0;
        for (int i = 0; i < o * o; i++) worst = fmax(worst, fabs(out[i] - 0.5));
        printf("  %s 256 -> %d: max |v - 0.5| = %.4f\n", pat == 0 ? "checkerboard" : "stripes", o, worst);
        CHECK(T, worst < (o == 32 ? 1e-6 : 0.02));
        free(out);
    }
    free(px);
}

/* Random-resized crop: integer boxes inside the image, resampled like
** torchvision's resized_crop (plain bilinear) when upscaling, and
** torchvision's center-crop fallback. */
static void test_rrc(tctx *T) {
    enum { H = 30, W = 40, C = 3, O = 48 };
    uint8_t *px = smooth_image(H, W, C);
    rn_image im = {H, W, C, px};
    rn_augment a;
    rn_error err;
    CHECK(T, rn_augment_preset("imagenet", O, O, C, &a, &err) == RN_OK);
    for (int i = 0; i < 3; i++) a.mean[i] = 0, a.std[i] = 1;
    a.flip = 0;
    char in[512], ref[512], name[64];
    ref_input(T, "rrc.u8", px, (size_t)H * W * C, in, sizeof in);
    int okbox = 1;
    double amin = 1, amax = 0;
    for (uint64_t seed = 0; seed < 200; seed++) {
        rn_augment_params p;
        rn_augment_draw(&a, H, W, 1, seed, &p);
        okbox &= p.x0 == floor(p.x0) && p.y0 == floor(p.y0) && p.bw == floor(p.bw) && p.bh == floor(p.bh);
        okbox &= p.x0 >= 0 && p.y0 >= 0 && p.x0 + p.bw <= W && p.y0 + p.bh <= H && p.bw > 0 && p.bh > 0;
        double area = p.bw * p.bh / (H * W);
        amin = fmin(amin, area);
        amax = fmax(amax, area);
        if (seed >= 3) continue;
        float out[O * O * C];
        rn_augment_render(&a, &im, &p, out);
        /* torchvision crops before resizing, so its edge pixels clamp at the
        ** box where the composed map reads the pixels beyond it: compare
        ** the output pixels whose bilinear taps lie inside the box */
        for (int y = 0; y < O; y++)
            for (int x = 0; x < O; x++) {
                double sy = (y + 0.5) * p.bh / O - 0.5, sx = (x + 0.5) * p.bw / O - 0.5;
                if (sy < 0 || sy > p.bh - 1 || sx < 0 || sx > p.bw - 1)
                    for (int c = 0; c < C; c++) out[(y * O + x) * C + c] = NAN;
            }
        snprintf(name, sizeof name, "rrc%d.f32", (int)seed);
        scratch(T, name, ref, sizeof ref);
        fprintf(T->jobs, "crop %s %d %d %d %d %d %d %d %d %d %s\n", in, H, W, C, (int)p.y0, (int)p.x0,
                (int)p.bh, (int)p.bw, O, O, ref);
        snprintf(name, sizeof name, "random-resized crop seed %d", (int)seed);
        expect_ref(T, name, ref, out, (size_t)O * O * C, 1e-4f);
    }
    CHECK(T, okbox);
    printf("  random-resized crop areas %.3f..%.3f (expected within 0.35..1)\n", amin, amax);
    CHECK(T, amin > 0.3 && amin < 0.5 && amax > 0.9);
    /* a 10x100 image cannot hold 90% of its area at aspect <= 4/3: fallback
    ** center crop of 10 x round(10 * 4/3) = 13 at (100 - 13) / 2 = 43 */
    rn_augment_default(&a, 8, 8, 3);
    a.min_scale = 0.9f;
    rn_augment_params p;
    rn_augment_draw(&a, 10, 100, 1, 7, &p);
    CHECK(T, p.x0 == 43 && p.y0 == 0 && p.bw == 13 && p.bh == 10);
    free(px);
}

/* Rotations by multiples of 90 degrees match the rotated image. */
static void test_rotate90(tctx *T) {
    enum { N = 16, C = 3 };
    uint8_t *px = random_image(N, N, C, 4);
    rn_image im = {N, N, C, px};
    rn_augment a;
    rn_augment_default(&a, N, N, C);
    rn_augment_params p;
    rn_augment_draw(&a, N, N, 0, 0, &p);
    p.border = RN_BORDER_REFLECT;
    static const double angles[3] = {90, 180, -90};
    for (int k = 0; k < 3; k++) {
        float out[N * N * C];
        p.angle = angles[k];
        rn_augment_render(&a, &im, &p, out);
        double worst = 0;
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++)
                for (int c = 0; c < C; c++) {
                    /* counter-clockwise: 90 is numpy's rot90(img, 1) */
                    int sy = k == 0 ? x : k == 1 ? N - 1 - y : N - 1 - x;
                    int sx = k == 0 ? N - 1 - y : k == 1 ? N - 1 - x : y;
                    worst = fmax(worst, fabs(out[(y * N + x) * C + c] - px01(px[(sy * N + sx) * C + c])));
                }
        CHECK(T, worst < 1e-5);
    }
    /* drawn angles stay within the range, take both signs, and switch to
    ** reflection padding */
    a.max_rotate = 10;
    a.p_affine = 1;
    int ok = 1, neg = 0, pos = 0;
    for (uint64_t seed = 0; seed < 50; seed++) {
        rn_augment_draw(&a, N, N, 1, seed, &p);
        ok &= fabs(p.angle) <= 10 && p.border == RN_BORDER_REFLECT;
        neg += p.angle < 0;
        pos += p.angle > 0;
    }
    CHECK(T, ok && neg > 10 && pos > 10);
    free(px);
}

/* Maps an output point through a homography. */
static void apply_m(const double m[9], double x, double y, double *sx, double *sy) {
    double z = m[6] * x + m[7] * y + m[8];
    *sx = (m[0] * x + m[1] * y + m[2]) / z;
    *sy = (m[3] * x + m[4] * y + m[5]) / z;
}

/* Warp: fastai's corner targets map to the source corners; zoom scales
** about its offset center; the full composed map sampled with reflection
** matches torch's grid_sample. */
static void test_affine_warp(tctx *T) {
    rn_augment a;
    rn_augment_params p;
    double m[9], sx, sy;
    rn_augment_default(&a, 20, 30, 3);
    rn_augment_draw(&a, 20, 30, 0, 0, &p); /* identity box: output = source size */
    p.warp_x = 0.1;
    p.warp_y = -0.15;
    rn_augment_matrix(&a, &p, m);
    const double ox[4] = {-1, -1, 1, 1}, oy[4] = {-1, 1, -1, 1};
    const double tx[4] = {-1 - p.warp_y, -1 + p.warp_y, 1 + p.warp_y, 1 - p.warp_y};
    const double ty[4] = {-1 - p.warp_x, 1 + p.warp_x, -1 + p.warp_x, 1 - p.warp_x};
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        apply_m(m, (tx[i] + 1) * 15, (ty[i] + 1) * 10, &sx, &sy);
        worst = fmax(worst, fmax(fabs(sx - (ox[i] + 1) * 15), fabs(sy - (oy[i] + 1) * 10)));
    }
    CHECK(T, worst < 1e-9);
    rn_augment_draw(&a, 20, 30, 0, 0, &p);
    p.zoom = 1.1;
    p.zoom_cx = 0.05;
    p.zoom_cy = -0.02;
    rn_augment_matrix(&a, &p, m);
    apply_m(m, 15, 10, &sx, &sy);
    CHECK(T, fabs(sx - (15 + 0.05 * 15)) < 1e-9 && fabs(sy - (10 - 0.02 * 10)) < 1e-9);
    apply_m(m, 15 + 11, 10, &sx, &sy);
    CHECK(T, fabs(sx - (15 + 0.05 * 15 + 10)) < 1e-9);

    enum { H = 30, W = 40, C = 3, OH = 24, OW = 32 };
    uint8_t *px = smooth_image(H, W, C);
    for (int i = 0; i < H * W * C; i += 7) px[i] = (uint8_t)(px[i] ^ 0x5a); /* some texture */
    rn_image im = {H, W, C, px};
    rn_augment_default(&a, OH, OW, C);
    rn_augment_draw(&a, H, W, 0, 0, &p);
    p.flip = 1;
    p.angle = 17;
    p.zoom = 1.08;
    p.zoom_cx = 0.03;
    p.zoom_cy = -0.05;
    p.warp_x = 0.1;
    p.warp_y = -0.15;
    p.border = RN_BORDER_REFLECT;
    rn_augment_matrix(&a, &p, m);
    float out[OH * OW * C];
    rn_augment_render(&a, &im, &p, out);
    char in[512], ref[512];
    ref_input(T, "grid.u8", px, (size_t)H * W * C, in, sizeof in);
    scratch(T, "grid.f32", ref, sizeof ref);
    fprintf(T->jobs, "grid %s %d %d %d %d %d", in, H, W, C, OH, OW);
    for (int i = 0; i < 9; i++) fprintf(T->jobs, " %.17g", m[i]);
    fprintf(T->jobs, " %s\n", ref);
    expect_ref(T, "flip+rotate+zoom+warp, reflection", ref, out, (size_t)OH * OW * C, 1e-4f);
    free(px);
}

/* Dataset statistics against a direct two-pass computation, and the
** normalized samples have mean 0 and std 1 per channel. */
static void test_stats(tctx *T) {
    enum { N = 40, H = 6, W = 5, C = 3 };
    uint8_t *px = malloc((size_t)N * H * W * C);
    int labels[N] = {0};
    rn_rng r = {5};
    for (size_t i = 0; i < (size_t)N * H * W; i++) {
        px[i * 3] = (uint8_t)(rn_rng_next(&r) >> 56);
        px[i * 3 + 1] = (uint8_t)(50 + rn_rng_next(&r) % 51);
        px[i * 3 + 2] = (uint8_t)(200 + rn_rng_next(&r) % 3);
    }
    rn_dataset d;
    memset(&d, 0, sizeof d);
    d.kind = RN_DS_MEMORY;
    d.n = N;
    d.h = H, d.w = W, d.c = C;
    d.pixels = px;
    d.labels = labels;
    float mean[3], std[3];
    rn_error err;
    CHECK(T, rn_dataset_stats(&d, 0, mean, std, &err) == RN_OK);
    double worst = 0;
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0, cnt = (double)N * H * W;
        for (size_t i = 0; i < (size_t)N * H * W; i++) s += px[i * 3 + c] / 255.0;
        double mu = s / cnt;
        for (size_t i = 0; i < (size_t)N * H * W; i++) q += (px[i * 3 + c] / 255.0 - mu) * (px[i * 3 + c] / 255.0 - mu);
        worst = fmax(worst, fmax(fabs(mean[c] - mu), fabs(std[c] - sqrt(q / cnt))));
    }
    CHECK(T, worst < 1e-6);
    rn_augment a;
    rn_augment_default(&a, H, W, C);
    memcpy(a.mean, mean, sizeof mean);
    memcpy(a.std, std, sizeof std);
    double s[3] = {0}, q[3] = {0};
    for (int i = 0; i < N; i++) {
        rn_image im = {H, W, C, px + (size_t)i * H * W * C};
        float out[H * W * C];
        rn_augment_sample(&a, &im, 0, 0, out);
        for (int j = 0; j < H * W; j++)
            for (int c = 0; c < C; c++) s[c] += out[j * C + c], q[c] += (double)out[j * C + c] * out[j * C + c];
    }
    double cnt = (double)N * H * W;
    for (int c = 0; c < C; c++) {
        double mu = s[c] / cnt, sd = sqrt(q[c] / cnt - mu * mu);
        printf("  normalized channel %d: mean %.2e std %.6f\n", c, mu, sd);
        CHECK(T, fabs(mu) < 1e-4 && fabs(sd - 1) < 1e-3);
    }
    /* gray: half 0, half 255 -> mean 0.5, std 0.5 in all three entries */
    for (size_t i = 0; i < (size_t)N * H * W; i++) px[i] = i % 2 ? 255 : 0;
    d.c = 1;
    CHECK(T, rn_dataset_stats(&d, 0, mean, std, &err) == RN_OK);
    CHECK(T, fabs(mean[0] - 0.5) < 1e-7 && fabs(std[0] - 0.5) < 1e-7 && mean[2] == mean[0] && std[1] == std[0]);
    d.n = 0;
    CHECK(T, rn_dataset_stats(&d, 0, mean, std, &err) == RN_ERR_ARG);
    free(px);
}

/* Logistic function and its inverse, for the lighting reference. */
static double sigm(double x) { return 1 / (1 + exp(-x)); }
static double logit(double x) { return log(x / (1 - x)); }

/* Brightness, contrast and PCA lighting move values in the documented
** direction by the documented amount; the draws stay in range. */
static void test_lighting(tctx *T) {
    enum { H = 8, W = 8, C = 3, NP = H * W * C };
    uint8_t px[NP];
    for (int i = 0; i < NP; i++) px[i] = (uint8_t)(60 + (i * 37) % 141);
    rn_image im = {H, W, C, px};
    rn_augment a;
    rn_augment_default(&a, H, W, C);
    rn_augment_params p0, p;
    rn_augment_draw(&a, H, W, 0, 0, &p0);
    float base[NP], out[NP];
    rn_augment_render(&a, &im, &p0, base);
    double mb = 0;
    for (int i = 0; i < NP; i++) mb += base[i] / NP;

    p = p0;
    p.brightness = 0.7;
    rn_augment_render(&a, &im, &p, out);
    double mo = 0, worst = 0;
    for (int i = 0; i < NP; i++) {
        mo += out[i] / NP;
        worst = fmax(worst, fabs(out[i] - sigm(logit(base[i]) + logit(0.7))));
    }
    CHECK(T, mo > mb + 0.05 && worst < 1e-5);
    p.brightness = 0.3;
    rn_augment_render(&a, &im, &p, out);
    mo = 0;
    for (int i = 0; i < NP; i++) mo += out[i] / NP;
    CHECK(T, mo < mb - 0.05);
    p = p0;
    p.contrast = 1.5;
    rn_augment_render(&a, &im, &p, out);
    int ok = 1;
    for (int i = 0; i < NP; i++) {
        ok &= fabs(out[i] - sigm(logit(base[i]) * 1.5)) < 1e-5;
        ok &= base[i] > 0.5 ? out[i] > base[i] : base[i] < 0.5 ? out[i] < base[i] : 1;
    }
    CHECK(T, ok);

    /* PCA: alpha on the first component (eigenvector all negative) darkens
    ** every channel by alpha * 0.2175 * |v|; negative alpha brightens */
    static const double v0[3] = {-0.5675, -0.5808, -0.5836};
    for (int sgn = -1; sgn <= 1; sgn += 2) {
        p = p0;
        p.pca[0] = 0.5 * sgn;
        rn_augment_render(&a, &im, &p, out);
        worst = 0;
        for (int i = 0; i < NP; i++) worst = fmax(worst, fabs((out[i] - base[i]) - 0.5 * sgn * 0.2175 * v0[i % 3]));
        CHECK(T, worst < 1e-6);
        CHECK(T, sgn > 0 ? out[0] < base[0] : out[0] > base[0]);
    }

    a.max_lighting = 0.2f;
    a.p_lighting = 1;
    a.pca_std = 0.1f;
    ok = 1;
    int moved = 0;
    for (uint64_t seed = 0; seed < 50; seed++) {
        rn_augment_draw(&a, H, W, 1, seed, &p);
        ok &= p.brightness >= 0.4 && p.brightness <= 0.6 && p.contrast >= 0.8 && p.contrast <= 1.25;
        moved += p.pca[0] != 0 && p.pca[2] != 0;
    }
    CHECK(T, ok && moved == 50);
    rn_augment_default(&a, H, W, 1);
    a.pca_std = 0.1f;
    rn_augment_draw(&a, H, W, 1, 3, &p);
    CHECK(T, p.pca[0] == 0 && p.pca[1] == 0 && p.pca[2] == 0); /* gray: no PCA */
}

/* Random erasing replaces exactly one box within torchvision's area and
** ratio bounds with standard normal values. */
static void test_erase(tctx *T) {
    enum { S = 32, C = 3, NP = S * S * C };
    uint8_t px[NP];
    memset(px, 100, sizeof px);
    rn_image im = {S, S, C, px};
    rn_augment a;
    rn_augment_default(&a, S, S, C);
    a.erase_p = 1;
    float out[NP];
    const float keep = px01(100);
    int erased = 0, ok = 1;
    double s = 0, q = 0, cnt = 0;
    for (uint64_t seed = 0; seed < 50; seed++) {
        rn_augment_params p;
        rn_augment_draw(&a, S, S, 1, seed, &p);
        rn_augment_render(&a, &im, &p, out);
        int y0 = S, y1 = -1, x0 = S, x1 = -1, changed = 0;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < C; c++) {
                    float v = out[(y * S + x) * C + c];
                    if (v == keep) continue;
                    changed++;
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                    x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                    s += v, q += (double)v * v, cnt++;
                }
        if (!p.erase) {
            ok &= changed == 0;
            continue;
        }
        erased++;
        int h = y1 - y0 + 1, w = x1 - x0 + 1;
        ok &= changed == h * w * C && y0 == p.erase_y && x0 == p.erase_x && h == p.erase_h && w == p.erase_w;
        ok &= (h - 0.5) * (w - 0.5) <= 0.33 * S * S && (h + 0.5) * (w + 0.5) >= 0.02 * S * S;
        ok &= (h + 0.5) / (w - 0.5) >= 0.3 && (h - 0.5) / (w + 0.5) <= 3.3;
    }
    CHECK(T, ok);
    CHECK(T, erased >= 45);
    double mu = s / cnt, sd = sqrt(q / cnt - mu * mu);
    printf("  erased %d of 50, values mean %.3f std %.3f over %.0f\n", erased, mu, sd, cnt);
    CHECK(T, fabs(mu) < 0.05 && fabs(sd - 1) < 0.05);
    a.erase_p = 0.5f;
    erased = 0;
    for (uint64_t seed = 0; seed < 200; seed++) {
        rn_augment_params p;
        rn_augment_draw(&a, S, S, 1, seed, &p);
        erased += p.erase;
    }
    CHECK(T, erased > 70 && erased < 130);
}

/* Same seed, same floats; another seed, other floats; every preset gives
** finite values; preset names and sizes. */
static void test_determinism_presets(tctx *T) {
    enum { H = 40, W = 50, O = 32 };
    uint8_t *px = random_image(H, W, 3, 6);
    rn_image im = {H, W, 3, px};
    static const char *names[] = {"fashion-mnist", "idx", "cifar", "imagenet", "fastai", "paper", "none"};
    rn_error err;
    for (int k = 0; k < 7; k++) {
        rn_augment a;
        int c = k < 2 ? 1 : 3;
        CHECK(T, rn_augment_preset(names[k], O, O, c, &a, &err) == RN_OK);
        CHECK(T, rn_augment_check(&a, &err) == RN_OK);
        a.erase_p = 0.5f;
        float o1[O * O * 3], o2[O * O * 3], o3[O * O * 3];
        int same = 1, finite = 1;
        for (uint64_t seed = 1; seed <= 4; seed++) {
            rn_augment_sample(&a, &im, 1, seed, o1);
            rn_augment_sample(&a, &im, 1, seed, o2);
            same &= memcmp(o1, o2, (size_t)O * O * c * sizeof(float)) == 0;
            for (int i = 0; i < O * O * c; i++) finite &= isfinite(o1[i]);
        }
        rn_augment_sample(&a, &im, 1, 1000, o3);
        CHECK(T, same && finite);
        CHECK(T, k == 6 || memcmp(o1, o3, (size_t)O * O * c * sizeof(float)) != 0);
    }
    rn_augment a;
    CHECK(T, rn_augment_preset("imagenet", 224, 224, 3, &a, &err) == RN_OK && a.eval_resize == 256 &&
                 a.min_scale == 0.35f && a.mean[0] == 0.485f && a.std[2] == 0.225f);
    CHECK(T, rn_augment_preset("imagenet", 112, 112, 3, &a, &err) == RN_OK && a.eval_resize == 128);
    CHECK(T, rn_augment_preset("fastai", 224, 224, 3, &a, &err) == RN_OK && a.presize == 460 &&
                 a.max_zoom == 1.1f && a.max_warp == 0.2f && a.p_affine == 0.75f);
    CHECK(T, rn_augment_preset("paper", 224, 224, 3, &a, &err) == RN_OK && a.scale_lo == 256 &&
                 a.scale_hi == 480 && a.pca_std == 0.1f);
    CHECK(T, rn_augment_preset("cifar", 32, 32, 3, &a, &err) == RN_OK && a.pad == 4 && a.flip);
    CHECK(T, rn_augment_preset("fashion-mnist", 28, 28, 1, &a, &err) == RN_OK && a.pad == 2 && a.std[0] == 1);
    CHECK(T, rn_augment_preset("imagenet", 224, 224, 1, &a, &err) == RN_OK && fabs(a.mean[0] - 0.4583) < 1e-3);
    err.msg[0] = 0;
    CHECK(T, rn_augment_preset("autoaugment", 32, 32, 3, &a, &err) == RN_ERR_ARG);
    CHECK(T, strstr(err.msg, "autoaugment") && strstr(err.msg, "fastai") && strstr(err.msg, "none"));
    printf("  rejected preset: %s\n", err.msg);
    rn_augment_default(&a, 32, 32, 2);
    CHECK(T, rn_augment_check(&a, &err) == RN_ERR_ARG);
    rn_augment_default(&a, 32, 32, 3);
    a.std[1] = 0;
    CHECK(T, rn_augment_check(&a, &err) == RN_ERR_ARG);
    free(px);
}

/* Runs the Python reference over the queued jobs and compares. */
static void run_reference(tctx *T) {
    fclose(T->jobs);
    T->jobs = NULL;
    char jobs[512], cmd[1200];
    snprintf(jobs, sizeof jobs, "%s/jobs.txt", T->dir);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/augment_ref.py %s > %s/ref.log 2>&1", jobs, T->dir);
    int rc = system(cmd);
    CHECK(T, rc == 0);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "tail -5 %s/ref.log", T->dir);
        if (system(cmd) != 0) printf("(no log)\n");
    }
    for (int i = 0; i < T->npend; i++) {
        pending *p = &T->pend[i];
        float *ref = malloc(p->n * sizeof *ref);
        FILE *fp = fopen(p->path, "rb");
        int got = fp && ref && p->ours && fread(ref, sizeof(float), p->n, fp) == p->n;
        if (fp) fclose(fp);
        double d = got ? max_diff(p->ours, ref, p->n) : INFINITY;
        printf("  vs reference: %-36s max diff %.2e (tol %.1e)\n", p->name, d, p->tol);
        if (!CHECK(T, got && d <= p->tol)) printf("    ^ %s\n", p->name);
        free(ref);
        free(p->ours);
    }
}

/* ---- loader ------------------------------------------------------------ */

/* One epoch's output: batch sizes and firsts, labels and floats in order. */
typedef struct {
    size_t nb, total;
    int sizes[64];
    size_t firsts[64];
    int *labels;
    float *x;
} epoch_rec;

/* Runs the loader from (epoch, start) to the end of the epoch into r
** (capacity n samples of sf floats). Returns the first error. */
static rn_status collect(rn_loader *l, int epoch, size_t start, size_t n, size_t sf, epoch_rec *r) {
    rn_error err;
    memset(r, 0, sizeof *r);
    r->labels = calloc(n, sizeof(int));
    r->x = calloc(n * sf, sizeof(float));
    rn_status st = rn_loader_start(l, epoch, start, &err);
    for (;;) {
        const rn_batch *b;
        if (st != RN_OK || (st = rn_loader_next(l, &b, &err)) != RN_OK || !b) break;
        if (r->nb < 64) r->sizes[r->nb] = b->n, r->firsts[r->nb] = b->first;
        r->nb++;
        if (r->total + (size_t)b->n > n) break;
        memcpy(r->labels + r->total, b->labels, (size_t)b->n * sizeof(int));
        memcpy(r->x + r->total * sf, b->x, (size_t)b->n * sf * sizeof(float));
        r->total += (size_t)b->n;
    }
    return st;
}

/* 1 if two epoch records hold the same batches (from batch `from` of a). */
static int same_epoch(const epoch_rec *a, const epoch_rec *b, size_t from, size_t sf) {
    size_t off = 0;
    for (size_t i = 0; i < from; i++) off += (size_t)a->sizes[i];
    if (a->nb - from != b->nb || a->total - off != b->total) return 0;
    for (size_t i = 0; i < b->nb; i++)
        if (a->sizes[from + i] != b->sizes[i] || a->firsts[from + i] != b->firsts[i]) return 0;
    return memcmp(a->labels + off, b->labels, b->total * sizeof(int)) == 0 &&
           memcmp(a->x + off * sf, b->x, b->total * sf * sizeof(float)) == 0;
}

static void free_rec(epoch_rec *r) {
    free(r->labels);
    free(r->x);
}

/* Data-parallel shards: k loaders with shard 0..k-1 hand out, batch by
** batch, slices that put together are the unsharded loader's batch e (same
** samples, same augmentation, in order), the same number of batches each,
** empty slices included. */
static int shards_match(const rn_dataset *d, const rn_augment *a, rn_loader_config cfg, int k, const epoch_rec *e,
                        size_t sf) {
    epoch_rec r[4];
    rn_loader *l[4] = {0};
    int ok = k <= 4;
    cfg.nshards = k;
    for (int i = 0; ok && i < k; i++) {
        rn_error err;
        cfg.shard = i;
        ok = rn_loader_create(d, a, &cfg, &l[i], &err) == RN_OK && collect(l[i], 0, 0, d->n, sf, &r[i]) == RN_OK;
        ok = ok && r[i].nb == e->nb;
    }
    size_t at[4] = {0}, pos = 0;
    for (size_t b = 0; ok && b < e->nb; b++) {
        for (int i = 0; ok && i < k; i++) {
            size_t n = (size_t)r[i].sizes[b], lo = (size_t)e->sizes[b] * (size_t)i / (size_t)k;
            ok = n == (size_t)e->sizes[b] * (size_t)(i + 1) / (size_t)k - lo && r[i].firsts[b] == e->firsts[b] + lo;
            ok = ok && !memcmp(r[i].labels + at[i], e->labels + pos, n * sizeof(int)) &&
                 !memcmp(r[i].x + at[i] * sf, e->x + pos * sf, n * sf * sizeof(float));
            at[i] += n, pos += n;
        }
    }
    for (int i = 0; i < k; i++) {
        if (l[i]) free_rec(&r[i]);
        rn_loader_free(l[i]);
    }
    return ok && pos == e->total;
}

/* Memory dataset: permutations, worker counts, drop_last, resume,
** restarts and frees mid-epoch, the per-sample seed contract. */
static void test_loader_memory(tctx *T) {
    enum { N = 103, S = 8, C = 3, SF = S * S * C };
    uint8_t *px = random_image(N * S, S, C, 7);
    int labels[N];
    for (int i = 0; i < N; i++) labels[i] = i;
    rn_dataset d;
    memset(&d, 0, sizeof d);
    d.kind = RN_DS_MEMORY;
    snprintf(d.source, sizeof d.source, "generated");
    d.n = N, d.h = S, d.w = S, d.c = C, d.nclasses = N;
    d.pixels = px;
    d.labels = labels;
    rn_augment a;
    rn_error err;
    rn_augment_default(&a, S, S, C);
    a.pad = 1, a.flip = 1, a.erase_p = 0.3f, a.max_lighting = 0.2f;
    rn_loader_config cfg = {.batch = 10, .shuffle = 1, .train = 1, .seed = 42};
    rn_loader *l0 = NULL, *l1 = NULL, *l3 = NULL;
    CHECK(T, rn_loader_create(&d, &a, &cfg, &l0, &err) == RN_OK);
    cfg.workers = 1;
    CHECK(T, rn_loader_create(&d, &a, &cfg, &l1, &err) == RN_OK);
    cfg.workers = 3, cfg.prefetch = 2;
    CHECK(T, rn_loader_create(&d, &a, &cfg, &l3, &err) == RN_OK);
    if (!l0 || !l1 || !l3) goto out;
    const rn_batch *b;
    CHECK(T, rn_loader_next(l0, &b, &err) == RN_ERR_ARG); /* not started */
    CHECK(T, rn_loader_batches(l0) == 11);

    epoch_rec e0, e1, e3, r3, e0b;
    CHECK(T, collect(l0, 0, 0, N, SF, &e0) == RN_OK);
    CHECK(T, collect(l1, 0, 0, N, SF, &e1) == RN_OK);
    CHECK(T, collect(l3, 0, 0, N, SF, &e3) == RN_OK);
    int seen[N] = {0}, ok = e0.total == N && e0.nb == 11, inorder = 1;
    for (size_t i = 0; ok && i < N; i++) seen[e0.labels[i]]++, inorder &= e0.labels[i] == (int)i;
    for (int i = 0; i < N; i++) ok &= seen[i] == 1;
    CHECK(T, ok);       /* a permutation */
    CHECK(T, !inorder); /* shuffled */
    for (size_t i = 0; i < 11; i++) ok &= e0.sizes[i] == (i < 10 ? 10 : 3) && e0.firsts[i] == i * 10;
    CHECK(T, ok);
    CHECK(T, same_epoch(&e0, &e1, 0, SF));
    CHECK(T, same_epoch(&e0, &e3, 0, SF));
    cfg.workers = 0, cfg.prefetch = 0;
    CHECK(T, shards_match(&d, &a, cfg, 2, &e0, SF));
    CHECK(T, shards_match(&d, &a, cfg, 4, &e0, SF)); /* the last batch of 3: one slice is empty */
    cfg.workers = 2;
    CHECK(T, shards_match(&d, &a, cfg, 3, &e0, SF));
    cfg.workers = 3, cfg.prefetch = 2;
    /* every sample is rn_augment_sample with the documented seed */
    ok = 1;
    for (size_t i = 0; ok && i < e0.total; i += 7) {
        int idx = e0.labels[i];
        if (idx < 0 || idx >= N) {
            ok = 0;
            break;
        }
        rn_image im = {S, S, C, px + (size_t)idx * SF};
        float ref[SF];
        rn_augment_sample(&a, &im, 1, rn_loader_sample_seed(42, 0, (size_t)idx), ref);
        ok &= memcmp(ref, e0.x + i * SF, sizeof ref) == 0;
    }
    CHECK(T, ok);
    /* resume at batch 4 (3 workers) = the uninterrupted epoch from 4 on */
    CHECK(T, collect(l3, 0, 4, N, SF, &r3) == RN_OK);
    CHECK(T, same_epoch(&e0, &r3, 4, SF));
    free_rec(&r3);
    /* another epoch: another order and other augmentations */
    CHECK(T, collect(l0, 1, 0, N, SF, &r3) == RN_OK);
    CHECK(T, r3.total == N && memcmp(r3.labels, e0.labels, sizeof labels) != 0);
    /* a uniform shuffle leaves about one sample in place per epoch (a
    ** cyclic one, e.g. Sattolo's, never does) */
    int fixed = 0;
    for (int ep = 2; ep < 10; ep++) {
        epoch_rec ef;
        CHECK(T, collect(l0, ep, 0, N, SF, &ef) == RN_OK);
        for (size_t i = 0; i < ef.total; i++) fixed += ef.labels[i] == (int)i;
        free_rec(&ef);
    }
    CHECK(T, fixed >= 2 && fixed <= 24);
    /* restart epoch 1 mid-flight with workers busy, then finish it */
    CHECK(T, rn_loader_start(l3, 0, 0, &err) == RN_OK);
    CHECK(T, rn_loader_next(l3, &b, &err) == RN_OK && b && b->n == 10);
    CHECK(T, collect(l3, 1, 0, N, SF, &e0b) == RN_OK);
    CHECK(T, same_epoch(&r3, &e0b, 0, SF));
    free_rec(&r3);
    free_rec(&e0b);
    CHECK(T, rn_loader_start(l3, 7, 5, &err) == RN_OK);
    CHECK(T, rn_loader_next(l3, &b, &err) == RN_OK && b && b->first == 50);
    CHECK(T, rn_loader_start(l3, 0, 12, &err) == RN_ERR_ARG);
    rn_loader_free(l3); /* mid-epoch, workers filling */
    l3 = NULL;
    free_rec(&e1);
    free_rec(&e3);

    /* no shuffle: identity order; drop_last: 10 full batches */
    rn_loader *ld = NULL;
    rn_loader_config c2 = {.batch = 10, .drop_last = 1, .workers = 2, .prefetch = 1, .seed = 1};
    CHECK(T, rn_loader_create(&d, &a, &c2, &ld, &err) == RN_OK);
    if (ld) {
        CHECK(T, rn_loader_batches(ld) == 10);
        CHECK(T, collect(ld, 0, 0, N, SF, &e1) == RN_OK);
        ok = e1.nb == 10 && e1.total == 100;
        for (size_t i = 0; ok && i < 100; i++) ok &= e1.labels[i] == (int)i;
        CHECK(T, ok);
        free_rec(&e1);
        rn_loader_free(ld);
    }
    c2.batch = 0;
    CHECK(T, rn_loader_create(&d, &a, &c2, &ld, &err) == RN_ERR_ARG && ld == NULL);
    c2.batch = 10;
    c2.workers = -1;
    CHECK(T, rn_loader_create(&d, &a, &c2, &ld, &err) == RN_ERR_ARG);

    cfg.workers = 2, cfg.prefetch = 0;
    double ips = rn_loader_bench(&d, &a, &cfg, 11, &err);
    printf("  loader bench (8x8 memory samples, 2 workers): %.0f images/s\n", ips);
    CHECK(T, ips > 0);
    free_rec(&e0);
out:
    rn_loader_free(l0);
    rn_loader_free(l1);
    rn_loader_free(l3);
    free(px);
}

/* Writes an 8-bit RGB PNG; returns 1 on success. */
static int write_png(const char *path, const uint8_t *px, int h, int w) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return 0;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(fp) == 0;
}

/* File dataset: broken and missing files skipped, counted and reported
** once, batches smaller, empty batches passed over, strict mode fails,
** statistics over the decodable subset, 0 vs 2 workers. */
static void test_loader_files(tctx *T) {
    enum { N = 7, O = 16, SF = O * O * 3 };
    static const int dims[N][2] = {{20, 30}, {33, 17}, {0, 0}, {16, 16}, {0, 0}, {40, 40}, {25, 26}};
    static const char *names[N] = {"a.png", "b.png", "broken.png", "c.png", "missing.png", "d.png", "e.png"};
    char path[N][512];
    uint8_t *img[N] = {0};
    char *paths[N];
    int labels[N];
    for (int i = 0; i < N; i++) {
        scratch(T, names[i], path[i], sizeof path[i]);
        paths[i] = path[i];
        labels[i] = i;
        if (dims[i][0]) {
            img[i] = random_image(dims[i][0], dims[i][1], 3, 100 + (uint64_t)i);
            CHECK(T, write_png(path[i], img[i], dims[i][0], dims[i][1]));
        }
    }
    CHECK(T, write_raw(path[2], "\x89PNG\r\n\x1a\n broken", 16));
    rn_dataset d;
    memset(&d, 0, sizeof d);
    d.kind = RN_DS_FILES;
    snprintf(d.source, sizeof d.source, "%s", T->dir);
    d.n = N, d.nclasses = N, d.c = 3;
    d.paths = paths;
    d.labels = labels;
    rn_augment a;
    rn_augment_default(&a, O, O, 3);
    rn_loader_config cfg = {.batch = 3, .workers = 2, .seed = 9};
    rn_loader *l = NULL;
    rn_error err;
    CHECK(T, rn_loader_create(&d, &a, &cfg, &l, &err) == RN_OK);
    if (!l) return;
    epoch_rec e;
    CHECK(T, collect(l, 0, 0, N, SF, &e) == RN_OK);
    CHECK(T, e.nb == 3 && e.sizes[0] == 2 && e.sizes[1] == 2 && e.sizes[2] == 1 && e.total == 5);
    CHECK(T, e.labels[0] == 0 && e.labels[1] == 1 && e.labels[2] == 3 && e.labels[3] == 5 && e.labels[4] == 6);
    int ok = 1;
    for (size_t k = 0; k < e.total; k++) { /* eval samples of the lossless PNGs */
        int i = e.labels[k];
        rn_image im = {dims[i][0], dims[i][1], 3, img[i]};
        float ref[SF];
        rn_augment_sample(&a, &im, 0, 0, ref);
        ok &= memcmp(ref, e.x + k * SF, sizeof ref) == 0;
    }
    CHECK(T, ok);
    free_rec(&e);
    CHECK(T, rn_loader_skipped(l) == 2);
    char msg[512];
    int got_broken = 0, got_missing = 0, nmsg = 0;
    while (rn_loader_take_message(l, msg, sizeof msg)) {
        printf("  skipped %s\n", msg);
        nmsg++;
        got_broken += strstr(msg, path[2]) != NULL;
        got_missing += strstr(msg, path[4]) != NULL;
    }
    CHECK(T, nmsg == 2 && got_broken == 1 && got_missing == 1);
    CHECK(T, collect(l, 1, 0, N, SF, &e) == RN_OK && e.total == 5);
    free_rec(&e);
    CHECK(T, rn_loader_skipped(l) == 2 && !rn_loader_take_message(l, msg, sizeof msg));
    rn_loader_free(l);

    /* batch 1: the broken files' batches are passed over; 0 and 2 workers
    ** agree in training mode */
    epoch_rec e0, e2;
    cfg.batch = 1, cfg.train = 1, cfg.shuffle = 1;
    a.min_scale = 0.5f, a.flip = 1, a.max_rotate = 10;
    cfg.workers = 0;
    l = NULL;
    CHECK(T, rn_loader_create(&d, &a, &cfg, &l, &err) == RN_OK);
    if (l) CHECK(T, collect(l, 3, 0, N, SF, &e0) == RN_OK && e0.nb == 5 && e0.total == 5);
    rn_loader_free(l);
    cfg.workers = 2;
    l = NULL;
    CHECK(T, rn_loader_create(&d, &a, &cfg, &l, &err) == RN_OK);
    if (l) CHECK(T, collect(l, 3, 0, N, SF, &e2) == RN_OK);
    CHECK(T, same_epoch(&e0, &e2, 0, SF));
    free_rec(&e0);
    free_rec(&e2);
    rn_loader_free(l);

    /* strict: the broken file's error, again on the next call */
    cfg.batch = 3, cfg.shuffle = 0, cfg.strict = 1;
    l = NULL;
    CHECK(T, rn_loader_create(&d, &a, &cfg, &l, &err) == RN_OK);
    if (l) {
        const rn_batch *b = NULL;
        CHECK(T, rn_loader_start(l, 0, 0, &err) == RN_OK);
        err.msg[0] = 0;
        rn_status st = rn_loader_next(l, &b, &err);
        CHECK(T, st == RN_ERR_FORMAT && b == NULL && strstr(err.msg, path[2]) != NULL);
        printf("  strict: %s\n", err.msg);
        CHECK(T, rn_loader_next(l, &b, &err) == st && b == NULL);
        CHECK(T, rn_loader_start(l, 0, 1, &err) == RN_OK); /* resumes past it, then the missing file */
        CHECK(T, rn_loader_next(l, &b, &err) == RN_ERR_IO && strstr(err.msg, path[4]) != NULL);
        rn_loader_free(l);
    }

    /* statistics: all decodable files; 3 evenly spaced (0, 2, 4) = only a.png */
    float mean[3], std[3], m3[3], s3[3];
    CHECK(T, rn_dataset_stats(&d, 0, mean, std, &err) == RN_OK);
    CHECK(T, rn_dataset_stats(&d, 3, m3, s3, &err) == RN_OK);
    double worst = 0, worst3 = 0;
    for (int c = 0; c < 3; c++) {
        double s = 0, q = 0, cnt = 0, s0 = 0, q0 = 0, c0 = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; img[i] && j < dims[i][0] * dims[i][1]; j++) {
                double v = img[i][j * 3 + c] / 255.0;
                s += v, q += v * v, cnt++;
                if (i == 0) s0 += v, q0 += v * v, c0++;
            }
        worst = fmax(worst, fmax(fabs(mean[c] - s / cnt), fabs(std[c] - sqrt(q / cnt - (s / cnt) * (s / cnt)))));
        worst3 = fmax(worst3, fmax(fabs(m3[c] - s0 / c0), fabs(s3[c] - sqrt(q0 / c0 - (s0 / c0) * (s0 / c0)))));
    }
    CHECK(T, worst < 1e-6 && worst3 < 1e-6);
    for (int i = 0; i < N; i++) free(img[i]);
}

int main(void) {
    tctx T;
    memset(&T, 0, sizeof T);
    snprintf(T.dir, sizeof T.dir, "/tmp/rn_aug_test.XXXXXX");
    char jobs[512];
    if (!mkdtemp(T.dir) || !(T.jobs = fopen(scratch(&T, "jobs.txt", jobs, sizeof jobs), "w"))) {
        perror("scratch directory");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    char logp[512];
    scratch(&T, "ref.log", logp, sizeof logp);
    test_flip(&T);
    test_pad_crop(&T);
    test_unscaled_crop(&T);
    test_eval_vs_pil(&T);
    test_antialias(&T);
    test_rrc(&T);
    test_rotate90(&T);
    test_affine_warp(&T);
    test_stats(&T);
    test_lighting(&T);
    test_erase(&T);
    test_determinism_presets(&T);
    run_reference(&T);
    test_loader_memory(&T);
    test_loader_files(&T);
    for (int i = 0; i < T.nfiles; i++) {
        unlink(T.files[i]);
        free(T.files[i]);
    }
    rmdir(T.dir);
    printf("%d passed, %d failed\n", T.pass, T.fail);
    return T.fail ? 1 : 0;
}
