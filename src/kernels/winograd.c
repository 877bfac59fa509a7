/*
** Winograd F(2x2, 3x3) convolutions in bf16 (Lavin and Gray 2016), for the
** 3x3 stride-1 layers that hold most of a ResNet's multiply-adds.
**
** A 2x2 tile of outputs is computed from the 4x4 input patch d under it:
**   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
** with (.) the element-wise product of two 4x4 matrices and
**   B^T = | 1  0 -1  0 |   G = | 1    0    0   |   A^T = | 1  1  1  0 |
**         | 0  1  1  0 |       | 1/2  1/2  1/2 |         | 0  1 -1 -1 |
**         | 0 -1  1  0 |       | 1/2 -1/2  1/2 |
**         | 0  1  0 -1 |       | 0    0    1   |
** Summed over input channels, each of the 16 elements e of the product is a
** matrix product over channels: M_e (tiles x Co) = V_e (tiles x Ci) U_e
** (Ci x Co), V_e the transformed patches and U_e the transformed weights.
** So 16 GEMMs of tiles x Ci x Co replace one of (4 tiles) x 9Ci x Co: 2.25
** times fewer multiplies, at the price of the transforms (additions only,
** linear in the activations).
**
** Precision: V and U are computed in fp32 and rounded once to bf16, the
** GEMMs sum in fp32 (vdpbf16ps), and A's additions run in fp32. The
** transformed values are sums of up to four inputs (V) or nine weights
** with factors 1/2 and 1/4 (U), so their one rounding costs about what
** rounding x and w costs the direct bf16 convolution; the output
** transform then adds up to nine products' sums, which doubles or trebles
** the error of a direct bf16 convolution (tests/test_kernels.c measures
** both against fp32).
**
** Backward-data at stride 1 is the same convolution of dy with the weights
** turned 180 degrees and transposed (Ci and Co swapped), padding 2 - pad;
** conv.c calls this file for both.
**
** Work is cut into units of (block of tiles, group of output channels):
** each unit transforms its tiles' patches into a per-thread buffer (V, all
** 16 elements x all input channels, bf16), runs the 16 GEMMs of each
** 64-channel block into a second buffer (M, fp32), and transforms those
** back into the destination. Both buffers stay in the core's L2; nothing
** tile-sized goes through memory. Every output is computed by one unit in
** an order fixed by the shape, so results do not depend on the threads.
*/
#include "winograd.h"

#include <omp.h>
#include <stddef.h>

/* Bytes of a thread's V and M: half of the core's L2. */
#define WINO_BUDGET (512 * 1024)
/* Rows of the widest bf16 micro-tile, and most tiles of a unit. */
#define WINO_ROWS 6
#define WINO_MAX_TILES 120
/* Below these, the transforms cost more than the multiplies saved: fewer
** tiles (the weights' transform is paid per call), fewer channels (GEMMs
** too short; resnet20's 16- and 32-channel layers). */
#define WINO_MIN_TILES 64
#define WINO_MIN_CHANNELS 64

static int imin(int a, int b) { return a < b ? a : b; }

/* Whether shape s runs as Winograd on dispatch d: asked for, bf16
** available, a 3x3 stride-1 kernel, whole channel pairs on both sides (the
** forward reduces over Ci, backward-data over Co), and large enough to pay:
** at least WINO_MIN_CHANNELS on both sides and WINO_MIN_TILES tiles (one
** layer timed both ways: 16 and 32 channels lose 10-75%, 64 channels and
** up win 15-45%). */
int rn_wino_applies(const rn_conv_shape *s, const rn_dispatch *d) {
    return s->winograd && s->bf16 && d->bf16 && s->k == 3 && s->stride == 1 && s->pad <= 2 && s->ci % 2 == 0 &&
           s->co % 2 == 0 && s->ci >= WINO_MIN_CHANNELS && s->co >= WINO_MIN_CHANNELS &&
           (long long)s->n * ((s->oh + 1) / 2) * ((s->ow + 1) / 2) >= WINO_MIN_TILES;
}

/* Tiles per unit for a reduction over c channels: V (16 x tiles x c bf16)
** and M (16 x tiles x 64 fp32) within WINO_BUDGET, a multiple of the
** micro-tile's rows. */
static int unit_tiles(int c) {
    int nb = WINO_BUDGET / (16 * c * 2 + 16 * 64 * 4);
    nb = nb / WINO_ROWS * WINO_ROWS;
    return nb < WINO_ROWS ? WINO_ROWS : nb > WINO_MAX_TILES ? WINO_MAX_TILES : nb;
}

