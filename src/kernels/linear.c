/*
** The classifier head: the fully connected layer and the softmax
** cross-entropy loss. In fp32 the layer is small enough (N x 2048 x K at
** most) for plain loops; in bf16 it runs on the convolution's register
** tiles (cpu.h), which want both operands pair-interleaved along the
** reduction:
**   - forward, y = x W^T: the reduction runs along W's rows, so W is
**     packed transposed, as (I/2, O) pairs: rn_fc_pack_bf16, once per
**     call in training, once per eval plan in inference (model/run.c);
**   - dx = dy W: the reduction runs over O, W's rows taken two by two;
**   - dW += dy^T x: the reduction runs over the batch, dy's and x's rows
**     two by two.
** Each output is summed by one tile call in a fixed order, so the bf16
** head gives the same bits for any thread count.
*/
#include "cpu.h"
#include "kernels.h"

#include <math.h>

/* Dot product of a and b (n floats), summed in vector lanes: the lanes'
** partial sums are added at the end, an order fixed for a given CPU (the
** clone the loader picks), so results repeat from run to run. A single
** running sum would not vectorize, and made the head's forward a scalar
** loop: 0.5 ms of resnet50's 14 ms batch-1 inference in bf16.
** a, b: (n) */
static RN_CLONES float dot(const float *a, const float *b, int n) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int k = 0; k < n; k++) acc += a[k] * b[k];
    return acc;
}

/* y = x w^T + b.  x: (N,I)  w: (O,I)  b: (O)  y: (N,O) */
void rn_fc_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y) {
#pragma omp parallel for schedule(static) collapse(2)
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++)
            y[(size_t)i * out + o] = dot(x + (size_t)i * in, w + (size_t)o * in, in) + (b ? b[o] : 0.0f);
}

/* d += a * s over n floats, compiled for the CPU's widest vectors.
** d, s: (n) */
static RN_CLONES void axpy(float *restrict d, float a, const float *restrict s, int n) {
    for (int k = 0; k < n; k++) d[k] += a * s[k];
}

/* dx += dy w; dw += dy^T x; db += sum dy.  Parallel over disjoint outputs. */
void rn_fc_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                    float *dx, float *dw, float *db) {
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++)
                axpy(dx + (size_t)i * in, dy[(size_t)i * out + o], w + (size_t)o * in, in);
    }
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < n; i++) {
            float g = dy[(size_t)i * out + o];
            axpy(dw + (size_t)o * in, g, x + (size_t)i * in, in);
            if (db) db[o] += g;
        }
    }
}

/* ---- bf16 ---------------------------------------------------------------- */

/* v rounded up to even: a bf16 operand's reduction length, its last pair
** completed by a zero. */
static size_t even(int v) { return ((size_t)v + 1) & ~(size_t)1; }

/* e rounded up to whole 64-byte lines of bf16 values. */
static size_t bline(size_t e) { return (e + 31) & ~(size_t)31; }

/* Rows and input pairs of W transposed per block of rn_fc_pack_bf16. */
#define PACK_ROWS 16
#define PACK_PAIRS 64

/* Packs W for the bf16 forward: wt[(k/2)*2*out + 2*o + k%2] = bf16(w[o][k])
** for k < even(in), 0 at k = in. Rows of a block of W are rounded 16 at a
** time into a small buffer and their pairs written transposed, a 64-byte
** line of wt at a time.
** w: (O,I)  wt: (even(I)/2, O) pairs */
void rn_fc_pack_bf16(int in, int out, const float *w, uint16_t *wt) {
    const int kp = (int)(even(in) / 2), nob = (out + PACK_ROWS - 1) / PACK_ROWS;
    const int nkb = (kp + PACK_PAIRS - 1) / PACK_PAIRS;
#pragma omp parallel for schedule(static) collapse(2)
    for (int ob = 0; ob < nob; ob++)
        for (int kb = 0; kb < nkb; kb++) {
            uint16_t buf[PACK_ROWS][2 * PACK_PAIRS];
            const int o0 = ob * PACK_ROWS, rows = out - o0 < PACK_ROWS ? out - o0 : PACK_ROWS;
            const int p0 = kb * PACK_PAIRS, pairs = kp - p0 < PACK_PAIRS ? kp - p0 : PACK_PAIRS;
            const int k0 = 2 * p0, kn = in - k0 < 2 * pairs ? in - k0 : 2 * pairs;
            for (int r = 0; r < rows; r++) {
                rn_bf16_convert(buf[r], w + (size_t)(o0 + r) * in + k0, kn);
                if (kn < 2 * pairs) buf[r][kn] = 0;
            }
            for (int p = 0; p < pairs; p++) {
                uint16_t *d = wt + ((size_t)(p0 + p) * out + o0) * 2;
                for (int r = 0; r < rows; r++) d[2 * r] = buf[r][2 * p], d[2 * r + 1] = buf[r][2 * p + 1];
            }
        }
}

