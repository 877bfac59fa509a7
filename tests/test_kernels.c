/*
** Kernel tests, standalone: links with every file in src/kernels/, -lm, -fopenmp.
**
**   a) fast kernels (conv.c, batchnorm.c) against their rn_ref_* twins on
**      odd shapes, with the output gradients pre-filled with random values
**      so that the accumulate (+=) semantics are checked too;
**   b) every reference backward against central finite differences of a
**      double-precision copy of its forward, on L = sum(y * r) for a fixed
**      random r (so dL/dy = r is what the backward is fed);
**   c) determinism: the fast conv backward (and BN) run twice gives
**      bit-identical results;
**   d) the fused kernels (BN+ReLU forward, ReLU+BN backward, add+ReLU,
**      in-place masks, BN folded into conv, max pooling) against the
**      unfused reference composition.
**
** Prints one line per check and, last, "N passed, M failed"; the exit
** status is non-zero when anything failed.
**
** Error measure everywhere: max|a - b| / (max|b| + 1e-6), b the trusted
** side (reference kernel or finite difference).
*/
#include "kernels/kernels.h"
#include "kernels/cpu.h"
#include "kernels/winograd.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fast kernel vs reference kernel (float vs float, different summation
** orders; both are exact up to float rounding). */
#define TOL_FAST 1e-5
/* Float reference backward vs central differences of the double forward.
** The double forward makes the difference quotient accurate to ~1e-10, so
** what is left is the float rounding of the backward itself (~1e-7). */
#define TOL_FD 1e-5
/* Step of the central differences (inputs are O(1); the layers are either
** piecewise linear, with kinks kept further than this from every sample, or
** smooth, where the O(h^2) truncation is ~1e-8). */
#define FD_STEP 1e-4

/* ---- test plumbing ---------------------------------------------------- */

/* Pass/fail counters of the whole run. */
typedef struct {
    int passed, failed;
} tally;

/* Records one check and prints its line: status, name, error and tolerance. */
static void report(tally *t, double err, double tol, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int ok = err < tol; /* false for NaN */
    if (ok)
        t->passed++;
    else
        t->failed++;
    printf("%s %-72s err=%.2e (tol %.0e)\n", ok ? "ok  " : "FAIL", name, err, tol);
}

/* Records a yes/no check (used for bit-identity). */
static void report_bool(tally *t, int ok, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (ok)
        t->passed++;
    else
        t->failed++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
}

/* Deterministic generator (splitmix64) so every run tests the same data. */
typedef struct {
    uint64_t s;
} rng;

/* Next 64 random bits. */
static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform float in [lo, hi). */
static float urand(rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)((rng_next(r) >> 40) * (1.0 / 16777216.0));
}

/* Fills p[0..n) with uniform values in [lo, hi). */
static void fill(rng *r, float *p, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = urand(r, lo, hi);
}

/* Allocates n floats (at least one) or exits: a test cannot go on without memory. */
static float *falloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Allocates n zeroed floats or exits. */
static float *fzero(size_t n) {
    float *p = falloc(n);
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

/* Allocates n doubles (at least one) or exits. */
static double *dalloc(size_t n) {
    double *p = malloc((n ? n : 1) * sizeof(double));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Returns a fresh copy of p[0..n). */
static float *fdup(const float *p, size_t n) {
    float *q = falloc(n);
    memcpy(q, p, n * sizeof(float));
    return q;
}

/* Returns a double copy of p[0..n). */
static double *to_double(const float *p, size_t n) {
    double *q = dalloc(n);
    for (size_t i = 0; i < n; i++) q[i] = p[i];
    return q;
}

/* max|a-b| / (max|b| + 1e-6); infinite when a holds a NaN or infinity. */
static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!isfinite(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb + 1e-6);
}

/* Same measure with a double-precision trusted side. */
static double rel_err_d(const float *a, const double *b, size_t n) {
    double md = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!isfinite(d)) return INFINITY;
        if (d > md) md = d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / (mb + 1e-6);
}

/* Shape of a convolution or pooling window given input size and window. */
static rn_conv_shape make_shape(int n, int h, int w, int ci, int co, int k, int stride, int pad) {
    rn_conv_shape s = {n, h, w, ci, rn_out_size(h, k, stride, pad), rn_out_size(w, k, stride, pad), co, k, stride, pad, 0, 0};
    return s;
}

/* ---- a) fast kernels against the reference ---------------------------- */

/* Conv forward (with and without bias) and backward (dx, dw, db alone and
** all together) of the fast kernels against the reference on one shape. */
static void test_conv_fast(tally *t, rng *r, int n, int h, int w, int ci, int co, int k, int stride, int pad) {
    rn_conv_shape s = make_shape(n, h, w, ci, co, k, stride, pad);
    char tag[128];
    snprintf(tag, sizeof tag, "n=%d %dx%d ci=%d co=%d k=%d s=%d p=%d", n, h, w, ci, co, k, stride, pad);
    size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * s.oh * s.ow * co, nw = (size_t)k * k * ci * co;
    float *x = falloc(nx), *wt = falloc(nw), *b = falloc(co), *dy = falloc(ny);
    fill(r, x, nx, -1, 1);
    fill(r, wt, nw, -1, 1);
    fill(r, b, co, -1, 1);
    fill(r, dy, ny, -1, 1);

    float *yr = falloc(ny), *yf = falloc(ny);
    for (int bias = 1; bias >= 0; bias--) {
        rn_ref_conv_forward(&s, x, wt, bias ? b : NULL, yr);
        for (size_t i = 0; i < ny; i++) yf[i] = NAN; /* must be fully overwritten */
        rn_conv_forward(&s, x, wt, bias ? b : NULL, yf);
        report(t, rel_err(yf, yr, ny), TOL_FAST, "conv fast fwd %s %s", tag, bias ? "bias" : "no-bias");
    }

    /* Pre-filled gradients: both sides must add to them. */
    float *dx0 = falloc(nx), *dw0 = falloc(nw), *db0 = falloc(co);
    fill(r, dx0, nx, -1, 1);
    fill(r, dw0, nw, -1, 1);
    fill(r, db0, co, -1, 1);
    float *dxr = fdup(dx0, nx), *dwr = fdup(dw0, nw), *dbr = fdup(db0, co);
    rn_ref_conv_backward(&s, x, wt, dy, dxr, dwr, dbr);

    float *ws = falloc(rn_conv_workspace(&s, omp_get_max_threads()));
    static const char *const what[8] = {"", "dx", "dw", "", "db", "", "", "dx+dw+db"};
    static const int masks[4] = {1, 2, 4, 7};
    for (int mi = 0; mi < 4; mi++) {
        int m = masks[mi];
        float *dxf = fdup(dx0, nx), *dwf = fdup(dw0, nw), *dbf = fdup(db0, co);
        rn_conv_backward(&s, x, wt, dy, (m & 1) ? dxf : NULL, (m & 2) ? dwf : NULL, (m & 4) ? dbf : NULL, ws);
        double e = 0.0; /* rel_err is never NaN, so fmax keeps failures */
        if (m & 1) e = fmax(e, rel_err(dxf, dxr, nx));
        if (m & 2) e = fmax(e, rel_err(dwf, dwr, nw));
        if (m & 4) e = fmax(e, rel_err(dbf, dbr, co));
        /* Skipped outputs must be left untouched. */
        if (!(m & 1) && memcmp(dxf, dx0, nx * sizeof(float))) e = INFINITY;
        if (!(m & 2) && memcmp(dwf, dw0, nw * sizeof(float))) e = INFINITY;
        if (!(m & 4) && memcmp(dbf, db0, co * sizeof(float))) e = INFINITY;
        report(t, e, TOL_FAST, "conv fast bwd %-8s %s", what[m], tag);
        free(dxf);
        free(dwf);
        free(dbf);
    }
    /* RN_FUSE_SET: dx is written, not added to, whatever it held before
    ** (NaN here), including the pixels that no tap reaches (1x1, stride 2). */
    float *dxz = falloc(nx), *dxs = falloc(nx);
    for (size_t i = 0; i < nx; i++) dxz[i] = 0.0f, dxs[i] = NAN;
    rn_ref_conv_backward(&s, x, wt, dy, dxz, NULL, NULL);
    rn_conv_backward_ex(&s, x, wt, dy, dxs, NULL, NULL, ws, RN_FUSE_SET);
    report(t, rel_err(dxs, dxz, nx), TOL_FAST, "conv fast bwd dx set  %s", tag);
    free(dxz), free(dxs);
    free(x), free(wt), free(b), free(dy), free(yr), free(yf);
    free(dx0), free(dw0), free(db0), free(dxr), free(dwr), free(dbr), free(ws);
}

/* Fast conv forward and backward at several thread counts (including more
** threads than rows of work) against the reference. */
static void test_conv_threads(tally *t, rng *r) {
    rn_conv_shape s = make_shape(1, 3, 5, 17, 5, 3, 2, 1); /* 2 output rows */
    size_t nx = (size_t)s.n * s.h * s.w * s.ci, ny = (size_t)s.n * s.oh * s.ow * s.co;
    size_t nw = (size_t)s.k * s.k * s.ci * s.co;
    float *x = falloc(nx), *wt = falloc(nw), *dy = falloc(ny);
    fill(r, x, nx, -1, 1);
    fill(r, wt, nw, -1, 1);
    fill(r, dy, ny, -1, 1);
    float *dxr = falloc(nx), *dwr = falloc(nw), *dbr = falloc(s.co), *yr = falloc(ny);
    memset(dxr, 0, nx * sizeof(float));
    memset(dwr, 0, nw * sizeof(float));
    memset(dbr, 0, s.co * sizeof(float));
    rn_ref_conv_forward(&s, x, wt, NULL, yr);
    rn_ref_conv_backward(&s, x, wt, dy, dxr, dwr, dbr);
    int saved = omp_get_max_threads();
    static const int counts[4] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        omp_set_num_threads(counts[i]);
        float *ws = falloc(rn_conv_workspace(&s, counts[i]));
        float *yf = falloc(ny), *dxf = falloc(nx), *dwf = falloc(nw), *dbf = falloc(s.co);
        memset(dxf, 0, nx * sizeof(float));
        memset(dwf, 0, nw * sizeof(float));
        memset(dbf, 0, s.co * sizeof(float));
        rn_conv_forward(&s, x, wt, NULL, yf);
        rn_conv_backward(&s, x, wt, dy, dxf, dwf, dbf, ws);
        double e = rel_err(yf, yr, ny);
        e = fmax(e, rel_err(dxf, dxr, nx));
        e = fmax(e, rel_err(dwf, dwr, nw));
        e = fmax(e, rel_err(dbf, dbr, s.co));
        report(t, e, TOL_FAST, "conv fast fwd+bwd with %d threads (n=1 3x5 ci=17 co=5 k=3 s=2 p=1)", counts[i]);
        free(ws), free(yf), free(dxf), free(dwf), free(dbf);
    }
    omp_set_num_threads(saved);
    free(x), free(wt), free(dy), free(dxr), free(dwr), free(dbr), free(yr);
}

/* Fast conv at thread counts 1, 2, 3, 5 on one shape: within TOL_FAST of
** the reference, forward and dx bit-identical for every count (each output
** is computed by a fixed sequence whatever the thread), and dw too when it
** is large enough for its rows to be split between the threads instead of
** the pixels (more than RN_CONV_SMALL_DW weights, kernels.h). */
static void test_conv_thread_counts(tally *t, rng *r, int n, int h, int w, int ci, int co, int k, int stride, int pad) {
    rn_conv_shape s = make_shape(n, h, w, ci, co, k, stride, pad);
    size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * s.oh * s.ow * co, nw = (size_t)k * k * ci * co;
    float *x = falloc(nx), *wt = falloc(nw), *dy = falloc(ny), *yr = falloc(ny);
    float *dxr = fzero(nx), *dwr = fzero(nw), *dbr = fzero(co);
    fill(r, x, nx, -1, 1);
    fill(r, wt, nw, -1, 1);
    fill(r, dy, ny, -1, 1);
    rn_ref_conv_forward(&s, x, wt, NULL, yr);
    rn_ref_conv_backward(&s, x, wt, dy, dxr, dwr, dbr);
    int saved = omp_get_max_threads(), same = 1, same_dw = 1;
    float *y1 = NULL, *dx1 = NULL, *dw1 = NULL;
    static const int counts[4] = {1, 2, 3, 5};
    double e = 0.0;
    for (int i = 0; i < 4; i++) {
        omp_set_num_threads(counts[i]);
        float *ws = falloc(rn_conv_workspace(&s, counts[i]));
        float *yf = falloc(ny), *dxf = fzero(nx), *dwf = fzero(nw), *dbf = fzero(co);
        rn_conv_forward_ws(&s, x, wt, NULL, yf, ws);
        rn_conv_backward(&s, x, wt, dy, dxf, dwf, dbf, ws);
        e = fmax(e, fmax(fmax(rel_err(yf, yr, ny), rel_err(dxf, dxr, nx)), fmax(rel_err(dwf, dwr, nw), rel_err(dbf, dbr, co))));
        if (i == 0) {
            y1 = yf, dx1 = dxf, dw1 = dwf;
        } else {
            same &= !memcmp(yf, y1, ny * sizeof(float)) && !memcmp(dxf, dx1, nx * sizeof(float));
            same_dw &= !memcmp(dwf, dw1, nw * sizeof(float));
            free(yf), free(dxf), free(dwf);
        }
        free(ws), free(dbf);
    }
    omp_set_num_threads(saved);
    char tag[128];
    snprintf(tag, sizeof tag, "n=%d %dx%d ci=%d co=%d k=%d s=%d p=%d", n, h, w, ci, co, k, stride, pad);
    report(t, e, TOL_FAST, "conv fast at 1,2,3,5 threads vs reference %s", tag);
    report_bool(t, same, "conv fast fwd y and bwd dx bit-identical at 1,2,3,5 threads %s", tag);
    if (nw > RN_CONV_SMALL_DW)
        report_bool(t, same_dw, "conv fast bwd dw (large) bit-identical at 1,2,3,5 threads %s", tag);
    free(x), free(wt), free(dy), free(yr), free(dxr), free(dwr), free(dbr), free(y1), free(dx1), free(dw1);
}

/* rn_conv_forward (own scratch) and rn_conv_forward_ws give the same bits. */
static void test_conv_forward_ws(tally *t, rng *r) {
    rn_conv_shape s = make_shape(2, 9, 7, 5, 19, 3, 2, 1);
    size_t nx = (size_t)s.n * s.h * s.w * s.ci, ny = (size_t)s.n * s.oh * s.ow * s.co, nw = (size_t)9 * s.ci * s.co;
    float *x = falloc(nx), *wt = falloc(nw), *b = falloc(s.co), *y0 = falloc(ny), *y1 = falloc(ny);
    float *ws = falloc(rn_conv_workspace(&s, omp_get_max_threads()));
    fill(r, x, nx, -1, 1);
    fill(r, wt, nw, -1, 1);
    fill(r, b, s.co, -1, 1);
    rn_conv_forward(&s, x, wt, b, y0);
    rn_conv_forward_ws(&s, x, wt, b, y1, ws);
    report_bool(t, !memcmp(y0, y1, ny * sizeof(float)), "conv fast forward and forward_ws bit-identical");
    free(x), free(wt), free(b), free(y0), free(y1), free(ws);
}

/* A copy of p with every value rounded to bf16 (kept as float). */
static float *bf16_round(const float *p, size_t n) {
    float *q = falloc(n);
    for (size_t i = 0; i < n; i++) q[i] = rn_bf16_to_f32(rn_bf16_from_f32(p[i]));
    return q;
}

/* p's values rounded to bf16, as bf16 (uint16_t): the bf16 tensors the
** kernels take (bf16_round holds the same values widened). */
static uint16_t *bf16_bits(const float *p, size_t n) {
    uint16_t *q = malloc((n ? n : 1) * sizeof(uint16_t));
    if (!q) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++) q[i] = rn_bf16_from_f32(p[i]);
    return q;
}

