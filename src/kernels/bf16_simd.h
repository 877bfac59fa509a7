/*
** AVX-512 pieces shared by the two files that run bf16 in registers:
** the micro-kernels and conversions (gemm_bf16.c) and Winograd
** (winograd.c). Included by those files only, inside their x86 sections
** (after <immintrin.h> and cpu.h).
*/
#ifndef RN_BF16_SIMD_H
#define RN_BF16_SIMD_H

/* The instruction sets the bf16 code is compiled for, function by
** function: the build stays portable and the dispatch table picks it. */
#define RN_TBF __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

/* The mask of the lanes [i, i+16) below n: all 16, or the last few. */
static inline __mmask16 rn_lanes16(int n, int i) {
    return n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
}

/* The 16 words of each half of ab taken in turns: lo[0], hi[0], lo[1],
** hi[1], ... With ab two rows side by side (what vcvtne2ps2bf16 makes of
** two fp32 vectors, the second above), one pair-interleaved row. */
static RN_INLINE RN_TBF __m512i rn_pair_turns(__m512i ab) {
    const __m512i turns = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                           21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(turns, ab);
}

#endif
