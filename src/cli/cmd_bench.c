/*
** resnet bench: how fast is a training step or an inference pass, and how
** close is that to what the machine can do; and whether the data loader
** keeps up with the training step.
**
**   resnet bench --arch A --bs B --size S --mode train|infer [--json] ...
**       builds the model with a seed, makes a synthetic batch and labels,
**       runs W warm-up steps and N timed ones (train: rn_model_train_step
**       then rn_sgd_step, as a training loop does; infer: rn_model_forward
**       in eval mode) and reports images/s, ms/step, GFLOP/s from the
**       model's own MAC count, the fraction of the measured peak and the
**       peak RSS.
**   resnet bench --peak [--threads T]
**       the fp32 peak of the machine: independent chains of AVX-512 (or
**       AVX2) fused multiply-adds on every thread.
**   resnet bench --loader SPEC [--size S] [--bs B] [--workers W]
**                [--batches N] [--augment PRESET]
**       the training data loader alone, no model: opens the training
**       split of SPEC (train's --data), builds the augmentation of its kind
**       (or PRESET) as `resnet train` does and reports the images/s of
**       decode + augment + batching over the first N batches of epoch 0
**       on W loader threads (rn_loader_bench), and the peak RSS.
**
** bench/compare runs this side by side with PyTorch; BENCHMARKS.md has the
** figures. Exit codes: 0 success, 1 failure while running, 2 bad usage.
*/
#include "cli/commands.h"
#include "cli/args.h"
#include "cli/session.h"
#include "kernels/cpu.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* What one timed run measured. */
typedef struct {
    double med_s, mean_s; /* seconds per step: median and mean of the timed steps */
    double loss;          /* last training loss (NAN at inference) */
} bench_times;

/* The options of one benchmark run, after checking. */
typedef struct {
    int n, h, w, train, steps, warmup, threads, json;
    rn_precision prec; /* --dtype */
    long seed;
    double peak; /* GFLOP/s to compare with; 0 = measure it */
} bench_cfg;

/* Whether c multiplies in bf16 (--dtype bf16 or bf16-direct): the peak is
** then the bf16 dot product's. */
static int cfg_bf16(const bench_cfg *c) { return c->prec != RN_PREC_FP32; }

/* Seconds on the monotonic clock, for timing steps. */
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Peak resident set size of this process so far, in MiB (Linux: KiB units). */
static double peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0.0;
    return (double)ru.ru_maxrss / 1024.0;
}

/* Orders doubles for qsort, to take medians. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of t[0..n-1] (sorts t in place). */
static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* ---- the peak ------------------------------------------------------------ */

#define PEAK_BF16 1 /* "width" of the bf16 dot-product loop */

/* iters x 16 chains of 16-lane FMAs; returns a sum so nothing is optimized
** away. 16 chains cover 2 FMA pipes x 4 cycles of latency with room to spare. */
__attribute__((target("avx512f,fma"))) static float fma_chains_avx512(long iters) {
    __m512 a = _mm512_set1_ps(0.9999999f), b = _mm512_set1_ps(1e-7f);
    __m512 c[16];
    for (int j = 0; j < 16; j++) c[j] = _mm512_set1_ps(0.01f * (float)j);
    for (long i = 0; i < iters; i++) {
        c[0] = _mm512_fmadd_ps(c[0], a, b), c[1] = _mm512_fmadd_ps(c[1], a, b);
        c[2] = _mm512_fmadd_ps(c[2], a, b), c[3] = _mm512_fmadd_ps(c[3], a, b);
        c[4] = _mm512_fmadd_ps(c[4], a, b), c[5] = _mm512_fmadd_ps(c[5], a, b);
        c[6] = _mm512_fmadd_ps(c[6], a, b), c[7] = _mm512_fmadd_ps(c[7], a, b);
        c[8] = _mm512_fmadd_ps(c[8], a, b), c[9] = _mm512_fmadd_ps(c[9], a, b);
        c[10] = _mm512_fmadd_ps(c[10], a, b), c[11] = _mm512_fmadd_ps(c[11], a, b);
        c[12] = _mm512_fmadd_ps(c[12], a, b), c[13] = _mm512_fmadd_ps(c[13], a, b);
        c[14] = _mm512_fmadd_ps(c[14], a, b), c[15] = _mm512_fmadd_ps(c[15], a, b);
    }
    for (int j = 1; j < 16; j++) c[0] = _mm512_add_ps(c[0], c[j]);
    return _mm512_reduce_add_ps(c[0]);
}

