/*
** AVX2 + FMA GEMM micro-kernels for the convolution (interface in cpu.h).
**
** The same register blocks as gemm_avx512.c with 8-float ymm vectors and
** 16 registers: nn and tn tiles of up to 6x2 or 12x1 accumulators, plus
** the nv loaded B vectors and one broadcast. The last vector of a tile is
** loaded and stored under a lane mask (vmaskmovps).
*/
#include "cpu.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#define RN_T256 __attribute__((target("avx2,fma")))

/* Lane mask with the first n (1..8) lanes set: mask_bits + 8 - n. */
static const int mask_bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Loads 8 floats, or only the lanes set in m (others zero) when masked. */
static RN_INLINE RN_T256 __m256 load8(const float *p, int masked, __m256i m) {
    return masked ? _mm256_maskload_ps(p, m) : _mm256_loadu_ps(p);
}

/* Stores 8 floats, or only the lanes set in m when masked. */
static RN_INLINE RN_T256 void store8(float *p, int masked, __m256i m, __m256 v) {
    if (masked)
        _mm256_maskstore_ps(p, m, v);
    else
        _mm256_storeu_ps(p, v);
}

/* The tile's registers are named variables, z<r>_<v> for row r and vector
** v, written out by these lists (an array of __m256 would be kept in
** memory); with the shape a compile-time constant only the live ones
** remain. */
#define RLIST(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define VLIST(X, r) X(r, 0) X(r, 1)
#define DECL_RV(r, v) __m256 z##r##_##v = _mm256_setzero_ps();
#define DECL_R(r) VLIST(DECL_RV, r)
#define INIT_RV(r, v)                                                                                                  \
    if (r < RW && v < NV) {                                                                                            \
        if (acc)                                                                                                       \
            z##r##_##v = load8(c + r * ldc + 8 * v, v == NV - 1, ml);                                                  \
        else if (bias)                                                                                                 \
            z##r##_##v = load8(bias + 8 * v, v == NV - 1, ml);                                                         \
    }
#define INIT_R(r) VLIST(INIT_RV, r)
#define FMA_RV(r, v)                                                                                                   \
    if (v < NV)                                                                                                        \
        z##r##_##v = _mm256_fmadd_ps(av, b##v, z##r##_##v);
#define NN_FMA_R(r)                                                                                                    \
    if (r < RW) {                                                                                                      \
        __m256 av = _mm256_broadcast_ss(as + r * lda + k);                                                             \
        VLIST(FMA_RV, r)                                                                                               \
    }
#define TN_FMA_R(r)                                                                                                    \
    if (r < RW) {                                                                                                      \
        __m256 av = _mm256_broadcast_ss(as + i * lda + r);                                                             \
        VLIST(FMA_RV, r)                                                                                               \
    }
