/*
** Optimizers over the flat parameter buffer (see optim.h for the rules).
**
** A step first works out each range's scalars in double exactly as
** torch.optim does in Python (lr/bc1, 1-b2, 1-lr*wd, ...) and rounds them to
** float as ATen does when it takes a Python scalar; then one OpenMP loop runs
** over fixed chunks of the ranges, each chunk an elementwise kernel, so the
** result does not depend on the thread count. The kernels repeat ATen's
** float32 operations in order, fusing a multiply and an add (fmaf) exactly
** where ATen's vectorized kernels do: add_(x, alpha=a) is vec::fmadd, and
** addcmul's self + s*t1*t2 is contracted to fma(s*t1, t2, self) by the
** compiler ATen is built with; mul, div, sqrt and addcdiv are not fused.
** With this the tests find params and state bit-identical to torch's. Each
** kernel has a portable loop (where fmaf is a libm call unless the target has
** FMA) and, on x86-64 CPUs with AVX2+FMA, the same operations in AVX2
** intrinsics, picked at run time by kernels/cpu.h's level (RN_CPU=generic
** forces the portable loops); IEEE arithmetic makes the two identical.
*/
#include "train/optim.h"
#include "core/error.h"
#include "kernels/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* fuse exactly where ATen fuses, nowhere else */
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(RN_NO_AVX2)
#include <immintrin.h>
#define HAVE_AVX2 1 /* AVX2+FMA kernels, chosen at run time */
#endif

enum {
    CHUNK = 1 << 14,      /* elements per work item (64 KB of each array) */
    PARALLEL_MIN = 1 << 16 /* below this many parameters one thread is faster */
};

/* One work item: a piece of one range. */
typedef struct {
    int range;
    size_t off, len;
} chunk;

/* A range's float scalars for the current step, rounded as ATen rounds them. */
typedef struct {
    int active;   /* 0: frozen this step, untouched */
    int momentum; /* SGD: momentum != 0 this step */
    int first;    /* SGD: no momentum buffer yet (torch: None) */
    int nesterov;
    float wd;     /* coupled weight decay (SGD, Adam); 0 where torch skips it (exact: g + 0*p = g) */
    float keep;   /* AdamW's 1 - lr*wd; 1 where torch skips it (exact) */
    float neg_lr, mu;                    /* SGD */
    float b1, c1, b2, c2, bc2s, eps, neg_step; /* Adam */
} coefs;

struct rn_optim {
    rn_optim_config cfg;
    int nranges, ngroups;
    rn_param_range *ranges;
    int64_t *steps;
    coefs *coef;     /* per range, refilled each step */
    chunk *chunks;
    int nchunks;
    size_t n;        /* state length: end of the last range */
    int nstate;
    float *state[2];
    const char *names[2];
};

/* Checks the config's kind and scalars. */
static rn_status check_config(const rn_optim_config *c, rn_error *err) {
    if (c->kind != RN_OPTIM_SGD && c->kind != RN_OPTIM_ADAM && c->kind != RN_OPTIM_ADAMW)
        return rn_fail(err, RN_ERR_ARG, "optimizer: unknown kind %d", (int)c->kind);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return rn_fail(err, RN_ERR_ARG, "optimizer: weight decay %g, expected a finite value >= 0", c->weight_decay);
    if (c->kind != RN_OPTIM_SGD && (!(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps >= 0)))
        return rn_fail(err, RN_ERR_ARG, "optimizer: beta2 %g and eps %g, expected beta2 in [0, 1) and eps >= 0",
                       c->beta2, c->eps);
    return RN_OK;
}

/* Orders range indices by offset (qsort with the ranges as context is not
** C11, so ranges are copied with their index). */
typedef struct {
    size_t off, len;
    int idx;
} span;

/* qsort comparison of spans by offset. */
static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Checks groups and that no two ranges overlap; sets *end to the end of the
** last range. */
static rn_status check_ranges(const rn_param_range *r, int nr, int ngroups, size_t *end, rn_error *err) {
    span *s = malloc(sizeof *s * (size_t)(nr ? nr : 1));
    rn_status st = RN_OK;
    if (!s) return rn_fail(err, RN_ERR_NOMEM, "optimizer: out of memory for %d ranges", nr);
    *end = 0;
    for (int i = 0; i < nr && !st; i++) {
        if (r[i].group < 0 || r[i].group >= ngroups)
            st = rn_fail(err, RN_ERR_ARG, "optimizer: range %d is in group %d, expected 0..%d", i, r[i].group,
                         ngroups - 1);
        else if (r[i].off + r[i].len < r[i].off)
            st = rn_fail(err, RN_ERR_ARG, "optimizer: range %d (offset %zu, length %zu) overflows", i, r[i].off,
                         r[i].len);
        s[i] = (span){r[i].off, r[i].len, i};
    }
    if (!st) qsort(s, (size_t)nr, sizeof *s, span_cmp);
    for (int i = 0; i < nr && !st; i++) {
        if (i > 0 && s[i].len && s[i].off < *end)
            st = rn_fail(err, RN_ERR_ARG, "optimizer: range %d (offset %zu) overlaps an earlier range ending at %zu",
                         s[i].idx, s[i].off, *end);
        if (s[i].off + s[i].len > *end) *end = s[i].off + s[i].len;
    }
    free(s);
    return st;
}

