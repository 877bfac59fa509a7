/*
** CPU feature dispatch for the fast kernels.
**
** The convolution (conv.c) is written once, in portable C, around two
** register-blocked GEMM micro-kernels; only those are written per
** instruction set (gemm_avx512.c, gemm_avx2.c, gemm_generic.c). One table,
** filled once per process (pthread_once) from the CPU's features, says which
** set to use. It is the only global mutable state of the library.
**
** Test hook: the environment variable RN_CPU=generic|avx2|avx512, read when
** the table is filled, lowers the level (it never raises it above what the
** CPU supports), so that the tests can run every path on one machine;
** RN_CPU=avx512 (like the lower levels) also leaves the bf16 kernels out.
*/
#ifndef RN_CPU_H
#define RN_CPU_H

#include <stddef.h>
#include <stdint.h>

/* The memory-bound row loops (batchnorm, elementwise, pooling, the head)
** are plain C marked RN_CLONES: GCC compiles each three times (AVX-512,
** AVX2, baseline) and the loader picks the one for this CPU, so the build
** stays portable (no -march=native) and the loops still use the widest
** vectors. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define RN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RN_CLONES
#endif

/* A helper the SIMD kernels force into their callers: inlined, its
** vectors stay in the caller's registers (called, an array of them goes
** through memory) and it takes the caller's target attributes. */
#if defined(__GNUC__)
#define RN_INLINE __attribute__((always_inline)) inline
#else
#define RN_INLINE inline
#endif

typedef enum { RN_CPU_GENERIC = 0, RN_CPU_AVX2 = 1, RN_CPU_AVX512 = 2 } rn_cpu_level;

/* Widest tile in vectors and most rows of any micro-kernel. */
#define RN_NV_MAX 4
#define RN_ROWS_MAX 28

/* "nn" tile: C = A B (+ bias) or C += A B for `rows` rows of A and C and
** nv vectors of vl columns of B and C, the last vector holding only `nlast`
** (1..vl) valid columns. The reduction runs over nseg segments of kd: row
** r of segment s of A starts at a + soff[s] + r*lda, and segment s uses
** rows [s*kd, (s+1)*kd) of B (one segment with soff[0] = 0 is a plain GEMM;
** several let the rows of A be windows into padded image rows).
** b: (nseg*kd, nv*vl) row stride ldb   c: (rows, nv*vl) row stride ldc
** bias: (nv*vl) or NULL (ignored when acc) */
typedef void (*rn_gemm_nn_fn)(int nseg, const ptrdiff_t *soff, int kd, const float *a, ptrdiff_t lda, const float *b,
                              ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast, const float *bias, int acc);

/* "tn" tile: C += A^T B, a reduction over nseg segments of m rows: for
** r < rows and the nv vectors of columns, c[r][j] += sum over segments s
** and i < m of a[soff[s] + i*lda + r] * b[(s*m + i)*ldb + j].
** b: (nseg*m, nv*vl) row stride ldb   c: (rows, nv*vl) row stride ldc */
typedef void (*rn_gemm_tn_fn)(int nseg, const ptrdiff_t *soff, int m, const float *a, ptrdiff_t lda, const float *b,
                              ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast);

/* bf16 forms of the two tiles (gemm_bf16.c): the same contracts with A
** and B in bfloat16, pair-interleaved along the reduction, and C in fp32.
** nn: kp reduction pairs per segment; pair k of row r of segment s of A is
** the 32-bit word at a + soff[s] + r*lda + 2k; pair-row k of segment s of
** B is at b + (s*kp + k)*ldb, its columns j at 2j (pair (k0, k1) of
** column j = b[2j], b[2j+1]).
** tn: mp pixel pairs per segment; pair i of column r of A at
** a + soff[s] + i*lda + 2r, pair-row i of B at b + (s*mp + i)*ldb. */
typedef void (*rn_gemm_nnb_fn)(int nseg, const ptrdiff_t *soff, int kp, const uint16_t *a, ptrdiff_t lda,
                               const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast, const float *bias,
                               int acc);
typedef void (*rn_gemm_tnb_fn)(int nseg, const ptrdiff_t *soff, int mp, const uint16_t *a, ptrdiff_t lda,
                               const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast);

/* The dispatch table: micro-kernels for every tile width nv (1..nvmax)
** and every row count (1..nn_rows[nv] or tn_rows[nv]). */
typedef struct {
    rn_cpu_level level;
    const char *name; /* "avx512", "avx2" or "generic" */
    int vl;           /* floats per vector */
    int nvmax;        /* widest tile in vectors */
    int nn_rows[RN_NV_MAX + 1], tn_rows[RN_NV_MAX + 1];
    rn_gemm_nn_fn nn[RN_NV_MAX + 1][RN_ROWS_MAX + 1]; /* [nv][rows] */
    rn_gemm_tn_fn tn[RN_NV_MAX + 1][RN_ROWS_MAX + 1];
    int bf16; /* the CPU has AVX512_BF16: nnb and tnb are filled (same rows as nn and tn) */
    rn_gemm_nnb_fn nnb[RN_NV_MAX + 1][RN_ROWS_MAX + 1];
    rn_gemm_tnb_fn tnb[RN_NV_MAX + 1][RN_ROWS_MAX + 1];
} rn_dispatch;

/* The table for this CPU (filled on first use, thread-safely). */
const rn_dispatch *rn_cpu_dispatch(void);

/* Fill d with one instruction set's micro-kernels. */
void rn_gemm_fill_avx512(rn_dispatch *d);
void rn_gemm_fill_avx2(rn_dispatch *d);
void rn_gemm_fill_generic(rn_dispatch *d);
/* Adds the bf16 kernels to an AVX-512 table. */
void rn_gemm_fill_bf16(rn_dispatch *d);

/* Conversions to bf16 with vcvtneps2bf16 (gemm_bf16.c; only on CPUs with
** AVX512_BF16), giving rn_bf16_from_f32's bits 16 at a time:
** rn_bf16_convert: d[i] = bf16(s[i]) for i < n;
** rn_bf16_interleave: out[2j] = bf16(r0[j]), out[2j+1] = bf16(r1[j]) (0
** when r1 is NULL) for j < n: two rows pair-interleaved;
** rn_bf16_interleave16: the same for rows already in bf16 (no rounding). */
void rn_bf16_convert(uint16_t *d, const float *s, int n);
void rn_bf16_interleave(uint16_t *out, const float *r0, const float *r1, int n);
void rn_bf16_interleave16(uint16_t *out, const uint16_t *r0, const uint16_t *r1, int n);

/* Rows of the next micro-tile when `left` rows remain and a tile holds at
** most maxr: the rest is cut into equal tiles (28 rows at 12 a tile are
** 10+9+9, not 12+12+4), since a tile of few rows has too few accumulators
** to hide the multiply-add latency. Each output is still summed by one
** call in the same order, so the results do not change. */
static inline int rn_tile_rows(int left, int maxr) {
    const int tiles = (left + maxr - 1) / maxr;
    return (left + tiles - 1) / tiles;
}

/* Whether this process's kernels can run bf16 convolutions (AVX512_BF16,
** not lowered by RN_CPU). */
int rn_cpu_has_bf16(void);

#endif
