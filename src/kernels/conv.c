/*
** Fast convolution on the CPU, NHWC activations and HWIO weights, built on
** register-blocked GEMM micro-kernels picked at run time (cpu.h: AVX-512,
** AVX2+FMA or portable C).
**
** Forward and backward-data are one "gather GEMM": every destination pixel
** is the product of its patch (the source pixels under the kernel's taps,
** zero in the padding) with a weight matrix whose rows are (tap, source
** channel) and whose columns are the destination channels:
**   - forward:        y[n,oh,ow,:] = patch_x(n,oh,ow) . w        (w is HWIO,
**                     already (K*K*Ci) x Co)
**   - backward data:  dx[n,ih,iw,:] += patch_dy(n,ih,iw) . wt    (wt: the
**                     taps that reach that input pixel, each tap's weights
**                     transposed to Co x Ci)
** Patches are read in one of two ways, neither a materialized im2col:
**   - row mode (one reduction chunk, several taps): a band of source rows
**     is copied once, zero-padded, into a per-thread buffer, and the patch
**     of a pixel is, per kernel row, a window of that buffer: the micro-
**     kernel's A rows are windows step*C apart (segments, cpu.h);
**   - gather mode (long reductions, narrow outputs): the patches of a tile
**     of pixels and a chunk of the reduction are copied into a per-thread
**     buffer that stays in cache; 1x1 stride-1 convolutions read their
**     rows straight from the source.
** Backward-data at stride S is split into S*S output phases (input pixels
** with the same ih%S, iw%S), each a stride-1 problem over only the taps
** that reach it, so no multiplications by zero and no col2im.
**
** Backward-weights is dw[(tap,ci), co] += sum over pixels m of
** patch_x(m)[(tap,ci)] * dy[m, co]: the same patches, reduced over the
** pixels by the "tn" micro-kernel with a register tile of (tap,ci) rows x
** output-channel vectors.
**
** Parallelism and determinism: forward and backward-data hand out
** (pixel tile or row band, channel block) units; each unit's arithmetic is
** fixed by the shape alone, so the results do not depend on the thread
** count. Backward-weights with more than RN_CONV_SMALL_DW weights splits
** the rows of dw (x co tiles) between the threads, every thread summing all
** pixels in the same fixed order: dw does not depend on the thread count
** either, and there is no partial-sum buffer and no false sharing. A
** smaller dw is split by pixels instead, each thread summing a private
** partial that is added in thread order: the same bits for the same thread
** count.
**
** bf16 (rn_conv_shape.bf16, kernels.h): the same jobs and plans with the
** bf16 micro-kernels (gemm_bf16.c). The gathers and row copies that fill
** the patch buffers round to bf16 as they copy, so activations are
** converted once per tile and never stored as a whole in bf16; the weights
** are packed pair-interleaved once per call. Backward-weights needs pairs
** of pixels, not of channels: in row mode the padded rows of a band are
** written as pixel pairs of windows, in gather mode each tile of patches
** is gathered in fp32 as usual and then packed, and dy is packed the same
** way (once per pixel block for all threads, when they split dw's rows:
** weight_blocks). The conversions use vcvtneps2bf16, 16 values at a time.
** dy may also come already in bf16 (RN_BF16_GRAD: the model keeps the
** gradient between a convolution and its BN that way): it is then copied,
** not rounded, with the same results, and half the bytes read.
** The forward may also write y in bf16 (RN_BF16_ACT: the model keeps a
** convolution's output, read by its BN alone, that way, as PyTorch's
** autocast does): each unit then computes its tile in fp32 in the thread's
** scratch and rounds it as it stores (Winograd: in its output transform),
** half the bytes written here and read by the BN's four passes.
** And x may come in bf16 (RN_BF16_X: a BN's output that only bf16
** convolutions read): the gathers then copy it, a 1x1 stride-1 forward
** multiplies its rows where they lie (no copy at all), the weight
** gradient pairs its pixels without rounding, and a Winograd pass gives
** way to the direct one (its transforms read fp32). Backward-data may
** write dx in bf16 (RN_BF16_DX: the gradient of a BN's output that this
** convolution alone reads), rounding its tiles as it stores them, as the
** forward does with RN_BF16_ACT. A forward over an odd Ci multiplies in
** bf16 in row mode, each tap row's segment completed by a zero weight row
** (odd_rows_bf16).
**
** Winograd (rn_conv_shape.winograd, with bf16): 3x3 stride-1 shapes large
** enough are handed to winograd.c for the forward, backward-data and
** (fewer tiles per channel) the weight gradient; the rest run here.
*/
#include "cpu.h"
#include "kernels.h"
#include "winograd.h"

#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest reduction chunk of a forward / backward-data unit: 640 holds a
** 3x3 window over 64 channels (576) whole, so that 64-channel layers run in
** row mode (one chunk); at 512 they were gathered in two chunks, 20-25%
** slower at 32x32 and 7% at 7x7. */
#define KC_MAX 640
#define A_FLOATS 16384 /* pixels x chunk of a forward / backward-data patch tile */
#define MC_MAX 240     /* most pixels of a forward / backward-data unit */
#define KW_MAX 240     /* longest reduction chunk (dw rows, a multiple of MQ) of a weight-gradient tile */
#define MW_MAX 256     /* most pixels of a weight-gradient tile */
#define ABUF 65600     /* floats of a thread's patch buffer (>= both tiles + slack) */
#define MAX_SEG 32     /* most tap rows of a row-mode unit */
#define MQ 24          /* pixel tiles and dw row blocks are multiples of every kernel's row count */
#define MIN_BAND_PX 64 /* fewest output pixels in a band for a row-mode weight gradient (make_wplan) */
/* bf16 values in each of the two shared buffers of packed dy (weight_blocks) */
#define DW_BLOCK 524288

/* One gather GEMM (see the top of the file). Destination pixel (n, i, j) of
** the grid reads, for tap (u, v), the source pixel
** (n, i*step + dh0 + u*ddh, j*step + dw0 + v), and is written at
** dst pixel (n, oy + i*ds, ox + j*ds). */
typedef struct {
    const float *src; /* source (N, SH, SW, Cs) */
    int sh, sw, cs;
    int n, gh, gw, step;       /* destination grid (N, GH, GW); source step per grid step */
    int nu, nv, dh0, ddh, dw0; /* taps: nu x nv */
    const float *wm;           /* weights ((nu*nv*Cs), Cd) row-major */
    int cd;
    float *dst; /* destination (N, DH, DW, Cd) */
    int dh, dw, oy, ox, ds;
    const float *bias;    /* (Cd) or NULL: forward only */
    int accumulate;       /* dst += instead of dst = */
    const uint16_t *wmb;  /* bf16 job: wm pair-interleaved along its rows, else NULL */
    const uint16_t *srcb; /* bf16 job whose source is in bf16 (src NULL): copied, not rounded */
    uint16_t *dstb;       /* contiguous destination in bf16 (dst NULL; not accumulating): tiles rounded into it */
} gjob;

/* How a gather GEMM is cut into units of work. */
typedef struct {
    long long m, ntm;  /* grid pixels; pixel tiles */
    int kdim, kc, nch; /* reduction length; chunk length and count */
    int mc;            /* pixels per tile */
    int tw, ncot, ncb; /* channels per co tile; co tiles; co blocks per pixel tile */
    int direct;        /* patch rows are source rows (1x1, stride 1, no padding) */
    int contig;        /* destination rows are consecutive grid pixels */
    int rowmode;       /* patches are windows into padded source rows (run_band) */
    int band, nbpi;    /* row mode: grid rows per unit, units per sample and co block */
    int pw;            /* row mode: pixels per padded source row */
} gplan;

/* Rounds n up to a multiple of 16 floats (64 bytes). */
static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Number of weights K*K*Ci*Co. */
static size_t weight_count(const rn_conv_shape *s) { return (size_t)s->k * s->k * s->ci * s->co; }

/* Whether dw is small enough to be split by pixels between the threads,
** each summing a private partial dw (else its rows are split). The bound
** was 8,192 floats; at 196,608 the first two stages of resnet50 (bf16,
** batch 32, 128 px) split by pixels, and their 1x1 weight gradients, which
** in row blocks had every thread read all of dy and wait at a barrier per
** block, ran 1.3-1.7x faster (64 -> 256 at 32x32 5.0 -> 2.9 ms, 256 -> 128
** 6.7 -> 4.7 ms, 256 -> 512 stride 2 6.1 -> 5.1 ms). Past it they gain
** nothing (256 -> 1024 at 8x8) or lose (1024 -> 256: 2.2 -> 2.5 ms; at
** 1M floats, 2048 -> 512 at 4x4 2.0 -> 3.5 ms): the partials no longer
** stay in L2. */
static int small_dw(const rn_conv_shape *s) { return weight_count(s) <= RN_CONV_SMALL_DW; }

/* Floats after the patch buffer of a thread's scratch: for backward-data
** at stride > 1, a tile of destination rows to scatter from, or a partial
** dw. */
static size_t tail_floats(const rn_conv_shape *s) {
    size_t c = s->stride > 1 ? pad16((size_t)MC_MAX * s->ci) : 0;
    if (small_dw(s) && pad16(weight_count(s)) > c)
        c = pad16(weight_count(s));
    return c;
}

/* Floats (as room for bf16 pairs) of a bf16 weight-gradient tile's packed
** patches and packed dy, each of up to MW_MAX+1 pixels. */
static size_t bf_patch_floats(void) { return pad16((size_t)(MW_MAX + 1) * KW_MAX / 2 + 16); }
static size_t bf_dy_floats(const rn_conv_shape *s) { return pad16((size_t)(MW_MAX + 1) * s->co / 2 + 16); }