/* Splits the ranges into work items of at most CHUNK elements. */
static rn_status make_chunks(rn_optim *o, rn_error *err) {
    size_t count = 0;
    for (int r = 0; r < o->nranges; r++) count += (o->ranges[r].len + CHUNK - 1) / CHUNK;
    if (count > (size_t)INT32_MAX) return rn_fail(err, RN_ERR_ARG, "optimizer: too many parameters");
    o->chunks = malloc(sizeof *o->chunks * (count ? count : 1));
    if (!o->chunks) return rn_fail(err, RN_ERR_NOMEM, "optimizer: out of memory for %zu work items", count);
    for (int r = 0; r < o->nranges; r++)
        for (size_t at = 0; at < o->ranges[r].len; at += CHUNK) {
            size_t left = o->ranges[r].len - at;
            o->chunks[o->nchunks++] = (chunk){r, o->ranges[r].off + at, left < CHUNK ? left : CHUNK};
        }
    return RN_OK;
}

/* Creates the optimizer: copies the ranges, allocates zeroed state. */
rn_status rn_optim_create(const rn_optim_config *cfg, const rn_param_range *ranges, int nranges,
                          int ngroups, rn_optim **out, rn_error *err) {
    size_t end = 0;
    *out = NULL;
    if (ngroups < 1 || nranges < 0 || (nranges > 0 && !ranges))
        return rn_fail(err, RN_ERR_ARG, "optimizer: %d groups and %d ranges, expected at least one group",
                       ngroups, nranges);
    rn_status st = check_config(cfg, err);
    if (!st) st = check_ranges(ranges, nranges, ngroups, &end, err);
    if (st) return st;
    rn_optim *o = calloc(1, sizeof *o);
    if (!o) return rn_fail(err, RN_ERR_NOMEM, "optimizer: out of memory");
    size_t nr = (size_t)(nranges ? nranges : 1);
    o->cfg = *cfg;
    o->nranges = nranges;
    o->ngroups = ngroups;
    o->n = end;
    o->nstate = cfg->kind == RN_OPTIM_SGD ? 1 : 2;
    o->names[0] = cfg->kind == RN_OPTIM_SGD ? "momentum_buffer" : "exp_avg";
    o->names[1] = "exp_avg_sq";
    o->ranges = malloc(sizeof *o->ranges * nr);
    o->steps = calloc(nr, sizeof *o->steps);
    o->coef = calloc(nr, sizeof *o->coef);
    int ok = o->ranges && o->steps && o->coef;
    for (int i = 0; i < o->nstate && ok; i++) ok = (o->state[i] = calloc(end ? end : 1, sizeof(float))) != NULL;
    if (!ok) {
        rn_optim_free(o);
        return rn_fail(err, RN_ERR_NOMEM, "optimizer: out of memory for the state of %zu parameters", end);
    }
    if (nranges) memcpy(o->ranges, ranges, sizeof *o->ranges * (size_t)nranges);
    if ((st = make_chunks(o, err))) {
        rn_optim_free(o);
        return st;
    }
    *out = o;
    return RN_OK;
}

/* Frees the optimizer and its state. */
void rn_optim_free(rn_optim *o) {
    if (!o) return;
    for (int i = 0; i < 2; i++) free(o->state[i]);
    free(o->ranges);
    free(o->steps);
    free(o->coef);
    free(o->chunks);
    free(o);
}

/* SGD's scalars for one range (torch.optim.sgd._single_tensor_sgd). */
static void sgd_coefs(rn_optim *o, int r, double lr, double mom, coefs *k) {
    const rn_param_range *pr = &o->ranges[r];
    k->wd = pr->decay ? (float)o->cfg.weight_decay : 0.0f;
    k->keep = 1.0f;
    k->momentum = mom != 0;
    k->first = o->steps[r] == 0;
    k->nesterov = o->cfg.nesterov;
    k->mu = (float)mom;
    k->neg_lr = (float)-lr;
    if (k->momentum) o->steps[r]++;
}

