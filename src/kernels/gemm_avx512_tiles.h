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

#define RLIST(X)                                                                                                       \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20)   \
        X(21) X(22) X(23) X(24) X(25) X(26) X(27)
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

/* The tile shapes, rows x vectors: 6x4, 8x3, 14x2, 28x1 (at most 30 of the
** 32 zmm registers hold state with the nv loaded B vectors). The narrow
** tiles are tall so that 16- and 32-channel layers still issue many
** multiply-adds per load of B (28 and 14 output pixels: a row of 28 or
** 14). M(R, V) is applied to every (rows, vectors) pair up to those sizes. */
#define ROWS6(M, V) M(1, V) M(2, V) M(3, V) M(4, V) M(5, V) M(6, V)
#define ROWS8(M, V) ROWS6(M, V) M(7, V) M(8, V)
#define ROWS12(M, V) ROWS8(M, V) M(9, V) M(10, V) M(11, V) M(12, V)
#define ROWS14(M, V) ROWS12(M, V) M(13, V) M(14, V)
#define ROWS28(M, V)                                                                                                   \
    ROWS14(M, V) M(15, V) M(16, V) M(17, V) M(18, V) M(19, V) M(20, V) M(21, V) M(22, V) M(23, V) M(24, V) M(25, V)      \
        M(26, V) M(27, V) M(28, V)
#define RN_AVX512_SHAPES(M) ROWS6(M, 4) ROWS8(M, 3) ROWS14(M, 2) ROWS28(M, 1)

/* F(L, ...) with the A row stride L = lda as a compile-time constant for the
** common strides (16, 32 and 64 elements: a row-mode patch over 16, 32 or
** 64 channels), else as the variable. With a constant stride each row's
** broadcast is one displacement from a single pointer; with a variable one
** a tile of more than about a dozen rows has no registers left for its
** row addresses and reloads them from the stack in the inner loop, which
** cost 28-row tiles (16-channel layers) about 15% of their speed. */
#define RN_CONST_LDA(F, ...)                                                                                           \
    do {                                                                                                               \
        if (lda == 16)                                                                                                 \
            F(16, __VA_ARGS__);                                                                                        \
        else if (lda == 32)                                                                                            \
            F(32, __VA_ARGS__);                                                                                        \
        else if (lda == 64)                                                                                            \
            F(64, __VA_ARGS__);                                                                                        \
        else                                                                                                           \
            F(lda, __VA_ARGS__);                                                                                       \
    } while (0)

#endif