/* The backward of bf16 shape s given dy in bf16 (RN_BF16_GRAD, uint16_t)
** equals, bit for bit, the direct backward (no Winograd) given those
** values widened to fp32 (dx, dw, db); and where rn_conv_takes_bf16_grad,
** the backward given the unrounded dy (the passes round it the same way):
** what the planner's bf16 gradients rely on. Elsewhere (Co odd: an fp32
** backward-data; Winograd, which gives way) the widened form is the
** definition. */
static void test_conv_bf16_grad(tally *t, const rn_conv_shape *s, const float *x, const float *wt, const float *dy,
                                const char *tag) {
    const size_t nx = (size_t)s->n * s->h * s->w * s->ci, ny = (size_t)s->n * s->oh * s->ow * s->co;
    const size_t nw = (size_t)s->k * s->k * s->ci * s->co, all = nx + nw + s->co;
    uint16_t *dyh = bf16_bits(dy, ny);
    float *dyw = bf16_round(dy, ny), *g[3], *ws = falloc(rn_conv_workspace(s, 0));
    const void *src[3] = {dyh, dyw, dy};
    rn_conv_shape direct = *s;
    direct.winograd = 0;
    for (int k = 0; k < 3; k++) {
        g[k] = falloc(all);
        memset(g[k] + nx, 0, (nw + s->co) * sizeof(float));
        rn_conv_backward_ex(k == 1 ? &direct : s, x, wt, src[k], g[k], g[k] + nx, g[k] + nx + nw, ws,
                            RN_FUSE_SET | (k == 0 ? RN_BF16_GRAD : 0));
    }
    const int takes = rn_conv_takes_bf16_grad(s);
    const int widened = !memcmp(g[0], g[1], all * sizeof(float)), exact = !memcmp(g[1], g[2], (nx + nw) * 4);
    report_bool(t, widened && (!takes || exact), "conv bf16 backward from a bf16 dy equals it from fp32%s %s",
                takes ? " (exact)" : " (widened)", tag);
    /* an fp32 shape given a bf16 dy: the values widened into a copy */
    rn_conv_shape fp = direct;
    fp.bf16 = 0;
    for (int k = 0; k < 2; k++) {
        memset(g[k] + nx, 0, (nw + s->co) * sizeof(float));
        rn_conv_backward_ex(&fp, x, wt, src[k], g[k], g[k] + nx, g[k] + nx + nw, ws,
                            RN_FUSE_SET | (k == 0 ? RN_BF16_GRAD : 0));
    }
    report_bool(t, !memcmp(g[0], g[1], all * sizeof(float)), "conv fp32 backward from a bf16 dy widens it %s", tag);
    free(dyh), free(dyw), free(ws), free(g[0]), free(g[1]), free(g[2]);
}

/* The forward of shape s writing y in bf16 (RN_BF16_ACT) equals the fp32
** forward's y rounded value by value (rn_bf16_from_f32), bit for bit, at 1
** and 2 threads, and writes nothing past y's end: the same sums, computed
** into a tile of the thread's scratch instead of y, then rounded. */
static void test_conv_bf16_act(tally *t, const rn_conv_shape *s, const float *x, const float *wt, const float *b,
                               const char *tag) {
    const size_t ny = (size_t)s->n * s->oh * s->ow * s->co;
    float *y = falloc(ny), *ws = falloc(rn_conv_workspace(s, 2));
    uint16_t *h = malloc((ny + 16) * sizeof(uint16_t));
    int same = h != NULL;
    rn_conv_forward_ws(s, x, wt, b, y, ws);
    const int saved = omp_get_max_threads();
    for (int ti = 0; same && ti < 2; ti++) {
        omp_set_num_threads(ti + 1);
        for (int k = 0; k < 16; k++) h[ny + k] = 0x5555;
        rn_conv_forward_ex(s, x, wt, b, h, ws, RN_BF16_ACT);
        for (size_t k = 0; k < ny; k++) same &= h[k] == rn_bf16_from_f32(y[k]);
        for (int k = 0; k < 16; k++) same &= h[ny + k] == 0x5555;
    }
    omp_set_num_threads(saved);
    report_bool(t, same, "conv forward into bf16 rounds the fp32 y, bit for bit, at 1 and 2 threads %s", tag);
    free(y), free(ws), free(h);
}

/* Where the forward of bf16 shape s packs its weights (rn_conv_forward_packs),
** rn_conv_pack_bf16 writes exactly rn_conv_packed_values(s) values (a
** guard after them stays intact) and rn_conv_forward_packed from them
** gives the per-call forward's bits: what bf16 inference relies on. */
static void test_conv_packed(tally *t, const rn_conv_shape *s, const float *x, const float *wt, const float *b,
                             const char *tag) {
    if (!rn_conv_forward_packs(s)) return;
    const size_t ny = (size_t)s->n * s->oh * s->ow * s->co, nv = rn_conv_packed_values(s);
    float *y = falloc(ny), *yp = falloc(ny), *ws = falloc(rn_conv_workspace(s, 0));
    uint16_t *wb = malloc((nv + 16) * sizeof(uint16_t));
    int ok = wb != NULL;
    if (ok) {
        for (int k = 0; k < 16; k++) wb[nv + k] = 0x5555;
        rn_conv_pack_bf16(s, wt, wb);
        rn_conv_forward_ws(s, x, wt, b, y, ws);
        rn_conv_forward_packed(s, x, wb, b, yp, ws);
        ok = !memcmp(y, yp, ny * sizeof(float));
        for (int k = 0; k < 16; k++) ok &= wb[nv + k] == 0x5555;
    }
    report_bool(t, ok, "conv bf16 forward from weights packed once equals it per call, packing within its size %s",
                tag);
    free(y), free(yp), free(ws), free(wb);
}

/* Shape s's backward writing dx in bf16 (RN_BF16_DX) equals its fp32
** backward's dx rounded value by value, bit for bit, with the same dw, at
** 1 and 2 threads, writing nothing past dx's end: written (RN_FUSE_SET)
** and added to a pre-filled bf16 dx (its values widened into the fp32
** run's dx). Where rn_conv_gives_bf16_dx refuses (stride 2) or dx is
** added to, the rounding runs on an fp32 copy, with the same results. */
static void test_conv_bf16_dx(tally *t, const rn_conv_shape *s, const float *x, const float *wt, const float *dy,
                              const float *pre, const char *tag) {
    const size_t nx = (size_t)s->n * s->h * s->w * s->ci, nw = (size_t)s->k * s->k * s->ci * s->co;
    float *ws = falloc(rn_conv_workspace(s, 2)), *d = falloc(nx), *dw = falloc(nw), *dw2 = falloc(nw);
    uint16_t *h0 = bf16_bits(pre, nx), *h = malloc((nx + 16) * sizeof(uint16_t));
    int same = h != NULL;
    const int saved = omp_get_max_threads();
    for (int set = 0; same && set < 2; set++)
        for (int ti = 0; same && ti < 2; ti++) {
            omp_set_num_threads(ti + 1); /* a small dw's bits depend on the thread count */
            const int fl = set ? RN_FUSE_SET : 0;
            for (size_t k = 0; k < nx; k++) d[k] = rn_bf16_to_f32(h0[k]);
            memset(dw, 0, nw * sizeof(float)), memset(dw2, 0, nw * sizeof(float));
            rn_conv_backward_ex(s, x, wt, dy, d, dw, NULL, ws, fl);
            memcpy(h, h0, nx * sizeof(uint16_t));
            for (int k = 0; k < 16; k++) h[nx + k] = 0x5555;
            rn_conv_backward_ex(s, x, wt, dy, h, dw2, NULL, ws, fl | RN_BF16_DX);
            for (size_t k = 0; k < nx; k++) same &= h[k] == rn_bf16_from_f32(d[k]);
            for (int k = 0; k < 16; k++) same &= h[nx + k] == 0x5555;
            same &= !memcmp(dw, dw2, nw * sizeof(float));
        }
    omp_set_num_threads(saved);
    report_bool(t, same, "conv backward into a bf16 dx (set, added) rounds the fp32 dx, bit for bit, at 1 and 2 "
                "threads%s %s", rn_conv_gives_bf16_dx(s) ? "" : " (refused: rounded copy)", tag);
    free(ws), free(d), free(dw), free(dw2), free(h0), free(h);
}

/* Shape s's forward and weight gradient reading x in bf16 (RN_BF16_X,
** uint16_t) equal, bit for bit, the direct passes (no Winograd) reading
** those values widened to fp32, and its backward-data (which does not read
** x, and may run by Winograd) the same shape's from fp32; where
** rn_conv_takes_bf16_x, all of it equals the passes reading the unrounded
** x (they round it the same way): what the planner's bf16 BN outputs rely
** on. An fp32 shape given a bf16 x widens it. */
static void test_conv_bf16_x(tally *t, const rn_conv_shape *s, const float *x, const float *wt, const float *b,
                             const float *dy, const char *tag) {
    const size_t nx = (size_t)s->n * s->h * s->w * s->ci, ny = (size_t)s->n * s->oh * s->ow * s->co;
    const size_t nw = (size_t)s->k * s->k * s->ci * s->co, all = ny + nx + nw + s->co;
    uint16_t *xh = bf16_bits(x, nx);
    float *xw = bf16_round(x, nx), *o[3];
    const void *src[3] = {xh, xw, x};
    rn_conv_shape direct = *s, fp = *s;
    direct.winograd = 0, fp.bf16 = fp.winograd = 0;
    float *ws = falloc(rn_conv_workspace(s, 0));
    int exact = 1, widened = 1;
    for (int pass = 0; pass < 2; pass++) { /* the bf16 shape, then fp32 */
        for (int k = 0; k < (pass ? 2 : 3); k++) {
            const rn_conv_shape *sh = pass ? &fp : k == 1 ? &direct : s;
            const int fl = k == 0 ? RN_BF16_X : 0;
            o[k] = falloc(all);
            memset(o[k] + ny + nx, 0, (nw + s->co) * sizeof(float));
            rn_conv_forward_ex(sh, src[k], wt, b, o[k], ws, fl);
            rn_conv_backward_ex(sh, src[k], wt, dy, o[k] + ny, o[k] + ny + nx, o[k] + ny + nx + nw, ws,
                                RN_FUSE_SET | fl);
        }
        const float *dxref = o[pass ? 1 : 2] + ny; /* the same shape's backward-data */
        widened &= !memcmp(o[0], o[1], ny * sizeof(float)) && !memcmp(o[0] + ny, dxref, nx * sizeof(float)) &&
                   !memcmp(o[0] + ny + nx, o[1] + ny + nx, (nw + s->co) * sizeof(float));
        if (!pass) exact = !memcmp(o[0], o[2], all * sizeof(float));
        for (int k = 0; k < (pass ? 2 : 3); k++) free(o[k]);
    }
    const int takes = rn_conv_takes_bf16_x(s);
    report_bool(t, widened && (!takes || exact), "conv fwd+bwd from a bf16 x equals it from fp32%s, fp32 shape too %s",
                takes ? " (exact)" : " (widened)", tag);
    free(xh), free(xw), free(ws);
}

/* The vector conversions (vcvtneps2bf16, cpu.h) against the scalar
** rn_bf16_from_f32 that the tests' references use, bit for bit, on the
** special cases (ties to even, denormals, NaN, infinities, overflow) and
** random values, at lengths that leave masked tails; and the scalar one
** against hand-worked values. */
static void test_bf16_convert(tally *t, rng *r) {
    static const uint32_t special[] = {0x3F808000u, 0x3F818000u, 0x3F80FFFFu, 0x3F807FFFu, 0x00000001u, 0x807FFFFFu,
                                       0x00800000u, 0x7F800001u, 0xFFC00000u, 0x7F800000u, 0xFF800000u, 0x7F7FFFFFu,
                                       0x80000000u, 0x00000000u, 0x3F800000u, 0xBF800001u};
    static const uint16_t want[] = {0x3F80, 0x3F82, 0x3F81, 0x3F80, 0x0000, 0x8000, 0x0080, 0x7FC0,
                                    0xFFC0, 0x7F80, 0xFF80, 0x7F80, 0x8000, 0x0000, 0x3F80, 0xBF80};
    const int ns = (int)(sizeof special / sizeof special[0]), n = 16 * 5 + 7;
    float v[16 * 5 + 7], w2[16 * 5 + 7];
    int ok = 1;
    for (int i = 0; i < n; i++) {
        uint32_t u = i < ns ? special[i] : (uint32_t)rng_next(r);
        memcpy(&v[i], &u, 4);
        if (i < ns) ok &= rn_bf16_from_f32(v[i]) == want[i];
    }
    report_bool(t, ok, "bf16 scalar rounding: ties to even, denormals to zero, NaN quiet, overflow to inf");
    if (!rn_cpu_has_bf16()) return;
    fill(r, w2, (size_t)n, -1, 1);
    uint16_t a[16 * 5 + 7], a2[16 * 5 + 7], b[2 * (16 * 5 + 7)], b16[2 * (16 * 5 + 7) + 2];
    int same = 1, same16 = 1;
    for (int len = 1; len <= n; len += 7) {
        rn_bf16_convert(a, v, len);
        rn_bf16_convert(a2, w2, len);
        rn_bf16_interleave(b, v, len % 2 ? w2 : NULL, len);
        b16[2 * len] = b16[2 * len + 1] = 0x5555; /* must stay: the masked tail writes nothing past 2*len */
        rn_bf16_interleave16(b16, a, len % 2 ? a2 : NULL, len);
        for (int i = 0; i < len; i++)
            same &= a[i] == rn_bf16_from_f32(v[i]) && b[2 * i] == a[i] &&
                    b[2 * i + 1] == (len % 2 ? rn_bf16_from_f32(w2[i]) : 0);
        same16 &= !memcmp(b16, b, 4 * (size_t)len) && b16[2 * len] == 0x5555 && b16[2 * len + 1] == 0x5555;
    }
    report_bool(t, same, "bf16 vector conversion and interleave equal the scalar rounding bit for bit");
    report_bool(t, same16, "bf16 interleave of bf16 rows equals the interleave of their fp32 rows");
}