/* Adam's and AdamW's scalars for one range (torch.optim.adam/adamw
** _single_tensor_*): the range's step count advances first. */
static void adam_coefs(rn_optim *o, int r, double lr, double beta1, coefs *k) {
    const rn_param_range *pr = &o->ranges[r];
    double wd = pr->decay ? o->cfg.weight_decay : 0.0, beta2 = o->cfg.beta2;
    double step = (double)++o->steps[r];
    double bc1 = 1 - pow(beta1, step), bc2 = 1 - pow(beta2, step);
    double step_size = lr / bc1;
    int adamw = o->cfg.kind == RN_OPTIM_ADAMW;
    k->wd = adamw ? 0.0f : (float)wd;
    k->keep = adamw && wd != 0 ? (float)(1 - lr * wd) : 1.0f;
    k->b1 = (float)beta1;
    k->c1 = (float)(1 - beta1);
    k->b2 = (float)beta2;
    k->c2 = (float)(1 - beta2);
    k->bc2s = (float)sqrt(bc2);
    k->eps = (float)o->cfg.eps;
    k->neg_step = (float)-step_size;
}

/* SGD on n elements, portable. p, g, buf: (n). Each line is one ATen call. */
static void sgd_ref(const coefs *k, float *restrict p, const float *restrict g, float *restrict buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float d = fmaf(p[i], k->wd, g[i]);                   /* d_p.add(param, alpha=wd) */
        if (k->momentum) {
            float b = k->first ? d : buf[i] * k->mu + d;     /* buf.mul_(mu).add_(d_p): fma(d, 1, .) is exact */
            buf[i] = b;
            d = k->nesterov ? fmaf(b, k->mu, d) : b;         /* d_p.add(buf, alpha=mu) */
        }
        p[i] = fmaf(d, k->neg_lr, p[i]);                     /* param.add_(d_p, alpha=-lr) */
    }
}

/* Whether to run the AVX2/FMA kernels: the kernels' CPU level (so RN_CPU=generic
** selects the portable loops, which the tests compare with these). */
static int use_avx2(void) {
#ifdef HAVE_AVX2
    return rn_cpu_dispatch()->level >= RN_CPU_AVX2;
#else
    return 0;
#endif
}

#ifdef HAVE_AVX2
/* sgd_ref's operations eight at a time with AVX2/FMA (IEEE: bit-identical
** to sgd_ref). Does the first n - n%8 elements and returns that count.
** p, g, buf: (n). */
__attribute__((target("avx2,fma")))
static size_t sgd_avx2(const coefs *k, float *p, const float *g, float *buf, size_t n) {
    const __m256 wd = _mm256_set1_ps(k->wd), mu = _mm256_set1_ps(k->mu), nlr = _mm256_set1_ps(k->neg_lr);
    const int momentum = k->momentum, first = k->first, nesterov = k->nesterov;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pi = _mm256_loadu_ps(p + i);
        __m256 d = _mm256_fmadd_ps(pi, wd, _mm256_loadu_ps(g + i));
        if (momentum) {
            __m256 b = first ? d : _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(buf + i), mu), d);
            _mm256_storeu_ps(buf + i, b);
            d = nesterov ? _mm256_fmadd_ps(b, mu, d) : b;
        }
        _mm256_storeu_ps(p + i, _mm256_fmadd_ps(d, nlr, pi));
    }
    return i;
}
#endif

/* SGD on n elements: the AVX2 path when `vec`, the portable loop for the
** rest. p, g, buf: (n). */
static void sgd_kernel(const coefs *k, int vec, float *p, const float *g, float *buf, size_t n) {
    size_t done = 0;
#ifdef HAVE_AVX2
    if (vec) done = sgd_avx2(k, p, g, buf, n);
#else
    (void)vec;
#endif
    sgd_ref(k, p + done, g + done, buf + done, n - done);
}

/* Adam / AdamW on n elements, portable. p, g, m, v: (n). Each line is one
** ATen call. (GCC does not vectorize it: sqrtf may set errno.) */
static void adam_ref(const coefs *k, float *restrict p, const float *restrict g, float *restrict m,
                     float *restrict v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * k->keep;                           /* param.mul_(1 - lr*wd) */
        float gi = fmaf(pi, k->wd, g[i]);                    /* grad.add(param, alpha=wd) */
        float mi = fmaf(gi, k->c1, m[i] * k->b1);            /* exp_avg.mul_(b1).add_(grad, alpha=1-b1) */
        float vi = fmaf(k->c2 * gi, gi, v[i] * k->b2);       /* exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2) */
        float den = sqrtf(vi) / k->bc2s + k->eps;            /* (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps) */
        p[i] = pi + k->neg_step * mi / den;                  /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        m[i] = mi;
        v[i] = vi;
    }
}