/* Floats of scratch the bf16 head needs for a batch of n (with room to
** pack W when the caller has not). */
size_t rn_fc_workspace_bf16(int n, int in, int out) {
    const size_t fwd = bline((size_t)n * even(in)) + bline(even(in) * (size_t)out);
    const size_t bwd = bline((size_t)n * even(out)) + bline(even(out) * (size_t)in) +
                       bline(even(n) * (size_t)out) + bline(even(n) * (size_t)in);
    return ((fwd > bwd ? fwd : bwd) + 1) / 2 + 16;
}

/* Rounds the n rows of x (row length len) to bf16 rows of even(len)
** values, the last completed by a zero.  x: (N,len)  xb: (N,even(len)) */
static void rows_bf16(int n, int len, const float *x, uint16_t *xb) {
    const size_t ld = even(len);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        rn_bf16_convert(xb + i * ld, x + (size_t)i * len, len);
        if ((size_t)len < ld) xb[i * ld + len] = 0;
    }
}

/* Pair-interleaves the n rows of x (row length len), two by two (the last
** alone with zeros when n is odd): pair-row q holds rows 2q and 2q+1.
** x: (N,len)  xi: (even(N)/2, len) pairs */
static void pairs_bf16(int n, int len, const float *x, uint16_t *xi) {
    const int np = (n + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int q = 0; q < np; q++)
        rn_bf16_interleave(xi + (size_t)q * 2 * len, x + (size_t)2 * q * len,
                           2 * q + 1 < n ? x + (size_t)(2 * q + 1) * len : NULL, len);
}

/* C (rows, cols) = [C +] A B over kp reduction pairs with the nn tiles:
** A (rows, 2kp) bf16, row stride lda; B (kp, cols) pairs, pair-row stride
** ldb; C row stride ldc; bias (cols) or NULL. Jobs are 64-column blocks
** times equal row tiles, a thread's consecutive jobs sharing B's block.
** a: (rows, 2kp)  b: (kp, 2cols)  c: (rows, cols) */
static void nn_bf16(int rows, int cols, int kp, const uint16_t *a, size_t lda, const uint16_t *b, size_t ldb,
                    float *c, size_t ldc, const float *bias, int acc) {
    const rn_dispatch *d = rn_cpu_dispatch();
    const int cw = 16 * d->nvmax, nb = (cols + cw - 1) / cw, maxr = d->nn_rows[d->nvmax];
    const int tiles = (rows + maxr - 1) / maxr;
    const ptrdiff_t zero = 0;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < nb * tiles; j++) {
        const int c0 = j / tiles * cw, t = j % tiles, r0 = rows * t / tiles, r1 = rows * (t + 1) / tiles;
        const int w = cols - c0 < cw ? cols - c0 : cw, nv = (w + 15) / 16;
        d->nnb[nv][r1 - r0](1, &zero, kp, a + r0 * lda, (ptrdiff_t)lda, b + 2 * (size_t)c0, (ptrdiff_t)ldb,
                            c + r0 * ldc + c0, (ptrdiff_t)ldc, w - 16 * (nv - 1), bias ? bias + c0 : NULL, acc);
    }
}