/* bf16 fast conv (rn_conv_shape.bf16 set) against the reference run on the
** operands rounded to bf16 the way kernels.h says the fast kernels round
** them: x and w in the forward when Ci is even, dy and w in backward-data
** when Co is even, x and dy always in backward-weights; db from fp32 dy. A
** product of two bf16 values is exact in fp32, so only the order of the
** fp32 sums differs from the reference: TOL_FAST. The same outputs against
** the fp32 reference must differ (by more than 1e-6: the bf16 products
** did run) but stay within bf16's precision (2e-2). Gradients are
** pre-filled, and thread counts 1 and 2 must give the same bits (for dw
** only when it is large: a small dw is summed in per-thread partials). Without
** AVX512_BF16 (or with RN_CPU lowered) the flag must change nothing: the
** results equal the fp32 fast path's bit for bit. */
static void test_conv_bf16(tally *t, rng *r, int n, int h, int w, int ci, int co, int k, int stride, int pad) {
    rn_conv_shape s = make_shape(n, h, w, ci, co, k, stride, pad), sb = s;
    sb.bf16 = 1;
    char tag[128];
    snprintf(tag, sizeof tag, "n=%d %dx%d ci=%d co=%d k=%d s=%d p=%d", n, h, w, ci, co, k, stride, pad);
    size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * s.oh * s.ow * co, nw = (size_t)k * k * ci * co;
    float *x = falloc(nx), *wt = falloc(nw), *b = falloc(co), *dy = falloc(ny), *g0 = falloc(nx + nw + co);
    fill(r, x, nx, -1, 1);
    fill(r, wt, nw, -1, 1);
    fill(r, b, co, -1, 1);
    fill(r, dy, ny, -1, 1);
    fill(r, g0, nx + nw + co, -1, 1);
    int saved = omp_get_max_threads();
    float *out[2]; /* per thread count: y, dx, dw, db back to back */
    for (int ti = 0; ti < 2; ti++) {
        omp_set_num_threads(ti + 1);
        float *o = out[ti] = falloc(ny + nx + nw + co), *ws = falloc(rn_conv_workspace(&sb, ti + 1));
        memcpy(o + ny, g0, (nx + nw + co) * sizeof(float));
        rn_conv_forward_ws(&sb, x, wt, b, o, ws);
        rn_conv_backward(&sb, x, wt, dy, o + ny, o + ny + nx, o + ny + nx + nw, ws);
        free(ws);
    }
    omp_set_num_threads(saved);
    const float *y = out[0], *dx = y + ny, *dw = dx + nx, *db = dw + nw;
    /* y, dx (and a dw large enough to be split by rows: conv.c) */
    const size_t same = nw > RN_CONV_SMALL_DW ? ny + nx + nw : ny + nx;
    report_bool(t, !memcmp(out[0], out[1], same * sizeof(float)), "conv bf16 same bits at 1 and 2 threads (y dx%s) %s",
                nw > RN_CONV_SMALL_DW ? " dw" : "", tag);

    /* The trusted sides: reference on rounded operands, and in fp32. */
    float *xb = bf16_round(x, nx), *wb = bf16_round(wt, nw), *dyb = bf16_round(dy, ny);
    const int on = rn_cpu_has_bf16(), dx_bf = on && co % 2 == 0;
    const int fwd_bf = on && (ci % 2 == 0 || rn_conv_forward_packs(&sb)); /* odd Ci: bf16 in row mode */
    float *yr = falloc(ny), *yf = falloc(ny), *gr = fdup(g0, nx + nw + co), *gf = fdup(g0, nx + nw + co);
    rn_ref_conv_forward(&s, fwd_bf ? xb : x, fwd_bf ? wb : wt, b, yr);
    rn_ref_conv_backward(&s, x, dx_bf ? wb : wt, dx_bf ? dyb : dy, gr, NULL, NULL);
    rn_ref_conv_backward(&s, on ? xb : x, wt, on ? dyb : dy, NULL, gr + nx, NULL);
    rn_ref_conv_backward(&s, x, wt, dy, NULL, NULL, gr + nx + nw);
    rn_ref_conv_forward(&s, x, wt, b, yf);
    rn_ref_conv_backward(&s, x, wt, dy, gf, gf + nx, gf + nx + nw);
    if (on) {
        double e = fmax(fmax(rel_err(y, yr, ny), rel_err(dx, gr, nx)), fmax(rel_err(dw, gr + nx, nw), rel_err(db, gr + nx + nw, co)));
        report(t, e, TOL_FAST, "conv bf16 fwd+bwd vs reference on bf16-rounded operands %s", tag);
        double ey = rel_err(y, yf, ny), edx = rel_err(dx, gf, nx), edw = rel_err(dw, gf + nx, nw);
        report(t, fmax(fmax(ey, edx), edw), 2e-2, "conv bf16 fwd+bwd within bf16 precision of fp32 %s", tag);
        report_bool(t, (!fwd_bf || ey > 1e-6) && (!dx_bf || edx > 1e-6) && edw > 1e-6,
                    "conv bf16 differs from fp32 where bf16 runs (y %.1e dx %.1e dw %.1e) %s", ey, edx, edw, tag);
    } else {
        float *f = falloc(ny + nx + nw + co), *ws = falloc(rn_conv_workspace(&s, 1));
        memcpy(f + ny, g0, (nx + nw + co) * sizeof(float));
        omp_set_num_threads(1); /* as out[0] was computed: a small dw depends on the thread count */
        rn_conv_forward_ws(&s, x, wt, b, f, ws);
        rn_conv_backward(&s, x, wt, dy, f + ny, f + ny + nx, f + ny + nx + nw, ws);
        omp_set_num_threads(saved);
        report_bool(t, !memcmp(f, y, (ny + nx + nw + co) * sizeof(float)),
                    "conv with bf16 asked but unavailable (%s kernels) equals fp32 %s", rn_cpu_dispatch()->name, tag);
        free(f), free(ws);
    }
    if (on) test_conv_bf16_grad(t, &sb, x, wt, dy, tag);
    test_conv_bf16_act(t, &sb, x, wt, b, tag);
    if (on) test_conv_bf16_dx(t, &sb, x, wt, dy, g0, tag);
    test_conv_packed(t, &sb, x, wt, b, tag);
    test_conv_bf16_x(t, &sb, x, wt, b, dy, tag);
    free(x), free(wt), free(b), free(dy), free(g0), free(out[0]), free(out[1]), free(xb), free(wb), free(dyb);
    free(yr), free(yf), free(gr), free(gf);
}

/* V = B^T d B of the 4x4 patch of tile (ty, tx) of sample b, every
** channel, computed in fp32 in the kernels' order and rounded to bf16
** (kept as float): v[e*c + k]. src: (N,H,W,C), zero outside. */
static void ref_patch(const float *src, int h, int w, int c, int pad, int b, int ty, int tx, float *v) {
    for (int k = 0; k < c; k++) {
        float d[4][4], r[4][4];
        for (int i = 0; i < 4; i++)
            for (int e = 0; e < 4; e++) {
                const int y = 2 * ty - pad + i, x = 2 * tx - pad + e;
                d[i][e] = y >= 0 && y < h && x >= 0 && x < w ? src[(((size_t)b * h + y) * w + x) * c + k] : 0;
            }
        for (int e = 0; e < 4; e++)
            r[0][e] = d[0][e] - d[2][e], r[1][e] = d[1][e] + d[2][e], r[2][e] = d[2][e] - d[1][e],
            r[3][e] = d[1][e] - d[3][e];
        for (int i = 0; i < 4; i++) {
            const float q[4] = {r[i][0] - r[i][2], r[i][1] + r[i][2], r[i][2] - r[i][1], r[i][1] - r[i][3]};
            for (int e = 0; e < 4; e++) v[(size_t)(4 * i + e) * c + k] = rn_bf16_to_f32(rn_bf16_from_f32(q[e]));
        }
    }
}

/* The reference Winograd F(2x2,3x3) (winograd.c's definition, written
** again as scalar code): V = B^T d B and U = G g G^T computed in fp32 in
** the order the kernels use, each rounded once to bf16, then the 16
** products summed over channels and A^T M A taken in double. g is
** (3,3,C,Co); dst is (N,OH,OW,Co) with OH = H + 2*pad - 2, written
** (acc = 0) or added to, plus bias. */
static void ref_winograd(const float *src, int n, int h, int w, int c, const float *g, int co, int pad,
                         const float *bias, int acc, float *dst) {
    const int oh = h + 2 * pad - 2, ow = w + 2 * pad - 2, th = (oh + 1) / 2, tw = (ow + 1) / 2;
    float *u = falloc((size_t)16 * c * co), *v = falloc((size_t)16 * c);
    for (int k = 0; k < c; k++)
        for (int j = 0; j < co; j++) {
            float t[4][3];
            for (int b = 0; b < 3; b++) {
                const float g0 = g[((size_t)b * c + k) * co + j], g1 = g[((size_t)(3 + b) * c + k) * co + j];
                const float g2 = g[((size_t)(6 + b) * c + k) * co + j], s02 = g0 + g2;
                t[0][b] = g0, t[1][b] = 0.5f * (s02 + g1), t[2][b] = 0.5f * (s02 - g1), t[3][b] = g2;
            }
            for (int i = 0; i < 4; i++) {
                const float s02 = t[i][0] + t[i][2], q[4] = {t[i][0], 0.5f * (s02 + t[i][1]), 0.5f * (s02 - t[i][1]),
                                                             t[i][2]};
                for (int e = 0; e < 4; e++)
                    u[((size_t)(4 * i + e) * c + k) * co + j] = rn_bf16_to_f32(rn_bf16_from_f32(q[e]));
            }
        }
    double *m = malloc(16 * sizeof(double));
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < th; ty++)
            for (int tx = 0; tx < tw; tx++) {
                ref_patch(src, h, w, c, pad, b, ty, tx, v);
                for (int j = 0; j < co; j++) {
                    for (int e = 0; e < 16; e++) {
                        double sum = 0;
                        for (int k = 0; k < c; k++) sum += (double)v[(size_t)e * c + k] * u[((size_t)e * c + k) * co + j];
                        m[e] = sum;
                    }
                    for (int i = 0; i < 2; i++)
                        for (int e = 0; e < 2; e++) {
                            const int y = 2 * ty + i, x = 2 * tx + e;
                            if (y >= oh || x >= ow) continue;
                            double out = bias ? bias[j] : 0;
                            for (int a = 0; a < 4; a++)
                                for (int q = 0; q < 4; q++) {
                                    const double at_ia = i == 0 ? (a < 3) : (a == 1 ? 1 : a == 0 ? 0 : -1);
                                    const double at_eq = e == 0 ? (q < 3) : (q == 1 ? 1 : q == 0 ? 0 : -1);
                                    out += at_ia * at_eq * m[4 * a + q];
                                }
                            float *p = dst + (((size_t)b * oh + y) * ow + x) * co + j;
                            *p = (float)(acc ? *p + out : out);
                        }
                }
            }
    free(u), free(v), free(m);
}

/* The reference Winograd weight gradient (winograd.c): dw += sum over
** tiles of G^T [ (A dY A^T) (.) (B^T d B) ] G, with V = B^T d B and
** A dY A^T computed in fp32 in the kernels' order and rounded once to bf16,
** the sums over tiles and G^T M G in double.
** x: (N,H,W,C)  dy: (N,OH,OW,Co)  dw: (3,3,C,Co) */
static void ref_winograd_dw(const float *x, int n, int h, int w, int c, const float *dy, int co, int pad, float *dw) {
    const int oh = h + 2 * pad - 2, ow = w + 2 * pad - 2, th = (oh + 1) / 2, tw = (ow + 1) / 2;
    double *m = calloc((size_t)16 * c * co, sizeof(double));
    float *v = falloc((size_t)16 * c), *g = falloc((size_t)16 * co);
    for (int b = 0; b < n; b++)
        for (int ty = 0; ty < th; ty++)
            for (int tx = 0; tx < tw; tx++) {
                ref_patch(x, h, w, c, pad, b, ty, tx, v);
                for (int j = 0; j < co; j++) {
                    float y[2][2], hh[2][4];
                    for (int i = 0; i < 2; i++)
                        for (int e = 0; e < 2; e++) {
                            const int oy = 2 * ty + i, ox = 2 * tx + e;
                            y[i][e] = oy < oh && ox < ow ? dy[(((size_t)b * oh + oy) * ow + ox) * co + j] : 0;
                        }
                    for (int i = 0; i < 2; i++)
                        hh[i][0] = y[i][0], hh[i][1] = y[i][0] + y[i][1], hh[i][2] = y[i][0] - y[i][1], hh[i][3] = 0 - y[i][1];
                    for (int e = 0; e < 4; e++) {
                        const float q[4] = {hh[0][e], hh[0][e] + hh[1][e], hh[0][e] - hh[1][e], 0 - hh[1][e]};
                        for (int i = 0; i < 4; i++) g[(size_t)(4 * i + e) * co + j] = rn_bf16_to_f32(rn_bf16_from_f32(q[i]));
                    }
                }
                for (int e = 0; e < 16; e++)
                    for (int k = 0; k < c; k++)
                        for (int j = 0; j < co; j++)
                            m[((size_t)e * c + k) * co + j] += (double)v[(size_t)e * c + k] * g[(size_t)e * co + j];
            }
    static const double gt[3][4] = {{1, 0.5, 0.5, 0}, {0, 0.5, -0.5, 0}, {0, 0.5, 0.5, 1}}; /* G^T */
    for (int k = 0; k < c; k++)
        for (int j = 0; j < co; j++)
            for (int a = 0; a < 3; a++)
                for (int bb = 0; bb < 3; bb++) {
                    double z = 0;
                    for (int p = 0; p < 4; p++)
                        for (int q = 0; q < 4; q++) z += gt[a][p] * m[((size_t)(4 * p + q) * c + k) * co + j] * gt[bb][q];
                    dw[((size_t)(3 * a + bb) * c + k) * co + j] += (float)z;
                }
    free(m), free(v), free(g);
}

/* Winograd bf16 convolutions (rn_conv_shape.winograd, winograd.c) of one
** 3x3 stride-1 shape: the forward (with bias) and backward-data, added to
** a pre-filled dx and written with RN_FUSE_SET, against ref_winograd
** (backward-data as the Winograd convolution of dy with the kernel turned
** 180 degrees and transposed, padding 2 - pad): only fp32 summation order
** differs, TOL_FAST. Against the fp32 reference the error must be inside
** bf16's precision (2e-2) and at most 4x the direct bf16 convolution's
** (winograd.c says 2-3x); 1 and 2 threads give the same bits. dw: where
** rn_wino_dw_applies, against ref_winograd_dw, else the direct bf16 one
** bit for bit. */
static void test_conv_winograd(tally *t, rng *r, int n, int h, int w, int ci, int co, int pad) {
    rn_conv_shape s = make_shape(n, h, w, ci, co, 3, 1, pad), sd = s, sw = s;
    sd.bf16 = sw.bf16 = 1, sw.winograd = 1;
    char tag[128];
    snprintf(tag, sizeof tag, "n=%d %dx%d ci=%d co=%d p=%d", n, h, w, ci, co, pad);
    if (!rn_cpu_has_bf16() || !rn_wino_applies(&sw, rn_cpu_dispatch())) {
        report_bool(t, !rn_cpu_has_bf16(), "winograd applies to %s", tag);
        return;
    }
    const size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * s.oh * s.ow * co, nw = (size_t)9 * ci * co;
    float *x = falloc(nx), *wt = falloc(nw), *b = falloc(co), *dy = falloc(ny), *dx0 = falloc(nx), *wf = falloc(nw);
    fill(r, x, nx, -1, 1), fill(r, wt, nw, -1, 1), fill(r, b, co, -1, 1), fill(r, dy, ny, -1, 1), fill(r, dx0, nx, -1, 1);
    float *y[2], *dxa[2], *dxs[2], *dw[2], *yd = falloc(ny), *dxd = falloc(nx), *dwd = falloc(nw);
    for (int ti = 0; ti < 2; ti++) {
        omp_set_num_threads(ti + 1);
        float *ws = falloc(rn_conv_workspace(&sw, ti + 1));
        y[ti] = falloc(ny), dxa[ti] = fdup(dx0, nx), dxs[ti] = falloc(nx), dw[ti] = falloc(nw);
        memset(dw[ti], 0, nw * sizeof(float));
        rn_conv_forward_ws(&sw, x, wt, b, y[ti], ws);
        rn_conv_backward_ex(&sw, x, wt, dy, dxa[ti], dw[ti], NULL, ws, 0);
        rn_conv_backward_ex(&sw, x, wt, dy, dxs[ti], NULL, NULL, ws, RN_FUSE_SET);
        free(ws);
    }
    float *ws = falloc(rn_conv_workspace(&sd, 2));
    memset(dxd, 0, nx * sizeof(float)), memset(dwd, 0, nw * sizeof(float));
    rn_conv_forward_ws(&sd, x, wt, b, yd, ws);
    rn_conv_backward_ex(&sd, x, wt, dy, dxd, dwd, NULL, ws, 0);
    report_bool(t, !memcmp(y[0], y[1], ny * 4) && !memcmp(dxa[0], dxa[1], nx * 4) && !memcmp(dxs[0], dxs[1], nx * 4),
                "winograd same bits at 1 and 2 threads (y, dx added, dx set) %s", tag);
    float *dwr = falloc(nw);
    memset(dwr, 0, nw * sizeof(float));
    if (rn_wino_dw_applies(&sw, rn_cpu_dispatch())) {
        ref_winograd_dw(x, n, h, w, ci, dy, co, pad, dwr);
        report(t, rel_err(dw[1], dwr, nw), TOL_FAST, "winograd dw vs the reference Winograd weight gradient %s", tag);
        report_bool(t, !memcmp(dw[0], dw[1], nw * 4), "winograd dw same bits at 1 and 2 threads %s", tag);
    } else {
        report_bool(t, !memcmp(dw[1], dwd, nw * 4), "winograd dw left to the direct bf16 kernels, bit for bit %s", tag);
    }

    /* the reference Winograd: forward, and backward-data with the turned kernel */
    float *yr = falloc(ny), *dxr = fdup(dx0, nx), *dxz = falloc(nx);
    ref_winograd(x, n, h, w, ci, wt, co, pad, b, 0, yr);
    for (int a = 0; a < 9; a++)
        for (int k = 0; k < co; k++)
            for (int j = 0; j < ci; j++) wf[((size_t)a * co + k) * ci + j] = wt[((size_t)(8 - a) * ci + j) * co + k];
    ref_winograd(dy, n, s.oh, s.ow, co, wf, ci, 2 - pad, NULL, 1, dxr);
    ref_winograd(dy, n, s.oh, s.ow, co, wf, ci, 2 - pad, NULL, 0, dxz);
    report(t, fmax(rel_err(y[1], yr, ny), fmax(rel_err(dxa[1], dxr, nx), rel_err(dxs[1], dxz, nx))), TOL_FAST,
           "winograd fwd, bwd-data added and set vs the reference Winograd %s", tag);

    /* against fp32: inside bf16's precision, within 4x the direct bf16 error */
    float *yf = falloc(ny), *dxf = falloc(nx);
    memset(dxf, 0, nx * sizeof(float));
    rn_ref_conv_forward(&s, x, wt, b, yf);
    float *dwf = falloc(nw);
    memset(dwf, 0, nw * sizeof(float));
    rn_ref_conv_backward(&s, x, wt, dy, dxf, dwf, NULL);
    const double ew = fmax(fmax(rel_err(y[1], yf, ny), rel_err(dxs[1], dxf, nx)), rel_err(dw[1], dwf, nw));
    const double ed = fmax(fmax(rel_err(yd, yf, ny), rel_err(dxd, dxf, nx)), rel_err(dwd, dwf, nw));
    report(t, ew, fmin(2e-2, 4 * ed), "winograd y, dx, dw vs fp32 within 4x direct bf16's %.1e %s", ed, tag);
    report_bool(t, !rn_conv_takes_bf16_grad(&sw), "winograd takes no bf16 dy as exact %s", tag);
    test_conv_bf16_grad(t, &sw, x, wt, dy, tag); /* a bf16 dy runs the direct passes */
    test_conv_bf16_act(t, &sw, x, wt, b, tag);    /* the output transform rounds as it stores */
    test_conv_bf16_dx(t, &sw, x, wt, dy, dx0, tag); /* so does backward-data's */
    test_conv_bf16_x(t, &sw, x, wt, b, dy, tag);  /* a bf16 x runs the direct passes */
    for (int ti = 0; ti < 2; ti++) free(y[ti]), free(dxa[ti]), free(dxs[ti]), free(dw[ti]);
    free(x), free(wt), free(b), free(dy), free(dx0), free(wf), free(yd), free(dxd), free(dwd), free(ws);
    free(yr), free(dxr), free(dxz), free(yf), free(dxf), free(dwr), free(dwf);
}