/* The AVX2 twin: iters x 12 chains of 8-lane FMAs (16 ymm registers). */
__attribute__((target("avx2,fma"))) static float fma_chains_avx2(long iters) {
    __m256 a = _mm256_set1_ps(0.9999999f), b = _mm256_set1_ps(1e-7f);
    __m256 c[12];
    for (int j = 0; j < 12; j++) c[j] = _mm256_set1_ps(0.01f * (float)j);
    for (long i = 0; i < iters; i++) {
        c[0] = _mm256_fmadd_ps(c[0], a, b), c[1] = _mm256_fmadd_ps(c[1], a, b);
        c[2] = _mm256_fmadd_ps(c[2], a, b), c[3] = _mm256_fmadd_ps(c[3], a, b);
        c[4] = _mm256_fmadd_ps(c[4], a, b), c[5] = _mm256_fmadd_ps(c[5], a, b);
        c[6] = _mm256_fmadd_ps(c[6], a, b), c[7] = _mm256_fmadd_ps(c[7], a, b);
        c[8] = _mm256_fmadd_ps(c[8], a, b), c[9] = _mm256_fmadd_ps(c[9], a, b);
        c[10] = _mm256_fmadd_ps(c[10], a, b), c[11] = _mm256_fmadd_ps(c[11], a, b);
    }
    float s[8];
    for (int j = 1; j < 12; j++) c[0] = _mm256_add_ps(c[0], c[j]);
    _mm256_storeu_ps(s, c[0]);
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

/* The bf16 twin: iters x 16 chains of vdpbf16ps, 32 multiply-adds each. */
__attribute__((target("avx512f,avx512bf16"))) static float dp_chains_bf16(long iters) {
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80), b = (__m512bh)_mm512_set1_epi32(0x33D633D6); /* 1, 1e-7 */
    __m512 c[16];
    for (int j = 0; j < 16; j++) c[j] = _mm512_set1_ps(0.01f * (float)j);
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 16; j++) c[j] = _mm512_dpbf16_ps(c[j], a, b);
    for (int j = 1; j < 16; j++) c[0] = _mm512_add_ps(c[0], c[j]);
    return _mm512_reduce_add_ps(c[0]);
}

/* Which FMA loop this CPU can run: 512, 256 or 0 (none: no peak). */
static int simd_width(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return 512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 256;
    return 0;
}

/* Runs the FMA loop on `threads` threads at once; returns the wall time.
** *sink receives the results so the loops are not optimized away. */
static double fma_round(int width, long iters, int threads, float *sink) {
    float s = 0.0f;
    double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : s)
    s += width == PEAK_BF16 ? dp_chains_bf16(iters) : width == 512 ? fma_chains_avx512(iters) : fma_chains_avx2(iters);
    double t = now_s() - t0;
    *sink += s;
    return t;
}

/* Measures the peak in GFLOP/s on `threads` threads, fp32 or (bf16, on a
** CPU with AVX512_BF16) bf16 dot products: sizes the loop to about 0.1 s,
** then keeps the best of `reps` rounds (the least disturbed by other
** processes). Returns 0 when the CPU has no such loop. */
static double measure_peak(int threads, int reps, int bf16, int *width_out) {
    int width = bf16 ? (rn_cpu_has_bf16() ? PEAK_BF16 : 0) : simd_width();
    *width_out = width;
    if (!width) return 0.0;
    float sink = 0.0f;
    long iters = 1 << 16;
    while (fma_round(width, iters, threads, &sink) < 0.05 && iters < (1L << 40)) iters *= 2;
    const int macs = width == PEAK_BF16 ? 16 * 32 : width == 512 ? 16 * 16 : 12 * 8; /* per iteration */
    double flops = (double)iters * threads * macs * 2.0, best = 0.0;
    for (int r = 0; r < reps; r++) {
        double g = flops / fma_round(width, iters, threads, &sink) * 1e-9;
        if (g > best) best = g;
    }
    return isfinite(sink) ? best : 0.0;
}