/* Output rows per band of the weight gradient's row mode (at most MAX_SEG,
** MW_MAX pixels, and padded input rows that fit the patch buffer); sets
** *pw to the pixels of a padded input row. */
static int wband(const rn_conv_shape *s, int *pw) {
    *pw = (s->ow - 1) * s->stride + s->k;
    int band = imin(MAX_SEG, imax(1, MW_MAX / s->ow));
    while (band > 1 && (size_t)((band - 1) * s->stride + s->k) * *pw * s->ci > ABUF - 64)
        band--;
    return band;
}

/* Floats (as room for bf16 pairs) of a bf16 row-mode weight-gradient
** band: its padded input rows as pixel-pair-interleaved windows, and its
** rows of dy pair-interleaved (weight_band). */
static size_t bf_band_floats(const rn_conv_shape *s, size_t *rows_part) {
    int pw, band = wband(s, &pw);
    const size_t mp = (size_t)(s->ow + 1) / 2, nrows = (size_t)(band - 1) * s->stride + s->k;
    *rows_part = pad16(nrows * mp * s->k * s->ci + 16);
    return *rows_part + pad16((size_t)band * mp * s->co + 16);
}

static size_t out_tile_floats(const rn_conv_shape *s);
static size_t dx_tile_floats(const rn_conv_shape *s);

/* Floats per thread of scratch: the patch buffer, the tail, and for bf16
** the packed weight-gradient tiles (gather mode) or band (row mode), or the
** forward's or backward-data's fp32 output tile (RN_BF16_ACT, RN_BF16_DX)
** if that is more. */
static size_t thread_floats(const rn_conv_shape *s) {
    size_t rows_part, bf = 0;
    if (s->bf16) {
        bf = bf_patch_floats() + bf_dy_floats(s);
        const size_t band = bf_band_floats(s, &rows_part);
        bf = band > bf ? band : bf;
    }
    size_t f = ABUF + tail_floats(s) + bf;
    if (s->bf16 && ABUF + out_tile_floats(s) > f)
        f = ABUF + out_tile_floats(s);
    if (s->bf16 && ABUF + dx_tile_floats(s) > f)
        f = ABUF + dx_tile_floats(s);
    if (s->winograd) { /* room for either pass's Winograd buffers (reducing over Ci, or Co) */
        const size_t a = rn_wino_thread_floats(s->ci), b = rn_wino_thread_floats(s->co);
        f = a > f ? a : f;
        f = b > f ? b : f;
    }
    return f;
}

/* bf16 values of each of weight_blocks' two buffers of packed dy: a block
** of whole weight-gradient tiles (at least one). */
static size_t dw_block_values(const rn_conv_shape *s) {
    const size_t tile = (size_t)MW_MAX * s->co;
    return tile > DW_BLOCK ? tile : DW_BLOCK;
}

/* Floats of the scratch shared by a pass's threads: the packed or
** Winograd-transformed weights (16 x Ci x Co bf16, 8 floats per 9 weights,
** fit the weights' room), then room for a Winograd weight gradient's tiles
** and for weight_blocks' packed dy (a bf16 weight gradient split by rows;
** also where Winograd would apply, since a bf16 dy runs the direct one). */
static size_t shared_floats(const rn_conv_shape *s) {
    const rn_dispatch *d = rn_cpu_dispatch();
    const size_t w = pad16(weight_count(s));
    const size_t wino = rn_wino_dw_applies(s, d) ? rn_wino_dw_floats(s) : 0;
    const size_t blocks = s->bf16 && d->bf16 && !small_dw(s) ? pad16(dw_block_values(s)) : 0;
    return w + (wino > blocks ? wino : blocks);
}

/* Floats of scratch the forward and backward passes need when run by up to
** nthreads threads (nthreads < 1 means omp_get_max_threads()). Layout:
** [phase-packed transposed weights][nthreads x per-thread scratch]. */
size_t rn_conv_workspace(const rn_conv_shape *s, int nthreads) {
    if (nthreads < 1)
        nthreads = omp_get_max_threads();
    return shared_floats(s) + (size_t)nthreads * thread_floats(s);
}

/* Cuts job g into units for the current dispatch table and nt threads. */
static gplan make_plan(const gjob *g, const rn_dispatch *d, int nt) {
    gplan p;
    p.m = (long long)g->n * g->gh * g->gw;
    p.kdim = g->nu * g->nv * g->cs;
    p.nch = (p.kdim + KC_MAX - 1) / KC_MAX;
    p.kc = (p.kdim + p.nch - 1) / p.nch;
    if (g->wmb)
        p.kc += p.kc & 1; /* chunks of whole reduction pairs (kdim is even) */
    p.mc = A_FLOATS / p.kc / MQ * MQ;
    if (p.mc < MQ)
        p.mc = MQ;
    if (p.mc > MC_MAX)
        p.mc = MC_MAX;
    p.ntm = (p.m + p.mc - 1) / p.mc;
    p.tw = d->nvmax * d->vl;
    p.ncot = (g->cd + p.tw - 1) / p.tw;
    /* the source rows are the A operand: an fp32 job's fp32 rows, or a bf16 job's bf16 rows (channel pairs) */
    p.direct = (g->wmb ? g->srcb != NULL : g->srcb == NULL) && g->nu * g->nv == 1 && g->dh0 == 0 && g->dw0 == 0 &&
               g->step == 1 && g->gh == g->sh && g->gw == g->sw;
    p.contig = g->ds == 1 && g->oy == 0 && g->ox == 0 && g->gh == g->dh && g->gw == g->dw;
    /* Row mode: one reduction chunk, several taps, rows wide enough for the
    ** micro-tiles (or outputs so narrow that gathering would dominate), and
    ** a band of padded rows that fits the patch buffer. */
    p.pw = (g->gw - 1) * g->step + g->nv;
    p.band = imax(1, p.mc / imax(g->gw, 1));
    while (p.band > 1 && (size_t)((p.band - 1) * g->step + g->nu) * p.pw * g->cs > ABUF - 64)
        p.band--;
    p.rowmode = !p.direct && p.nch == 1 && g->nu <= MAX_SEG && (g->gw >= 12 || g->cd <= 32) &&
                (size_t)g->nu * p.pw * g->cs <= ABUF - 64 && (p.contig || (long long)p.band * g->gw <= MC_MAX);
    p.nbpi = (g->gh + p.band - 1) / p.band;
    const long long tiles = p.rowmode ? (long long)g->n * p.nbpi : p.ntm;
    p.ncb = 1;
    if (tiles > 0 && tiles < 4LL * nt) { /* tiles = 0: an empty job (a stride phase with no rows) */
        long long want = (4LL * nt + tiles - 1) / tiles;
        p.ncb = want < p.ncot ? (int)want : p.ncot;
    }
    return p;
}

/* The gather is plain C compiled three times (AVX-512, AVX2, baseline) and
** picked at load time: its copies are short runs that a libc call would
** spend more time entering than copying. Loops are not turned back into
** memcpy/memset calls for the same reason. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define RN_COPY_CLONES                                                                                                 \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("no-tree-loop-distribute-patterns")))
#else
#define RN_COPY_CLONES
#endif

/* Copies n floats. */
static RN_INLINE void copy_floats(float *restrict d, const float *restrict s, int n) {
    for (int i = 0; i < n; i++)
        d[i] = s[i];
}

/* Zeroes n floats. */
static RN_INLINE void zero_floats(float *d, int n) {
    for (int i = 0; i < n; i++)
        d[i] = 0.0f;
}

/* Writes n floats from s at element o of out, an fp32 array or (bf) a
** bf16 one, rounding (16 at a time, cpu.h). */
static RN_INLINE void put_copy(void *out, size_t o, const float *restrict s, int n, const int bf) {
    if (bf)
        rn_bf16_convert((uint16_t *)out + o, s, n);
    else
        copy_floats((float *)out + o, s, n);
}

/* Writes n zeros at element o of out (fp32, or bf16 when bf). */
static RN_INLINE void put_zero(void *out, size_t o, int n, const int bf) {
    if (bf) {
        uint16_t *d = (uint16_t *)out + o;
        for (int i = 0; i < n; i++)
            d[i] = 0;
    } else {
        zero_floats((float *)out + o, n);
    }
}

/* Writes n values of g's source, from element si on, at element o of
** out: fp32 (widened from a bf16 source), or (bf) bf16, rounded from an
** fp32 source or copied from a bf16 one (srcb). */
static RN_INLINE void put_src(void *out, size_t o, const gjob *g, size_t si, int n, const int bf) {
    if (g->srcb) {
        const uint16_t *s = g->srcb + si;
        if (bf) {
            uint16_t *d = (uint16_t *)out + o;
            for (int i = 0; i < n; i++)
                d[i] = s[i];
        } else {
            float *d = (float *)out + o;
            for (int i = 0; i < n; i++)
                d[i] = rn_bf16_to_f32(s[i]);
        }
    } else {
        put_copy(out, o, g->src + si, n, bf);
    }
}