/* rn_wino_applies's limits: Winograd only where it pays (winograd.c). */
static void test_winograd_applies(tally *t) {
    const rn_dispatch *d = rn_cpu_dispatch();
    rn_conv_shape a = make_shape(2, 14, 14, 64, 64, 3, 1, 1);
    a.bf16 = a.winograd = 1;
    rn_conv_shape nowin = a, narrow = a, few = a, strided = make_shape(2, 14, 14, 64, 64, 3, 2, 1), fp = a;
    nowin.winograd = 0, narrow.ci = 32, few.n = 1, few.h = few.w = few.oh = few.ow = 8, fp.bf16 = 0;
    strided.bf16 = strided.winograd = 1;
    const int on = d->bf16;
    report_bool(t, rn_wino_applies(&a, d) == on && !rn_wino_applies(&nowin, d) && !rn_wino_applies(&narrow, d) &&
                       !rn_wino_applies(&few, d) && !rn_wino_applies(&strided, d) && !rn_wino_applies(&fp, d),
                "winograd applies to 3x3 stride-1 bf16 layers of >= 64 channels and >= 64 tiles only");
    rn_conv_shape many = make_shape(4, 32, 32, 64, 64, 3, 1, 1); /* 1024 tiles: 16 per input channel */
    many.bf16 = many.winograd = 1;
    report_bool(t, rn_wino_dw_applies(&a, d) == on && !rn_wino_dw_applies(&many, d) && rn_wino_applies(&many, d) == on,
                "winograd weight gradient only at <= 8 tiles per input channel");
}

/* BN train forward (y, saved stats, running stats), eval forward and
** backward (dx, dgamma, dbeta, and with dx NULL) of the fast kernels
** against the reference on m = n*h*w rows of c channels; x is centred on
** `offset` to exercise the variance computation away from zero mean. */
static void test_bn_fast(tally *t, rng *r, int n, int h, int w, int c, float offset) {
    size_t m = (size_t)n * h * w, nx = m * c;
    char tag[96];
    snprintf(tag, sizeof tag, "n=%d %dx%d c=%d mean~%g", n, h, w, c, offset);
    const float eps = 1e-5f, mom = 0.1f;
    float *x = falloc(nx), *g = falloc(c), *be = falloc(c), *rm = falloc(c), *rv = falloc(c);
    fill(r, x, nx, offset - 2, offset + 2);
    fill(r, g, c, 0.5f, 1.5f);
    fill(r, be, c, -0.5f, 0.5f);
    fill(r, rm, c, -1, 1);
    fill(r, rv, c, 0.5f, 1.5f);

    /* training forward */
    float *yr = falloc(nx), *yf = falloc(nx), *mr = falloc(c), *mf = falloc(c), *ir = falloc(c), *inf = falloc(c);
    float *rmr = fdup(rm, c), *rvr = fdup(rv, c), *rmf = fdup(rm, c), *rvf = fdup(rv, c);
    rn_ref_bn_forward_train(m, c, x, g, be, eps, mom, rmr, rvr, mr, ir, yr);
    for (size_t i = 0; i < nx; i++) yf[i] = NAN;
    rn_bn_forward_train(m, c, x, g, be, eps, mom, rmf, rvf, mf, inf, yf);
    report(t, rel_err(yf, yr, nx), TOL_FAST, "bn fast train y %s", tag);
    report(t, fmax(rel_err(mf, mr, c), rel_err(inf, ir, c)), TOL_FAST, "bn fast train mean,invstd %s", tag);
    report(t, fmax(rel_err(rmf, rmr, c), rel_err(rvf, rvr, c)), TOL_FAST, "bn fast train running mean,var %s", tag);
    rn_bn_forward_train(m, c, x, g, be, eps, mom, NULL, NULL, mf, inf, yf);
    report(t, rel_err(yf, yr, nx), TOL_FAST, "bn fast train y, no running stats %s", tag);

    /* eval forward, with the updated running statistics */
    rn_ref_bn_forward_eval(m, c, x, g, be, eps, rmr, rvr, yr);
    for (size_t i = 0; i < nx; i++) yf[i] = NAN;
    rn_bn_forward_eval(m, c, x, g, be, eps, rmr, rvr, yf);
    report(t, rel_err(yf, yr, nx), TOL_FAST, "bn fast eval y %s", tag);

    /* backward with pre-filled gradients */
    float *dy = falloc(nx), *dx0 = falloc(nx), *dg0 = falloc(c), *db0 = falloc(c);
    fill(r, dy, nx, -1, 1);
    fill(r, dx0, nx, -1, 1);
    fill(r, dg0, c, -1, 1);
    fill(r, db0, c, -1, 1);
    float *dxr = fdup(dx0, nx), *dgr = fdup(dg0, c), *dbr = fdup(db0, c);
    float *dxf = fdup(dx0, nx), *dgf = fdup(dg0, c), *dbf = fdup(db0, c);
    rn_ref_bn_backward(m, c, x, g, mr, ir, dy, dxr, dgr, dbr);
    rn_bn_backward(m, c, x, g, mr, ir, dy, dxf, dgf, dbf);
    report(t, rel_err(dxf, dxr, nx), TOL_FAST, "bn fast bwd dx %s", tag);
    report(t, fmax(rel_err(dgf, dgr, c), rel_err(dbf, dbr, c)), TOL_FAST, "bn fast bwd dgamma,dbeta %s", tag);
    memcpy(dgf, dg0, c * sizeof(float));
    memcpy(dbf, db0, c * sizeof(float));
    rn_bn_backward(m, c, x, g, mr, ir, dy, NULL, dgf, dbf);
    report(t, fmax(rel_err(dgf, dgr, c), rel_err(dbf, dbr, c)), TOL_FAST, "bn fast bwd dgamma,dbeta (dx NULL) %s", tag);

    free(x), free(g), free(be), free(rm), free(rv), free(yr), free(yf), free(mr), free(mf), free(ir), free(inf);
    free(rmr), free(rvr), free(rmf), free(rvf), free(dy), free(dx0), free(dg0), free(db0);
    free(dxr), free(dgr), free(dbr), free(dxf), free(dgf), free(dbf);
}

/* ---- b) reference backwards against finite differences ----------------- */

/* A double-precision forward: returns the scalar loss for inputs in[]. */
typedef double (*loss_fn)(const void *ctx, double *const *in);

/* Central-difference gradient of f with respect to in[which][0..cnt),
** compared with the backward's gradient `grad`; returns the error measure. */
static double fd_error(const void *ctx, loss_fn f, double *const *in, int which, size_t cnt, const float *grad) {
    double *fd = dalloc(cnt);
    for (size_t i = 0; i < cnt; i++) {
        double v = in[which][i];
        in[which][i] = v + FD_STEP;
        double lp = f(ctx, in);
        in[which][i] = v - FD_STEP;
        double lm = f(ctx, in);
        in[which][i] = v;
        fd[i] = (lp - lm) / (2.0 * FD_STEP);
    }
    double e = rel_err_d(grad, fd, cnt);
    free(fd);
    return e;
}

/* Window shape and the dL/dy weights, shared by the windowed layers. */
typedef struct {
    rn_conv_shape s;
    const double *r;
    int lo;       /* padskip only */
    int has_bias; /* conv only */
} win_ctx;

/* L = sum(conv(x, w) + b) * r) in double.  in: x, w, b */
static double conv_loss(const void *vc, double *const *in) {
    const win_ctx *c = vc;
    const rn_conv_shape *s = &c->s;
    const double *x = in[0], *w = in[1], *b = in[2];
    double L = 0.0;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int co = 0; co < s->co; co++) {
                    double acc = c->has_bias ? b[co] : 0.0;
                    for (int kh = 0; kh < s->k; kh++)
                        for (int kw = 0; kw < s->k; kw++) {
                            int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            for (int ci = 0; ci < s->ci; ci++)
                                acc += x[(((size_t)n * s->h + ih) * s->w + iw) * s->ci + ci] *
                                       w[(((size_t)kh * s->k + kw) * s->ci + ci) * s->co + co];
                        }
                    L += acc * c->r[(((size_t)n * s->oh + oh) * s->ow + ow) * s->co + co];
                }
    return L;
}

/* Reference conv backward (dx, dw, db) against finite differences. */
static void test_conv_fd(tally *t, rng *r, int n, int h, int w, int ci, int co, int k, int stride, int pad) {
    win_ctx c = {make_shape(n, h, w, ci, co, k, stride, pad), NULL, 0, 1};
    size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * c.s.oh * c.s.ow * co, nw = (size_t)k * k * ci * co;
    float *x = falloc(nx), *wt = falloc(nw), *dy = falloc(ny);
    float *dx = fzero(nx), *dw = fzero(nw), *db = fzero(co);
    fill(r, x, nx, -1, 1);
    fill(r, wt, nw, -1, 1);
    fill(r, dy, ny, -1, 1);
    double *in[3] = {to_double(x, nx), to_double(wt, nw), dalloc(co)};
    for (int i = 0; i < co; i++) in[2][i] = urand(r, -1, 1);
    double *rd = to_double(dy, ny);
    c.r = rd;
    rn_ref_conv_backward(&c.s, x, wt, dy, dx, dw, db);
    char tag[96];
    snprintf(tag, sizeof tag, "n=%d %dx%d ci=%d co=%d k=%d s=%d p=%d", n, h, w, ci, co, k, stride, pad);
    report(t, fd_error(&c, conv_loss, in, 0, nx, dx), TOL_FD, "fd ref conv dx %s", tag);
    report(t, fd_error(&c, conv_loss, in, 1, nw, dw), TOL_FD, "fd ref conv dw %s", tag);
    report(t, fd_error(&c, conv_loss, in, 2, co, db), TOL_FD, "fd ref conv db %s", tag);
    free(x), free(wt), free(dy), free(dx), free(dw), free(db), free(in[0]), free(in[1]), free(in[2]), free(rd);
}

/* Batch statistics of one BN layer in double. */
typedef struct {
    size_t m;
    int c;
    double eps;
    const double *r;
} bn_ctx;

/* L = sum(bn_train(x; gamma, beta) * r) in double, two-pass statistics.
** in: x, gamma, beta */
static double bn_loss(const void *vc, double *const *in) {
    const bn_ctx *b = vc;
    const double *x = in[0], *g = in[1], *be = in[2];
    double L = 0.0;
    for (int ch = 0; ch < b->c; ch++) {
        double mu = 0.0, var = 0.0;
        for (size_t i = 0; i < b->m; i++) mu += x[i * b->c + ch];
        mu /= (double)b->m;
        for (size_t i = 0; i < b->m; i++) var += (x[i * b->c + ch] - mu) * (x[i * b->c + ch] - mu);
        var /= (double)b->m;
        double is = 1.0 / sqrt(var + b->eps);
        for (size_t i = 0; i < b->m; i++)
            L += ((x[i * b->c + ch] - mu) * is * g[ch] + be[ch]) * b->r[i * b->c + ch];
    }
    return L;
}

/* Reference BN backward (dx, dgamma, dbeta) against finite differences. */
static void test_bn_fd(tally *t, rng *r, int n, int h, int w, int c) {
    size_t m = (size_t)n * h * w, nx = m * c;
    const float eps = 1e-5f;
    float *x = falloc(nx), *g = falloc(c), *be = falloc(c), *dy = falloc(nx), *y = falloc(nx);
    float *mean = falloc(c), *is = falloc(c);
    float *dx = fzero(nx), *dg = fzero(c), *db = fzero(c);
    fill(r, x, nx, -1, 1);
    fill(r, g, c, 0.5f, 1.5f);
    fill(r, be, c, -0.5f, 0.5f);
    fill(r, dy, nx, -1, 1);
    rn_ref_bn_forward_train(m, c, x, g, be, eps, 0.1f, NULL, NULL, mean, is, y);
    rn_ref_bn_backward(m, c, x, g, mean, is, dy, dx, dg, db);
    double *rd = to_double(dy, nx);
    bn_ctx ctx = {m, c, eps, rd};
    double *in[3] = {to_double(x, nx), to_double(g, c), to_double(be, c)};
    char tag[64];
    snprintf(tag, sizeof tag, "n=%d %dx%d c=%d", n, h, w, c);
    report(t, fd_error(&ctx, bn_loss, in, 0, nx, dx), TOL_FD, "fd ref bn dx %s", tag);
    report(t, fd_error(&ctx, bn_loss, in, 1, c, dg), TOL_FD, "fd ref bn dgamma %s", tag);
    report(t, fd_error(&ctx, bn_loss, in, 2, c, db), TOL_FD, "fd ref bn dbeta %s", tag);
    free(x), free(g), free(be), free(dy), free(y), free(mean), free(is), free(dx), free(dg), free(db);
    free(rd), free(in[0]), free(in[1]), free(in[2]);
}

/* Length and dL/dy weights of an elementwise layer. */
typedef struct {
    size_t n;
    const double *r;
} ew_ctx;

/* L = sum(max(x, 0) * r).  in: x */
static double relu_loss(const void *vc, double *const *in) {
    const ew_ctx *e = vc;
    double L = 0.0;
    for (size_t i = 0; i < e->n; i++) L += (in[0][i] > 0.0 ? in[0][i] : 0.0) * e->r[i];
    return L;
}

/* L = sum((a + b) * r).  in: a, b */
static double add_loss(const void *vc, double *const *in) {
    const ew_ctx *e = vc;
    double L = 0.0;
    for (size_t i = 0; i < e->n; i++) L += (in[0][i] + in[1][i]) * e->r[i];
    return L;
}