/* The name of an FMA loop width, for reports. */
static const char *isa_name(int width) {
    return width == PEAK_BF16 ? "avx512_bf16" : width == 512 ? "avx512" : width == 256 ? "avx2" : "none";
}

/* resnet bench --peak: prints the measured peak. */
static int run_peak(int threads, int json, int bf16) {
    int width;
    double g = measure_peak(threads, 7, bf16, &width);
    const char *isa = isa_name(width), *dt = bf16 ? "bf16" : "fp32";
    if (json)
        printf("{\"peak_gflops\": %.1f, \"threads\": %d, \"isa\": \"%s\", \"dtype\": \"%s\"}\n", g, threads, isa, dt);
    else if (width)
        printf("peak: %.1f GFLOP/s %s on %d threads (%s loop)\n", g, dt, threads, isa);
    else
        printf("peak: unknown (this CPU has no %s loop: %s)\n", dt, bf16 ? "no AVX512_BF16" : "neither AVX-512 nor AVX2 with FMA");
    return 0;
}

/* ---- model steps ---------------------------------------------------------- */

/* Fills x (len floats) with seeded uniform [-1, 1) values and labels (n)
** with seeded classes, the synthetic batch every step reuses. */
static void synth_batch(float *x, size_t len, int *labels, int n, int classes, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 88172645463325252ull;
    for (size_t i = 0; i < len; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((s >> 40) * (2.0 / 16777216.0) - 1.0);
    }
    for (int i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        labels[i] = (int)((s >> 33) % (uint64_t)classes);
    }
}

/* One step as a training loop does it (forward, loss, backward, SGD with
** momentum 0.9), or one eval-mode forward pass. */
static rn_status one_step(rn_model *m, rn_sgd *opt, const bench_cfg *c, const float *x, const int *labels,
                          float *logits, double *loss, rn_error *err) {
    if (!c->train) return rn_model_forward(m, x, c->n, c->h, c->w, 0, logits, err);
    static const rn_sgd_config sgd = {0.01f, 0.9f, 5e-4f, 0};
    rn_status st = rn_model_train_step(m, x, labels, c->n, c->h, c->w, 0.0f, logits, loss, err);
    if (!st) rn_sgd_step(opt, &sgd, rn_model_params(m), rn_model_grads(m), rn_model_param_count(m));
    return st;
}

/* Runs the warm-up and timed steps, filling *t; step times go to times[]. */
static rn_status time_steps(rn_model *m, rn_sgd *opt, const bench_cfg *c, const float *x, const int *labels,
                            float *logits, double *times, bench_times *t, rn_error *err) {
    double loss = NAN, total = 0.0;
    for (int i = 0; i < c->warmup + c->steps; i++) {
        double t0 = now_s();
        rn_status st = one_step(m, opt, c, x, labels, logits, &loss, err);
        if (st) return st;
        if (i >= c->warmup) times[i - c->warmup] = now_s() - t0, total += times[i - c->warmup];
    }
    t->mean_s = total / c->steps;
    t->med_s = median(times, c->steps);
    t->loss = c->train ? loss : NAN;
    return RN_OK;
}

/* Allocates the batch, labels, logits, step times and (training) the
** optimizer, then times the steps. Returns 0, or 1 after printing an error. */
static int bench_model(rn_model *m, const bench_cfg *c, bench_times *t) {
    const rn_spec *sp = rn_model_spec(m);
    size_t len = (size_t)c->n * c->h * c->w * sp->in_channels;
    float *x = malloc(len * sizeof *x), *logits = malloc((size_t)c->n * sp->classes * sizeof *logits);
    int *labels = malloc((size_t)c->n * sizeof *labels);
    double *times = malloc((size_t)c->steps * sizeof *times);
    rn_sgd *opt = NULL;
    rn_error err;
    int rc = 1;
    if (!x || !logits || !labels || !times) rn_cli_error("bench: out of memory for a batch of %d", c->n);
    else if (c->train && rn_sgd_create(rn_model_param_count(m), &opt, &err)) rn_cli_error("%s", err.msg);
    else {
        synth_batch(x, len, labels, c->n, sp->classes, (uint64_t)c->seed);
        if (time_steps(m, opt, c, x, labels, logits, times, t, &err)) rn_cli_error("%s", err.msg);
        else rc = 0;
    }
    rn_sgd_free(opt);
    free(x), free(logits), free(labels), free(times);
    return rc;
}