#define STORE_RV(r, v)                                                                                                 \
    if (r < RW && v < NV)                                                                                              \
        store8(c + r * ldc + 8 * v, v == NV - 1, ml, z##r##_##v);
#define STORE_R(r) VLIST(STORE_RV, r)
#define ADD_RV(r, v)                                                                                                   \
    if (r < RW && v < NV) {                                                                                            \
        float *p_ = c + r * ldc + 8 * v;                                                                               \
        store8(p_, v == NV - 1, ml, _mm256_add_ps(load8(p_, v == NV - 1, ml), z##r##_##v));                            \
    }
#define ADD_R(r) VLIST(ADD_RV, r)
#define LOADB(v, row) __m256 b##v = v < NV ? load8(row + 8 * v, v == NV - 1, ml) : _mm256_setzero_ps();

/* C (rows x nv*8) = [C +] A (rows x kd) B (kd x nv*8) [+ bias], the last
** vector masked to nlast columns, the reduction in nseg segments (cpu.h);
** compile-time RW and NV. */
static RN_INLINE RN_T256 void nn_tile(const int RW, const int NV, int nseg, const ptrdiff_t *soff, int kd,
                                      const float *restrict a, ptrdiff_t lda, const float *restrict b, ptrdiff_t ldb,
                                      float *restrict c, ptrdiff_t ldc, int nlast, const float *restrict bias,
                                      int acc) {
    const __m256i ml = _mm256_loadu_si256((const __m256i *)(mask_bits + 8 - nlast));
    RLIST(DECL_R)
    RLIST(INIT_R)
    for (int s = 0; s < nseg; s++) {
        const float *as = a + soff[s], *bs = b + (ptrdiff_t)s * kd * ldb;
        for (int k = 0; k < kd; k++) {
            const float *brow = bs + k * ldb;
            LOADB(0, brow) LOADB(1, brow) RLIST(NN_FMA_R)
        }
    }
    RLIST(STORE_R)
}

/* C (RW x nv*8) += A^T B over nseg segments of m rows (cpu.h): A (m x RW),
** B (m x nv*8), the last vector masked to nlast columns. */
static RN_INLINE RN_T256 void tn_tile(const int RW, const int NV, int nseg, const ptrdiff_t *soff, int m,
                                      const float *restrict a, ptrdiff_t lda, const float *restrict b, ptrdiff_t ldb,
                                      float *restrict c, ptrdiff_t ldc, int nlast) {
    const __m256i ml = _mm256_loadu_si256((const __m256i *)(mask_bits + 8 - nlast));
    RLIST(DECL_R)
    for (int s = 0; s < nseg; s++) {
        const float *as = a + soff[s], *bs = b + (ptrdiff_t)s * m * ldb;
        for (int i = 0; i < m; i++) {
            const float *brow = bs + i * ldb;
            LOADB(0, brow) LOADB(1, brow) RLIST(TN_FMA_R)
        }
    }
    RLIST(ADD_R)
}

/* One function per (rows, nv), thin wrappers that fix the tile shape. */
#define NN_FN(R, V)                                                                                                    \
    static RN_T256 void nn_##R##x##V(int nseg, const ptrdiff_t *soff, int kd, const float *a, ptrdiff_t lda,           \
                                     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast,                \
                                     const float *bias, int acc) {                                                     \
        nn_tile(R, V, nseg, soff, kd, a, lda, b, ldb, c, ldc, nlast, bias, acc);                                       \
    }
#define TN_FN(R, V)                                                                                                    \
    static RN_T256 void tn_##R##x##V(int nseg, const ptrdiff_t *soff, int m, const float *a, ptrdiff_t lda,            \
                                     const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast) {              \
        tn_tile(R, V, nseg, soff, m, a, lda, b, ldb, c, ldc, nlast);                                                   \
    }
#define SET_NN(R, V) d->nn[V][R] = nn_##R##x##V;
#define SET_TN(R, V) d->tn[V][R] = tn_##R##x##V;
#define ROWS6(M, V) M(1, V) M(2, V) M(3, V) M(4, V) M(5, V) M(6, V)
#define ROWS12(M, V) ROWS6(M, V) M(7, V) M(8, V) M(9, V) M(10, V) M(11, V) M(12, V)

ROWS6(NN_FN, 2)
ROWS12(NN_FN, 1)
ROWS6(TN_FN, 2)
ROWS12(TN_FN, 1)

/* Installs the AVX2 micro-kernels: 8 floats per vector, tiles up to two
** vectors (16 output channels) wide. */
void rn_gemm_fill_avx2(rn_dispatch *d) {
    d->level = RN_CPU_AVX2;
    d->name = "avx2";
    d->vl = 8;
    d->nvmax = 2;
    d->nn_rows[2] = d->tn_rows[2] = 6;
    d->nn_rows[1] = d->tn_rows[1] = 12;
    ROWS6(SET_NN, 2);
    ROWS12(SET_NN, 1);
    ROWS6(SET_TN, 2);
    ROWS12(SET_TN, 1);
}

#else

/* Not an x86 compiler: the portable kernels stand in. */
void rn_gemm_fill_avx2(rn_dispatch *d) { rn_gemm_fill_generic(d); }

#endif