/* Copies the patch of grid pixel (n, i, j), reduction indices [k0, k1)
** (index = (u*nv + v)*Cs + channel), to element o of out (fp32, or bf16
** when bf); taps in the padding read zeros. The taps of one row u are
** consecutive source pixels, so each row is one copy of its in-bounds part
** between two runs of zeros (whether a tap is in bounds is separable: rows
** by u, columns by v). */
static RN_INLINE void gather_pixel(const gjob *g, int n, int i, int j, int k0, int k1, void *out, size_t o,
                                   const int bf) {
    const int cs = g->cs, rl = g->nv * cs;
    const int y0 = i * g->step + g->dh0, x0 = j * g->step + g->dw0;
    const int vlo = imin(x0 < 0 ? -x0 : 0, g->nv), vhi = imax(imin(g->nv, g->sw - x0), vlo);
    const int in0 = vlo * cs, in1 = vhi * cs; /* in-bounds part of a row */
    const size_t base = (size_t)n * g->sh * g->sw * cs; /* the sample's first source element */
    for (int u = k0 / rl; u * rl < k1; u++) {
        const int a = imax(k0 - u * rl, 0), b = imin(k1 - u * rl, rl), y = y0 + u * g->ddh;
        const int ca = imax(a, in0), cb = imin(b, in1);
        if (y < 0 || y >= g->sh || ca >= cb) {
            put_zero(out, o, b - a, bf), o += b - a;
            continue;
        }
        put_zero(out, o, ca - a, bf), o += ca - a;
        put_src(out, o, g, base + (size_t)(((ptrdiff_t)y * g->sw + x0) * cs + ca), cb - ca, bf), o += cb - ca;
        put_zero(out, o, b - cb, bf), o += b - cb;
    }
}

/* Gathers the patches of grid pixels [m0, m0+rows), indices [k0, k1), as
** the rows of a (rows, k1-k0) matrix: fp32, or bf16 for a bf16 job. */
RN_COPY_CLONES static void gather_tile(const gjob *g, long long m0, int rows, int k0, int k1, void *a) {
    int j = (int)(m0 % g->gw), i = (int)(m0 / g->gw % g->gh), n = (int)(m0 / g->gw / g->gh);
    for (int r = 0; r < rows; r++) {
        if (g->wmb)
            gather_pixel(g, n, i, j, k0, k1, a, (size_t)r * (k1 - k0), 1);
        else
            gather_pixel(g, n, i, j, k0, k1, a, (size_t)r * (k1 - k0), 0);
        if (++j == g->gw) {
            j = 0;
            if (++i == g->gh)
                i = 0, n++;
        }
    }
}

/* Writes the (rows, w) fp32 tile s (row stride ld) rounded to bf16 at dst
** (the same stride): 16 at a time with vcvtneps2bf16 where the CPU has it,
** else one by one (the same bits). A bf16 destination's micro-tile is
** rounded so as soon as its sums are final, while it is still in L1. */
static void round_tile(const rn_dispatch *d, uint16_t *dst, const float *s, int rows, int w, ptrdiff_t ld) {
    for (int r = 0; r < rows; r++, dst += ld, s += ld) {
        if (d->bf16)
            rn_bf16_convert(dst, s, w);
        else
            for (int i = 0; i < w; i++)
                dst[i] = rn_bf16_from_f32(s[i]);
    }
}

/* Writes (or adds, when accumulating) the channels [c0, c1) of a tile of
** destination rows, computed in cbuf (rows, Cd), to their grid pixels. */
static void scatter_tile(const gjob *g, long long m0, int rows, int c0, int c1, const float *cbuf) {
    int j = (int)(m0 % g->gw), i = (int)(m0 / g->gw % g->gh), n = (int)(m0 / g->gw / g->gh);
    for (int r = 0; r < rows; r++) {
        float *d =
            g->dst + (((size_t)n * g->dh + g->oy + (size_t)i * g->ds) * g->dw + g->ox + (size_t)j * g->ds) * g->cd;
        const float *c = cbuf + (size_t)r * g->cd;
        if (g->accumulate)
            for (int k = c0; k < c1; k++)
                d[k] += c[k];
        else
            for (int k = c0; k < c1; k++)
                d[k] = c[k];
        if (++j == g->gw) {
            j = 0;
            if (++i == g->gh)
                i = 0, n++;
        }
    }
}

/* One nn micro-kernel call of job g: C (rows x nv vectors, at column c of
** the destination rows at cp) [+]= A B, A's first row at element aoff of
** a (fp32, or bf16 for a bf16 job), B the weight rows from k0 on (of each
** of nseg segments of kd rows; a bf16 job's odd kd is completed by a zero
** weight row), columns from c. */
static inline void nn_call(const gjob *g, const rn_dispatch *d, int nv, int rows, int nseg, const ptrdiff_t *soff,
                           int kd, const void *a, ptrdiff_t aoff, ptrdiff_t lda, size_t k0, int c, float *cp, int nlast,
                           const float *bias, int acc) {
    const ptrdiff_t cd = g->cd;
    if (g->wmb)
        d->nnb[nv][rows](nseg, soff, (kd + 1) / 2, (const uint16_t *)a + aoff, lda, g->wmb + k0 * cd + 2 * c, 2 * cd,
                         cp, cd, nlast, bias, acc);
    else
        d->nn[nv][rows](nseg, soff, kd, (const float *)a + aoff, lda, g->wm + k0 * cd + c, cd, cp, cd, nlast, bias,
                        acc);
}

/* Runs one unit of job g: pixel tile `unit / ncb`, channel block
** `unit % ncb`. The reduction is chunked so that the patch tile (abuf) and
** the weight panel stay in cache; the destination tile accumulates across
** chunks. cbuf holds the destination tile when it is not contiguous or is
** bf16 (dstb: a contiguous one, each micro-tile rounded into it after the
** last chunk). */
static void run_unit(const gjob *g, const gplan *p, const rn_dispatch *d, long long unit, float *abuf, float *cbuf) {
    const long long mt = unit / p->ncb;
    const int cb = (int)(unit % p->ncb), vl = d->vl, cd = g->cd;
    const long long m0 = mt * p->mc;
    const int rows = (int)(p->m - m0 < p->mc ? p->m - m0 : p->mc);
    const int c0 = cb * p->ncot / p->ncb * p->tw, c1 = imin(cd, (cb + 1) * p->ncot / p->ncb * p->tw);
    const int inplace = p->contig && !g->dstb; /* the micro-kernels write the destination itself */
    float *cbase = inplace ? g->dst + (size_t)m0 * cd : cbuf;
    const ptrdiff_t zero_off = 0;
    for (int ch = 0; ch < p->nch; ch++) {
        const int k0 = ch * p->kc, kl = imin(p->kc, p->kdim - k0);
        const void *a = abuf;
        ptrdiff_t lda = kl;
        if (p->direct) {
            const size_t o = (size_t)m0 * g->cs + k0;
            a = g->srcb ? (const void *)(g->srcb + o) : (const void *)(g->src + o), lda = g->cs;
        } else {
            gather_tile(g, m0, rows, k0, k0 + kl, abuf);
        }
        const int acc = ch > 0 || (p->contig && g->accumulate);
        const float *bias = !acc && g->bias ? g->bias : NULL;
        for (int c = c0; c < c1; c += p->tw) {
            const int w = imin(p->tw, c1 - c), nv = (w + vl - 1) / vl, nlast = w - (nv - 1) * vl;
            const int rw = d->nn_rows[nv];
            for (int r = 0, t; r < rows; r += t) {
                t = rn_tile_rows(rows - r, rw), nn_call(g, d, nv, t, 1, &zero_off, kl, a, r * lda, lda, (size_t)k0, c,
                        cbase + (size_t)r * cd + c, nlast, bias ? bias + c : NULL, acc);
                if (g->dstb && ch == p->nch - 1)
                    round_tile(d, g->dstb + ((size_t)m0 + r) * cd + c, cbase + (size_t)r * cd + c, t, w, cd);
            }
        }
    }
    if (!p->contig)
        scatter_tile(g, m0, rows, c0, c1, cbuf);
}

/* pad_rows' loop, for an fp32 or (bf) a bf16 buffer. */
static RN_INLINE void pad_rows_as(const gjob *g, int n, int ylo, int nrows, int pw, void *buf, const int bf) {
    const int cs = g->cs, x0 = g->dw0;
    const int a = imin(imax(-x0, 0), pw), b = imax(imin(pw, g->sw - x0), a); /* in-bounds columns */
    for (int r = 0; r < nrows; r++) {
        const size_t o = (size_t)r * pw * cs;
        const int y = ylo + r;
        if (y < 0 || y >= g->sh) {
            put_zero(buf, o, pw * cs, bf);
            continue;
        }
        put_zero(buf, o, a * cs, bf);
        put_src(buf, o + (size_t)a * cs, g, (((size_t)n * g->sh + y) * g->sw + x0 + a) * cs, (b - a) * cs, bf);
        put_zero(buf, o + (size_t)b * cs, (pw - b) * cs, bf);
    }
}

/* Copies the source rows [ylo, ylo+nrows) of sample n, each as pw pixels
** from column dw0 on, zero outside the source, into buf (nrows, pw, Cs):
** fp32, or bf16 for a bf16 job. */
RN_COPY_CLONES static void pad_rows(const gjob *g, int n, int ylo, int nrows, int pw, void *buf) {
    if (g->wmb)
        pad_rows_as(g, n, ylo, nrows, pw, buf, 1);
    else
        pad_rows_as(g, n, ylo, nrows, pw, buf, 0);
}