/* C (rows, cols) += A^T B over mp pairs of reduction rows with the tn
** tiles: pair i of column r of A at a + i*lda + 2r, B's pair-row i at
** b + i*ldb; C row stride ldc. Jobs are 64-column blocks times chunks of
** 16 tiles' rows.  a: (mp, 2rows)  b: (mp, 2cols)  c: (rows, cols) */
static void tn_bf16(int rows, int cols, int mp, const uint16_t *a, size_t lda, const uint16_t *b, size_t ldb,
                    float *c, size_t ldc) {
    const rn_dispatch *d = rn_cpu_dispatch();
    const int cw = 16 * d->nvmax, nb = (cols + cw - 1) / cw, rt = d->tn_rows[d->nvmax];
    const int chunk = 16 * rt, nc = (rows + chunk - 1) / chunk;
    const ptrdiff_t zero = 0;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < nb * nc; j++) {
        const int c0 = j / nc * cw, w = cw < cols - c0 ? cw : cols - c0, nv = (w + 15) / 16;
        const int re = (j % nc + 1) * chunk < rows ? (j % nc + 1) * chunk : rows;
        for (int r0 = j % nc * chunk, t; r0 < re; r0 += t) {
            t = rn_tile_rows(re - r0, rt);
            d->tnb[nv][t](1, &zero, mp, a + 2 * (size_t)r0, (ptrdiff_t)lda, b + 2 * (size_t)c0, (ptrdiff_t)ldb,
                          c + r0 * ldc + c0, (ptrdiff_t)ldc, w - 16 * (nv - 1));
        }
    }
}

/* y = x W^T + b in bf16 with fp32 sums: x is rounded to bf16, and W too
** unless wt already holds it packed (rn_fc_pack_bf16; NULL: packed here).
** ws: rn_fc_workspace_bf16(n, in, out) floats.
** x: (N,I)  w: (O,I)  b: (O) or NULL  y: (N,O) */
void rn_fc_forward_bf16(int n, int in, int out, const float *x, const float *w, const uint16_t *wt, const float *b,
                        float *y, float *ws) {
    if (n <= 0 || out <= 0) return;
    uint16_t *xb = (uint16_t *)ws, *wp = xb + bline((size_t)n * even(in));
    if (!wt) rn_fc_pack_bf16(in, out, w, wp), wt = wp;
    rows_bf16(n, in, x, xb);
    nn_bf16(n, out, (int)(even(in) / 2), xb, even(in), wt, 2 * (size_t)out, y, (size_t)out, b, 0);
}

/* The bf16 backward of rn_fc_forward_bf16, as rn_fc_backward: dx += dy W,
** dW += dy^T x, db += sum dy, the products of bf16-rounded operands summed
** in fp32 (db from the fp32 dy). dx may be NULL; ws as for the forward.
** x, dx: (N,I)  w, dw: (O,I)  dy: (N,O)  db: (O) or NULL */
void rn_fc_backward_bf16(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db, float *ws) {
    if (n <= 0 || out <= 0) return;
    uint16_t *dyb = (uint16_t *)ws, *wi = dyb + bline((size_t)n * even(out));
    uint16_t *dyi = wi + bline(even(out) * (size_t)in), *xi = dyi + bline(even(n) * (size_t)out);
    if (dx) {
        rows_bf16(n, out, dy, dyb);
        pairs_bf16(out, in, w, wi);
        nn_bf16(n, in, (int)(even(out) / 2), dyb, even(out), wi, 2 * (size_t)in, dx, (size_t)in, NULL, 1);
    }
    pairs_bf16(n, out, dy, dyi);
    pairs_bf16(n, in, x, xi);
    tn_bf16(out, in, (n + 1) / 2, dyi, 2 * (size_t)out, xi, 2 * (size_t)in, dw, (size_t)in);
    if (db)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
}

/* Mean cross-entropy of softmax(logits) against labels smoothed by eps:
** target = (1-eps)*onehot + eps/K, as torch.nn.CrossEntropyLoss does.
** dlogits (if not NULL) = (softmax - target) / N.  logits: (N,K) */
double rn_softmax_xent(int n, int k, const float *logits, const int *labels, float eps, float *dlogits) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        double mx = z[0], sum = 0.0, sumz = 0.0;
        for (int j = 1; j < k; j++)
            if (z[j] > mx) mx = z[j];
        for (int j = 0; j < k; j++) {
            sum += exp(z[j] - mx);
            sumz += z[j];
        }
        double lse = mx + log(sum);
        total += (1.0 - eps) * (lse - z[labels[i]]) + eps * (lse - sumz / k);
        if (!dlogits) continue;
        for (int j = 0; j < k; j++) {
            double t = eps / k + (j == labels[i] ? 1.0 - eps : 0.0);
            dlogits[(size_t)i * k + j] = (float)((exp(z[j] - lse) - t) / n);
        }
    }
    return total / n;
}
