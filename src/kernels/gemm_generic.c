/*
** Portable GEMM micro-kernels for the convolution (interface in cpu.h):
** plain C over blocks of 4 rows x up to 2 "vectors" of 8 columns, which
** the compiler may vectorize with whatever the baseline target offers.
** Used on CPUs without AVX2 and, through RN_CPU=generic, by the tests.
*/
#include "cpu.h"

#define GV 8 /* columns per "vector" */

/* C (RW x NV*8) = [C +] A (RW x nseg*kd) B (nseg*kd x NV*8) [+ bias], A in
** nseg segments (cpu.h), only the first nlast columns of the last vector
** read or written. */
static inline void nn_tile(const int RW, const int NV, int nseg, const ptrdiff_t *soff, int kd, const float *restrict a,
                           ptrdiff_t lda, const float *restrict b, ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc,
                           int nlast, const float *restrict bias, int acc) {
    const int nc = (NV - 1) * GV + nlast;
    float z[4][2 * GV] = {{0}};
    for (int r = 0; r < RW; r++)
        for (int j = 0; j < nc; j++)
            z[r][j] = acc ? c[r * ldc + j] : bias ? bias[j] : 0.0f;
    float bk[2 * GV] = {0};
    for (int s = 0; s < nseg; s++)
        for (int k = 0; k < kd; k++) {
            for (int j = 0; j < nc; j++)
                bk[j] = b[((ptrdiff_t)s * kd + k) * ldb + j];
            for (int r = 0; r < RW; r++) {
                float av = a[soff[s] + r * lda + k];
                for (int j = 0; j < NV * GV; j++)
                    z[r][j] += av * bk[j];
            }
        }
    for (int r = 0; r < RW; r++)
        for (int j = 0; j < nc; j++)
            c[r * ldc + j] = z[r][j];
}

/* C (RK x NV*8) += A^T B over nseg segments of m rows (cpu.h): A (m x RK),
** B (m x NV*8), only the first nlast columns of the last vector read or
** written. */
static inline void tn_tile(const int RK, const int NV, int nseg, const ptrdiff_t *soff, int m, const float *restrict a,
                           ptrdiff_t lda, const float *restrict b, ptrdiff_t ldb, float *restrict c, ptrdiff_t ldc,
                           int nlast) {
    const int nc = (NV - 1) * GV + nlast;
    float z[4][2 * GV] = {{0}}, bi[2 * GV] = {0};
    for (int s = 0; s < nseg; s++)
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < nc; j++)
                bi[j] = b[((ptrdiff_t)s * m + i) * ldb + j];
            for (int r = 0; r < RK; r++) {
                float av = a[soff[s] + i * lda + r];
                for (int j = 0; j < NV * GV; j++)
                    z[r][j] += av * bi[j];
            }
        }
    for (int r = 0; r < RK; r++)
        for (int j = 0; j < nc; j++)
            c[r * ldc + j] += z[r][j];
}

/* One function per (rows, nv), thin wrappers that fix the tile shape. */
#define NN_FN(R, V)                                                                                                    \
    static void nn_##R##x##V(int nseg, const ptrdiff_t *soff, int kd, const float *a, ptrdiff_t lda, const float *b,   \
                             ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast, const float *bias, int acc) {          \
        nn_tile(R, V, nseg, soff, kd, a, lda, b, ldb, c, ldc, nlast, bias, acc);                                       \
    }
#define TN_FN(R, V)                                                                                                    \
    static void tn_##R##x##V(int nseg, const ptrdiff_t *soff, int m, const float *a, ptrdiff_t lda, const float *b,    \
                             ptrdiff_t ldb, float *c, ptrdiff_t ldc, int nlast) {                                      \
        tn_tile(R, V, nseg, soff, m, a, lda, b, ldb, c, ldc, nlast);                                                   \
    }
#define SET_NN(R, V) d->nn[V][R] = nn_##R##x##V;
#define SET_TN(R, V) d->tn[V][R] = tn_##R##x##V;
#define ROWS4(M, V) M(1, V) M(2, V) M(3, V) M(4, V)

ROWS4(NN_FN, 1)
ROWS4(NN_FN, 2)
ROWS4(TN_FN, 1)
ROWS4(TN_FN, 2)

/* Installs the portable micro-kernels: 8-column "vectors", tiles up to two
** of them wide and 4 rows high. */
void rn_gemm_fill_generic(rn_dispatch *d) {
    d->level = RN_CPU_GENERIC;
    d->name = "generic";
    d->vl = GV;
    d->nvmax = 2;
    d->nn_rows[1] = d->nn_rows[2] = d->tn_rows[1] = d->tn_rows[2] = 4;
    ROWS4(SET_NN, 1);
    ROWS4(SET_NN, 2);
    ROWS4(SET_TN, 1);
    ROWS4(SET_TN, 2);
}