/* Runs one row-mode unit of job g: grid rows [i0, i0+band) of one sample,
** one channel block. The source rows they read are copied once, padded,
** into abuf; the patch of grid pixel (i, j) is then, for every tap row u,
** the nv*Cs consecutive floats at (row of u, column j*step): a segment of
** the nn micro-kernel, rows of A spaced step*Cs apart. */
static void run_band(const gjob *g, const gplan *p, const rn_dispatch *d, long long unit, float *abuf, float *cbuf) {
    const int cb = (int)(unit % p->ncb), vl = d->vl, cd = g->cd, cs = g->cs;
    const int n = (int)(unit / p->ncb / p->nbpi), i0 = (int)(unit / p->ncb % p->nbpi) * p->band;
    const int i1 = imin(g->gh, i0 + p->band);
    const int c0 = cb * p->ncot / p->ncb * p->tw, c1 = imin(cd, (cb + 1) * p->ncot / p->ncb * p->tw);
    const int up = g->ddh > 0 ? g->nu - 1 : 0, down = g->ddh > 0 ? 0 : g->nu - 1;
    const int ylo = i0 * g->step + g->dh0 - down, yhi = (i1 - 1) * g->step + g->dh0 + up;
    pad_rows(g, n, ylo, yhi - ylo + 1, p->pw, abuf);
    if (g->wmb && g->nv * cs % 2) /* an odd segment's last pair reads one value past the rows (odd_rows_bf16) */
        ((uint16_t *)abuf)[(size_t)(yhi - ylo + 1) * p->pw * cs] = 0;
    ptrdiff_t soff[MAX_SEG];
    for (int u = 0; u < g->nu; u++)
        soff[u] = (ptrdiff_t)u * g->ddh * p->pw * cs;
    const int acc = p->contig && g->accumulate, kd = g->nv * cs, inplace = p->contig && !g->dstb;
    const ptrdiff_t lda = (ptrdiff_t)g->step * cs;
    const float *bias = !acc && g->bias ? g->bias : NULL;
    for (int c = c0; c < c1; c += p->tw) {
        const int w = imin(p->tw, c1 - c), nv = (w + vl - 1) / vl, nlast = w - (nv - 1) * vl;
        const int rw = d->nn_rows[nv];
        for (int i = i0; i < i1; i++) {
            const ptrdiff_t arow = (ptrdiff_t)(i * g->step + g->dh0 - ylo) * p->pw * cs;
            float *crow =
                inplace ? g->dst + (((size_t)n * g->gh + i) * g->gw) * cd : cbuf + (size_t)(i - i0) * g->gw * cd;
            for (int j = 0, t; j < g->gw; j += t) {
                t = rn_tile_rows(g->gw - j, rw), nn_call(g, d, nv, t, g->nu, soff, kd, abuf, arow + j * lda, lda, 0, c,
                        crow + (size_t)j * cd + c, nlast, bias ? bias + c : NULL, acc);
                if (g->dstb) {
                    const size_t o = (((size_t)n * g->gh + i) * g->gw + j) * cd + c;
                    round_tile(d, g->dstb + o, crow + (size_t)j * cd + c, t, w, cd);
                }
            }
        }
    }
    if (!p->contig)
        scatter_tile(g, ((long long)n * g->gh + i0) * g->gw, (i1 - i0) * g->gw, c0, c1, cbuf);
}

/* Runs job g inside a parallel region: every thread takes units. */
static void run_job(const gjob *g, const rn_dispatch *d, float *abuf, float *cbuf) {
    const gplan p = make_plan(g, d, omp_get_num_threads());
    if (p.m == 0 || g->cd == 0)
        return;
    if (p.rowmode) {
        const long long units = (long long)g->n * p.nbpi * p.ncb;
#pragma omp for schedule(dynamic, 1) nowait
        for (long long u = 0; u < units; u++)
            run_band(g, &p, d, u, abuf, cbuf);
    } else {
        const long long units = p.ntm * p.ncb;
#pragma omp for schedule(dynamic, 1) nowait
        for (long long u = 0; u < units; u++)
            run_unit(g, &p, d, u, abuf, cbuf);
    }
}

/* The forward job: y = patches of x times w (+ b); x is fp32, or bf16
** when xb (the job's srcb). */
static gjob forward_job(const rn_conv_shape *s, const void *x, int xb, const float *w, const float *b, float *y) {
    gjob g = {xb ? NULL : x, s->h, s->w,  s->ci, s->n,  s->oh, s->ow, s->stride, s->k, s->k, -s->pad, 1,
              -s->pad,       w,    s->co, y,     s->oh, s->ow, 0,     0,         1,    b,    0,       NULL,
              xb ? x : NULL, NULL};
    return g;
}

/* Whether a pass of s whose reduction runs over cs channels per tap
** multiplies in bf16: asked for, supported, and whole channel pairs. */
static int bf_pass(const rn_conv_shape *s, const rn_dispatch *d, int cs) { return s->bf16 && d->bf16 && cs % 2 == 0; }

/* The plan of job g for one thread, as a bf16 job when bf (only whether
** it is one matters to the plan: wmb is set but not read). */
static gplan query_plan(gjob g, const rn_dispatch *d, int bf) {
    if (bf)
        g.wmb = (const uint16_t *)&g;
    return make_plan(&g, d, 1);
}

/* Floats of the fp32 tile a unit of job g (as planned by query_plan)
** computes before rounding it into a bf16 destination: a pixel tile's or a
** row band's rows, all destination channels. */
static size_t round_tile_floats(const gjob *g, const rn_dispatch *d, int bf) {
    const gplan p = query_plan(*g, d, bf);
    return pad16((size_t)(p.rowmode ? p.band * g->gw : p.mc) * g->cd);
}

/* Whether the forward of s, Ci odd, multiplies in bf16 all the same: in
** row mode, where each tap row's window of Ci*K values is a segment whose
** weights are packed with a zero row after it (pack_weights_segs), so the
** segment's last pair ends one value past the window, multiplied by that
** zero. The stem's 7x7 over 3 channels so runs 1.6x faster (128 px,
** batch 32, 2 threads: 8.0 -> 5.1 ms). Gathering patches into even rows
** was no faster: the gather cost what the products saved. */
static int odd_rows_bf16(const rn_conv_shape *s, const rn_dispatch *d) {
    if (!s->bf16 || !d->bf16 || s->ci % 2 == 0)
        return 0;
    return query_plan(forward_job(s, NULL, 0, NULL, NULL, NULL), d, 1).rowmode;
}

/* Whether the forward of s multiplies in bf16 (direct or by Winograd). */
static int fwd_bf16(const rn_conv_shape *s, const rn_dispatch *d) {
    return bf_pass(s, d, s->ci) || odd_rows_bf16(s, d);
}

/* Floats of the fp32 tile a forward unit of s computes before rounding it
** into a bf16 destination (RN_BF16_ACT): a pixel tile's or a row band's
** rows, all output channels. */
static size_t out_tile_floats(const rn_conv_shape *s) {
    const rn_dispatch *d = rn_cpu_dispatch();
    const gjob g = forward_job(s, NULL, 0, NULL, NULL, NULL);
    return round_tile_floats(&g, d, fwd_bf16(s, d));
}

/* Writes the (rows, cols) fp32 matrix a (row stride lda) pair-interleaved
** along its rows, in bf16: element (i, j) at out[(i/2)*2*cols + 2j + i%2];
** an odd last row is paired with zeros. */
static void pack_pairs(const float *a, ptrdiff_t lda, int rows, int cols, uint16_t *out) {
    for (int i = 0; i < rows; i += 2)
        rn_bf16_interleave(out + (size_t)i * cols, a + (ptrdiff_t)i * lda,
                           i + 1 < rows ? a + (ptrdiff_t)(i + 1) * lda : NULL, cols);
}

/* pack_pairs for a (rows, cols) matrix already in bf16 (copied, not rounded). */
static void pack_pairs16(const uint16_t *a, ptrdiff_t lda, int rows, int cols, uint16_t *out) {
    for (int i = 0; i < rows; i += 2)
        rn_bf16_interleave16(out + (size_t)i * cols, a + (ptrdiff_t)i * lda,
                             i + 1 < rows ? a + (ptrdiff_t)(i + 1) * lda : NULL, cols);
}

/* Packs the (rows, cols) weights w pair-interleaved into wb (rows even),
** shared between the threads of a parallel region; ends with a barrier. */
static void pack_weights_pairs(size_t rows, int cols, const float *w, uint16_t *wb) {
    const long long np = (long long)rows / 2, step = 64;
#pragma omp for schedule(static)
    for (long long p = 0; p < np; p += step)
        pack_pairs(w + (size_t)p * 2 * cols, cols, (int)(2 * (p + step < np ? step : np - p)), cols,
                   wb + (size_t)p * 2 * cols);
}

/* Packs the forward weights of s, Ci odd, for odd_rows_bf16: each tap
** row's K*Ci rows of w pair-interleaved, then a zero row, (K*Ci+1)/2 pair
** rows a segment; shared between the threads of a parallel region, ends
** with a barrier.  w: (K,K,Ci,Co) */
static void pack_weights_segs(const rn_conv_shape *s, const float *w, uint16_t *wb) {
    const int kd = s->k * s->ci;
#pragma omp for schedule(static)
    for (int u = 0; u < s->k; u++)
        pack_pairs(w + (size_t)u * kd * s->co, s->co, kd, s->co, wb + (size_t)u * (kd + 1) * s->co);
}

/* Packs the forward weights of s for a bf16 pass, inside a parallel
** region (ends with a barrier). */
static void pack_forward(const rn_conv_shape *s, const float *w, uint16_t *wb) {
    if (s->ci % 2)
        pack_weights_segs(s, w, wb);
    else
        pack_weights_pairs((size_t)s->k * s->k * s->ci, s->co, w, wb);
}