/* ReLU and add backwards against finite differences; ReLU inputs are kept
** at least 0.05 away from the kink at 0. */
static void test_elementwise_fd(tally *t, rng *r) {
    const size_t n = 3 * 7 * 5 * 3;
    float *x = falloc(n), *y = falloc(n), *b = falloc(n), *dy = falloc(n);
    float *dx = fzero(n), *dbb = fzero(n);
    for (size_t i = 0; i < n; i++) {
        float v = urand(r, 0.05f, 1.0f);
        x[i] = (rng_next(r) & 1) ? v : -v;
    }
    fill(r, b, n, -1, 1);
    fill(r, dy, n, -1, 1);
    double *rd = to_double(dy, n);
    ew_ctx e = {n, rd};

    rn_relu_forward(n, x, y);
    rn_relu_backward(n, y, dy, dx);
    double *in[2] = {to_double(x, n), to_double(b, n)};
    report(t, fd_error(&e, relu_loss, in, 0, n, dx), TOL_FD, "fd relu dx n=%zu", n);

    memset(dx, 0, n * sizeof(float));
    rn_add_backward(n, dy, dx, dbb);
    report(t, fmax(fd_error(&e, add_loss, in, 0, n, dx), fd_error(&e, add_loss, in, 1, n, dbb)), TOL_FD,
           "fd add da,db n=%zu", n);
    free(x), free(y), free(b), free(dy), free(dx), free(dbb), free(rd), free(in[0]), free(in[1]);
}

/* L = sum(maxpool(x) * r) in double, -inf padding.  in: x */
static double maxpool_loss(const void *vc, double *const *in) {
    const win_ctx *c = vc;
    const rn_conv_shape *s = &c->s;
    double L = 0.0;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int ch = 0; ch < s->ci; ch++) {
                    double mx = -INFINITY;
                    for (int kh = 0; kh < s->k; kh++)
                        for (int kw = 0; kw < s->k; kw++) {
                            int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                            if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                            double v = in[0][(((size_t)n * s->h + ih) * s->w + iw) * s->ci + ch];
                            if (v > mx) mx = v;
                        }
                    L += mx * c->r[(((size_t)n * s->oh + oh) * s->ow + ow) * s->ci + ch];
                }
    return L;
}

/* Max-pool backward against finite differences. The inputs are a random
** permutation of values 0.01 apart, so there are no ties and no step of
** FD_STEP changes which input is the maximum. */
static void test_maxpool_fd(tally *t, rng *r, int n, int h, int w, int c, int k, int stride, int pad) {
    win_ctx ctx = {make_shape(n, h, w, c, c, k, stride, pad), NULL, 0, 0};
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * ctx.s.oh * ctx.s.ow * c;
    float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = fzero(nx);
    for (size_t i = 0; i < nx; i++) x[i] = 0.01f * (float)i - 0.005f * (float)nx;
    for (size_t i = nx; i > 1; i--) { /* Fisher-Yates */
        size_t j = rng_next(r) % i;
        float tmp = x[i - 1];
        x[i - 1] = x[j];
        x[j] = tmp;
    }
    fill(r, dy, ny, -1, 1);
    rn_maxpool_forward(&ctx.s, x, y);
    rn_maxpool_backward(&ctx.s, x, y, dy, dx);
    double *rd = to_double(dy, ny), *in[1] = {to_double(x, nx)};
    ctx.r = rd;
    report(t, fd_error(&ctx, maxpool_loss, in, 0, nx, dx), TOL_FD, "fd maxpool dx n=%d %dx%d c=%d k=%d s=%d p=%d", n, h,
           w, c, k, stride, pad);
    free(x), free(y), free(dy), free(dx), free(rd), free(in[0]);
}

/* Sizes of global average pooling and its dL/dy weights. */
typedef struct {
    int n, hw, c;
    const double *r;
} gap_ctx;

/* L = sum(mean_hw(x) * r).  in: x */
static double gap_loss(const void *vc, double *const *in) {
    const gap_ctx *g = vc;
    double L = 0.0;
    for (int i = 0; i < g->n; i++)
        for (int ch = 0; ch < g->c; ch++) {
            double s = 0.0;
            for (int p = 0; p < g->hw; p++) s += in[0][((size_t)i * g->hw + p) * g->c + ch];
            L += s / g->hw * g->r[(size_t)i * g->c + ch];
        }
    return L;
}

/* Global average pooling backward against finite differences. */
static void test_gap_fd(tally *t, rng *r, int n, int hw, int c) {
    size_t nx = (size_t)n * hw * c, ny = (size_t)n * c;
    float *x = falloc(nx), *dy = falloc(ny), *dx = fzero(nx);
    fill(r, x, nx, -1, 1);
    fill(r, dy, ny, -1, 1);
    rn_gap_backward(n, hw, c, dy, dx);
    double *rd = to_double(dy, ny), *in[1] = {to_double(x, nx)};
    gap_ctx g = {n, hw, c, rd};
    report(t, fd_error(&g, gap_loss, in, 0, nx, dx), TOL_FD, "fd gap dx n=%d hw=%d c=%d", n, hw, c);
    free(x), free(dy), free(dx), free(rd), free(in[0]);
}

/* L = sum(padskip(x) * r).  in: x */
static double padskip_loss(const void *vc, double *const *in) {
    const win_ctx *c = vc;
    const rn_conv_shape *s = &c->s;
    double L = 0.0;
    for (int n = 0; n < s->n; n++)
        for (int oh = 0; oh < s->oh; oh++)
            for (int ow = 0; ow < s->ow; ow++)
                for (int ch = 0; ch < s->ci; ch++)
                    L += in[0][(((size_t)n * s->h + oh * s->stride) * s->w + ow * s->stride) * s->ci + ch] *
                         c->r[(((size_t)n * s->oh + oh) * s->ow + ow) * s->co + c->lo + ch];
    return L;
}

/* Option-A shortcut backward against finite differences. */
static void test_padskip_fd(tally *t, rng *r, int n, int h, int w, int ci, int co, int lo) {
    win_ctx ctx = {make_shape(n, h, w, ci, co, 1, 2, 0), NULL, lo, 0};
    size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * ctx.s.oh * ctx.s.ow * co;
    float *x = falloc(nx), *dy = falloc(ny), *dx = fzero(nx);
    fill(r, x, nx, -1, 1);
    fill(r, dy, ny, -1, 1);
    rn_padskip_backward(&ctx.s, lo, dy, dx);
    double *rd = to_double(dy, ny), *in[1] = {to_double(x, nx)};
    ctx.r = rd;
    report(t, fd_error(&ctx, padskip_loss, in, 0, nx, dx), TOL_FD, "fd padskip dx n=%d %dx%d ci=%d co=%d lo=%d", n, h,
           w, ci, co, lo);
    free(x), free(dy), free(dx), free(rd), free(in[0]);
}

/* Sizes of the fully connected layer and its dL/dy weights. */
typedef struct {
    int n, in, out;
    const double *r;
} fc_ctx;

/* L = sum((x w^T + b) * r).  in: x, w, b */
static double fc_loss(const void *vc, double *const *in) {
    const fc_ctx *f = vc;
    double L = 0.0;
    for (int i = 0; i < f->n; i++)
        for (int o = 0; o < f->out; o++) {
            double acc = in[2][o];
            for (int k = 0; k < f->in; k++) acc += in[0][(size_t)i * f->in + k] * in[1][(size_t)o * f->in + k];
            L += acc * f->r[(size_t)i * f->out + o];
        }
    return L;
}

/* Fully connected backward (dx, dw, db) against finite differences. */
static void test_fc_fd(tally *t, rng *r, int n, int in, int out) {
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    float *x = falloc(nx), *w = falloc(nw), *b = falloc(out), *dy = falloc(ny);
    float *dx = fzero(nx), *dw = fzero(nw), *db = fzero(out);
    fill(r, x, nx, -1, 1);
    fill(r, w, nw, -1, 1);
    fill(r, b, out, -1, 1);
    fill(r, dy, ny, -1, 1);
    rn_fc_backward(n, in, out, x, w, dy, dx, dw, db);
    double *rd = to_double(dy, ny), *ins[3] = {to_double(x, nx), to_double(w, nw), to_double(b, out)};
    fc_ctx f = {n, in, out, rd};
    report(t, fd_error(&f, fc_loss, ins, 0, nx, dx), TOL_FD, "fd fc dx n=%d in=%d out=%d", n, in, out);
    report(t, fd_error(&f, fc_loss, ins, 1, nw, dw), TOL_FD, "fd fc dw n=%d in=%d out=%d", n, in, out);
    report(t, fd_error(&f, fc_loss, ins, 2, out, db), TOL_FD, "fd fc db n=%d in=%d out=%d", n, in, out);
    free(x), free(w), free(b), free(dy), free(dx), free(dw), free(db), free(rd);
    free(ins[0]), free(ins[1]), free(ins[2]);
}

/* The bf16 head (rn_fc_forward_bf16, rn_fc_backward_bf16) against a
** double reference on x, W and dy rounded to bf16 (db from the fp32 dy),
** the gradients pre-filled to check they are added to: a product of two
** bf16 values is exact in fp32, so only the order of the fp32 sums
** differs (TOL_FAST). Against fp32 the results must differ by more than
** 1e-6 (the bf16 products ran) and stay within bf16 precision (2e-2).
** One and two threads give the same bits, and so does the forward from
** weights packed beforehand (rn_fc_pack_bf16, as eval plans do). */
static void test_fc_bf16(tally *t, rng *r, int n, int in, int out) {
    if (!rn_cpu_has_bf16()) return;
    const size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out, all = ny + nx + nw + out;
    float *x = falloc(nx), *w = falloc(nw), *b = falloc(out), *dy = falloc(ny), *g0 = falloc(nx + nw + out), *o[2];
    fill(r, x, nx, -1, 1), fill(r, w, nw, -1, 1), fill(r, b, out, -1, 1), fill(r, dy, ny, -1, 1);
    fill(r, g0, nx + nw + out, -1, 1);
    float *ws = falloc(rn_fc_workspace_bf16(n, in, out)), *yp = falloc(ny);
    uint16_t *wt = malloc(((size_t)in + 1) * out * sizeof(uint16_t));
    const int saved = omp_get_max_threads();
    for (int ti = 0; ti < 2; ti++) { /* y, dx, dw, db back to back */
        omp_set_num_threads(ti + 1);
        o[ti] = falloc(all);
        memcpy(o[ti] + ny, g0, (nx + nw + out) * sizeof(float));
        rn_fc_forward_bf16(n, in, out, x, w, NULL, b, o[ti], ws);
        rn_fc_backward_bf16(n, in, out, x, w, dy, o[ti] + ny, o[ti] + ny + nx, o[ti] + ny + nx + nw, ws);
    }
    omp_set_num_threads(saved);
    rn_fc_pack_bf16(in, out, w, wt);
    rn_fc_forward_bf16(n, in, out, x, NULL, wt, b, yp, ws);
    char tag[64];
    snprintf(tag, sizeof tag, "n=%d in=%d out=%d", n, in, out);
    report_bool(t, wt && !memcmp(o[0], o[1], all * sizeof(float)) && !memcmp(o[0], yp, ny * sizeof(float)),
                "fc bf16 same bits at 1 and 2 threads and from packed weights %s", tag);
    float *xr = bf16_round(x, nx), *wr = bf16_round(w, nw), *dyr = bf16_round(dy, ny);
    double *ref = dalloc(all), *f32 = dalloc(all);
    for (int pass = 0; pass < 2; pass++) { /* bf16-rounded operands, then fp32 ones */
        const float *xs = pass ? x : xr, *wv = pass ? w : wr, *gs = pass ? dy : dyr;
        double *d = pass ? f32 : ref;
        for (size_t k = 0; k < nx + nw + out; k++) d[ny + k] = g0[k];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < out; j++) {
                double acc = b[j];
                for (int k = 0; k < in; k++) {
                    acc += (double)xs[(size_t)i * in + k] * wv[(size_t)j * in + k];
                    d[ny + (size_t)i * in + k] += (double)gs[(size_t)i * out + j] * wv[(size_t)j * in + k];
                    d[ny + nx + (size_t)j * in + k] += (double)gs[(size_t)i * out + j] * xs[(size_t)i * in + k];
                }
                d[(size_t)i * out + j] = acc;
                d[ny + nx + nw + j] += dy[(size_t)i * out + j];
            }
    }
    const double er = rel_err_d(o[0], ref, ny) + rel_err_d(o[0] + ny, ref + ny, nx) +
                      rel_err_d(o[0] + ny + nx, ref + ny + nx, nw) +
                      rel_err_d(o[0] + ny + nx + nw, ref + ny + nx + nw, out);
    report(t, er, TOL_FAST, "fc bf16 fwd+bwd vs reference on bf16-rounded operands %s", tag);
    const double ey = rel_err_d(o[0], f32, ny), edx = rel_err_d(o[0] + ny, f32 + ny, nx);
    const double edw = rel_err_d(o[0] + ny + nx, f32 + ny + nx, nw);
    report(t, fmax(fmax(ey, edx), edw), 2e-2, "fc bf16 fwd+bwd within bf16 precision of fp32 %s", tag);
    report_bool(t, ey > 1e-6 && edx > 1e-6 && edw > 1e-6, "fc bf16 differs from fp32 (y %.1e dx %.1e dw %.1e) %s",
                ey, edx, edw, tag);
    free(x), free(w), free(b), free(dy), free(g0), free(o[0]), free(o[1]), free(ws), free(yp), free(wt);
    free(xr), free(wr), free(dyr), free(ref), free(f32);
}

/* Batch, classes, labels and smoothing of the loss. */
typedef struct {
    int n, k;
    const int *labels;
    double eps;
} xent_ctx;

/* Mean label-smoothed softmax cross-entropy in double.  in: logits */
static double xent_loss(const void *vc, double *const *in) {
    const xent_ctx *x = vc;
    double total = 0.0;
    for (int i = 0; i < x->n; i++) {
        const double *z = in[0] + (size_t)i * x->k;
        double mx = z[0], sum = 0.0, sumz = 0.0;
        for (int j = 1; j < x->k; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < x->k; j++) {
            sum += exp(z[j] - mx);
            sumz += z[j];
        }
        double lse = mx + log(sum);
        total += (1.0 - x->eps) * (lse - z[x->labels[i]]) + x->eps * (lse - sumz / x->k);
    }
    return total / x->n;
}

/* Softmax cross-entropy gradient (dlogits) against finite differences, and
** its returned loss against the double computation. */
static void test_xent_fd(tally *t, rng *r, int n, int k, float smoothing) {
    size_t nz = (size_t)n * k;
    float *z = falloc(nz), *dz = falloc(nz);
    int *labels = malloc((size_t)n * sizeof(int));
    if (!labels) exit(2);
    fill(r, z, nz, -3, 3);
    for (int i = 0; i < n; i++) labels[i] = (int)(rng_next(r) % (uint64_t)k);
    double loss = rn_softmax_xent(n, k, z, labels, smoothing, dz);
    double *in[1] = {to_double(z, nz)};
    xent_ctx x = {n, k, labels, smoothing};
    double want = xent_loss(&x, in);
    report(t, fabs(loss - want) / (fabs(want) + 1e-6), TOL_FD, "softmax_xent loss n=%d k=%d smoothing=%g", n, k,
           smoothing);
    report(t, fd_error(&x, xent_loss, in, 0, nz, dz), TOL_FD, "fd softmax_xent dlogits n=%d k=%d smoothing=%g", n, k,
           smoothing);
    free(z), free(dz), free(labels), free(in[0]);
}

/* ---- c) determinism ---------------------------------------------------- */

