/*
** AVX-512 GEMM micro-kernels for the convolution (interface in cpu.h).
**
** nn tile: `rows` x nv zmm accumulators (up to 6x4, 8x3, 14x2, 28x1, so
** that with the nv loaded B vectors at most 30 of the 32 zmm registers
** hold state; a 28-row tile covers a whole 28-pixel row of a 16-channel
** layer, with one load of B per 28 multiply-adds). Per step of the
** reduction: nv vector loads of B and `rows` broadcasts of A (folded into
** the FMAs), rows*nv FMAs.
** tn tile: the same register block with the roles turned: per row i of
** the reduction, nv vector loads of B and `rows` broadcasts of A.
** The last vector of a tile is loaded and stored under a mask, so any
** column count works without a scalar tail.
**
** Functions carry target attributes so that the rest of the build stays
** portable; the dispatcher only installs them on CPUs with AVX-512.
*/
#include "cpu.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#include "gemm_avx512_tiles.h"

#define RN_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

/* The multiply-add step of a tile row (the rest: gemm_avx512_tiles.h). */
#define FMA_RV(r, v)                                                                                                   \
    if (v < NV)                                                                                                        \
        z##r##_##v = _mm512_fmadd_ps(av, b##v, z##r##_##v);
#define NN_FMA_R(r)                                                                                                    \
    if (r < RW) {                                                                                                      \
        __m512 av = _mm512_set1_ps(as[r * lda + k]);                                                                   \
        VLIST(FMA_RV, r)                                                                                               \
    }
#define TN_FMA_R(r)                                                                                                    \
    if (r < RW) {                                                                                                      \
        __m512 av = _mm512_set1_ps(as[i * lda + r]);                                                                   \
        VLIST(FMA_RV, r)                                                                                               \
    }
#define LOADB(v, row) __m512 b##v = v < NV ? _mm512_maskz_loadu_ps(MASK(v), row + 16 * v) : _mm512_setzero_ps();

/* C (rows x nv*16) = [C +] A (rows x kd) B (kd x nv*16) [+ bias], the last
** vector masked to nlast columns, the reduction in nseg segments (cpu.h).
** RW and NV are compile-time constants at every call. */
static RN_INLINE RN_T512 void nn_tile(const int RW, const int NV, int nseg, const ptrdiff_t *soff, int kd,
                                      const float *restrict a, ptrdiff_t lda, const float *restrict b, ptrdiff_t ldb,
                                      float *restrict c, ptrdiff_t ldc, int nlast, const float *restrict bias,
                                      int acc) {
    const __mmask16 ml = (__mmask16)(0xFFFFu >> (16 - nlast));
    RLIST(DECL_R)
    RLIST(INIT_R)
    for (int s = 0; s < nseg; s++) {
        const float *as = a + soff[s], *bs = b + (ptrdiff_t)s * kd * ldb;
        for (int k = 0; k < kd; k++) {
            const float *brow = bs + k * ldb;
            LOADB(0, brow) LOADB(1, brow) LOADB(2, brow) LOADB(3, brow) RLIST(NN_FMA_R)
        }
    }
    RLIST(STORE_R)
}

/* C (RW x nv*16) += A^T B over nseg segments of m rows (cpu.h): A (m x RW),
** B (m x nv*16), the last vector masked to nlast columns. */
static RN_INLINE RN_T512 void tn_tile(const int RW, const int NV, int nseg, const ptrdiff_t *soff, int m,
                                      const float *restrict a, ptrdiff_t lda, const float *restrict b, ptrdiff_t ldb,
                                      float *restrict c, ptrdiff_t ldc, int nlast) {
    const __mmask16 ml = (__mmask16)(0xFFFFu >> (16 - nlast));
    RLIST(DECL_R)
    for (int s = 0; s < nseg; s++) {
        const float *as = a + soff[s], *bs = b + (ptrdiff_t)s * m * ldb;
        for (int i = 0; i < m; i++) {
            const float *brow = bs + i * ldb;
            LOADB(0, brow) LOADB(1, brow) LOADB(2, brow) LOADB(3, brow) RLIST(TN_FMA_R)
        }
    }
    RLIST(ADD_R)
}

/* One function per (rows, nv): nn_<rows>x<nv> and tn_<rows>x<nv>, thin
** wrappers that fix the tile shape of nn_tile / tn_tile. */
#define NN_AT(L, R, V) nn_tile(R, V, nseg, soff, kd, a, L, b, ldb, c, ldc, nlast, bias, acc)
#define NN_FN(R, V)                                                                                                    \
    static RN_T512 void nn_##R##x##V(int nseg, const ptrdiff_t *soff, int kd, const float *a, ptrdiff_t lda,           \
                                     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast,                \
                                     const float *bias, int acc) {                                                     \
        RN_CONST_LDA(NN_AT, R, V);                                                                                     \
    }
#define TN_FN(R, V)                                                                                                    \
    static RN_T512 void tn_##R##x##V(int nseg, const ptrdiff_t *soff, int m, const float *a, ptrdiff_t lda,            \
                                     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast) {              \
        tn_tile(R, V, nseg, soff, m, a, lda, b, ldb, c, ldc, nlast);                                                   \
    }
#define SET_NN(R, V) d->nn[V][R] = nn_##R##x##V;
#define SET_TN(R, V) d->tn[V][R] = tn_##R##x##V;

RN_AVX512_SHAPES(NN_FN)
RN_AVX512_SHAPES(TN_FN)

/* Installs the AVX-512 micro-kernels: 16 floats per vector, tiles up to
** four vectors (64 output channels) wide. */
void rn_gemm_fill_avx512(rn_dispatch *d) {
    d->level = RN_CPU_AVX512;
    d->name = "avx512";
    d->vl = 16;
    d->nvmax = 4;
    d->nn_rows[4] = d->tn_rows[4] = 6;
    d->nn_rows[3] = d->tn_rows[3] = 8;
    d->nn_rows[2] = d->tn_rows[2] = 14;
    d->nn_rows[1] = d->tn_rows[1] = 28;
    RN_AVX512_SHAPES(SET_NN)
    RN_AVX512_SHAPES(SET_TN)
}

#else

/* Not an x86 compiler: the portable kernels stand in. */
void rn_gemm_fill_avx512(rn_dispatch *d) { rn_gemm_fill_generic(d); }

#endif