/* The forward of s: y = patches of x times w (+ b); x is fp32 or (xb)
** bf16, y fp32 or (yb) bf16. For a bf16 pass the weights come
** pair-interleaved in wb, packed from w here first when `pack` (into the
** weights' part of ws), else already packed. A bf16 x runs the direct
** passes (Winograd's transform reads fp32). */
static void forward_run(const rn_conv_shape *s, const void *x, int xb, const float *w, const uint16_t *wb, int pack,
                        const float *b, void *y, int yb, float *ws) {
    const rn_dispatch *d = rn_cpu_dispatch();
    float *yf = yb ? NULL : y;
    uint16_t *yh = yb ? y : NULL;
    gjob g = forward_job(s, x, xb, w, b, yf);
    g.dstb = yh;
    const int bf = fwd_bf16(s, d);
    if (bf)
        g.wmb = wb;
    float *tbase = ws + shared_floats(s);
    if (pack && !xb && rn_wino_applies(s, d)) {
        const rn_wino_job j = {x, s->n, s->h, s->w, s->ci, yf, s->oh, s->ow, s->co, s->pad, (uint16_t *)ws, b, 0, yh};
#pragma omp parallel
        {
            rn_wino_pack(w, s->ci, s->co, 0, (uint16_t *)ws);
            rn_wino_run(&j, d, tbase + (size_t)omp_get_thread_num() * thread_floats(s));
        }
        return;
    }
#pragma omp parallel
    {
        float *abuf = tbase + (size_t)omp_get_thread_num() * thread_floats(s);
        if (bf && pack)
            pack_forward(s, w, (uint16_t *)wb);
        run_job(&g, d, abuf, abuf + ABUF);
    }
}

/* y = conv(x, w) + b, with scratch ws of rn_conv_workspace(s, T) floats;
** x is read in bf16 with RN_BF16_X, and, for a bf16 shape (s->bf16), y
** written in bf16 (uint16_t) with RN_BF16_ACT (kernels.h).
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  b: (Co) or NULL  y: (N,OH,OW,Co) */
void rn_conv_forward_ex(const rn_conv_shape *s, const void *x, const float *w, const float *b, void *y, float *ws,
                        int flags) {
    forward_run(s, x, (flags & RN_BF16_X) != 0, w, (uint16_t *)ws, 1, b, y, s->bf16 && (flags & RN_BF16_ACT), ws);
}

/* y = conv(x, w) + b, with scratch ws of rn_conv_workspace(s, T) floats.
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  b: (Co) or NULL  y: (N,OH,OW,Co) */
void rn_conv_forward_ws(const rn_conv_shape *s, const float *x, const float *w, const float *b, float *y, float *ws) {
    forward_run(s, x, 0, w, (uint16_t *)ws, 1, b, y, 0, ws);
}

/* Whether the forward of s runs as a direct bf16 GEMM (kernels.h), so that
** its weights can be packed once with rn_conv_pack_bf16; a Winograd one
** transforms its weights at every call instead (they are 16/9 larger
** transformed, and the transform costs little beside the products). */
int rn_conv_forward_packs(const rn_conv_shape *s) {
    const rn_dispatch *d = rn_cpu_dispatch();
    return fwd_bf16(s, d) && !rn_wino_applies(s, d);
}

/* bf16 values rn_conv_pack_bf16 writes for s: K*K*Ci*Co, plus a zero row
** of Co per tap row when Ci is odd (pack_weights_segs). */
size_t rn_conv_packed_values(const rn_conv_shape *s) {
    return (size_t)s->k * ((size_t)s->k * s->ci + (s->ci % 2)) * s->co;
}

/* Packs w for rn_conv_forward_packed (pair-interleaved bf16,
** rn_conv_packed_values(s) values). w: (K,K,Ci,Co) */
void rn_conv_pack_bf16(const rn_conv_shape *s, const float *w, uint16_t *wb) {
#pragma omp parallel
    pack_forward(s, w, wb);
}

/* y = conv(x, w) + b with the weights packed by rn_conv_pack_bf16 (only
** for a shape where rn_conv_forward_is_bf16): the weights are not read
** again, which saves inference on a model whose weights do not change
** one pass over them per call. */
void rn_conv_forward_packed(const rn_conv_shape *s, const float *x, const uint16_t *wb, const float *b, float *y,
                            float *ws) {
    forward_run(s, x, 0, NULL, wb, 0, b, y, 0, ws);
}

/* y = conv(x, w) + b with its own scratch (falls back to the reference
** loop nest if that cannot be allocated: this entry point cannot fail).
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  b: (Co) or NULL  y: (N,OH,OW,Co) */
void rn_conv_forward(const rn_conv_shape *s, const float *x, const float *w, const float *b, float *y) {
    float *ws = malloc(rn_conv_workspace(s, 0) * sizeof(float));
    if (!ws) {
        rn_ref_conv_forward(s, x, w, b, y);
        return;
    }
    rn_conv_forward_ws(s, x, w, b, y, ws);
    free(ws);
}

/* Taps of one backward-data phase along one axis: the kernel offsets kh
** with (ph + pad - kh) % stride == 0, i.e. kh = first, first+S, ... Returns
** their count and sets *first. */
static int phase_taps(const rn_conv_shape *s, int ph, int *first) {
    *first = (ph + s->pad) % s->stride;
    return *first < s->k ? (s->k - 1 - *first) / s->stride + 1 : 0;
}

/* Offset, in taps, of phase (py, px) in the packed weights (phases in
** row-major order, each with its nu*nv taps). */
static int phase_offset(const rn_conv_shape *s, int py, int px) {
    int off = 0, f;
    for (int qy = 0; qy < s->stride; qy++)
        for (int qx = 0; qx < s->stride; qx++) {
            if (qy == py && qx == px)
                return off;
            off += phase_taps(s, qy, &f) * phase_taps(s, qx, &f);
        }
    return off;
}

/* Writes the Co x Ci transpose of one tap's weights pair-interleaved
** along Co, in bf16: element (co, ci) at out[((co/2)*Ci + ci)*2 + co%2].
** Co is even; blocks of 16 ci keep the written lines in cache.
** src: (Ci, Co) */
RN_COPY_CLONES static void transpose_pairs(int ci_n, int co_n, const float *restrict src, uint16_t *restrict out) {
    for (int c0 = 0; c0 < ci_n; c0 += 16) {
        const int c1 = imin(ci_n, c0 + 16);
        for (int p = 0; p < co_n / 2; p++)
            for (int ci = c0; ci < c1; ci++) {
                const float *a = src + (size_t)ci * co_n + 2 * p;
                uint16_t *o = out + ((size_t)p * ci_n + ci) * 2;
                o[0] = rn_bf16_from_f32(a[0]), o[1] = rn_bf16_from_f32(a[1]);
            }
    }
}

/* Packs the weights for backward-data: for every phase, its taps (kh
** ascending, kw descending) each as the Co x Ci transpose of w[kh][kw],
** into wp, or pair-interleaved along Co in bf16 into wpb when not NULL.
** Called by every thread of a parallel region (shares the taps); ends with
** a barrier. w: (K,K,Ci,Co)  wp: (K*K taps, Co, Ci) */
static void pack_weights_t(const rn_conv_shape *s, const float *w, float *wp, uint16_t *wpb) {
    const int K = s->k, S = s->stride, Ci = s->ci, Co = s->co;
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < K * K; t++) {
        const int kh = t / K, kw = t % K;
        const int py = ((kh - s->pad) % S + S) % S, px = ((kw - s->pad) % S + S) % S;
        int fy, fx, nvx = phase_taps(s, px, &fx);
        phase_taps(s, py, &fy);
        const int lastx = fx + (nvx - 1) * S, u = (kh - fy) / S, v = (lastx - kw) / S;
        const float *src = w + (size_t)t * Ci * Co;
        const size_t base = ((size_t)phase_offset(s, py, px) + (size_t)u * nvx + v) * Co * Ci;
        if (wpb)
            transpose_pairs(Ci, Co, src, wpb + base);
        else
            for (int c0 = 0; c0 < Ci; c0 += 16)
                for (int o0 = 0; o0 < Co; o0 += 16)
                    for (int ci = c0; ci < imin(Ci, c0 + 16); ci++)
                        for (int co = o0; co < imin(Co, o0 + 16); co++)
                            wp[base + (size_t)co * Ci + ci] = src[(size_t)ci * Co + co];
    }
}

/* The backward-data job of phase (py, px): dx pixels (n, py + S*i, px + S*j)
** += (or =, when !acc) patches of dy (taps of that phase) times their
** packed weights. dy is fp32, or bf16 in dyh (a bf16 pass, wpb set). */
static gjob phase_job(const rn_conv_shape *s, const float *dy, const uint16_t *dyh, const float *wp,
                      const uint16_t *wpb, float *dx, int py, int px, int acc) {
    const int S = s->stride, P = s->pad;
    int fy, fx, nu = phase_taps(s, py, &fy), nv = phase_taps(s, px, &fx);
    const int lastx = fx + (nv - 1) * S;
    gjob g = {dy,
              s->oh,
              s->ow,
              s->co,
              s->n,
              py < s->h ? (s->h - py + S - 1) / S : 0,
              px < s->w ? (s->w - px + S - 1) / S : 0,
              1,
              nu,
              nv,
              (py + P - fy) / S,
              -1,
              (px + P - lastx) / S,
              wp + (size_t)phase_offset(s, py, px) * s->co * s->ci,
              s->ci,
              dx,
              s->h,
              s->w,
              py,
              px,
              S,
              NULL,
              acc,
              wpb ? wpb + (size_t)phase_offset(s, py, px) * s->co * s->ci : NULL,
              dyh,
              NULL};
    return g;
}