/* The fast conv backward (and forward) run twice on the same inputs and
** pre-filled gradients gives bit-identical results; likewise BN. */
static void test_determinism(tally *t, rng *r, int n, int h, int w, int ci, int co, int k, int stride, int pad) {
    rn_conv_shape s = make_shape(n, h, w, ci, co, k, stride, pad);
    size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * s.oh * s.ow * co, nw = (size_t)k * k * ci * co;
    float *x = falloc(nx), *wt = falloc(nw), *dy = falloc(ny), *dx0 = falloc(nx), *dw0 = falloc(nw), *db0 = falloc(co);
    fill(r, x, nx, -1, 1);
    fill(r, wt, nw, -1, 1);
    fill(r, dy, ny, -1, 1);
    fill(r, dx0, nx, -1, 1);
    fill(r, dw0, nw, -1, 1);
    fill(r, db0, co, -1, 1);
    float *ws = falloc(rn_conv_workspace(&s, omp_get_max_threads()));
    float *dx[2], *dw[2], *db[2], *y[2];
    for (int run = 0; run < 2; run++) {
        dx[run] = fdup(dx0, nx), dw[run] = fdup(dw0, nw), db[run] = fdup(db0, co), y[run] = falloc(ny);
        rn_conv_forward(&s, x, wt, NULL, y[run]);
        rn_conv_backward(&s, x, wt, dy, dx[run], dw[run], db[run], ws);
    }
    char tag[96];
    snprintf(tag, sizeof tag, "n=%d %dx%d ci=%d co=%d k=%d s=%d p=%d, %d threads", n, h, w, ci, co, k, stride, pad,
             omp_get_max_threads());
    report_bool(t, !memcmp(dw[0], dw[1], nw * sizeof(float)), "determinism conv bwd dw bit-identical %s", tag);
    report_bool(t, !memcmp(db[0], db[1], co * sizeof(float)) && !memcmp(dx[0], dx[1], nx * sizeof(float)) &&
                       !memcmp(y[0], y[1], ny * sizeof(float)),
                "determinism conv fwd y, bwd dx,db bit-identical %s", tag);
    for (int run = 0; run < 2; run++) free(dx[run]), free(dw[run]), free(db[run]), free(y[run]);

    /* BN on the same data viewed as (N*H*W, Ci) */
    size_t m = (size_t)n * h * w;
    float *g = falloc(ci), *be = falloc(ci), *mean = falloc(ci), *is = falloc(ci);
    fill(r, g, ci, 0.5f, 1.5f);
    fill(r, be, ci, -0.5f, 0.5f);
    float *by[2], *bdx[2], *bdg[2], *bdb[2];
    for (int run = 0; run < 2; run++) {
        by[run] = falloc(nx), bdx[run] = fdup(dx0, nx);
        bdg[run] = fzero(ci), bdb[run] = fzero(ci);
        rn_bn_forward_train(m, ci, x, g, be, 1e-5f, 0.1f, NULL, NULL, mean, is, by[run]);
        rn_bn_backward(m, ci, x, g, mean, is, x, bdx[run], bdg[run], bdb[run]);
    }
    report_bool(t, !memcmp(by[0], by[1], nx * sizeof(float)) && !memcmp(bdx[0], bdx[1], nx * sizeof(float)) &&
                       !memcmp(bdg[0], bdg[1], ci * sizeof(float)) && !memcmp(bdb[0], bdb[1], ci * sizeof(float)),
                "determinism bn fwd y, bwd dx,dgamma,dbeta bit-identical m=%zu c=%d", m, ci);
    for (int run = 0; run < 2; run++) free(by[run]), free(bdx[run]), free(bdg[run]), free(bdb[run]);
    free(g), free(be), free(mean), free(is);
    free(x), free(wt), free(dy), free(dx0), free(dw0), free(db0), free(ws);
}

/* ---- d) fused kernels against the unfused reference composition ------- */

/* Two "ranks" of synchronized batchnorm, as two pthreads: sum() hands
** each one's vector to the other through a barrier, like MPI_Allreduce. */
typedef struct {
    pthread_barrier_t bar;
    double v[2][2 * 64 + 1];
} bn_exchange;

typedef struct {
    bn_exchange *ex;
    int rank, c, bwd;
    size_t m;                      /* this rank's rows */
    const float *x, *g, *be, *dy;  /* x, dy: this rank's rows */
    float *rm, *rv, *mean, *is, *y, *dx, *dg, *db;
} bn_rank;

/* rn_bn_sync.sum for the thread ranks: v = v(rank 0) + v(rank 1), in
** that order on both, so both get the same bits. */
static void bn_exchange_sum(void *ctx, double *v, int n) {
    bn_rank *r = ctx;
    memcpy(r->ex->v[r->rank], v, (size_t)n * sizeof(double));
    pthread_barrier_wait(&r->ex->bar);
    for (int i = 0; i < n; i++) v[i] = r->ex->v[0][i] + r->ex->v[1][i];
    pthread_barrier_wait(&r->ex->bar);
}

/* Runs one rank's synchronized forward or backward (1 OpenMP thread). */
static void *bn_rank_run(void *arg) {
    bn_rank *r = arg;
    rn_bn_sync sync = {bn_exchange_sum, r};
    omp_set_num_threads(1);
    if (!r->bwd)
        rn_bn_forward_train_sync(r->m, r->c, r->x, r->g, r->be, 1e-5f, 0.1f, r->rm, r->rv, r->mean, r->is, r->y, 0,
                                 &sync, NULL, NULL);
    else
        rn_bn_backward_sync(r->m, r->c, r->x, NULL, r->g, r->mean, r->is, r->dy, r->dx, r->dg, r->db, RN_FUSE_SET,
                            &sync, NULL);
    return NULL;
}

/* Synchronized batchnorm over two ranks holding rows [0, m0) and [m0, m)
** equals batchnorm of all m rows on one: mean, invstd, y, running stats
** (forward), dx (backward), and dgamma/dbeta summed over the ranks, as
** the gradient averaging then does. m0 = 0 gives rank 0 no rows. */
static void test_bn_sync(tally *t, rng *r, size_t m, size_t m0, int c, float offset) {
    size_t nx = m * c;
    float *x = falloc(nx), *g = falloc(c), *be = falloc(c), *dy = falloc(nx);
    fill(r, x, nx, offset - 2, offset + 2);
    fill(r, g, c, 0.5f, 1.5f);
    fill(r, be, c, -0.5f, 0.5f);
    fill(r, dy, nx, -1, 1);
    float *y1 = falloc(nx), *m1 = falloc(c), *i1 = falloc(c), *rm1 = fzero(c), *rv1 = fzero(c);
    float *dx1 = falloc(nx), *dg1 = fzero(c), *db1 = fzero(c);
    rn_bn_forward_train_ex(m, c, x, g, be, 1e-5f, 0.1f, rm1, rv1, m1, i1, y1, 0);
    rn_bn_backward_ex(m, c, x, NULL, g, m1, i1, dy, dx1, dg1, db1, RN_FUSE_SET);
    bn_exchange ex;
    pthread_barrier_init(&ex.bar, NULL, 2);
    bn_rank rk[2];
    float *y2 = falloc(nx), *dx2 = falloc(nx);
    for (int k = 0; k < 2; k++) {
        size_t lo = k ? m0 : 0, hi = k ? m : m0;
        rk[k] = (bn_rank){&ex, k, c, 0, hi - lo, x + lo * c, g, be, dy + lo * c, fzero(c), fzero(c), falloc(c),
                          falloc(c), y2 + lo * c, dx2 + lo * c, fzero(c), fzero(c)};
    }
    for (int pass = 0; pass < 2; pass++) {
        pthread_t th[2];
        for (int k = 0; k < 2; k++) rk[k].bwd = pass, pthread_create(&th[k], NULL, bn_rank_run, &rk[k]);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    }
    float dg2[64], db2[64];
    for (int ch = 0; ch < c; ch++) dg2[ch] = rk[0].dg[ch] + rk[1].dg[ch], db2[ch] = rk[0].db[ch] + rk[1].db[ch];
    char tag[80];
    snprintf(tag, sizeof tag, "m=%zu split %zu+%zu c=%d mean~%g", m, m0, m - m0, c, offset);
    double e = 0;
    for (int k = 0; k < 2; k++)
        e = fmax(e, fmax(fmax(rel_err(rk[k].mean, m1, c), rel_err(rk[k].is, i1, c)),
                         fmax(rel_err(rk[k].rm, rm1, c), rel_err(rk[k].rv, rv1, c))));
    report(t, e, TOL_FAST, "sync bn 2 ranks = 1: mean, invstd, running stats %s", tag);
    report(t, rel_err(y2, y1, nx), TOL_FAST, "sync bn 2 ranks = 1: y %s", tag);
    report(t, fmax(rel_err(dx2, dx1, nx), fmax(rel_err(dg2, dg1, c), rel_err(db2, db1, c))), TOL_FAST,
           "sync bn 2 ranks = 1: dx, dgamma, dbeta %s", tag);
    pthread_barrier_destroy(&ex.bar);
    for (int k = 0; k < 2; k++) {
        free(rk[k].rm), free(rk[k].rv), free(rk[k].mean), free(rk[k].is), free(rk[k].dg), free(rk[k].db);
    }
    free(x), free(g), free(be), free(dy), free(y1), free(m1), free(i1), free(rm1), free(rv1), free(dx1), free(dg1);
    free(db1), free(y2), free(dx2);
}