/* Formats v with %.*f into buf, or "null" when v is not a number (JSON). */
static const char *json_num(char *buf, size_t cap, double v, int digits) {
    if (isfinite(v)) snprintf(buf, cap, "%.*f", digits, v);
    else snprintf(buf, cap, "null");
    return buf;
}

/* The figures derived from the step times, shared by both reports. */
typedef struct {
    double macs, flops, gflops, frac, ips, ips_mean, rss;
} bench_figures;

/* Derives images/s, GFLOP/s (2 FLOPs per MAC; training counts 3x forward:
** backward computes both data and weight gradients), the fraction of the
** peak and the peak RSS. */
static bench_figures figures(const rn_model *m, const bench_cfg *c, const bench_times *t) {
    bench_figures f;
    f.macs = (double)rn_model_macs(m, c->h, c->w);
    f.flops = 2.0 * f.macs * c->n * (c->train ? 3.0 : 1.0);
    f.gflops = f.flops / t->med_s * 1e-9;
    f.frac = c->peak > 0 ? f.gflops / c->peak : NAN;
    f.ips = c->n / t->med_s, f.ips_mean = c->n / t->mean_s;
    f.rss = peak_rss_mib();
    return f;
}

/* Prints the results as one JSON object line, for scripts. */
static void report_json(const rn_model *m, const bench_cfg *c, const bench_times *t, const char *isa) {
    const rn_spec *sp = rn_model_spec(m);
    bench_figures f = figures(m, c, t);
    char frac[32], loss[32];
    printf("{\"arch\": \"%s\", \"mode\": \"%s\", \"batch\": %d, \"height\": %d, \"width\": %d, "
           "\"in_channels\": %d, \"classes\": %d, \"threads\": %d, \"steps\": %d, \"warmup\": %d, "
           "\"images_per_s\": %.3f, \"images_per_s_mean\": %.3f, \"ms_per_step\": %.3f, "
           "\"ms_per_step_mean\": %.3f, \"gflops\": %.2f, \"peak_gflops\": %.1f, \"peak_fraction\": %s, "
           "\"macs_per_image\": %.0f, \"params\": %zu, \"peak_rss_mib\": %.1f, \"loss\": %s, \"isa\": \"%s\", "
           "\"dtype\": \"%s\"}\n",
           sp->arch, c->train ? "train" : "infer", c->n, c->h, c->w, sp->in_channels, sp->classes, c->threads,
           c->steps, c->warmup, f.ips, f.ips_mean, 1e3 * t->med_s, 1e3 * t->mean_s, f.gflops, c->peak,
           json_num(frac, sizeof frac, f.frac, 4), f.macs, rn_model_param_count(m), f.rss,
           json_num(loss, sizeof loss, t->loss, 5), isa, rn_session_dtype_name(c->prec));
}

/* Prints the results as text, one figure a line. */
static void report_text(const rn_model *m, const bench_cfg *c, const bench_times *t, const char *isa) {
    const rn_spec *sp = rn_model_spec(m);
    bench_figures f = figures(m, c, t);
    printf("%s %s %s, batch %d, %dx%dx%d, %d threads, %d steps after %d warm-up\n", sp->arch,
           c->train ? "train" : "infer", rn_session_dtype_name(c->prec), c->n, c->h, c->w, sp->in_channels, c->threads,
           c->steps, c->warmup);
    printf("  images/s   %.2f median, %.2f mean\n", f.ips, f.ips_mean);
    printf("  ms/step    %.2f median, %.2f mean\n", 1e3 * t->med_s, 1e3 * t->mean_s);
    printf("  GFLOP/s    %.1f (%.3f GFLOP/step: 2 x %.0f MACs/image%s)\n", f.gflops, f.flops * 1e-9, f.macs,
           c->train ? " x 3 for training" : "");
    if (c->peak > 0)
        printf("  peak       %.1f GFLOP/s %s (%s): %.1f%% of it\n", c->peak, cfg_bf16(c) ? "bf16" : "fp32", isa,
               100.0 * f.frac);
    printf("  peak RSS   %.1f MiB\n", f.rss);
    if (c->train) printf("  loss       %.5f (last step)\n", t->loss);
}