/* Floats of the fp32 tile a backward-data unit of s computes before
** rounding it into a bf16 dx (RN_BF16_DX; stride 1: one phase, whose
** destination is contiguous), else 0. */
static size_t dx_tile_floats(const rn_conv_shape *s) {
    const rn_dispatch *d = rn_cpu_dispatch();
    if (s->stride != 1)
        return 0;
    const gjob g = phase_job(s, NULL, NULL, NULL, NULL, NULL, 0, 0, 0);
    return round_tile_floats(&g, d, bf_pass(s, d, s->co));
}

/* Work of the weight gradient: the rows of dw in blocks of MQ, crossed
** with the co tiles; pair p is (row block p / ncot, co tile p % ncot). */
typedef struct {
    int kdim, co, tw, ncot, npairs;
    int kcw, mw;        /* rows per gathered chunk, pixels per tile: fixed by the shape */
    int direct;         /* patch rows are rows of x (1x1, stride 1, no padding) */
    int bf;             /* bf16: patches (or row windows) and dy packed in pixel pairs */
    int rowmode;        /* patches are windows into padded rows of x (weight_band) */
    int band, nbpi, pw; /* row mode: output rows per band, bands per sample, pixels per padded row */
    long long units;    /* pixels (gather mode) or bands (row mode) to sum over */
} wplan;

/* The weight-gradient plan of shape s, x in bf16 when xb. Row mode needs
** bands of at least MIN_BAND_PX output pixels: every band loads and
** stores its pairs' tiles of dw, so on small images (a 4x4 output is one
** band of 16 pixels per sample) that traffic dominates. In gather mode
** those shapes run about 1.5x faster (batch 32, medians of 7: 512 -> 512
** at 8x8 stride 2 6.9 -> 4.5 ms in bf16, 15.3 -> 8.6 ms in fp32; 256 ->
** 512 at 8x8 stride 2 3.0 -> 2.0 ms in bf16), while bands of 64 pixels
** (128 -> 256 at 16x16 stride 2, 256 -> 256 at 8x8) are still 7-12%
** faster in row mode. */
static wplan make_wplan(const rn_conv_shape *s, const rn_dispatch *d, int xb) {
    wplan p;
    p.kdim = s->k * s->k * s->ci;
    p.co = s->co;
    p.tw = d->nvmax * d->vl;
    p.ncot = (s->co + p.tw - 1) / p.tw;
    p.npairs = (p.kdim + MQ - 1) / MQ * p.ncot;
    p.kcw = imin(p.kdim, KW_MAX);
    p.mw = (ABUF - 64) / p.kcw;
    if (p.mw > MW_MAX)
        p.mw = MW_MAX;
    p.bf = s->bf16 && d->bf16;
    p.direct = s->k == 1 && s->stride == 1 && s->pad == 0 && (p.bf || !xb); /* an fp32 pass gathers a bf16 x */
    p.band = wband(s, &p.pw);
    p.rowmode = s->k > 1 && (size_t)s->k * p.pw * s->ci <= ABUF - 64 && imin(p.band, s->oh) * s->ow >= MIN_BAND_PX;
    p.nbpi = (s->oh + p.band - 1) / p.band;
    p.units = p.rowmode ? (long long)s->n * p.nbpi : (long long)s->n * s->oh * s->ow;
    return p;
}

/* The output gradient a weight gradient reads: fp32 (f), or already in
** bf16 (h, for a bf16 pass; f is then NULL). */
typedef struct {
    const float *f;
    const uint16_t *h;
} dy_src;

/* pack_pairs of rows [m0, m0+rows) of dy: (M, Co), fp32 or bf16. */
static void pack_dy(dy_src dy, size_t m0, int rows, int co, uint16_t *out) {
    if (dy.h)
        pack_pairs16(dy.h + m0 * co, co, rows, co, out);
    else
        pack_pairs(dy.f + m0 * co, co, rows, co, out);
}

/* bf16 row mode (weight_band): writes the windows of the nrows padded
** rows in abuf as pixel pairs, pp[(y*mp + q)*2*rl + 2*col + e] = window of
** output pixel 2q+e of padded row y at column col (rl = taps x Cs of one
** kernel row), and the band's rows of dy (from pixel m0 on) the same way,
** dp[(r*mp + q)*2*Co + 2*j + e] = dy[r][2q+e][j]; an odd last pixel is
** paired with zeros. mp = pixel pairs per row. */
static void band_pairs(const wplan *p, const gjob *g, const float *abuf, int nrows, dy_src dy, size_t m0, int rows,
                       uint16_t *pp, uint16_t *dp) {
    const int cs = g->cs, S = g->step, rl = g->nv * cs, gw = g->gw, mp = (gw + 1) / 2, co = p->co;
    for (int y = 0; y < nrows; y++)
        for (int q = 0; q < mp; q++) {
            const float *w0 = abuf + ((size_t)y * p->pw + (size_t)2 * q * S) * cs;
            rn_bf16_interleave(pp + ((size_t)y * mp + q) * 2 * rl, w0, 2 * q + 1 < gw ? w0 + (size_t)S * cs : NULL, rl);
        }
    for (int r = 0; r < rows; r++)
        pack_dy(dy, m0 + (size_t)r * gw, gw, co, dp + (size_t)r * mp * 2 * co);
}

/* Adds to dw the sums over the pixels of band `band` (row mode), for the
** pairs [pa, pb): the band's rows of x are copied once, padded, into abuf,
** and each output row is a segment of the tn micro-kernel whose rows of A
** are windows into them, stride*Ci apart. A tile of dw rows stays within
** one row block and one kernel row u. bf16: the windows and dy are first
** written as pixel pairs into pp and dp (band_pairs), three bf16 values
** per input value for a 3x3 kernel where gathering patches takes nine.
** dy: (M, Co)  dw: (kdim, Co) */
static void weight_band(const wplan *p, const rn_dispatch *d, const gjob *g, dy_src dy, float *dw, long long band,
                        int pa, int pb, float *abuf, uint16_t *pp, uint16_t *dp) {
    const int vl = d->vl, co = p->co, cs = g->cs, S = g->step, rl = g->nv * cs;
    const int n = (int)(band / p->nbpi), i0 = (int)(band % p->nbpi) * p->band, i1 = imin(g->gh, i0 + p->band);
    const int ylo = i0 * S + g->dh0, yhi = (i1 - 1) * S + g->dh0 + g->nu - 1;
    pad_rows(g, n, ylo, yhi - ylo + 1, p->pw, abuf);
    const size_t m0 = ((size_t)n * g->gh + i0) * g->gw; /* the band's first pixel */
    const float *dyb = dy.f ? dy.f + m0 * co : NULL;
    const int mp = (g->gw + 1) / 2;
    const ptrdiff_t prow = p->bf ? (ptrdiff_t)mp * 2 * rl : (ptrdiff_t)p->pw * cs; /* elements per padded row */
    if (p->bf)
        band_pairs(p, g, abuf, yhi - ylo + 1, dy, m0, i1 - i0, pp, dp);
    ptrdiff_t soff[MAX_SEG];
    for (int r = 0; r < i1 - i0; r++)
        soff[r] = r * S * prow;
    const int ka = pa / p->ncot * MQ, kb = imin(p->kdim, ((pb - 1) / p->ncot + 1) * MQ);
    for (int k = ka, e; k < kb; k = e) {
        const int u = k / rl;
        e = imin(kb, imin((k / MQ + 1) * MQ, (u + 1) * rl));
        const float *a = abuf + (ptrdiff_t)u * p->pw * cs + (k - u * rl);
        const uint16_t *ab = p->bf ? pp + u * prow + 2 * (k - u * rl) : NULL;
        for (int ct = 0; ct < p->ncot; ct++) {
            const int pair = k / MQ * p->ncot + ct;
            if (pair < pa || pair >= pb)
                continue;
            const int c = ct * p->tw, w = imin(p->tw, co - c), nv = (w + vl - 1) / vl;
            const int nlast = w - (nv - 1) * vl, rk = d->tn_rows[nv];
            for (int kk = k, t; kk < e; kk += t) {
                float *cp = dw + (size_t)kk * co + c;
                t = rn_tile_rows(e - kk, rk);
                if (p->bf)
                    d->tnb[nv][t](i1 - i0, soff, mp, ab + 2 * (kk - k), 2 * rl, dp + 2 * c, 2 * co, cp, co, nlast);
                else
                    d->tn[nv][t](i1 - i0, soff, g->gw, a + (kk - k), (ptrdiff_t)S * cs, dyb + c, co, cp, co, nlast);
            }
        }
    }
}

/* A run of bytes that a loop prefetches a few cache lines at a time, so
** that the next tile's data arrives while the micro-kernels work on this
** one (ahead_step). */
typedef struct {
    const char *p, *end;
} ahead;

/* The rows [m0, m1) of a (M, c) array of esize-byte elements, as a run to
** prefetch (empty when m1 <= m0 or a is NULL). */
static ahead ahead_rows(const void *a, long long m0, long long m1, int c, size_t esize) {
    ahead r = {NULL, NULL};
    if (a && m1 > m0)
        r.p = (const char *)a + (size_t)m0 * c * esize, r.end = (const char *)a + (size_t)m1 * c * esize;
    return r;
}