/* y = max(x, 0) in place: the reference ReLU of the compositions.  (n) */
static void ref_relu(float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

/* BN + ReLU forward (train and eval, eval in place) and ReLU + BN backward
** (accumulating and overwriting dx) against the reference BN composed with
** a plain ReLU on m = n*h*w rows of c channels; twice for bit-identity. */
static void test_bn_fused(tally *t, rng *r, int n, int h, int w, int c, float offset) {
    size_t m = (size_t)n * h * w, nx = m * c;
    char tag[96];
    snprintf(tag, sizeof tag, "n=%d %dx%d c=%d mean~%g", n, h, w, c, offset);
    const float eps = 1e-5f, mom = 0.1f;
    float *x = falloc(nx), *g = falloc(c), *be = falloc(c), *rm = falloc(c), *rv = falloc(c);
    fill(r, x, nx, offset - 2, offset + 2);
    fill(r, g, c, 0.5f, 1.5f);
    fill(r, be, c, -0.5f, 0.5f);
    fill(r, rm, c, offset - 1, offset + 1);
    fill(r, rv, c, 0.5f, 1.5f);

    /* training forward: reference BN then ReLU */
    float *yr = falloc(nx), *yf = falloc(nx), *mr = falloc(c), *mf = falloc(c), *ir = falloc(c), *isf = falloc(c);
    float *rmr = fdup(rm, c), *rvr = fdup(rv, c), *rmf = fdup(rm, c), *rvf = fdup(rv, c);
    rn_ref_bn_forward_train(m, c, x, g, be, eps, mom, rmr, rvr, mr, ir, yr);
    ref_relu(yr, nx);
    rn_bn_forward_train_ex(m, c, x, g, be, eps, mom, rmf, rvf, mf, isf, yf, RN_FUSE_RELU);
    report(t, rel_err(yf, yr, nx), TOL_FAST, "fused bn+relu train y %s", tag);
    report(t, fmax(fmax(rel_err(mf, mr, c), rel_err(isf, ir, c)), fmax(rel_err(rmf, rmr, c), rel_err(rvf, rvr, c))),
           TOL_FAST, "fused bn+relu train mean,invstd,running stats %s", tag);

    /* eval forward in place (y == x) */
    float *ye = falloc(nx), *yi = fdup(x, nx);
    rn_ref_bn_forward_eval(m, c, x, g, be, eps, rm, rv, ye);
    ref_relu(ye, nx);
    rn_bn_forward_eval_ex(m, c, yi, g, be, eps, rm, rv, yi, RN_FUSE_RELU);
    report(t, rel_err(yi, ye, nx), TOL_FAST, "fused bn+relu eval in place y %s", tag);

    /* backward through the ReLU (output yr) and the BN: reference = mask
    ** dy into a zeroed buffer, then the reference BN backward */
    float *dy = falloc(nx), *gm = fzero(nx), *dx0 = falloc(nx), *dg0 = falloc(c), *db0 = falloc(c);
    fill(r, dy, nx, -1, 1);
    fill(r, dx0, nx, -1, 1);
    fill(r, dg0, c, -1, 1);
    fill(r, db0, c, -1, 1);
    for (size_t i = 0; i < nx; i++) gm[i] = yr[i] > 0 ? dy[i] : 0;
    float *dxr = fdup(dx0, nx), *dgr = fdup(dg0, c), *dbr = fdup(db0, c);
    rn_ref_bn_backward(m, c, x, g, mr, ir, gm, dxr, dgr, dbr);
    float *dxf = fdup(dx0, nx), *dgf = fdup(dg0, c), *dbf = fdup(db0, c);
    rn_bn_backward_ex(m, c, x, yr, g, mr, ir, dy, dxf, dgf, dbf, RN_FUSE_RELU);
    report(t, fmax(rel_err(dxf, dxr, nx), fmax(rel_err(dgf, dgr, c), rel_err(dbf, dbr, c))), TOL_FAST,
           "fused relu+bn bwd dx+=,dgamma,dbeta %s", tag);
    /* overwrite: the same with dx starting at zero, dx pre-filled with garbage */
    float *dxz = fzero(nx), *dgz = fdup(dg0, c), *dbz = fdup(db0, c);
    rn_ref_bn_backward(m, c, x, g, mr, ir, gm, dxz, dgz, dbz);
    float *dxs[2];
    for (int run = 0; run < 2; run++) {
        dxs[run] = falloc(nx);
        fill(r, dxs[run], nx, -100, 100);
        memcpy(dgf, dg0, c * sizeof(float));
        memcpy(dbf, db0, c * sizeof(float));
        rn_bn_backward_ex(m, c, x, yr, g, mr, ir, dy, dxs[run], dgf, dbf, RN_FUSE_RELU | RN_FUSE_SET);
    }
    report(t, fmax(rel_err(dxs[0], dxz, nx), fmax(rel_err(dgf, dgz, c), rel_err(dbf, dbz, c))), TOL_FAST,
           "fused relu+bn bwd dx= (overwrite) %s", tag);
    report_bool(t, !memcmp(dxs[0], dxs[1], nx * sizeof(float)), "fused relu+bn bwd bit-identical on rerun %s", tag);
    /* the mask recomputed from x (rn_bn_relu_mask, y not given) equals the
    ** mask read from the forward's y, bit for bit, adding and overwriting */
    {
        float *kd = falloc(c), *ks = falloc(c), *yk = falloc(nx), *mk = falloc(c), *ik = falloc(c);
        float *rmk = fdup(rm, c), *rvk = fdup(rv, c);
        const rn_bn_relu_mask keep = {kd, ks, be};
        rn_bn_forward_train_sync(m, c, x, g, be, eps, mom, rmk, rvk, mk, ik, yk, RN_FUSE_RELU, NULL, &keep, NULL);
        int same = !memcmp(yk, yf, nx * sizeof(float));
        for (int set = 0; set < 2; set++) {
            float *d1 = fdup(dx0, nx), *d2 = fdup(dx0, nx), *g1 = fdup(dg0, c), *g2 = fdup(dg0, c);
            float *b1 = fdup(db0, c), *b2 = fdup(db0, c);
            const int fl = RN_FUSE_RELU | (set ? RN_FUSE_SET : 0);
            rn_bn_backward_sync(m, c, x, yk, g, mk, ik, dy, d1, g1, b1, fl, NULL, NULL);
            rn_bn_backward_sync(m, c, x, NULL, g, mk, ik, dy, d2, g2, b2, fl, NULL, &keep);
            same &= !memcmp(d1, d2, nx * sizeof(float)) && !memcmp(g1, g2, c * sizeof(float)) &&
                    !memcmp(b1, b2, c * sizeof(float));
            free(d1), free(d2), free(g1), free(g2), free(b1), free(b2);
        }
        report_bool(t, same, "fused relu+bn bwd with the mask recomputed from x equals reading y, bit for bit %s", tag);
        /* dx written in bf16 (RN_BF16_GRAD): each value rounded from the
        ** fp32 one, for each mask mode (none, from y, recomputed) */
        int rounded = 1;
        uint16_t *h = malloc(nx * sizeof(uint16_t));
        for (int mode = 0; mode < 3; mode++) {
            float *d1 = falloc(nx), *g1 = fdup(dg0, c), *b1 = fdup(db0, c), *g2 = fdup(dg0, c), *b2 = fdup(db0, c);
            const int fl = RN_FUSE_SET | (mode ? RN_FUSE_RELU : 0);
            const float *yy = mode == 1 ? yk : NULL;
            const rn_bn_relu_mask *kk = mode == 2 ? &keep : NULL;
            rn_bn_backward_sync(m, c, x, yy, g, mk, ik, dy, d1, g1, b1, fl, NULL, kk);
            rn_bn_backward_sync(m, c, x, yy, g, mk, ik, dy, h, g2, b2, fl | RN_BF16_GRAD, NULL, kk);
            for (size_t k = 0; k < nx; k++) rounded &= h[k] == rn_bf16_from_f32(d1[k]);
            rounded &= !memcmp(g1, g2, c * sizeof(float)) && !memcmp(b1, b2, c * sizeof(float));
            free(d1), free(g1), free(b1), free(g2), free(b2);
        }
        report_bool(t, rounded, "bn bwd writing dx in bf16 rounds the fp32 dx, bit for bit (3 mask modes) %s", tag);
        free(h);
        free(kd), free(ks), free(yk), free(mk), free(ik), free(rmk), free(rvk);
    }
    /* the residual sum in the apply pass (a block's last BN, its ADD and
    ** ReLU): bit for bit the BN forward, then rn_add_forward or
    ** rn_add_relu_forward, with the same batch statistics */
    for (int relu = 0; relu < 2; relu++) {
        float *skip = falloc(nx), *y1 = falloc(nx), *y2 = falloc(nx), *m1 = falloc(c), *m2 = falloc(c);
        float *i1 = falloc(c), *i2 = falloc(c), *rm1 = fdup(rm, c), *rv1 = fdup(rv, c), *rm2 = fdup(rm, c);
        float *rv2 = fdup(rv, c);
        fill(r, skip, nx, -2, 2);
        rn_bn_forward_train_sync(m, c, x, g, be, eps, mom, rm1, rv1, m1, i1, y1, 0, NULL, NULL, NULL);
        if (relu) rn_add_relu_forward(nx, y1, skip, y1);
        else rn_add_forward(nx, y1, skip, y1);
        rn_bn_forward_train_sync(m, c, x, g, be, eps, mom, rm2, rv2, m2, i2, y2, relu ? RN_FUSE_RELU : 0, NULL, NULL,
                                 skip);
        size_t zeros = 0;
        for (size_t k = 0; k < nx; k++) zeros += y2[k] == 0.0f;
        report_bool(t,
                    !memcmp(y1, y2, nx * sizeof(float)) && !memcmp(m1, m2, c * sizeof(float)) &&
                        !memcmp(i1, i2, c * sizeof(float)) && !memcmp(rm1, rm2, c * sizeof(float)) &&
                        !memcmp(rv1, rv2, c * sizeof(float)) && (relu ? zeros > 0 || nx < 16 : zeros == 0),
                    "bn fwd + residual add%s in one pass equals bn then add, bit for bit %s", relu ? " + relu" : "",
                    tag);
        free(skip), free(y1), free(y2), free(m1), free(m2), free(i1), free(i2), free(rm1), free(rv1), free(rm2);
        free(rv2);
    }
    /* BN backward alone, overwriting */
    memset(dxz, 0, nx * sizeof(float));
    memcpy(dgz, dg0, c * sizeof(float));
    memcpy(dbz, db0, c * sizeof(float));
    rn_ref_bn_backward(m, c, x, g, mr, ir, dy, dxz, dgz, dbz);
    fill(r, dxs[0], nx, -100, 100);
    rn_bn_backward_ex(m, c, x, NULL, g, mr, ir, dy, dxs[0], dgf, dbf, RN_FUSE_SET);
    report(t, rel_err(dxs[0], dxz, nx), TOL_FAST, "bn bwd dx= (overwrite, no relu) %s", tag);

    free(x), free(g), free(be), free(rm), free(rv), free(yr), free(yf), free(mr), free(mf), free(ir), free(isf);
    free(rmr), free(rvr), free(rmf), free(rvf), free(ye), free(yi), free(dy), free(gm), free(dx0), free(dg0);
    free(db0), free(dxr), free(dgr), free(dbr), free(dxf), free(dgf), free(dbf), free(dxz), free(dgz), free(dbz);
    free(dxs[0]), free(dxs[1]);
}

/* BN reading x in bf16 (RN_BF16_ACT) equals BN reading those values
** widened to fp32, bit for bit, in every pass and form: the training
** forward (plain, with ReLU and a kept mask, with a residual and ReLU;
** y, statistics, running statistics and the kept dmu and scale), the eval
** forward, and the backward in each mask mode (none, from y, recomputed
** from x) adding, overwriting and writing bf16 (dx, dgamma, dbeta), the
** backward also reading dy in bf16 (RN_BF16_DX). */
static void test_bn_bf16_act(tally *t, rng *r, int n, int h, int w, int c, float offset) {
    const size_t m = (size_t)n * h * w, nx = m * c;
    char tag[96];
    snprintf(tag, sizeof tag, "n=%d %dx%d c=%d mean~%g", n, h, w, c, offset);
    const float eps = 1e-5f, mom = 0.1f;
    float *xf = falloc(nx), *g = falloc(c), *be = falloc(c), *skip = falloc(nx), *dy = falloc(nx), *dx0 = falloc(nx);
    fill(r, xf, nx, offset - 2, offset + 2), fill(r, g, c, 0.5f, 1.5f), fill(r, be, c, -0.5f, 0.5f);
    fill(r, skip, nx, -2, 2), fill(r, dy, nx, -1, 1), fill(r, dx0, nx, -1, 1);
    uint16_t *xh = bf16_bits(xf, nx), *dyh = bf16_bits(dy, nx);
    float *x = bf16_round(xf, nx), *dyw = bf16_round(dy, nx); /* the same values, widened */
    const void *src[2] = {x, xh}, *gsrc[2] = {dyw, dyh};
    float *st[2][8], *y[2], *dx[2];
    uint16_t *dh[2];
    float *rm = falloc(c), *rv = falloc(c);
    fill(r, rm, c, offset - 1, offset + 1), fill(r, rv, c, 0.5f, 1.5f);
    int same = 1;
    for (int form = 0; form < 3; form++) { /* training forward: plain, relu + kept mask, residual + relu */
        for (int v = 0; v < 2; v++) {
            for (int k = 0; k < 6; k++) st[v][k] = falloc(c);
            memcpy(st[v][2], rm, c * 4), memcpy(st[v][3], rv, c * 4); /* running mean, var */
            y[v] = falloc(nx);
            const rn_bn_relu_mask keep = {st[v][4], st[v][5], be};
            rn_bn_forward_train_sync(m, c, src[v], g, be, eps, mom, st[v][2], st[v][3], st[v][0], st[v][1], y[v],
                                     (form ? RN_FUSE_RELU : 0) | (v ? RN_BF16_ACT : 0), NULL,
                                     form == 1 ? &keep : NULL, form == 2 ? skip : NULL);
        }
        same &= !memcmp(y[0], y[1], nx * 4);
        for (int k = 0; k < (form == 1 ? 6 : 4); k++) same &= !memcmp(st[0][k], st[1][k], c * 4);
        if (form == 1) /* the backward, with these statistics and this mask */
            for (int mode = 0; mode < 3; mode++)
                for (int set = 0; set < 3; set++) {
                    for (int v = 0; v < 2; v++) {
                        const rn_bn_relu_mask kept = {st[v][4], st[v][5], be};
                        st[v][6] = fzero(c), st[v][7] = fzero(c), dx[v] = fdup(dx0, nx);
                        dh[v] = malloc(nx * sizeof(uint16_t));
                        const int fl = (mode ? RN_FUSE_RELU : 0) | (v ? RN_BF16_ACT | RN_BF16_DX : 0) |
                                       (set == 1 ? RN_FUSE_SET : set == 2 ? RN_BF16_GRAD : 0);
                        rn_bn_backward_sync(m, c, src[v], mode == 1 ? y[v] : NULL, g, st[v][0], st[v][1], gsrc[v],
                                            set == 2 ? (void *)dh[v] : dx[v], st[v][6], st[v][7], fl, NULL,
                                            mode == 2 ? &kept : NULL);
                    }
                    same &= !memcmp(st[0][6], st[1][6], c * 4) && !memcmp(st[0][7], st[1][7], c * 4);
                    same &= set == 2 ? !memcmp(dh[0], dh[1], nx * 2) : !memcmp(dx[0], dx[1], nx * 4);
                    for (int v = 0; v < 2; v++) free(st[v][6]), free(st[v][7]), free(dx[v]), free(dh[v]);
                }
        for (int v = 0; v < 2; v++) {
            for (int k = 0; k < 6; k++) free(st[v][k]);
            free(y[v]);
        }
    }
    report_bool(t, same,
                "bn train fwd (3 forms) and bwd (3 masks x 3 outputs) from bf16 x (and dy) equal them from fp32 %s",
                tag);
    for (int v = 0; v < 2; v++) {
        y[v] = falloc(nx);
        rn_bn_forward_eval_ex(m, c, src[v], g, be, eps, rm, rv, y[v], RN_FUSE_RELU | (v ? RN_BF16_ACT : 0));
    }
    report_bool(t, !memcmp(y[0], y[1], nx * 4), "bn eval fwd from bf16 x equals it from fp32 %s", tag);
    /* y written in bf16 (RN_BF16_X): the fp32 y rounded, training (with the
    ** ReLU, from a bf16 x) and eval */
    uint16_t *yh = malloc(nx * sizeof(uint16_t));
    float *mu = falloc(c), *is = falloc(c);
    int rounded = 1;
    for (int ev = 0; ev < 2; ev++) {
        const int fl = RN_FUSE_RELU | RN_BF16_ACT;
        if (ev) {
            rn_bn_forward_eval_ex(m, c, xh, g, be, eps, rm, rv, y[0], fl);
            rn_bn_forward_eval_ex(m, c, xh, g, be, eps, rm, rv, yh, fl | RN_BF16_X);
        } else {
            rn_bn_forward_train_sync(m, c, xh, g, be, eps, mom, NULL, NULL, mu, is, y[0], fl, NULL, NULL, NULL);
            rn_bn_forward_train_sync(m, c, xh, g, be, eps, mom, NULL, NULL, mu, is, yh, fl | RN_BF16_X, NULL, NULL,
                                     NULL);
        }
        for (size_t k = 0; k < nx; k++) rounded &= yh[k] == rn_bf16_from_f32(y[0][k]);
    }
    report_bool(t, rounded, "bn train and eval fwd writing y in bf16 round the fp32 y, bit for bit %s", tag);
    free(yh), free(mu), free(is);
    free(y[0]), free(y[1]), free(rm), free(rv);
    free(x), free(xf), free(g), free(be), free(skip), free(dy), free(dx0), free(xh), free(dyh), free(dyw);
}

/* Add + ReLU forward (in place on either operand), the in-place ReLU
** mask, overwriting ReLU backward and add backward with one operand
** skipped, against plain loops. Exact: the same float operations. */
static void test_elementwise_fused(tally *t, rng *r, size_t n) {
    float *a = falloc(n), *b = falloc(n), *ref = falloc(n), *y = falloc(n), *dy = falloc(n), *d0 = falloc(n);
    fill(r, a, n, -1, 1);
    fill(r, b, n, -1, 1);
    fill(r, dy, n, -1, 1);
    fill(r, d0, n, -1, 1);
    for (size_t i = 0; i < n; i++) ref[i] = a[i] + b[i] > 0 ? a[i] + b[i] : 0;
    rn_add_relu_forward(n, a, b, y);
    int ok = !memcmp(y, ref, n * sizeof(float));
    float *ai = fdup(a, n), *bi = fdup(b, n);
    rn_add_relu_forward(n, ai, b, ai);
    rn_add_relu_forward(n, a, bi, bi);
    ok = ok && !memcmp(ai, ref, n * sizeof(float)) && !memcmp(bi, ref, n * sizeof(float));
    report_bool(t, ok, "fused add+relu forward (and in place on a, on b) n=%zu", n);

    /* mask in place: g = y > 0 ? g : 0 */
    float *g = fdup(dy, n);
    rn_relu_backward_ex(n, y, g, g, RN_FUSE_SET);
    for (size_t i = 0; i < n; i++) ref[i] = y[i] > 0 ? dy[i] : 0;
    ok = !memcmp(g, ref, n * sizeof(float));
    float *dx = fdup(d0, n);
    rn_relu_backward_ex(n, y, dy, dx, 0);
    for (size_t i = 0; i < n; i++) ok = ok && dx[i] == d0[i] + ref[i];
    report_bool(t, ok, "relu bwd in-place mask (dx = dy masked) and dx += n=%zu", n);

    /* add backward with one operand skipped */
    memcpy(dx, d0, n * sizeof(float));
    rn_add_backward(n, dy, NULL, dx);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok = ok && dx[i] == d0[i] + dy[i];
    report_bool(t, ok, "add bwd db += dy with da skipped n=%zu", n);
    free(a), free(b), free(ref), free(y), free(dy), free(d0), free(ai), free(bi), free(g), free(dx);
}

/* BN folded into the convolution before it: conv with the folded weights
** and bias against the reference conv followed by the reference eval BN. */
static void test_bn_fold(tally *t, rng *r, int n, int h, int w, int ci, int co, int k, int stride, int pad, int bias) {
    rn_conv_shape s = make_shape(n, h, w, ci, co, k, stride, pad);
    size_t nx = (size_t)n * h * w * ci, ny = (size_t)n * s.oh * s.ow * co, rows = (size_t)k * k * ci;
    float *x = falloc(nx), *wt = falloc(rows * co), *b = falloc(co), *g = falloc(co), *be = falloc(co);
    float *rm = falloc(co), *rv = falloc(co), *yc = falloc(ny), *yr = falloc(ny), *yf = falloc(ny);
    float *wf = falloc(rows * co), *bf = falloc(co);
    fill(r, x, nx, -1, 1);
    fill(r, wt, rows * co, -1, 1);
    fill(r, b, co, -1, 1);
    fill(r, g, co, 0.5f, 1.5f);
    fill(r, be, co, -0.5f, 0.5f);
    fill(r, rm, co, -1, 1);
    fill(r, rv, co, 0.5f, 1.5f);
    rn_ref_conv_forward(&s, x, wt, bias ? b : NULL, yc);
    rn_ref_bn_forward_eval((size_t)n * s.oh * s.ow, co, yc, g, be, 1e-5f, rm, rv, yr);
    rn_bn_fold(rows, co, wt, bias ? b : NULL, g, be, 1e-5f, rm, rv, wf, bf);
    rn_ref_conv_forward(&s, x, wf, bf, yf);
    report(t, rel_err(yf, yr, ny), TOL_FAST, "bn folded into conv n=%d %dx%d ci=%d co=%d k=%d s=%d bias=%d", n, h, w,
           ci, co, k, stride, bias);
    free(x), free(wt), free(b), free(g), free(be), free(rm), free(rv), free(yc), free(yr), free(yf), free(wf), free(bf);
}

/* Max pooling against the plain scalar loops (early exit, conditional
** store), on data with many ties (values on a coarse grid), so that the
** "first maximum in (kh,kw) order" rule is exercised. */
static void test_maxpool_ref(tally *t, rng *r, int n, int h, int w, int c, int k, int stride, int pad) {
    rn_conv_shape s = make_shape(n, h, w, c, c, k, stride, pad);
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * s.oh * s.ow * c;
    float *x = falloc(nx), *y = falloc(ny), *yr = falloc(ny), *dy = falloc(ny), *dx = falloc(nx), *dxr = falloc(nx);
    for (size_t i = 0; i < nx; i++) x[i] = (float)(int)urand(r, -3, 3);
    fill(r, dy, ny, -1, 1);
    fill(r, dx, nx, -1, 1);
    memcpy(dxr, dx, nx * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int oh = 0; oh < s.oh; oh++)
            for (int ow = 0; ow < s.ow; ow++)
                for (int ch = 0; ch < c; ch++) {
                    size_t o = (((size_t)b * s.oh + oh) * s.ow + ow) * c + ch, arg = 0;
                    float best = -INFINITY;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++) {
                            int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                            size_t i = (((size_t)b * h + ih) * w + iw) * c + ch;
                            if (x[i] > best) best = x[i], arg = i;
                        }
                    yr[o] = best;
                    dxr[arg] += dy[o];
                }
    rn_maxpool_forward(&s, x, y);
    rn_maxpool_backward(&s, x, y, dy, dx);
    report_bool(t, !memcmp(y, yr, ny * sizeof(float)), "maxpool fwd = scalar loops (ties) n=%d %dx%d c=%d k=%d s=%d p=%d",
                n, h, w, c, k, stride, pad);
    report(t, rel_err(dx, dxr, nx), 1e-6, "maxpool bwd = scalar loops, first max wins n=%d %dx%d c=%d k=%d s=%d", n, h,
           w, c, k, stride);
    /* through picks: the same y, and dx bit for bit, added (onto the same
    ** start) and set (the scatter onto zeros) */
    float *y2 = falloc(ny), *dx2 = falloc(nx), *dxs = falloc(nx), *dx0 = falloc(nx);
    unsigned char *pick = malloc(ny);
    memcpy(dx2, dxr, nx * sizeof(float)), memset(dx0, 0, nx * sizeof(float));
    fill(r, dxs, nx, -1, 1); /* garbage: set must not read it */
    memcpy(dx, dx2, nx * sizeof(float));
    rn_maxpool_backward(&s, x, y, dy, dx);
    rn_maxpool_backward(&s, x, y, dy, dx0);
    rn_maxpool_forward_pick(&s, x, y2, pick);
    rn_maxpool_backward_pick(&s, pick, dy, dx2, 0);
    rn_maxpool_backward_pick(&s, pick, dy, dxs, 1);
    report_bool(t,
                !memcmp(y, y2, ny * sizeof(float)) && !memcmp(dx, dx2, nx * sizeof(float)) &&
                    !memcmp(dx0, dxs, nx * sizeof(float)),
                "maxpool through picks: y, dx added and set bit for bit n=%d %dx%d c=%d k=%d s=%d p=%d", n, h, w, c, k,
                stride, pad);
    free(x), free(y), free(yr), free(dy), free(dx), free(dxr), free(y2), free(dx2), free(dxs), free(dx0), free(pick);
}

