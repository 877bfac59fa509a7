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
** conv.c calls this file for both. The weight gradient is the adjoint of
** the same formula (its own section below).
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
#include <string.h>

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
/* Most tiles per input channel of a Winograd weight gradient (rn_wino_dw_applies). */
#define WINO_DW_TILES_PER_CHANNEL 8
/* The weight gradient's units (below): input channels (a multiple of every
** micro-tile's rows), output channels (the widest tile), tile pairs of a
** chunk. */
#define RB 48
#define CB 64
#define PCH 256

static int imin(int a, int b) { return a < b ? a : b; }

/* 2x2 output tiles of a batch of n outputs of oh x ow (partial tiles at
** odd sizes count whole). */
static long long tile_count(int n, int oh, int ow) { return (long long)n * ((oh + 1) / 2) * ((ow + 1) / 2); }

/* Whether shape s runs as Winograd on dispatch d: asked for, bf16
** available, a 3x3 stride-1 kernel, whole channel pairs on both sides (the
** forward reduces over Ci, backward-data over Co), and large enough to pay:
** at least WINO_MIN_CHANNELS on both sides and WINO_MIN_TILES tiles (one
** layer timed both ways: 16 and 32 channels lose 10-75%, 64 channels and
** up win 15-45%). */
int rn_wino_applies(const rn_conv_shape *s, const rn_dispatch *d) {
    return s->winograd && s->bf16 && d->bf16 && s->k == 3 && s->stride == 1 && s->pad <= 2 && s->ci % 2 == 0 &&
           s->co % 2 == 0 && s->ci >= WINO_MIN_CHANNELS && s->co >= WINO_MIN_CHANNELS &&
           tile_count(s->n, s->oh, s->ow) >= WINO_MIN_TILES;
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

/* Whether the weight gradient of s runs by Winograd: as rn_wino_applies,
** and at most WINO_DW_TILES_PER_CHANNEL tiles per input channel, which
** keeps its shared buffer (rn_wino_dw_floats) where the re-reads of step 2
** are cheap. One layer timed both ways (build/bench_winograd, batch 32):
** 512 channels at 4x4 (1/4 tile per channel) 2.1-2.3x, 256 at 8x8 (2)
** 1.0-1.2x; 128 at 16x16 (16) lost 20%, and a form for many tiles that
** summed groups of tiles in L2 (tried and removed) lost 10-20% at 64
** channels and 32x32 and tied at 128 and 16x16. */
int rn_wino_dw_applies(const rn_conv_shape *s, const rn_dispatch *d) {
    return rn_wino_applies(s, d) && tile_count(s->n, s->oh, s->ow) <= (long long)WINO_DW_TILES_PER_CHANNEL * s->ci;
}

/* Tile pairs of the weight gradient of s. */
static long long tile_pairs(const rn_conv_shape *s) { return (tile_count(s->n, s->oh, s->ow) + 1) / 2; }

/* Floats of the weight gradient's shared buffer: V and DY of every tile
** pair, 16 x pairs x 2 x (Ci + Co) bf16, each side's channels rounded up to
** whole blocks of RB and CB. */
size_t rn_wino_dw_floats(const rn_conv_shape *s) {
    const size_t cpad = (size_t)(s->ci + RB - 1) / RB * RB + (size_t)(s->co + CB - 1) / CB * CB;
    return (16 * (size_t)tile_pairs(s) * cpad + 15) & ~(size_t)15;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#include "bf16_simd.h"

/* Two 16-float vectors rounded to bf16 and interleaved: a[0], b[0], a[1],
** b[1], ... (32 bf16: one pair-interleaved row of 16 columns). */
static RN_TBF RN_INLINE __m512i pairs16(__m512 a, __m512 b) {
    return rn_pair_turns((__m512i)_mm512_cvtne2ps_pbh(b, a)); /* cvtne2ps puts b's 16 values above a's */
}

/* Blocks ahead that the weight transforms prefetch their rows of w for:
** a block reads 64 bytes from each of 18 (forward) or 144 (backward-data)
** rows, more streams than the hardware prefetcher follows, so that
** without this every load waits for memory (resnet18's backward-data
** transforms took 3.4% of a bf16 training step, then 2.1%). */
#define PACK_AHEAD 2

/* U = G g G^T for 16 channels at once (u: the 16 elements, row-major). */
static RN_TBF RN_INLINE void weights_tile(const __m512 g[9], __m512 u[16]) {
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

/* Forward U: vectors over 16 output channels j (contiguous in w), for
** input channels k and k+1, interleaved into pairs by pairs16. */
static RN_TBF void pack_forward(const float *w, int ci, int co, uint16_t *u) {
    const int nj = (co + 15) / 16;
    const size_t plane = (size_t)ci * co;
#pragma omp for schedule(static)
    for (int blk = 0; blk < ci / 2 * nj; blk++) {
        const int k = blk / nj * 2, j0 = blk % nj * 16;
        const __mmask16 m = rn_lanes16(co, j0);
        __m512 g[9], u0[16], u1[16];
        for (int kk = 0; kk < 2; kk++) {
            for (int a = 0; a < 9; a++) {
                const float *src = w + ((size_t)a * ci + k + kk) * co + j0;
                if (j0 + 16 * PACK_AHEAD < co) /* this row's chunk for a later block */
                    _mm_prefetch((const char *)(src + 16 * PACK_AHEAD), _MM_HINT_T0);
                g[a] = _mm512_maskz_loadu_ps(m, src);
            }
            weights_tile(g, kk ? u1 : u0);
        }
        for (int e = 0; e < 16; e++)
            _mm512_mask_storeu_epi32(u + e * plane + (size_t)(k / 2) * 2 * co + 2 * (size_t)j0, m,
                                     pairs16(u0[e], u1[e]));
    }
}

/* Transposes the 8x8 matrix of 32-bit words in r (row i in r[i]). */
static RN_TBF RN_INLINE void transpose8(__m256i r[8]) {
    __m256i t[8], q[8];
    for (int i = 0; i < 8; i += 2)
        t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
    for (int i = 0; i < 8; i += 4)
        q[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]), q[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]),
        q[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]), q[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    for (int i = 0; i < 4; i++)
        r[i] = _mm256_permute2x128_si256(q[i], q[i + 4], 0x20),
        r[i + 4] = _mm256_permute2x128_si256(q[i], q[i + 4], 0x31);
}

/* Backward-data U: the Winograd convolution's input channels k are w's
** Co (contiguous in w), its outputs j are w's Ci, and the kernel is turned
** 180 degrees, g[a] = w[8-a][j][k]. A block of 16 j x 16 k: vectors over
** 16 k for each j, rounded, are the 8 pairs (k, k+1) of column j, 32 bits
** each; transposing the 16 x 8 words gives each pair-row's 16 columns, one
** store. (Gathering along j read 16 cache lines per vector and ran 4x
** slower; scattering the pairs, 20x.) */
static RN_TBF void pack_turned(const float *w, int wci, int wco, uint16_t *u) {
    const int ci = wco, co = wci, nk = (ci + 15) / 16, nj = (co + 15) / 16;
    const size_t plane = (size_t)ci * co;
#pragma omp for schedule(static)
    for (int blk = 0; blk < nj * nk; blk++) {
        const int j0 = blk / nk * 16, k0 = blk % nk * 16, left = ci - k0; /* ci is even */
        const int npr = left >= 16 ? 8 : left / 2;
        const __mmask16 m = rn_lanes16(ci, k0);
        const __mmask16 mj = rn_lanes16(co, j0);
        __m256i h[16][16]; /* [e][j - j0]: the 8 pairs of column j */
        for (int jj = 0; jj < 16; jj++) {
            __m512 g[9], t[16];
            for (int a = 0; a < 9; a++) {
                const float *src = w + ((size_t)(8 - a) * wci + j0 + jj) * wco + k0;
                if (j0 + jj < co && k0 + 16 * PACK_AHEAD < ci) /* this row's chunk for a later block */
                    _mm_prefetch((const char *)(src + 16 * PACK_AHEAD), _MM_HINT_T0);
                g[a] = j0 + jj < co ? _mm512_maskz_loadu_ps(m, src) : _mm512_setzero_ps();
            }
            weights_tile(g, t);
            for (int e = 0; e < 16; e++)
                h[e][jj] = (__m256i)_mm512_cvtneps_pbh(t[e]);
        }
        for (int e = 0; e < 16; e++) {
            transpose8(h[e]), transpose8(h[e] + 8); /* now h[e][p] and h[e][8+p]: pair-row p, columns 0-7, 8-15 */
            for (int p = 0; p < npr; p++) {
                const __m512i row = _mm512_inserti64x4(_mm512_castsi256_si512(h[e][p]), h[e][8 + p], 1);
                _mm512_mask_storeu_epi32(u + e * plane + (size_t)(k0 / 2 + p) * 2 * co + 2 * (size_t)j0, mj, row);
            }
        }
    }
}

/* Writes U for every (input channel k, output channel j) of the Winograd
** convolution, pair-interleaved along k in bf16: element e of (k, j) at
** u[e*ci*co + (k/2)*2*co + 2*j + k%2] (ci even). Forward (flip = 0): the
** layer's own weights, ci = Ci inputs, co = Co outputs; backward-data
** (flip = 1): ci = Co, co = Ci, the kernel turned. Called by every thread
** of a parallel region; ends with a barrier. w: (3,3,Ci,Co) of the layer,
** wci = Ci, wco = Co */
void rn_wino_pack(const float *w, int wci, int wco, int flip, uint16_t *u) {
    if (flip)
        pack_turned(w, wci, wco, u);
    else
        pack_forward(w, wci, wco, u);
}

/* Where tile t of a grid (n, th, tw) of 2x2 tiles over a (H, W) source
** with padding pad reads: its four source rows (NULL outside the source)
** and whether each of its four columns is inside; returns the first
** column, x0. */
static int tile_taps(const float *src, int h, int w, int c, int th, int tw, int pad, long long t, const float *row[4],
                     int colok[4]) {
    const int tx = (int)(t % tw), ty = (int)(t / tw % th), n = (int)(t / tw / th);
    for (int i = 0; i < 4; i++) {
        const int y = 2 * ty - pad + i, x = 2 * tx - pad + i;
        row[i] = y >= 0 && y < h ? src + (((size_t)n * h + y) * w) * c : NULL;
        colok[i] = x >= 0 && x < w;
    }
    return 2 * tx - pad;
}

/* q = B^T d B for the 16 channels [c0, c0+16) (m: those that exist) of
** the 4x4 patch whose rows and columns tile_taps found (q: the 16
** elements, row-major); safe: any address inside the source. */
static RN_INLINE RN_TBF void patch16(const float *row[4], const int colok[4], int x0, int c, int c0, __mmask16 m,
                                     const float *safe, __m512 q[16]) {
    __m512 r[4][4];
    for (int k = 0; k < 4; k++) { /* B^T d, a column at a time (fewer live registers) */
        __m512 d[4];
        for (int i = 0; i < 4; i++) { /* a tap outside the source: an empty mask at a safe address reads nothing */
            const int in = row[i] && colok[k];
            d[i] = _mm512_maskz_loadu_ps(in ? m : 0, in ? row[i] + (size_t)(x0 + k) * c + c0 : safe);
        }
        r[0][k] = _mm512_sub_ps(d[0], d[2]);
        r[1][k] = _mm512_add_ps(d[1], d[2]);
        r[2][k] = _mm512_sub_ps(d[2], d[1]);
        r[3][k] = _mm512_sub_ps(d[1], d[3]);
    }
    for (int i = 0; i < 4; i++) { /* (B^T d) B */
        q[4 * i] = _mm512_sub_ps(r[i][0], r[i][2]), q[4 * i + 1] = _mm512_add_ps(r[i][1], r[i][2]);
        q[4 * i + 2] = _mm512_sub_ps(r[i][2], r[i][1]), q[4 * i + 3] = _mm512_sub_ps(r[i][1], r[i][3]);
    }
}

/* Prefetches columns [x, x+cnt) (those inside the source, of width w) of
** the four source rows of a tile (NULL rows skipped), all c channels: the
** next tile's, whose loads otherwise stall the transform (rows a whole
** image row apart defeat the hardware prefetcher; stage 1 of resnet18 ran
** 1.2-1.3x faster than direct without this, 1.45-1.5x with it). */
static RN_INLINE void prefetch_columns(const float *row[4], int x, int cnt, int c, int w) {
    if (x < 0 || x + cnt > w)
        return;
    for (int i = 0; i < 4; i++)
        if (row[i])
            for (int b = 0; b < cnt * c; b += 16)
                _mm_prefetch((const char *)(row[i] + (size_t)x * c + b), _MM_HINT_T0);
}

/* Transforms the input patches of tiles [t0, t0+nt) into V, bf16:
** V[e][t - t0][c] = (B^T d B)[e] for channel c (row stride c of the tile
** block, element stride nb*c). Taps outside the source read zero. */
static RN_TBF void input_transform(const rn_wino_job *j, long long t0, int nt, int nb, uint16_t *v) {
    const int c = j->c, th = (j->oh + 1) / 2, tw = (j->ow + 1) / 2;
    const size_t es = (size_t)nb * c;
    for (int t = 0; t < nt; t++) {
        const float *row[4];
        int colok[4];
        const int x0 = tile_taps(j->src, j->h, j->w, c, th, tw, j->pad, t0 + t, row, colok);
        uint16_t *out = v + (size_t)t * c;
        prefetch_columns(row, x0 + 4, 2, c, j->w); /* the next tile's two new columns */
        for (int c0 = 0; c0 < c; c0 += 16) {
            const __mmask16 m = rn_lanes16(c, c0);
            __m512 q[16];
            patch16(row, colok, x0, c, c0, m, j->src, q);
            for (int e = 0; e < 16; e++) { /* a masked store only for the last, partial vector */
                const __m256i h = (__m256i)_mm512_cvtneps_pbh(q[e]);
                uint16_t *o = out + e * es + c0;
                if (m == 0xFFFF)
                    _mm256_storeu_si256((__m256i *)o, h);
                else
                    _mm256_mask_storeu_epi16(o, m, h);
            }
        }
    }
}

/* Transforms M (16 x nb tiles x 64 channels, fp32) of tiles [t0, t0+nt)
** and output channels [c0, c0+w) back into the destination: Y = A^T M A
** (+ bias), written or added, or written rounded to bf16 (dstb);
** outputs past the edge are dropped. */
static RN_TBF void output_transform(const rn_wino_job *j, long long t0, int nt, int nb, const float *mb, int c0,
                                    int w) {
    const int co = j->co, th = (j->oh + 1) / 2, tw = (j->ow + 1) / 2;
    const size_t es = (size_t)nb * 64;
    for (int t = 0; t < nt; t++) {
        const long long tt = t0 + t;
        const int tx = (int)(tt % tw), ty = (int)(tt / tw % th), n = (int)(tt / tw / th);
        const int ny = imin(2, j->oh - 2 * ty), nx = imin(2, j->ow - 2 * tx);
        const size_t o = (((size_t)n * j->oh + 2 * ty) * j->ow + 2 * tx) * co + c0;
        const float *src = mb + (size_t)t * 64;
        for (int v = 0; v < w; v += 16) {
            const __mmask16 m = rn_lanes16(w, v);
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
                    const size_t e = o + ((size_t)i * j->ow + k) * co + v;
                    if (j->dstb) {
                        _mm256_mask_storeu_epi16(j->dstb + e, m, (__m256i)_mm512_cvtneps_pbh(y[k]));
                        continue;
                    }
                    float *p = j->dst + e;
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
                t = rn_tile_rows(nt - r, rw);
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
    const long long tiles = tile_count(j->n, j->oh, j->ow);
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

/* ---- weight gradient ----------------------------------------------------
** dL/dg = sum over tiles of G^T [ (A dY A^T) (.) (B^T d B) ] G, the adjoint
** of the forward formula (A dY A^T is 4x4 from the tile's 2x2 output
** gradients, zero past the edge). Summed over the tiles, element e of the
** product is a GEMM reducing over tiles: M_e (Ci x Co) = V_e^T DY_e. So:
**   1. every tile's V (of x) and DY (of dy) are written, pair-interleaved
**      along the tiles for the vdpbf16ps "tn" micro-kernel, into a shared
**      buffer, in blocks of the channels a unit reads:
**      vp[e][c/RB][p][c%RB][t%2] for tile pair p = t/2 (an odd last tile
**      is paired with zeros), dp[e][c/CB][p][c%CB][t%2] for dy, so that
**      a unit streams through contiguous memory (with whole rows of 2Ci
**      values between pairs, every pair's row fell in the same few cache
**      sets and the GEMM ran at a quarter of its speed);
**   2. units of (block of RB input channels, block of 64 output channels)
**      sum M over all tile pairs, in chunks of PCH pairs so that their
**      slices stay in cache, into a per-thread buffer, then add G^T M G
**      to the nine taps of dw. Each dw element is summed by one unit in a
**      fixed order: dw does not depend on the thread count. */
_Static_assert(16 * RB * CB == RN_WINO_DW_THREAD_FLOATS, "a unit's sums fill the thread scratch winograd.h promises");

/* g = A dY A^T (the 16 elements, row-major) for the 16 channels [c0,
** c0+16) (m: those that exist) of tile t of dy: (N, OH, OW, C), gradients
** past the edge zero. A^T = | 1 1  1  0 |
**                           | 0 1 -1 -1 |. */
static RN_INLINE RN_TBF void grad16(const float *dy, int oh, int ow, int c, long long t, int c0, __mmask16 m,
                                    __m512 g[16]) {
    const int th = (oh + 1) / 2, tw = (ow + 1) / 2;
    const int tx = (int)(t % tw), ty = (int)(t / tw % th), n = (int)(t / tw / th);
    const __m512 z = _mm512_setzero_ps();
    __m512 y[2][2], h[2][4];
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            const int oy = 2 * ty + i, ox = 2 * tx + k;
            y[i][k] =
                oy < oh && ox < ow ? _mm512_maskz_loadu_ps(m, dy + (((size_t)n * oh + oy) * ow + ox) * c + c0) : z;
        }
    for (int i = 0; i < 2; i++) { /* dY A^T */
        h[i][0] = y[i][0], h[i][1] = _mm512_add_ps(y[i][0], y[i][1]);
        h[i][2] = _mm512_sub_ps(y[i][0], y[i][1]), h[i][3] = _mm512_sub_ps(z, y[i][1]);
    }
    for (int k = 0; k < 4; k++) { /* A (dY A^T) */
        g[k] = h[0][k], g[4 + k] = _mm512_add_ps(h[0][k], h[1][k]);
        g[8 + k] = _mm512_sub_ps(h[0][k], h[1][k]), g[12 + k] = _mm512_sub_ps(z, h[1][k]);
    }
}

/* Writes tile pair p's V (of x, Ci channels) and DY (of dy, Co channels),
** pair-interleaved, into vp and dp (step 1 above); np pairs in all. */
static RN_TBF void pair_transform(const rn_conv_shape *s, const float *x, const float *dy, long long p, long long np,
                                  uint16_t *vp, uint16_t *dp) {
    const int ci = s->ci, co = s->co, th = (s->oh + 1) / 2, tw = (s->ow + 1) / 2;
    const long long t0 = 2 * p;
    const int two = t0 + 1 < (long long)s->n * th * tw; /* else the odd last tile, paired with zeros */
    const float *row[2][4];
    int colok[2][4], x0[2];
    for (int i = 0; i < 1 + two; i++)
        x0[i] = tile_taps(x, s->h, s->w, ci, th, tw, s->pad, t0 + i, row[i], colok[i]);
    prefetch_columns(row[0], x0[0] + 4, 4, ci, s->w); /* the next pair's four new columns */
    __m512 a[16], b[16];
    for (int e = 0; e < 16; e++)
        b[e] = _mm512_setzero_ps();
    for (int c0 = 0; c0 < ci; c0 += 16) {
        const __mmask16 m = rn_lanes16(ci, c0);
        patch16(row[0], colok[0], x0[0], ci, c0, m, x, a);
        if (two)
            patch16(row[1], colok[1], x0[1], ci, c0, m, x, b);
        const int nrb = (ci + RB - 1) / RB, blk = c0 / RB, off = c0 % RB; /* RB is a multiple of 16 */
        for (int e = 0; e < 16; e++)
            _mm512_mask_storeu_epi32(vp + (((size_t)e * nrb + blk) * np + p) * 2 * RB + 2 * off, m,
                                     pairs16(a[e], b[e]));
    }
    for (int c0 = 0; c0 < co; c0 += 16) {
        const __mmask16 m = rn_lanes16(co, c0);
        grad16(dy, s->oh, s->ow, co, t0, c0, m, a);
        if (two)
            grad16(dy, s->oh, s->ow, co, t0 + 1, c0, m, b);
        const int ncb = (co + CB - 1) / CB, blk = c0 / CB, off = c0 % CB;
        for (int e = 0; e < 16; e++)
            _mm512_mask_storeu_epi32(dp + (((size_t)e * ncb + blk) * np + p) * 2 * CB + 2 * off, m,
                                     pairs16(a[e], b[e]));
    }
}

/* dw[taps][ci][c0, c0+w) += G^T M G for row r of a unit's sums mb
** (16 x RB x CB: element e of row r at mb + (e*RB + r)*CB), which belongs
** to input channel ci. G^T = | 1 1/2  1/2 0 |
**                            | 0 1/2 -1/2 0 |
**                            | 0 1/2  1/2 1 |. */
static RN_TBF void weight_output(const rn_conv_shape *s, const float *mb, int r, int ci, int c0, int w, float *dw) {
    const __m512 h = _mm512_set1_ps(0.5f);
    const size_t plane = (size_t)s->ci * s->co;
    for (int v = 0; v < w; v += 16) {
        const __mmask16 m = rn_lanes16(w, v);
        __m512 a[16], t[3][4];
        for (int e = 0; e < 16; e++)
            a[e] = _mm512_maskz_loadu_ps(m, mb + ((size_t)e * RB + r) * CB + v);
        for (int k = 0; k < 4; k++) { /* G^T M */
            const __m512 p = _mm512_add_ps(a[4 + k], a[8 + k]);
            t[0][k] = _mm512_fmadd_ps(h, p, a[k]);
            t[1][k] = _mm512_mul_ps(h, _mm512_sub_ps(a[4 + k], a[8 + k]));
            t[2][k] = _mm512_fmadd_ps(h, p, a[12 + k]);
        }
        for (int i = 0; i < 3; i++) { /* (G^T M) G */
            const __m512 p = _mm512_add_ps(t[i][1], t[i][2]);
            const __m512 z[3] = {_mm512_fmadd_ps(h, p, t[i][0]), _mm512_mul_ps(h, _mm512_sub_ps(t[i][1], t[i][2])),
                                 _mm512_fmadd_ps(h, p, t[i][3])};
            for (int k = 0; k < 3; k++) {
                float *o = dw + (size_t)(3 * i + k) * plane + (size_t)ci * s->co + c0 + v;
                _mm512_mask_storeu_ps(o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), z[k]));
            }
        }
    }
}

/* One unit of step 2: input channels [ci0, ci0+rows), output channels
** [c0, c0+w); M summed in mb (RN_WINO_DW_THREAD_FLOATS floats). */
static void weight_unit(const rn_conv_shape *s, const rn_dispatch *d, const uint16_t *vp, const uint16_t *dp,
                        long long np, int ci0, int rows, int c0, int w, float *mb, float *dw) {
    const int vl = d->vl, nv = (w + vl - 1) / vl, nlast = w - (nv - 1) * vl, rk = d->tn_rows[nv];
    const int nrb = (s->ci + RB - 1) / RB, ncb = (s->co + CB - 1) / CB;
    const ptrdiff_t zero = 0;
    memset(mb, 0, (size_t)RN_WINO_DW_THREAD_FLOATS * sizeof(float));
    for (long long pc = 0; pc < np; pc += PCH) {
        const int mp = (int)(np - pc < PCH ? np - pc : PCH);
        for (int e = 0; e < 16; e++) {
            const uint16_t *a = vp + (((size_t)e * nrb + ci0 / RB) * np + pc) * 2 * RB;
            const uint16_t *b = dp + (((size_t)e * ncb + c0 / CB) * np + pc) * 2 * CB;
            for (int r = 0, t; r < rows; r += t) {
                t = rn_tile_rows(rows - r, rk);
                d->tnb[nv][t](1, &zero, mp, a + 2 * r, 2 * RB, b, 2 * CB, mb + ((size_t)e * RB + r) * CB, CB, nlast);
            }
        }
    }
    for (int r = 0; r < rows; r++)
        weight_output(s, mb, r, ci0 + r, c0, w, dw);
}

/* dw += the weight gradient of s by Winograd (above), inside a parallel
** region, every thread calling with its own scratch tbuf and the shared
** buffer sh (rn_wino_dw_floats(s) floats); ends with a barrier.
** x: (N,H,W,Ci)  dy: (N,OH,OW,Co)  dw: (3,3,Ci,Co) */
void rn_wino_weight_grad(const rn_conv_shape *s, const rn_dispatch *d, const float *x, const float *dy, float *dw,
                         float *sh, float *tbuf) {
    const long long np = tile_pairs(s);
    uint16_t *vp = (uint16_t *)sh, *dp = vp + (size_t)16 * np * 2 * RB * ((s->ci + RB - 1) / RB);
#pragma omp for schedule(static)
    for (long long p = 0; p < np; p++)
        pair_transform(s, x, dy, p, np, vp, dp);
    const int ncb = (s->co + CB - 1) / CB, nrb = (s->ci + RB - 1) / RB;
#pragma omp for schedule(dynamic, 1)
    for (int u = 0; u < nrb * ncb; u++) {
        const int ci0 = u / ncb * RB, c0 = u % ncb * CB;
        weight_unit(s, d, vp, dp, np, ci0, imin(RB, s->ci - ci0), c0, imin(CB, s->co - c0), tbuf, dw);
    }
}

#else

/* Not an x86 compiler: rn_wino_applies is never true (no bf16 kernels). */
void rn_wino_run(const rn_wino_job *j, const rn_dispatch *d, float *tbuf) { (void)j, (void)d, (void)tbuf; }
void rn_wino_pack(const float *w, int wci, int wco, int flip, uint16_t *u) {
    (void)w, (void)wci, (void)wco, (void)flip, (void)u;
}
void rn_wino_weight_grad(const rn_conv_shape *s, const rn_dispatch *d, const float *x, const float *dy, float *dw,
                         float *sh, float *tbuf) {
    (void)s, (void)d, (void)x, (void)dy, (void)dw, (void)sh, (void)tbuf;
}

#endif