/* Floats (as room for bf16 pairs, rounded up to 64 bytes) of a unit's V. */
static size_t v_floats(int c) { return ((size_t)16 * unit_tiles(c) * c / 2 + 15) & ~(size_t)15; }

/* Floats of one thread's buffers for a reduction over c channels: V, then
** M (16 x tiles x 64). */
size_t rn_wino_thread_floats(int c) { return v_floats(c) + (size_t)16 * unit_tiles(c) * 64; }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#define RN_TBF __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

/* The 16 output channels [j0, j0+16) (m: those that exist) of the nine
** weights g[a] of Winograd input channel k. Forward (flip = 0): g[a] =
** w[a][k][j], contiguous in j. Backward-data (flip = 1): the Winograd
** convolution's input channels are w's Co and its outputs w's Ci, and the
** kernel is turned 180 degrees: g[a] = w[8-a][j][k], gathered (stride Co). */
static RN_TBF void load_taps(const float *w, int wci, int wco, int flip, int k, int j0, __mmask16 m, __m512 g[9]) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_set1_epi32(wco),
                                           _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    for (int a = 0; a < 9; a++)
        g[a] =
            flip ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, w + ((size_t)(8 - a) * wci + j0) * wco + k, 4)
                 : _mm512_maskz_loadu_ps(m, w + ((size_t)a * wci + k) * wco + j0);
}

/* U = G g G^T for 16 channels at once (u: the 16 elements, row-major). */
static RN_TBF void weights_tile(const __m512 g[9], __m512 u[16]) {
    const __m512 h = _mm512_set1_ps(0.5f);
    __m512 t[4][3]; /* G g */
    for (int j = 0; j < 3; j++) {
        const __m512 a = g[j], b = g[3 + j], c = g[6 + j], ac = _mm512_add_ps(a, c);
        t[0][j] = a, t[1][j] = _mm512_mul_ps(h, _mm512_add_ps(ac, b));
        t[2][j] = _mm512_mul_ps(h, _mm512_sub_ps(ac, b)), t[3][j] = c;
    }
    for (int i = 0; i < 4; i++) {
        const __m512 a = t[i][0], b = t[i][1], c = t[i][2], ac = _mm512_add_ps(a, c);
        u[4 * i] = a, u[4 * i + 1] = _mm512_mul_ps(h, _mm512_add_ps(ac, b));
        u[4 * i + 2] = _mm512_mul_ps(h, _mm512_sub_ps(ac, b)), u[4 * i + 3] = c;
    }
}

/* Writes U for every (input channel k, output channel j) of the Winograd
** convolution, pair-interleaved along k in bf16: element e of (k, j) at
** u[e*ci*co + (k/2)*2*co + 2*j + k%2] (ci even). Forward (flip = 0): the
** layer's own weights, ci = Ci inputs, co = Co outputs; backward-data
** (flip = 1): ci = Co, co = Ci, the kernel turned (load_taps). Called by
** every thread of a parallel region; ends with a barrier.
** w: (3,3,Ci,Co) of the layer, wci = Ci, wco = Co */
RN_TBF void rn_wino_pack(const float *w, int wci, int wco, int flip, uint16_t *u) {
    const int ci = flip ? wco : wci, co = flip ? wci : wco, nj = (co + 15) / 16;
    const size_t plane = (size_t)ci * co;
    /* cvtne2ps puts the second row's 16 values above the first's; this takes them
     * in turns */
    const __m512i turns = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                           21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
#pragma omp for schedule(static)
    for (int blk = 0; blk < ci / 2 * nj; blk++) {
        /* forward: j inner (contiguous loads); backward-data: k inner, so
        ** that the lines a gather touches serve the next 15 k from L1 */
        const int np = ci / 2, k = (flip ? blk % np : blk / nj) * 2, j0 = (flip ? blk / np : blk % nj) * 16;
        const __mmask16 m = co - j0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (co - j0)) - 1);
        __m512 g[9], u0[16], u1[16];
        load_taps(w, wci, wco, flip, k, j0, m, g);
        weights_tile(g, u0);
        load_taps(w, wci, wco, flip, k + 1, j0, m, g);
        weights_tile(g, u1);
        for (int e = 0; e < 16; e++) {
            const __m512i pr = _mm512_permutexvar_epi16(turns, (__m512i)_mm512_cvtne2ps_pbh(u1[e], u0[e]));
            _mm512_mask_storeu_epi32(u + e * plane + (size_t)(k / 2) * 2 * co + 2 * (size_t)j0, m, pr);
        }
    }
}