/* ---- the data loader ------------------------------------------------------ */

/* What resnet bench --loader measured, for the reports. */
typedef struct {
    const char *spec, *preset;
    int h, w, c;
    size_t samples, batches; /* training samples; batches timed */
    rn_loader_config cfg;
    double ips, rss;
} loader_result;

/* Checks --augment, a preset name; says which names exist when it is not
** one (the check --preset gets in train, under this command's name). */
static int check_augment(const char *name) {
    rn_augment g;
    rn_error err;
    if (!name || !rn_augment_preset(name, 1, 1, 3, &g, &err)) return 0;
    rn_cli_error("--augment: %s", err.msg);
    return -1;
}

/* Builds the loader and times it; fills *r. Returns 0, or 1 after printing
** an error. The dataset statistics (normalization) are computed before the
** clock starts, as training computes them once. */
static int time_loader(const rn_data_args *d, const rn_dataset *train, long batches, uint64_t seed,
                       loader_result *r) {
    rn_augment aug;
    rn_error err;
    r->c = train->kind == RN_DS_MEMORY ? train->c : 3;
    r->samples = train->n;
    if (rn_session_size(d, &r->h, &r->w) || rn_session_augment(d, train, r->h, r->w, r->c, &aug) ||
        rn_session_loader_config(train, d, 1, seed, &r->cfg))
        return 1;
    size_t per_epoch = (train->n + (size_t)r->cfg.batch - 1) / (size_t)r->cfg.batch;
    r->batches = (size_t)batches < per_epoch ? (size_t)batches : per_epoch;
    r->ips = rn_loader_bench(train, &aug, &r->cfg, (size_t)batches, &err);
    r->rss = peak_rss_mib();
    if (r->ips >= 0) return 0;
    rn_cli_error("%s", err.msg);
    return 1;
}

/* Prints s as a JSON string (quotes and backslashes escaped, control
** characters dropped): the spec is a path and may hold either. */
static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++)
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s >= 0x20) putchar(*s);
    putchar('"');
}

/* Prints the loader's figures as one JSON object line, for scripts. */
static void report_loader_json(const loader_result *r) {
    printf("{\"spec\": ");
    json_str(r->spec);
    printf(", \"augment\": ");
    json_str(r->preset);
    printf(", \"batch\": %d, \"height\": %d, \"width\": %d, \"channels\": %d, \"workers\": %d, "
           "\"batches\": %zu, \"samples\": %zu, \"images_per_s\": %.3f, \"peak_rss_mib\": %.1f}\n",
           r->cfg.batch, r->h, r->w, r->c, r->cfg.workers, r->batches, r->samples, r->ips, r->rss);
}

/* Prints the loader's figures as text. */
static void report_loader_text(const loader_result *r) {
    printf("loader %s (%zu training images), augment %s, batch %d, %dx%dx%d, %d worker%s, %zu batches\n",
           r->spec, r->samples, r->preset, r->cfg.batch, r->h, r->w, r->c, r->cfg.workers,
           r->cfg.workers == 1 ? "" : "s", r->batches);
    printf("  images/s   %.2f (decode + augment + batching, from the start of the epoch)\n", r->ips);
    printf("  peak RSS   %.1f MiB\n", r->rss);
}

