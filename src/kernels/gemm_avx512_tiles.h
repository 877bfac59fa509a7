/*
** The register tiles shared by the AVX-512 fp32 kernels (gemm_avx512.c)
** and the AVX512_BF16 kernels (gemm_bf16.c): the same accumulator blocks
** of 16-float zmm registers, only the multiply-add step differs. Included
** by those two files only, inside their x86 sections.
**
** The tile's registers are named variables, z<r>_<v> for row r and vector
** v, written out by these lists; with the shape a compile-time constant the
** compiler keeps exactly the live ones in registers (an array of __m512
** would be kept in memory). The macros expect RW and NV (the tile shape),
** c, ldc, bias, acc and ml (the last vector's mask) in scope.
*/
#ifndef RN_GEMM_AVX512_TILES_H
#define RN_GEMM_AVX512_TILES_H

#define RLIST(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define VLIST(X, r) X(r, 0) X(r, 1) X(r, 2) X(r, 3)
#define MASK(v) ((v) == NV - 1 ? ml : (__mmask16)0xFFFF)
#define DECL_RV(r, v) __m512 z##r##_##v = _mm512_setzero_ps();
#define DECL_R(r) VLIST(DECL_RV, r)
#define INIT_RV(r, v)                                                                                                  \
    if (r < RW && v < NV) {                                                                                            \
        if (acc)                                                                                                       \
            z##r##_##v = _mm512_maskz_loadu_ps(MASK(v), c + r * ldc + 16 * v);                                         \
        else if (bias)                                                                                                 \
            z##r##_##v = _mm512_maskz_loadu_ps(MASK(v), bias + 16 * v);                                                \
    }
#define INIT_R(r) VLIST(INIT_RV, r)
#define STORE_RV(r, v)                                                                                                 \
    if (r < RW && v < NV)                                                                                              \
        _mm512_mask_storeu_ps(c + r * ldc + 16 * v, MASK(v), z##r##_##v);
#define STORE_R(r) VLIST(STORE_RV, r)
#define ADD_RV(r, v)                                                                                                   \
    if (r < RW && v < NV) {                                                                                            \
        float *p_ = c + r * ldc + 16 * v;                                                                              \
        _mm512_mask_storeu_ps(p_, MASK(v), _mm512_add_ps(_mm512_maskz_loadu_ps(MASK(v), p_), z##r##_##v));             \
    }
#define ADD_R(r) VLIST(ADD_RV, r)

/* The tile shapes, rows x vectors: 6x4, 8x3, 12x2, 12x1 (at most 28 of the
** 32 zmm registers hold state with the nv loaded B vectors). M(R, V) is
** applied to every (rows, vectors) pair up to those sizes. */
#define ROWS6(M, V) M(1, V) M(2, V) M(3, V) M(4, V) M(5, V) M(6, V)
#define ROWS8(M, V) ROWS6(M, V) M(7, V) M(8, V)
#define ROWS12(M, V) ROWS8(M, V) M(9, V) M(10, V) M(11, V) M(12, V)
#define RN_AVX512_SHAPES(M) ROWS6(M, 4) ROWS8(M, 3) ROWS12(M, 2) ROWS12(M, 1)

#endif