/* Transforms the input patches of tiles [t0, t0+nt) into V, bf16:
** V[e][t - t0][c] = (B^T d B)[e] for channel c (row stride c of the tile
** block, element stride nb*c). Taps outside the source read zero. */
static RN_TBF void input_transform(const rn_wino_job *j, long long t0, int nt, int nb, uint16_t *v) {
    const int c = j->c, th = (j->oh + 1) / 2, tw = (j->ow + 1) / 2;
    const size_t es = (size_t)nb * c;
    const __m512 z = _mm512_setzero_ps();
    for (int t = 0; t < nt; t++) {
        const long long tt = t0 + t;
        const int tx = (int)(tt % tw), ty = (int)(tt / tw % th), n = (int)(tt / tw / th);
        const float *row[4];
        int colok[4];
        for (int i = 0; i < 4; i++) {
            const int y = 2 * ty - j->pad + i, x = 2 * tx - j->pad + i;
            row[i] = y >= 0 && y < j->h ? j->src + (((size_t)n * j->h + y) * j->w) * c : NULL;
            colok[i] = x >= 0 && x < j->w;
        }
        const int x0 = 2 * tx - j->pad;
        uint16_t *out = v + (size_t)t * c;
        for (int c0 = 0; c0 < c; c0 += 16) {
            const __mmask16 m = c - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c - c0)) - 1);
            __m512 d[4][4];
            for (int i = 0; i < 4; i++)
                for (int k = 0; k < 4; k++)
                    d[i][k] = row[i] && colok[k] ? _mm512_maskz_loadu_ps(m, row[i] + (size_t)(x0 + k) * c + c0) : z;
            __m512 r[4][4]; /* B^T d */
            for (int k = 0; k < 4; k++) {
                r[0][k] = _mm512_sub_ps(d[0][k], d[2][k]);
                r[1][k] = _mm512_add_ps(d[1][k], d[2][k]);
                r[2][k] = _mm512_sub_ps(d[2][k], d[1][k]);
                r[3][k] = _mm512_sub_ps(d[1][k], d[3][k]);
            }
            for (int i = 0; i < 4; i++) { /* (B^T d) B */
                const __m512 q[4] = {_mm512_sub_ps(r[i][0], r[i][2]), _mm512_add_ps(r[i][1], r[i][2]),
                                     _mm512_sub_ps(r[i][2], r[i][1]), _mm512_sub_ps(r[i][1], r[i][3])};
                for (int k = 0; k < 4; k++) { /* a masked store only for the last, partial vector */
                    const __m256i h = (__m256i)_mm512_cvtneps_pbh(q[k]);
                    uint16_t *o = out + (4 * i + k) * es + c0;
                    if (m == 0xFFFF)
                        _mm256_storeu_si256((__m256i *)o, h);
                    else
                        _mm256_mask_storeu_epi16(o, m, h);
                }
            }
        }
    }
}

/* Transforms M (16 x nb tiles x 64 channels, fp32) of tiles [t0, t0+nt)
** and output channels [c0, c0+w) back into the destination: Y = A^T M A
** (+ bias), written or added; outputs past the edge are dropped. */
static RN_TBF void output_transform(const rn_wino_job *j, long long t0, int nt, int nb, const float *mb, int c0,
                                    int w) {
    const int co = j->co, th = (j->oh + 1) / 2, tw = (j->ow + 1) / 2;
    const size_t es = (size_t)nb * 64;
    for (int t = 0; t < nt; t++) {
        const long long tt = t0 + t;
        const int tx = (int)(tt % tw), ty = (int)(tt / tw % th), n = (int)(tt / tw / th);
        const int ny = imin(2, j->oh - 2 * ty), nx = imin(2, j->ow - 2 * tx);
        float *dst = j->dst + (((size_t)n * j->oh + 2 * ty) * j->ow + 2 * tx) * co + c0;
        const float *src = mb + (size_t)t * 64;
        for (int v = 0; v < w; v += 16) {
            const __mmask16 m = w - v >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w - v)) - 1);
            __m512 a[4][4];
            for (int e = 0; e < 16; e++)
                a[e / 4][e % 4] = _mm512_maskz_loadu_ps(m, src + e * es + v);
            __m512 r[2][4]; /* A^T M */
            for (int k = 0; k < 4; k++) {
                r[0][k] = _mm512_add_ps(_mm512_add_ps(a[0][k], a[1][k]), a[2][k]);
                r[1][k] = _mm512_sub_ps(_mm512_sub_ps(a[1][k], a[2][k]), a[3][k]);
            }
            const __m512 b = j->bias ? _mm512_maskz_loadu_ps(m, j->bias + c0 + v) : _mm512_setzero_ps();
            for (int i = 0; i < ny; i++) {
                const __m512 y[2] = {_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[i][0], r[i][1]), r[i][2]), b),
                                     _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[i][1], r[i][2]), r[i][3]), b)};
                for (int k = 0; k < nx; k++) {
                    float *p = dst + ((size_t)i * j->ow + k) * co + v;
                    const __m512 o = j->acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), y[k]) : y[k];
                    if (m == 0xFFFF)
                        _mm512_storeu_ps(p, o);
                    else
                        _mm512_mask_storeu_ps(p, m, o);
                }
            }
        }
    }
}