/* Prefetches the next n cache lines of a into the cache (a read, kept in
** L2 and closer) and moves past them. */
static void ahead_step(ahead *a, int n) {
    for (; n > 0 && a->p < a->end; n--, a->p += 64)
        __builtin_prefetch(a->p, 0, 2);
}

/* Adds to dw the sums over grid pixels [ma, mb), in tiles of mw pixels, of
** patch (x) outer dy, for the pairs [pa, pb) of p. Each dw element is
** summed in the same order whatever the pairs, so how the pairs are split
** between threads does not change the result. bf16 (p->bf): each tile of
** patches and of dy is packed pixel-pair-interleaved into ap and dyp, or
** (packed) dyp already holds the packed dy of pixels [ma, mb). While a
** tile's products run, the next tile's rows of dy (unless packed) and of
** x (direct) are prefetched a few lines per micro-kernel call: they come
** from memory, and packing them had waited on it as long as the products
** took (64 -> 256 at 32x32, batch 32).
** dy: (M, Co)  dw: (kdim, Co) */
static void weight_pairs(const wplan *p, const rn_dispatch *d, const gjob *g, dy_src dy, float *dw, long long ma,
                         long long mb, int pa, int pb, float *abuf, uint16_t *ap, uint16_t *dyp, int packed) {
    if (pa >= pb)
        return;
    const int vl = d->vl, co = p->co;
    const int ka = pa / p->ncot * MQ, kb = imin(p->kdim, ((pb - 1) / p->ncot + 1) * MQ);
    const ptrdiff_t zero_off = 0;
    const size_t dye = dy.h ? sizeof(uint16_t) : sizeof(float), xe = g->srcb ? sizeof(uint16_t) : sizeof(float);
    const int calls = (pb - pa) * imax(1, MQ / d->tn_rows[d->nvmax]); /* about, per tile */
    for (long long m0 = ma; m0 < mb; m0 += p->mw) {
        const int rows = (int)(mb - m0 < p->mw ? mb - m0 : p->mw);
        const long long m1 = m0 + rows, m2 = mb - m1 < p->mw ? mb : m1 + p->mw;
        ahead ady = ahead_rows(packed ? NULL : dy.h ? (const void *)dy.h : (const void *)dy.f, m1, m2, co, dye);
        ahead ax = ahead_rows(p->direct ? (g->srcb ? (const void *)g->srcb : (const void *)g->src) : NULL, m1, m2,
                              g->cs, xe);
        const int step = (int)((ady.end - ady.p + ax.end - ax.p) / 64 / calls + 1);
        const float *dyt = dy.f ? dy.f + (size_t)m0 * co : NULL;
        const uint16_t *dyb = packed ? dyp + (size_t)(m0 - ma) * co : dyp;
        if (p->bf && !packed)
            pack_dy(dy, (size_t)m0, rows, co, dyp);
        for (int k0 = ka; k0 < kb; k0 += p->kcw) {
            const int kl = imin(p->kcw, kb - k0);
            const float *a = abuf;
            ptrdiff_t lda = kl;
            if (p->direct && g->srcb) { /* bf16 rows of x (a bf16 pass: make_wplan): copied into pairs */
                pack_pairs16(g->srcb + (size_t)m0 * g->cs + k0, g->cs, rows, kl, ap);
            } else {
                if (p->direct)
                    a = g->src + (size_t)m0 * g->cs + k0, lda = g->cs;
                else
                    gather_tile(g, m0, rows, k0, k0 + kl, abuf);
                if (p->bf)
                    pack_pairs(a, lda, rows, kl, ap);
            }
            for (int kq = k0; kq < k0 + kl; kq += MQ) {
                const int kblk = kq / MQ, kend = imin(kq + MQ, k0 + kl);
                for (int ct = 0; ct < p->ncot; ct++) {
                    const int pair = kblk * p->ncot + ct;
                    if (pair < pa || pair >= pb)
                        continue;
                    const int c = ct * p->tw, w = imin(p->tw, co - c), nv = (w + vl - 1) / vl;
                    const int nlast = w - (nv - 1) * vl, rk = d->tn_rows[nv];
                    for (int kk = kq, t; kk < kend; kk += t) {
                        float *cp = dw + (size_t)kk * co + c;
                        t = rn_tile_rows(kend - kk, rk);
                        ahead_step(&ady, step), ahead_step(&ax, step);
                        if (p->bf)
                            d->tnb[nv][t](1, &zero_off, (rows + 1) / 2, ap + 2 * (kk - k0), 2 * kl, dyb + 2 * c,
                                          2 * co, cp, co, nlast);
                        else
                            d->tn[nv][t](1, &zero_off, rows, a + (kk - k0), lda, dyt + c, co, cp, co, nlast);
                    }
                }
            }
        }
    }
}

/* weight_pairs over all pixels for a bf16 dw whose pairs are split between
** the threads, each of which needs every pixel's dy: rather than each
** packing all of dy (reading it once per thread; it was a third of the
** bytes read by resnet50's first-stage 1x1 weight gradients, and over half
** for 64 -> 256), the threads pack each block of tiles' dy once, together,
** into one of the two shared buffers (one barrier per block: a thread packs
** block b+1 into the other buffer while the rest may still read block b),
** then each sums its pairs over the block's tiles. The tiles and their
** order are those of weight_pairs alone, so the result is the same.
** dy: (M, Co)  dw: (kdim, Co)  shared: 2 x dw_block_values(s) bf16 */
static void weight_blocks(const rn_conv_shape *s, const wplan *p, const rn_dispatch *d, const gjob *g, dy_src dy,
                          float *dw, int pa, int pb, float *abuf, uint16_t *ap, uint16_t *shared) {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num(), co = p->co;
    const size_t vals = dw_block_values(s);
    const long long bp = imax(1, (int)(vals / ((size_t)p->mw * co))) * (long long)p->mw;
    for (long long b0 = 0, k = 0; b0 < p->units; b0 += bp, k++) {
        const long long b1 = b0 + bp < p->units ? b0 + bp : p->units, pairs = (b1 - b0 + 1) / 2;
        const long long q0 = pairs * tid / nt, q1 = pairs * (tid + 1) / nt;
        uint16_t *buf = shared + (size_t)(k & 1) * vals;
        if (q1 > q0)
            pack_dy(dy, (size_t)(b0 + 2 * q0), (int)(2 * q1 < b1 - b0 ? 2 * (q1 - q0) : b1 - b0 - 2 * q0), co,
                    buf + (size_t)2 * q0 * co);
#pragma omp barrier
        weight_pairs(p, d, g, dy, dw, b0, b1, pa, pb, abuf, ap, buf, 1);
    }
}

/* dw += x (*) dy, called by every thread of a parallel region. Large dw:
** the pairs are split between the threads, each summing all pixels (the
** result does not depend on the thread count). Small dw: the pixels are
** split, each thread sums a partial dw in its scratch `part`, and the
** partials are added in thread order (the same result for the same thread
** count). Ends with a barrier only in the small case. */
static void weight_grad(const rn_conv_shape *s, const rn_dispatch *d, const gjob *g, dy_src dy, float *dw,
                        float *abuf, float *part, float *tbase, uint16_t *shared) {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    const wplan p = make_wplan(s, d, g->srcb != NULL);
    const int whole = !small_dw(s);
    const long long ua = whole ? 0 : p.units * tid / nt, ub = whole ? p.units : p.units * (tid + 1) / nt;
    const int pa = whole ? (int)((long long)tid * p.npairs / nt) : 0;
    const int pb = whole ? (int)((long long)(tid + 1) * p.npairs / nt) : p.npairs;
    float *out = whole ? dw : part;
    const size_t cnt = weight_count(s);
    uint16_t *ap = NULL, *dyp = NULL; /* bf16: gather mode's patches then dy, or row mode's rows then dy */
    if (p.bf) {
        size_t rows_part;
        bf_band_floats(s, &rows_part);
        ap = (uint16_t *)(abuf + ABUF + tail_floats(s));
        dyp = ap + 2 * (p.rowmode ? rows_part : bf_patch_floats());
    }
    if (!whole)
        memset(part, 0, cnt * sizeof(float));
    if (p.rowmode) {
        if (pa < pb)
            for (long long b = ua; b < ub; b++)
                weight_band(&p, d, g, dy, out, b, pa, pb, abuf, ap, dyp);
    } else if (p.bf && whole) {
        weight_blocks(s, &p, d, g, dy, out, pa, pb, abuf, ap, shared);
    } else {
        weight_pairs(&p, d, g, dy, out, ua, ub, pa, pb, abuf, ap, dyp, 0);
    }
    if (whole)
        return;
#pragma omp barrier
    const size_t tf = thread_floats(s); /* not per element: with bf16 it sizes the band buffers */
#pragma omp for schedule(static)
    for (size_t j = 0; j < cnt; j++) {
        float acc = 0.0f;
        for (int t = 0; t < nt; t++)
            acc += tbase[(size_t)t * tf + ABUF + j];
        dw[j] += acc;
    }
}

/* Whether every stride phase of s has taps, so that the backward-data
** phases write every pixel of dx between them. */
static int phases_cover(const rn_conv_shape *s) {
    int first;
    for (int p = 0; p < s->stride; p++)
        if (phase_taps(s, p, &first) == 0)
            return 0;
    return 1;
}

