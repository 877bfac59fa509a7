/*
** Direct bf16 against Winograd F(2x2,3x3) bf16, one 3x3 stride-1 layer at
** a time (src/kernels/winograd.c), for BENCHMARKS.md:
**
**   build/bench_winograd [REPS]
**
** For the 3x3 stride-1 layers of resnet18 and resnet50 at 128 px, batch 32
** (and resnet20's 64-channel stage at 28 px, batch 128), times the forward,
** backward-data and weight-gradient passes with rn_conv_shape.winograd off
** and on, alternating the two every repetition so that a noisy neighbour
** slows both alike, and prints the medians (ms), the direct convolution's
** FLOPs over each time (GFLOP/s), the speed-up, and each form's relative
** error against the fp32 reference (max|a-b| / max|b| over y, dx, dw).
*/
#include "kernels/kernels.h"
#include "kernels/winograd.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One layer shape: batch, size, channels in and out, and what it is. */
typedef struct {
    int n, h, ci, co;
    const char *what;
} layer;

/* A float array of n values, exiting with a message if there is no memory. */
static float *alloc(size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_winograd: out of memory (%zu floats)\n", n);
        exit(1);
    }
    return p;
}

/* Uniform values in [-a, a) from a 64-bit LCG (reproducible). */
static void fill(float *p, size_t n, float a, unsigned long long *st) {
    for (size_t i = 0; i < n; i++) {
        *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = a * (2.0f * (float)(*st >> 40) / (float)(1ULL << 24) - 1.0f);
    }
}

/* max|a-b| / max|b|. */
static double rel(const float *a, const float *b, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return e / (m + 1e-30);
}

/* Median of n doubles (sorts them). */
static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Times the three passes of one layer in both forms and prints its rows. */
static void run_layer(const layer *L, int reps) {
    rn_conv_shape s = {L->n, L->h, L->h, L->ci, L->h, L->h, L->co, 3, 1, 1, 1, 0}, f = s;
    f.bf16 = 0;
    const size_t nx = (size_t)L->n * L->h * L->h * L->ci, ny = (size_t)L->n * L->h * L->h * L->co;
    const size_t nw = (size_t)9 * L->ci * L->co;
    unsigned long long st = 42;
    float *x = alloc(nx), *w = alloc(nw), *dy = alloc(ny);
    fill(x, nx, 1.0f, &st), fill(w, nw, 0.05f, &st), fill(dy, ny, 1.0f, &st);
    float *out[3][3]; /* [fp32, direct, winograd][y, dx, dw] */
    for (int k = 0; k < 3; k++)
        out[k][0] = alloc(ny), out[k][1] = alloc(nx), out[k][2] = alloc(nw);
    rn_conv_shape sw = s;
    sw.winograd = 1;
    float *ws = alloc(rn_conv_workspace(&sw, 0) > rn_conv_workspace(&f, 0) ? rn_conv_workspace(&sw, 0)
                                                                             : rn_conv_workspace(&f, 0));
    double t[2][3][64];
    for (int r = -1; r < reps; r++) /* r = -1: warm-up, and the fp32 reference */
        for (int k = 0; k < 3; k++) {
            if (r >= 0 && k == 0)
                continue;
            rn_conv_shape *sh = k == 0 ? &f : k == 1 ? &s : &sw;
            double t0 = omp_get_wtime();
            rn_conv_forward_ws(sh, x, w, NULL, out[k][0], ws);
            double t1 = omp_get_wtime();
            rn_conv_backward_ex(sh, x, w, dy, out[k][1], NULL, NULL, ws, RN_FUSE_SET);
            double t2 = omp_get_wtime();
            memset(out[k][2], 0, nw * sizeof(float));
            double t3 = omp_get_wtime();
            rn_conv_backward_ex(sh, x, w, dy, NULL, out[k][2], NULL, ws, 0);
            double t4 = omp_get_wtime();
            if (r >= 0)
                t[k - 1][0][r] = t1 - t0, t[k - 1][1][r] = t2 - t1, t[k - 1][2][r] = t4 - t3;
        }
    const double gflop = 2.0 * ny * 9 * L->ci * 1e-9;
    static const char *pass[3] = {"forward", "backward-data", "weight gradient"};
    const size_t cnt[3] = {ny, nx, nw};
    for (int p = 0; p < 3; p++) {
        const double a = median(t[0][p], reps), b = median(t[1][p], reps);
        printf("| %s | %s | %.3f | %.0f | %.3f | %.0f | %.2fx | %.1e | %.1e |\n", L->what, pass[p], 1e3 * a, gflop / a,
               1e3 * b, gflop / b, a / b, rel(out[1][p], out[0][p], cnt[p]), rel(out[2][p], out[0][p], cnt[p]));
    }
    fflush(stdout);
    for (int k = 0; k < 3; k++)
        free(out[k][0]), free(out[k][1]), free(out[k][2]);
    free(x), free(w), free(dy), free(ws);
}

/* Prints the table for REPS repetitions (default 9, at most 64). */
int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 9;
    if (reps < 1 || reps > 64) {
        fprintf(stderr, "usage: bench_winograd [REPS: 1-64]\n");
        return 2;
    }
    if (!rn_cpu_has_bf16()) {
        fprintf(stderr, "bench_winograd: this CPU has no AVX512_BF16 (%s kernels); nothing to compare\n",
                rn_cpu_dispatch()->name);
        return 1;
    }
    static const layer layers[] = {
        {32, 32, 64, 64, "resnet18/50 stage 1: 64 ch, 32x32, batch 32"},
        {32, 16, 128, 128, "stage 2: 128 ch, 16x16"},
        {32, 8, 256, 256, "stage 3: 256 ch, 8x8"},
        {32, 4, 512, 512, "stage 4: 512 ch, 4x4"},
        {128, 7, 64, 64, "resnet20 stage 3: 64 ch, 7x7, batch 128"},
    };
    printf("%d threads, medians of %d alternating repetitions; GFLOP/s = the direct convolution's FLOPs / time; "
           "error = max|a-b|/max|b| against fp32\n\n",
           omp_get_max_threads(), reps);
    printf("| layer | pass | direct ms | direct GFLOP/s | Winograd ms | Winograd GFLOP/s (effective) | speed-up | "
           "direct bf16 error | Winograd error |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        run_layer(&layers[i], reps);
    return 0;
}