/* Max pooling through picks on -inf, NaN and signed zeros (windows whose
** maximum stays -inf, ties between -0 and +0): y and dx bit for bit those
** of rn_maxpool_forward and rn_maxpool_backward, which define the rule. */
static void test_maxpool_picks_special(tally *t, rng *r) {
    rn_conv_shape s = make_shape(2, 9, 8, 19, 19, 3, 2, 1);
    const float vals[6] = {-INFINITY, NAN, -0.0f, 0.0f, 1.0f, -1.0f};
    size_t nx = (size_t)2 * 9 * 8 * 19, ny = (size_t)2 * s.oh * s.ow * 19;
    float *x = falloc(nx), *y = falloc(ny), *y2 = falloc(ny), *dy = falloc(ny), *dx = falloc(nx), *dx2 = falloc(nx);
    unsigned char *pick = malloc(ny);
    for (size_t i = 0; i < nx; i++) { /* mostly -inf and NaN, so that whole windows hold nothing larger */
        const int u = (int)urand(r, 0, 9.99f);
        x[i] = vals[u < 4 ? u % 2 : u < 6 ? 2 + u % 2 : 4 + u % 2];
    }
    for (int ch = 0; ch < 5; ch++) /* and some surely: the corner window (0,0) of five channels */
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) x[((size_t)i * 8 + j) * 19 + ch] = -INFINITY;
    fill(r, dy, ny, -1, 1);
    memset(dx, 0, nx * sizeof(float));
    rn_maxpool_forward(&s, x, y);
    rn_maxpool_backward(&s, x, y, dy, dx);
    rn_maxpool_forward_pick(&s, x, y2, pick);
    rn_maxpool_backward_pick(&s, pick, dy, dx2, 1);
    size_t inf = 0;
    for (size_t i = 0; i < ny; i++) inf += y[i] == -INFINITY;
    report_bool(t, inf > 0 && !memcmp(y, y2, ny * 4) && !memcmp(dx, dx2, nx * 4),
                "maxpool through picks on -inf, NaN and signed zeros: y, dx bit for bit (%zu windows at -inf)", inf);
    free(x), free(y), free(y2), free(dy), free(dx), free(dx2), free(pick);
}

/* Runs every test and prints the summary line. */
int main(void) {
    tally t = {0, 0};
    rng r = {12345};
    printf("error measure: max|a-b| / (max|b| + 1e-6); fast-vs-reference tol %.0e, "
           "finite-difference tol %.0e (step %.0e, double-precision forward), %d threads\n",
           TOL_FAST, TOL_FD, FD_STEP, omp_get_max_threads());
    printf("conv micro-kernels: %s (RN_CPU=generic|avx2 selects a lower level)\n", rn_cpu_dispatch()->name);

    /* a) fast conv: n, h, w, ci, co, k, stride, pad */
    static const int conv_shapes[][8] = {
        {1, 1, 1, 1, 1, 1, 1, 0},  {3, 1, 1, 33, 17, 1, 1, 0}, {3, 1, 1, 5, 3, 3, 1, 1},   {1, 1, 1, 3, 5, 7, 1, 3},
        {3, 7, 5, 3, 5, 3, 1, 1},  {1, 7, 5, 17, 33, 3, 2, 1}, {3, 7, 5, 5, 17, 7, 2, 3},  {1, 7, 5, 33, 3, 1, 2, 0},
        {3, 9, 9, 3, 17, 7, 2, 3}, {1, 5, 7, 17, 1, 3, 1, 0},  {3, 7, 5, 1, 3, 7, 1, 3},   {3, 7, 5, 5, 5, 3, 2, 0},
        {1, 7, 5, 3, 33, 1, 1, 0}, {2, 14, 14, 64, 64, 3, 1, 1}, {2, 9, 9, 32, 64, 1, 2, 0}, {2, 15, 13, 16, 32, 3, 2, 1},
        /* conv.c paths: row mode with phases and bands; 1x1 stride 2 with a
        ** large dw; 7x7 stem on 3 channels; chunked gathers (kdim 1440);
        ** k=5 with 80 = 64+16 channels; kdim 1800 with scattered phases;
        ** rows too wide for the row-mode buffer; tails of 17, 33, 49, 65 */
        {1, 25, 27, 40, 24, 3, 2, 1}, {2, 9, 11, 96, 100, 1, 2, 0}, {1, 13, 30, 3, 64, 7, 2, 3},
        {2, 6, 7, 160, 48, 3, 1, 1},  {1, 12, 40, 8, 80, 5, 1, 2},   {3, 4, 4, 200, 72, 3, 2, 1},
        {1, 3, 400, 64, 16, 3, 1, 1}, {2, 5, 26, 49, 65, 3, 1, 1},   {1, 11, 29, 33, 17, 3, 2, 1},
        /* resnet20's stages: whole-row tiles 28x1 and 14x2 with the row
        ** stride a constant (16, 32); 15-row tiles with a variable one (24) */
        {2, 28, 28, 16, 16, 3, 1, 1}, {2, 14, 14, 32, 32, 3, 1, 1}, {1, 9, 30, 24, 16, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0]; i++) {
        const int *c = conv_shapes[i];
        test_conv_fast(&t, &r, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    }
    test_conv_threads(&t, &r);
    /* Every conv path of conv.c: row mode with bands and phases (wide
    ** rows), gathered chunks (kdim > 512), large dw split by rows in row and
    ** gather mode, small dw split by pixels, tile tails of every width. */
    test_conv_thread_counts(&t, &r, 3, 16, 16, 64, 384, 3, 2, 1);
    test_conv_thread_counts(&t, &r, 2, 9, 11, 200, 1000, 1, 2, 0);
    test_conv_thread_counts(&t, &r, 2, 9, 11, 96, 100, 1, 2, 0);
    test_conv_thread_counts(&t, &r, 4, 15, 13, 16, 16, 3, 1, 1);
    test_conv_thread_counts(&t, &r, 2, 6, 7, 160, 48, 3, 1, 1);
    test_conv_forward_ws(&t, &r);

    /* a) bf16 conv: every path of conv.c again, plus odd channel counts
    ** (fp32 forward or backward-data) and odd pixel counts (an odd last
    ** pixel pair in backward-weights) */
    static const int bf16_shapes[][8] = {
        {2, 14, 14, 64, 64, 3, 1, 1}, {2, 9, 11, 96, 100, 1, 2, 0}, {1, 13, 30, 3, 64, 7, 2, 3},
        {2, 6, 7, 160, 48, 3, 1, 1},  {1, 12, 40, 8, 80, 5, 1, 2},  {3, 4, 4, 200, 72, 3, 2, 1},
        {1, 3, 400, 64, 16, 3, 1, 1}, {2, 5, 26, 48, 66, 3, 1, 1},  {1, 11, 29, 34, 17, 3, 2, 1},
        {3, 7, 5, 17, 33, 3, 2, 1},   {1, 7, 5, 1, 16, 3, 1, 1},    {3, 16, 16, 32, 64, 3, 2, 1},
        {2, 8, 8, 256, 512, 1, 1, 0}, {1, 5, 5, 2, 2, 1, 1, 0},     {2, 28, 28, 16, 16, 3, 1, 1},
        {2, 14, 14, 32, 32, 3, 1, 1}, {1, 9, 30, 24, 16, 3, 1, 1},
        /* dy packed in shared blocks (conv.c weight_blocks, a dw of more
        ** than RN_CONV_SMALL_DW floats): two blocks of 1536 and 145 pixels;
        ** then a block per 256-pixel tile (Co > 2048), three of them; both
        ** end on an odd pixel. The same with a dw split by pixels. */
        {1, 41, 41, 656, 300, 1, 1, 0}, {1, 9, 61, 96, 2050, 1, 1, 0}, {1, 41, 41, 96, 300, 1, 1, 0},
    };
    printf("bf16 convolutions: %s\n", rn_cpu_has_bf16() ? "AVX512_BF16" : "not available, fp32 fallback checked");
    test_bf16_convert(&t, &r);
    for (size_t i = 0; i < sizeof bf16_shapes / sizeof bf16_shapes[0]; i++) {
        const int *c = bf16_shapes[i];
        test_conv_bf16(&t, &r, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    }

    /* a) Winograd bf16: n, h, w, ci, co, pad (partial tiles at odd sizes,
    ** channel tails, padding 0 and 2, a 64-channel block and a part; all
    ** but the last with few enough tiles per channel for a Winograd
    ** weight gradient, one with an odd tile count, input-channel blocks of
    ** 48 and a part; the last with a direct one) */
    static const int wino_shapes[][6] = {
        {2, 14, 14, 64, 64, 1}, {4, 9, 7, 64, 96, 1}, {4, 10, 12, 80, 66, 0}, {3, 8, 8, 66, 128, 2}, {1, 17, 19, 128, 64, 1},
        {16, 4, 4, 256, 200, 1}, {3, 9, 9, 112, 130, 1}, {2, 40, 40, 64, 64, 1},
    };
    test_winograd_applies(&t);
    for (size_t i = 0; i < sizeof wino_shapes / sizeof wino_shapes[0]; i++) {
        const int *c = wino_shapes[i];
        test_conv_winograd(&t, &r, c[0], c[1], c[2], c[3], c[4], c[5]);
    }

    /* a) fast batch norm: n, h, w, c, mean offset */
    test_bn_fast(&t, &r, 1, 1, 1, 1, 0.0f);
    test_bn_fast(&t, &r, 3, 1, 1, 33, 0.0f);
    test_bn_fast(&t, &r, 3, 7, 5, 17, 0.0f);
    test_bn_fast(&t, &r, 1, 7, 5, 5, 0.0f);
    test_bn_fast(&t, &r, 3, 7, 5, 3, 0.0f);
    test_bn_fast(&t, &r, 2, 14, 14, 64, 0.0f);
    test_bn_fast(&t, &r, 3, 7, 5, 17, 100.0f);
    test_bn_fast(&t, &r, 1, 40, 25, 1, -30.0f);

    /* b) reference backwards against finite differences */
    test_conv_fd(&t, &r, 3, 7, 5, 3, 5, 3, 1, 1);
    test_conv_fd(&t, &r, 1, 7, 5, 5, 3, 3, 2, 1);
    test_conv_fd(&t, &r, 1, 7, 5, 3, 5, 7, 2, 3);
    test_conv_fd(&t, &r, 3, 7, 5, 5, 3, 1, 2, 0);
    test_conv_fd(&t, &r, 3, 1, 1, 17, 3, 3, 1, 1);
    test_bn_fd(&t, &r, 3, 7, 5, 5);
    test_bn_fd(&t, &r, 3, 1, 1, 3);
    test_bn_fd(&t, &r, 1, 5, 3, 17);
    test_elementwise_fd(&t, &r);
    test_maxpool_fd(&t, &r, 3, 7, 5, 3, 3, 2, 1);
    test_maxpool_fd(&t, &r, 1, 5, 5, 5, 2, 2, 0);
    test_gap_fd(&t, &r, 3, 35, 5);
    test_gap_fd(&t, &r, 1, 1, 17);
    test_padskip_fd(&t, &r, 3, 7, 5, 3, 7, 2);
    test_padskip_fd(&t, &r, 1, 8, 8, 5, 10, 2);
    test_fc_fd(&t, &r, 3, 17, 5);
    test_fc_fd(&t, &r, 1, 33, 1);
    test_fc_bf16(&t, &r, 3, 17, 5);
    test_fc_bf16(&t, &r, 1, 512, 10);
    test_fc_bf16(&t, &r, 7, 300, 200);
    test_fc_bf16(&t, &r, 32, 2048, 1000);
    test_xent_fd(&t, &r, 3, 5, 0.0f);
    test_xent_fd(&t, &r, 3, 5, 0.1f);
    test_xent_fd(&t, &r, 4, 17, 0.1f);

    /* d) fused kernels against the unfused reference composition */
    test_bn_fused(&t, &r, 1, 1, 5, 1, 0.0f);
    test_bn_fused(&t, &r, 3, 7, 5, 17, 0.0f);
    test_bn_fused(&t, &r, 2, 14, 14, 64, 0.0f);
    test_bn_fused(&t, &r, 3, 7, 5, 33, 50.0f);
    test_bn_bf16_act(&t, &r, 1, 1, 5, 1, 0.0f);
    test_bn_bf16_act(&t, &r, 3, 7, 5, 17, 0.0f);
    test_bn_bf16_act(&t, &r, 2, 14, 14, 64, 30.0f);
    test_bn_sync(&t, &r, 96, 32, 17, 0.0f);
    test_bn_sync(&t, &r, 391, 200, 64, 30.0f); /* ranks with other means: the shifts differ */
    test_bn_sync(&t, &r, 40, 0, 5, 1.0f);      /* rank 0 holds no rows */
    test_elementwise_fused(&t, &r, 1);
    test_elementwise_fused(&t, &r, 1000);
    test_elementwise_fused(&t, &r, 100003);
    test_bn_fold(&t, &r, 2, 7, 5, 3, 17, 3, 1, 1, 0);
    test_bn_fold(&t, &r, 1, 9, 9, 16, 5, 1, 2, 0, 1);
    test_bn_fold(&t, &r, 2, 9, 7, 3, 8, 7, 2, 3, 0);
    test_maxpool_ref(&t, &r, 3, 7, 5, 3, 3, 2, 1);
    test_maxpool_ref(&t, &r, 2, 9, 9, 33, 3, 2, 1);
    test_maxpool_ref(&t, &r, 1, 5, 5, 17, 2, 2, 0);
    test_maxpool_ref(&t, &r, 2, 4, 6, 64, 3, 1, 1);
    test_maxpool_ref(&t, &r, 1, 11, 10, 16, 4, 2, 1);
    test_maxpool_ref(&t, &r, 2, 13, 12, 5, 7, 3, 2);
    test_maxpool_picks_special(&t, &r);

    /* c) determinism */
    test_determinism(&t, &r, 4, 15, 13, 33, 17, 3, 1, 1);
    test_determinism(&t, &r, 3, 16, 16, 32, 64, 3, 2, 1);

    printf("%d passed, %d failed\n", t.passed, t.failed);
    return t.failed ? 1 : 0;
}