/* Zeroes the pixels of dx that no backward-data phase of s writes, those
** whose row or column phase has no taps (a 1x1 kernel at stride 2 reaches
** one pixel in four), so that the phases with taps may overwrite theirs:
** a zeroed dx added into (a pass over all of it, then a read of what the
** phases write) took a fifth of resnet50's stride-2 1x1 backward-data
** (bf16, batch 32: 256 -> 512 at 32x32 4.8 -> 3.9 ms, 512 -> 1024 at
** 16x16 4.0 -> 3.5 ms). dx: (N,H,W,Ci) */
static void zero_uncovered(const rn_conv_shape *s, float *dx) {
    const size_t ci = (size_t)s->ci, rowlen = (size_t)s->w * ci;
#pragma omp parallel for schedule(static)
    for (long long r = 0; r < (long long)s->n * s->h; r++) {
        float *row = dx + (size_t)r * rowlen;
        int first;
        if (phase_taps(s, (int)(r % s->h) % s->stride, &first) == 0) {
            memset(row, 0, rowlen * sizeof(float));
            continue;
        }
        for (int iw = 0; iw < s->w; iw++)
            if (phase_taps(s, iw % s->stride, &first) == 0)
                memset(row + (size_t)iw * ci, 0, ci * sizeof(float));
    }
}

/* Whether every pass of s that reduces over cs channels per tap (Ci: the
** forward, Co: backward-data), and the weight gradient, multiply in bf16
** by the direct kernels, not by Winograd (whose transforms read fp32):
** then a tensor those passes read is rounded to bf16 first, by all. */
static int direct_bf16(const rn_conv_shape *s, int cs) {
    const rn_dispatch *d = rn_cpu_dispatch();
    return bf_pass(s, d, cs) && !rn_wino_applies(s, d) && !rn_wino_dw_applies(s, d);
}

/* Whether the backward of s may take dy in bf16 (RN_BF16_GRAD) with the
** same results as from its fp32 values: backward-data and the weight
** gradient, the passes that read dy, round it first (direct_bf16). */
int rn_conv_takes_bf16_grad(const rn_conv_shape *s) { return direct_bf16(s, s->co); }

/* Whether the backward of s may write dx in bf16 (RN_BF16_DX): its
** backward-data is one bf16 pass (stride 1: one phase, writing every pixel
** of a contiguous dx), direct or by Winograd, whose tiles are rounded as
** they are stored. */
int rn_conv_gives_bf16_dx(const rn_conv_shape *s) { return s->stride == 1 && bf_pass(s, rn_cpu_dispatch(), s->co); }

/* Whether s may read x in bf16 (RN_BF16_X) with the same results as from
** its fp32 values: the forward and the weight gradient, the passes that
** read x, round it first (direct_bf16). */
int rn_conv_takes_bf16_x(const rn_conv_shape *s) { return direct_bf16(s, s->ci); }

/* A new fp32 copy of the n bf16 values h, widened exactly; without memory
** for it the program stops with a message naming what (the fallbacks below
** exist only for callers breaking kernels.h's contract, and must not
** return wrong gradients). */
static float *widened_copy(const uint16_t *h, size_t n, const char *what) {
    float *f = malloc((n ? n : 1) * sizeof(float));
    if (!f) {
        fprintf(stderr, "resnet: out of memory %s (%zu values)\n", what, n);
        abort();
    }
    for (size_t i = 0; i < n; i++)
        f[i] = rn_bf16_to_f32(h[i]);
    return f;
}

/* rn_conv_backward_ex for a bf16 dy where the weight gradient does not
** run in bf16 (its fp32 kernels read dy in place): with dy widened to
** fp32 first (the same values). Only a caller that breaks kernels.h's
** contract gets here; without memory for the copy it stops the program
** with a message rather than return wrong gradients. */
static void backward_widened(const rn_conv_shape *s, const void *x, const float *w, const uint16_t *dyh, void *dx,
                             float *dw, float *db, float *ws, int flags) {
    float *dy = widened_copy(dyh, (size_t)s->n * s->oh * s->ow * s->co, "widening a bf16 gradient");
    rn_conv_backward_ex(s, x, w, dy, dx, dw, db, ws, flags & ~RN_BF16_GRAD);
    free(dy);
}

/* rn_conv_backward_ex asked for a bf16 dx (RN_BF16_DX) where it cannot
** round its tiles as it stores them (an accumulating dx, or a shape
** rn_conv_gives_bf16_dx refuses): dx computed in fp32 in a copy, then
** rounded. Only a caller that breaks kernels.h's contract gets here;
** without memory for the copy it stops the program with a message. */
static void backward_rounded(const rn_conv_shape *s, const void *x, const float *w, const void *dy, uint16_t *dxh,
                             float *dw, float *db, float *ws, int flags) {
    const size_t n = (size_t)s->n * s->h * s->w * s->ci;
    float *dx = widened_copy(dxh, n, "for a bf16 input gradient");
    rn_conv_backward_ex(s, x, w, dy, dx, dw, db, ws, flags & ~RN_BF16_DX);
    for (size_t i = 0; i < n; i++)
        dxh[i] = rn_bf16_from_f32(dx[i]);
    free(dx);
}

/* dx += conv_transpose(dy, w) (dx = with RN_FUSE_SET in flags: the first
** contribution to dx, which then needs no zeroing pass and is not read);
** dw += x (*) dy; db += sum dy; each may be NULL. dy is fp32, or bf16 with
** RN_BF16_GRAD (kernels.h), which halves the bytes the passes read; x is
** fp32, or bf16 with RN_BF16_X (the weight gradient then runs direct); dx
** is fp32, or bf16 with RN_BF16_DX (uint16_t, each value rounded from the
** fp32 sum). ws holds rn_conv_workspace(s, T) floats, T >= the number of
** threads of the parallel region (omp_get_max_threads() of the caller).
** x: (N,H,W,Ci)  w: (K,K,Ci,Co)  dy: (N,OH,OW,Co)  dx: (N,H,W,Ci)  dw: (K,K,Ci,Co)  db: (Co) */
void rn_conv_backward_ex(const rn_conv_shape *s, const void *x, const float *w, const void *dyv, void *dxv, float *dw,
                         float *db, float *ws, int flags) {
    const rn_dispatch *d = rn_cpu_dispatch();
    const dy_src dy = {(flags & RN_BF16_GRAD) ? NULL : dyv, (flags & RN_BF16_GRAD) ? dyv : NULL};
    const int dxb = dxv && (flags & RN_BF16_DX);
    if (dy.h && !(s->bf16 && d->bf16)) {
        backward_widened(s, x, w, dy.h, dxv, dw, db, ws, flags);
        return;
    }
    if (dxb && ((flags & RN_FUSE_SET) == 0 || !rn_conv_gives_bf16_dx(s))) {
        backward_rounded(s, x, w, dyv, dxv, dw, db, ws, flags);
        return;
    }
    float *dx = dxb ? NULL : dxv;
    uint16_t *dxh = dxb ? dxv : NULL;
    float *wp = ws, *tbase = ws + shared_floats(s);
    float *extra = ws + pad16(weight_count(s)); /* shared, after the weights: a Winograd dW's or weight_blocks' */
    const int xb = (flags & RN_BF16_X) != 0;
    const gjob fg = forward_job(s, x, xb, w, NULL, NULL);
    const int wino = !dy.h; /* Winograd's transforms read dy (and x) in fp32 */
    const int acc = !(flags & RN_FUSE_SET);
    if (dx && !acc && !phases_cover(s)) /* a phase without taps (1x1 at stride 2) leaves its pixels at zero */
        zero_uncovered(s, dx);
#pragma omp parallel
    {
        const int tid = omp_get_thread_num();
        float *abuf = tbase + (size_t)tid * thread_floats(s), *cbuf = abuf + ABUF;

        if (db) {
            /* In pixel order, as the reference does; one thread, no wait. */
#pragma omp single nowait
            {
                const size_t m = (size_t)s->n * s->oh * s->ow;
                for (size_t i = 0; i < m; i++)
                    for (int co = 0; co < s->co; co++)
                        db[co] += dy.h ? rn_bf16_to_f32(dy.h[i * s->co + co]) : dy.f[i * s->co + co];
            }
        }
        if (dw && wino && !xb && rn_wino_dw_applies(s, d))
            rn_wino_weight_grad(s, d, (const float *)x, dy.f, dw, extra, abuf);
        else if (dw)
            weight_grad(s, d, &fg, dy, dw, abuf, abuf + ABUF, tbase, (uint16_t *)extra);
        if ((dx || dxh) && wino && rn_wino_applies(s, d)) {
            const rn_wino_job j = {dy.f, s->n, s->oh, s->ow, s->co, dx, s->h, s->w, s->ci, 2 - s->pad, (uint16_t *)wp,
                                   NULL, acc, dxh};
            rn_wino_pack(w, s->ci, s->co, 1, (uint16_t *)wp); /* ends with a barrier */
            rn_wino_run(&j, d, abuf);
        } else if (dx || dxh) {
            uint16_t *wpb = bf_pass(s, d, s->co) ? (uint16_t *)wp : NULL;
            pack_weights_t(s, w, wp, wpb); /* ends with a barrier */
            for (int py = 0; py < s->stride; py++)
                for (int px = 0; px < s->stride; px++) {
                    gjob g = phase_job(s, dy.f, dy.h, wp, wpb, dx, py, px, acc);
                    g.dstb = dxh;
                    if (g.nu * g.nv > 0)
                        run_job(&g, d, abuf, cbuf);
                }
        }
    }
}

/* rn_conv_backward_ex accumulating into dx (kernels.h). */
void rn_conv_backward(const rn_conv_shape *s, const float *x, const float *w, const float *dy, float *dx, float *dw,
                      float *db, float *ws) {
    rn_conv_backward_ex(s, x, w, dy, dx, dw, db, ws, 0);
}