/* Runs one unit: tiles [t0, t0+nt), output channels [c0, c1). */
static void run_unit(const rn_wino_job *j, const rn_dispatch *d, long long t0, int nt, int nb, int c0, int c1,
                     uint16_t *v, float *mb) {
    input_transform(j, t0, nt, nb, v);
    const int c = j->c, co = j->co, tw = d->nvmax * d->vl, vl = d->vl;
    const ptrdiff_t zero = 0;
    for (int cb = c0; cb < c1; cb += tw) {
        const int w = imin(tw, c1 - cb), nv = (w + vl - 1) / vl, nlast = w - (nv - 1) * vl, rw = d->nn_rows[nv];
        for (int e = 0; e < 16; e++) {
            const uint16_t *a = v + (size_t)e * nb * c, *b = j->u + (size_t)e * c * co + 2 * (size_t)cb;
            float *m = mb + (size_t)e * nb * 64;
            for (int r = 0, t; r < nt; r += t) {
                const int tiles = (nt - r + rw - 1) / rw; /* equal micro-tiles, as conv.c's tile_rows */
                t = (nt - r + tiles - 1) / tiles;
                d->nnb[nv][t](1, &zero, c / 2, a + (size_t)r * c, c, b, 2 * (ptrdiff_t)co, m + (size_t)r * 64, 64,
                              nlast, NULL, 0);
            }
        }
        output_transform(j, t0, nt, nb, mb, cb, w);
    }
}

/* Runs job j inside a parallel region: every thread takes units. The
** thread's buffers are at tbuf (rn_wino_thread_floats(j->c) floats). */
void rn_wino_run(const rn_wino_job *j, const rn_dispatch *d, float *tbuf) {
    const long long tiles = (long long)j->n * ((j->oh + 1) / 2) * ((j->ow + 1) / 2);
    const int nb = unit_tiles(j->c), tw = d->nvmax * d->vl, ncot = (j->co + tw - 1) / tw;
    const long long nblk = (tiles + nb - 1) / nb;
    const int nt = omp_get_num_threads();
    int ncg = 1; /* channel groups per tile block: enough units for every thread */
    if (nblk < 4LL * nt)
        ncg = (int)imin(ncot, (int)((4LL * nt + nblk - 1) / nblk));
    uint16_t *v = (uint16_t *)tbuf;
    float *mb = tbuf + v_floats(j->c);
#pragma omp for schedule(dynamic, 1) nowait
    for (long long unit = 0; unit < nblk * ncg; unit++) {
        const long long blk = unit / ncg;
        const int g = (int)(unit % ncg);
        const long long t0 = blk * nb;
        const int cnt = (int)(tiles - t0 < nb ? tiles - t0 : nb);
        const int c0 = g * ncot / ncg * tw, c1 = imin(j->co, (g + 1) * ncot / ncg * tw);
        run_unit(j, d, t0, cnt, nb, c0, c1, v, mb);
    }
}

#else

/* Not an x86 compiler: rn_wino_applies is never true (no bf16 kernels). */
void rn_wino_run(const rn_wino_job *j, const rn_dispatch *d, float *tbuf) { (void)j, (void)d, (void)tbuf; }
void rn_wino_pack(const float *w, int wci, int wco, int flip, uint16_t *u) {
    (void)w, (void)wci, (void)wco, (void)flip, (void)u;
}

#endif
