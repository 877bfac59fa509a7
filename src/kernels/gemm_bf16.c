/*
** AVX512_BF16 GEMM micro-kernels for the convolution (interface in cpu.h).
**
** vdpbf16ps multiplies 32 bf16 pairs and adds each pair's two products
** into one of 16 fp32 lanes: twice the multiplies of an fp32 FMA per
** instruction, the sum kept in fp32. Its operands come in pairs along the
** reduction, so both matrices are stored "pair-interleaved": element
** (k, j) of a pair-interleaved B sits at b[(k/2)*ldb + 2*j + k%2], and a
** row of A holds its reduction pairs (k, k+1) as one 32-bit word that is
** broadcast to every lane.
**
** The tiles are those of the fp32 AVX-512 kernels (6x4, 8x3, 14x2, 28x1
** accumulators of 16 fp32 columns each), so the convolution's plans do
** not change with the data type; a vector of B is 32 bf16 = 16 columns x
** one pair.
*/
#include "cpu.h"
#include "kernels.h"

#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#include "bf16_simd.h"
#include "gemm_avx512_tiles.h"

/* The multiply-add step of a tile row (the rest: gemm_avx512_tiles.h). */
#define DOT_RV(r, v)                                                                                                   \
    if (v < NV)                                                                                                        \
        z##r##_##v = _mm512_dpbf16_ps(z##r##_##v, av, b##v);
#define DOT_R(r, AP)                                                                                                   \
    if (r < RW) {                                                                                                      \
        __m512bh av = (__m512bh)_mm512_set1_epi32(load_pair(AP));                                                      \
        VLIST(DOT_RV, r)                                                                                               \
    }
#define NN_DOT_R(r) DOT_R(r, as + r * lda + 2 * k)
#define TN_DOT_R(r) DOT_R(r, as + i * lda + 2 * r)
/* A vector of B: 16 columns of one reduction pair, the last masked. */
#define LOADB(v, row)                                                                                                  \
    __m512bh b##v = (__m512bh)(v < NV ? _mm512_maskz_loadu_epi32(MASK(v), row + 32 * v) : _mm512_setzero_si512());

/* The 32-bit word holding a reduction pair of A (any alignment). */
static RN_INLINE int load_pair(const uint16_t *p) {
    int w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* C (rows x nv*16) = [C +] A B [+ bias] over nseg segments of kp reduction
** pairs (cpu.h): row r of segment s of A at a + soff[s] + r*lda, pair k of
** it at +2k; pair-row k of segment s of B at b + (s*kp + k)*ldb. */
static RN_INLINE RN_TBF void nn_tile(const int RW, const int NV, int nseg, const ptrdiff_t *soff, int kp,
                                     const uint16_t *restrict a, ptrdiff_t lda, const uint16_t *restrict b,
                                     ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc, int nlast,
                                     const float *restrict bias, int acc) {
    const __mmask16 ml = (__mmask16)(0xFFFFu >> (16 - nlast));
    RLIST(DECL_R)
    RLIST(INIT_R)
    for (int s = 0; s < nseg; s++) {
        const uint16_t *as = a + soff[s], *bs = b + (ptrdiff_t)s * kp * ldb;
        for (int k = 0; k < kp; k++) {
            const uint16_t *brow = bs + k * ldb;
            LOADB(0, brow) LOADB(1, brow) LOADB(2, brow) LOADB(3, brow) RLIST(NN_DOT_R)
        }
    }
    RLIST(STORE_R)
}

/* C (RW x nv*16) += A^T B over nseg segments of mp pixel pairs: pair i of
** segment s holds column r of A at a + soff[s] + i*lda + 2r and B's
** pair-row at b + (s*mp + i)*ldb. */
static RN_INLINE RN_TBF void tn_tile(const int RW, const int NV, int nseg, const ptrdiff_t *soff, int mp,
                                     const uint16_t *restrict a, ptrdiff_t lda, const uint16_t *restrict b,
                                     ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc, int nlast) {
    const __mmask16 ml = (__mmask16)(0xFFFFu >> (16 - nlast));
    RLIST(DECL_R)
    for (int s = 0; s < nseg; s++) {
        const uint16_t *as = a + soff[s], *bs = b + (ptrdiff_t)s * mp * ldb;
        for (int i = 0; i < mp; i++) {
            const uint16_t *brow = bs + i * ldb;
            LOADB(0, brow) LOADB(1, brow) LOADB(2, brow) LOADB(3, brow) RLIST(TN_DOT_R)
        }
    }
    RLIST(ADD_R)
}

/* One function per tile shape, as in gemm_avx512.c. */
#define NN_AT(L, R, V) nn_tile(R, V, nseg, soff, kp, a, L, b, ldb, c, ldc, nlast, bias, acc)
#define NN_FN(R, V)                                                                                                    \
    static RN_TBF void nnb_##R##x##V(int nseg, const ptrdiff_t *soff, int kp, const uint16_t *a, ptrdiff_t lda,        \
                                     const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast,             \
                                     const float *bias, int acc) {                                                     \
        RN_CONST_LDA(NN_AT, R, V);                                                                                     \
    }