/* Usage text of resnet bench. */
static void usage(void) {
    printf("usage: resnet bench [--mode train|infer] [--arch NAME | custom options] [--bs B] [--size H[xW]]\n"
           "                    [--threads T] [--steps N] [--warmup W] [--seed S] [--peak-gflops G]\n"
           "                    [--dtype fp32|bf16|bf16-direct] [--json]\n"
           "       resnet bench --peak [--threads T] [--dtype fp32|bf16] [--json]\n"
           "       resnet bench --loader SPEC [--size H[xW]] [--bs B] [--workers W] [--batches N]\n"
           "                    [--augment PRESET] [--seed S] [--json]\n\n"
           "Times W warm-up and N measured steps on a synthetic batch: a training step\n"
           "(forward, cross-entropy, backward, SGD momentum 0.9) or an eval-mode forward\n"
           "pass. Prints images/s (median step and mean), ms/step, GFLOP/s from the\n"
           "model's MAC count (2 FLOPs per MAC, training 3x forward), the fraction of\n"
           "the measured fp32 peak and the peak RSS. --peak measures only the peak\n"
           "(AVX-512 or AVX2 FMA loop on every thread). --loader times the training\n"
           "data loader alone (no model): decode + augment + batching of the first N\n"
           "batches of epoch 0 of SPEC's training split, with the augmentation train\n"
           "would use, in images/s.\n\n" RN_ARCH_HELP
           "  --mode MODE          train or infer (default train)\n"
           "  --bs B               batch size (default 32)\n"
           "  --size H[xW]         input size (default 224, CIFAR nets 32)\n"
           "  --threads T          OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
           "  --steps N            timed steps (default 10)\n"
           "  --warmup W           untimed steps first (default 2)\n"
           "  --seed S             seed of the weights and the batch (default 0)\n"
           "  --peak-gflops G      peak to compare with instead of measuring it (0: none)\n"
           RN_DTYPE_HELP "                       (the peak is then the bf16 dot-product peak)\n"
           "  --json               one JSON object line instead of text\n"
           "  --peak               measure the peak only\n"
           "loader (--loader; --bs defaults to 128, --size by data kind as in train):\n"
           "  --loader SPEC        fashion-mnist | idx:DIR | cifar10:DIR | cifar100:DIR | DIR (as train's --data)\n"
           "  --workers W          loader threads (default: 0 for IDX/CIFAR, 1 for folders)\n"
           "  --batches N          batches timed (default 20; at most one epoch)\n"
           "  --augment PRESET     fashion-mnist|idx|cifar|imagenet|fastai|paper|none\n"
           "                       (default: the data kind's, imagenet for folders)\n");
}

/* Options of resnet bench as text, before conversion. */
typedef struct {
    rn_arch_args a;
    const char *bs, *size, *mode, *threads, *steps, *warmup, *seed, *peak_gflops, *dtype;
    const char *loader, *workers, *batches, *augment;
    int json, peak;
} bench_args;

/* Rejects the model's options with --loader and the loader's without it
** (and --peak with --loader): a run that ignored one would measure
** something other than what was asked. */
static int check_modes(const bench_args *b) {
    if (b->peak && b->loader) {
        rn_cli_error("bench: --peak and --loader measure different things: give one");
        return -1;
    }
    if (!b->loader && (b->workers || b->batches || b->augment)) {
        rn_cli_error("bench: --workers, --batches and --augment apply to --loader only");
        return -1;
    }
    static const rn_arch_args no_arch;
    if (b->loader &&
        (b->mode || b->steps || b->warmup || b->peak_gflops || b->dtype || memcmp(&b->a, &no_arch, sizeof no_arch))) {
        rn_cli_error("bench: --loader times no model: the model options (--arch, --mode, --steps, --dtype, ...) do not "
                     "apply");
        return -1;
    }
    return 0;
}

/* Converts and checks the options into *c (the size needs the model's stem,
** so it is set later). Returns 0, or -1 after printing an error. */
static int check_args(const bench_args *b, bench_cfg *c) {
    long n = 32, steps = 10, warmup = 2, threads = omp_get_max_threads();
    double peak = -1.0;
    if (rn_args_int("bs", b->bs, 1, 65536, &n) || rn_args_int("steps", b->steps, 1, 1000000, &steps) ||
        rn_args_int("warmup", b->warmup, 0, 1000000, &warmup) ||
        rn_args_int("threads", b->threads, 1, 4096, &threads) ||
        rn_args_int("seed", b->seed, 0, 0x7fffffffffffffffL, &c->seed) ||
        rn_args_float("peak-gflops", b->peak_gflops, 0.0, 1e9, &peak))
        return -1;
    if (b->mode && strcmp(b->mode, "train") && strcmp(b->mode, "infer")) {
        rn_cli_error("bench: --mode must be train or infer, not '%s'", b->mode);
        return -1;
    }
    if (check_modes(b)) return -1;
    rn_precision prec;
    if (rn_session_dtype("bench", b->dtype, &prec)) return -1;
    c->prec = prec;
    c->n = (int)n, c->steps = (int)steps, c->warmup = (int)warmup, c->threads = (int)threads;
    c->train = !b->mode || !strcmp(b->mode, "train");
    c->json = b->json, c->peak = peak;
    return 0;
}