#ifdef HAVE_AVX2
/* adam_ref's operations eight at a time with AVX2/FMA (IEEE: bit-identical
** to adam_ref). Does the first n - n%8 elements and returns that count.
** p, g, m, v: (n). */
__attribute__((target("avx2,fma")))
static size_t adam_avx2(const coefs *k, float *p, const float *g, float *m, float *v, size_t n) {
    const __m256 keep = _mm256_set1_ps(k->keep), wd = _mm256_set1_ps(k->wd), b1 = _mm256_set1_ps(k->b1),
                 c1 = _mm256_set1_ps(k->c1), b2 = _mm256_set1_ps(k->b2), c2 = _mm256_set1_ps(k->c2),
                 bc2s = _mm256_set1_ps(k->bc2s), eps = _mm256_set1_ps(k->eps), ns = _mm256_set1_ps(k->neg_step);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), keep);
        __m256 gi = _mm256_fmadd_ps(pi, wd, _mm256_loadu_ps(g + i));
        __m256 mi = _mm256_fmadd_ps(gi, c1, _mm256_mul_ps(_mm256_loadu_ps(m + i), b1));
        __m256 vi = _mm256_fmadd_ps(_mm256_mul_ps(c2, gi), gi, _mm256_mul_ps(_mm256_loadu_ps(v + i), b2));
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2s), eps);
        _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(ns, mi), den)));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
    }
    return i;
}
#endif

/* Adam / AdamW on n elements: the AVX2 path when `vec`, the portable loop
** for the rest. p, g, m, v: (n). */
static void adam_kernel(const coefs *k, int vec, float *p, const float *g, float *m, float *v, size_t n) {
    size_t done = 0;
#ifdef HAVE_AVX2
    if (vec) done = adam_avx2(k, p, g, m, v, n);
#else
    (void)vec;
#endif
    adam_ref(k, p + done, g + done, m + done, v + done, n - done);
}

/* One optimizer step over every range whose group is not frozen. */
void rn_optim_step(rn_optim *o, const double *lr, double mom, const int *frozen, float *params,
                   const float *grads) {
    int vec = use_avx2();
    for (int r = 0; r < o->nranges; r++) {
        int g = o->ranges[r].group;
        coefs *k = &o->coef[r];
        *k = (coefs){0};
        k->active = !(frozen && frozen[g]) && o->ranges[r].len > 0;
        if (!k->active) continue;
        if (o->cfg.kind == RN_OPTIM_SGD) sgd_coefs(o, r, lr[g], mom, k);
        else adam_coefs(o, r, lr[g], mom, k);
    }
#pragma omp parallel for schedule(static) if (o->n >= PARALLEL_MIN)
    for (int c = 0; c < o->nchunks; c++) {
        const chunk *w = &o->chunks[c];
        const coefs *k = &o->coef[w->range];
        if (!k->active) continue;
        if (o->cfg.kind == RN_OPTIM_SGD)
            sgd_kernel(k, vec, params + w->off, grads + w->off, o->state[0] + w->off, w->len);
        else
            adam_kernel(k, vec, params + w->off, grads + w->off, o->state[0] + w->off, o->state[1] + w->off, w->len);
    }
}

/* Number of named state buffers. */
int rn_optim_nstate(const rn_optim *o) { return o->nstate; }

/* State buffer i with its name and length. */
float *rn_optim_state(rn_optim *o, int i, const char **name, size_t *len) {
    if (i < 0 || i >= o->nstate) return NULL;
    if (name) *name = o->names[i];
    if (len) *len = o->n;
    return o->state[i];
}

/* Per-range step counts. */
int64_t *rn_optim_steps(rn_optim *o, int *nranges) {
    if (nranges) *nranges = o->nranges;
    return o->steps;
}

/* Sum of squares of x[0..n) in double, in eight interleaved partial sums
** (so the compiler can vectorize without reassociating) added in a fixed
** order at the end. x: (n). */
static double sum_squares(const float *x, size_t n) {
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j] * x[i + j];
    for (; i < n; i++) acc[0] += (double)x[i] * x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* clip_grad_norm_: fixed chunks summed in a fixed order (at most 256
** partial sums on the stack), so the norm does not depend on threads. A
** NaN norm leaves the gradients alone (torch would make them all NaN). */
double rn_clip_grad_norm(float *grads, size_t n, double max_norm) {
    enum { PARTS = 256 };
    double part[PARTS];
    size_t len = (n + PARTS - 1) / PARTS;
    if (len < CHUNK) len = CHUNK;
    long nparts = (long)((n + len - 1) / len);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (long c = 0; c < nparts; c++) {
        size_t at = (size_t)c * len;
        part[c] = sum_squares(grads + at, n - at < len ? n - at : len);
    }
    double sum = 0;
    for (long c = 0; c < nparts; c++) sum += part[c];
    double norm = sqrt(sum), coef = max_norm / (norm + 1e-6);
    if (coef < 1) {
        float f = (float)coef;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) grads[i] *= f;
    }
    return norm;
}