#define TN_FN(R, V)                                                                                                    \
    static RN_TBF void tnb_##R##x##V(int nseg, const ptrdiff_t *soff, int mp, const uint16_t *a, ptrdiff_t lda,        \
                                     const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast) {           \
        tn_tile(R, V, nseg, soff, mp, a, lda, b, ldb, c, ldc, nlast);                                                  \
    }
#define SET_NN(R, V) d->nnb[V][R] = nnb_##R##x##V;
#define SET_TN(R, V) d->tnb[V][R] = tnb_##R##x##V;

RN_AVX512_SHAPES(NN_FN)
RN_AVX512_SHAPES(TN_FN)

/* d[i] = bf16(s[i]) for i < n, 16 at a time, the tail under a mask. */
RN_TBF void rn_bf16_convert(uint16_t *d, const float *s, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(d + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(d + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, s + i)));
    }
}

/* out[2j] = bf16(r0[j]), out[2j+1] = bf16(r1[j]) (or 0) for j < n: both
** rows converted in one instruction (cvtne2ps puts r1's 16 values above
** r0's), then their words interleaved. */
RN_TBF void rn_bf16_interleave(uint16_t *out, const float *r0, const float *r1, int n) {
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = rn_lanes16(n, j);
        const __m512 a = _mm512_maskz_loadu_ps(m, r0 + j);
        const __m512 b = r1 ? _mm512_maskz_loadu_ps(m, r1 + j) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(out + 2 * j, m, rn_pair_turns((__m512i)_mm512_cvtne2ps_pbh(b, a)));
    }
}

/* out[2j] = r0[j], out[2j+1] = r1[j] (or 0) for j < n: two rows of bf16
** values pair-interleaved, as rn_bf16_interleave does for fp32 rows. */
RN_TBF void rn_bf16_interleave16(uint16_t *out, const uint16_t *r0, const uint16_t *r1, int n) {
    for (int j = 0; j < n; j += 16) {
        const __mmask16 m = rn_lanes16(n, j);
        const __m256i a = _mm256_maskz_loadu_epi16(m, r0 + j);
        const __m256i b = r1 ? _mm256_maskz_loadu_epi16(m, r1 + j) : _mm256_setzero_si256();
        _mm512_mask_storeu_epi32(out + 2 * j, m, rn_pair_turns(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1)));
    }
}

/* Installs the bf16 kernels next to the AVX-512 fp32 ones (whose tile
** shapes they share; d must already hold those). */
void rn_gemm_fill_bf16(rn_dispatch *d) {
    RN_AVX512_SHAPES(SET_NN)
    RN_AVX512_SHAPES(SET_TN)
    d->bf16 = 1;
}

#else

/* Not an x86 compiler: no bf16 kernels (d->bf16 stays 0), and the
** conversions are never called. */
void rn_gemm_fill_bf16(rn_dispatch *d) { (void)d; }
void rn_bf16_convert(uint16_t *d, const float *s, int n) {
    for (int i = 0; i < n; i++)
        d[i] = rn_bf16_from_f32(s[i]);
}
void rn_bf16_interleave(uint16_t *out, const float *r0, const float *r1, int n) {
    for (int j = 0; j < n; j++)
        out[2 * j] = rn_bf16_from_f32(r0[j]), out[2 * j + 1] = r1 ? rn_bf16_from_f32(r1[j]) : 0;
}
void rn_bf16_interleave16(uint16_t *out, const uint16_t *r0, const uint16_t *r1, int n) {
    for (int j = 0; j < n; j++)
        out[2 * j] = r0[j], out[2 * j + 1] = r1 ? r1[j] : 0;
}

#endif