/* Builds the model the options describe, initialized from the seed. */
static rn_model *bench_make_model(const bench_args *b, const bench_cfg *c) {
    rn_spec spec;
    rn_model *m;
    rn_error err;
    if (rn_arch_spec(&b->a, &spec)) return NULL;
    if (rn_model_create(&spec, &m, &err)) {
        rn_cli_error("%s", err.msg);
        return NULL;
    }
    rn_model_init(m, (uint64_t)c->seed, 0);
    return m;
}

/* resnet bench --loader: checks the loader options, opens the training
** split and times its loader. Returns the exit code. */
static int run_loader(const bench_args *b, const bench_cfg *c) {
    rn_data_args d = {.data = b->loader, .size = b->size, .bs = b->bs, .workers = b->workers, .preset = b->augment};
    long batches = 20;
    if (rn_args_int("batches", b->batches, 1, 1000000, &batches) || check_augment(b->augment) ||
        rn_session_check(&d))
        return 2;
    rn_dataset train;
    if (rn_session_open_data(b->loader, NULL, &train, NULL)) return 1;
    loader_result r = {.spec = b->loader, .preset = b->augment ? b->augment : rn_session_kind(b->loader)};
    int rc = time_loader(&d, &train, batches, (uint64_t)c->seed, &r);
    rn_dataset_free(&train);
    if (!rc && c->json) report_loader_json(&r);
    else if (!rc) report_loader_text(&r);
    return rc;
}

/* resnet bench --arch ...: builds the model, checks the size, measures the
** peak unless given, times the steps and reports. Returns the exit code. */
static int run_model(const bench_args *b, bench_cfg *c) {
    rn_model *m = bench_make_model(b, c);
    if (!m) return 2;
    if (rn_session_set_precision("bench", m, c->prec)) return rn_model_free(m), 1;
    c->h = c->w = rn_model_spec(m)->stem == RN_STEM_CIFAR ? 32 : 224;
    if (rn_args_size("size", b->size, &c->h, &c->w)) return rn_model_free(m), 2;
    if (!rn_model_macs(m, c->h, c->w)) {
        rn_cli_error("bench: --size %dx%d is too small for %s", c->h, c->w, rn_model_spec(m)->arch);
        return rn_model_free(m), 2;
    }
    int width = 0;
    if (c->peak < 0) c->peak = measure_peak(c->threads, 3, cfg_bf16(c), &width);
    else width = cfg_bf16(c) ? PEAK_BF16 : simd_width();
    const char *isa = isa_name(width);
    bench_times t;
    int rc = bench_model(m, c, &t);
    if (!rc && c->json) report_json(m, c, &t, isa);
    else if (!rc) report_text(m, c, &t, isa);
    rn_model_free(m);
    return rc;
}

/* resnet bench: see the top of this file. */
int rn_cmd_bench(int argc, char **argv) {
    bench_args b = {0};
    bench_cfg c = {0};
    rn_opt opts[] = {RN_ARCH_OPTS(b.a), {"bs", &b.bs, 0}, {"size", &b.size, 0}, {"mode", &b.mode, 0},
                     {"threads", &b.threads, 0}, {"steps", &b.steps, 0}, {"warmup", &b.warmup, 0},
                     {"seed", &b.seed, 0}, {"peak-gflops", &b.peak_gflops, 0}, {"dtype", &b.dtype, 0}, {"json", 0, &b.json},
                     {"peak", 0, &b.peak}, {"loader", &b.loader, 0}, {"workers", &b.workers, 0},
                     {"batches", &b.batches, 0}, {"augment", &b.augment, 0}, {0}};
    int r = rn_args_parse("bench", argc, argv, opts);
    if (r) {
        if (r > 0) usage();
        return r > 0 ? 0 : 2;
    }
    if (check_args(&b, &c)) return 2;
    omp_set_num_threads(c.threads);
    if (b.peak) return run_peak(c.threads, c.json, cfg_bf16(&c));
    return b.loader ? run_loader(&b, &c) : run_model(&b, &c);
}
