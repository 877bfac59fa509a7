/*
** Elementwise layers: ReLU and the residual add, plain and fused
** (add + ReLU forward; the ReLU mask applied in place backward).
**
** All are memory-bound: one pass over their operands, split into one static
** contiguous share per thread, each share run by a loop carrying
** target_clones so that GCC emits AVX-512, AVX2 and baseline versions and
** the loader picks the CPU's. Outputs may alias inputs where the comments
** say so (in-place layers of the planned arena).
*/
#include "cpu.h"
#include "kernels.h"

#include <omp.h>
#include <stddef.h>

/* Below this many elements a single thread does the work: waking the team
** costs more than the pass. */
#define PAR_MIN 32768

/* The operation of one elementwise pass over [i0, i1). */
typedef enum { OP_RELU, OP_RELU_BWD_ACC, OP_RELU_BWD_SET, OP_ADD, OP_ADD_RELU, OP_ACC2 } ew_op;

/* One thread's share of an elementwise pass; see ew_run for the operands.
** a, b, c, d: (n) */
static RN_CLONES void ew_range(ew_op op, size_t i0, size_t i1, const float *a, const float *b, float *c, float *d) {
    switch (op) {
    case OP_RELU: /* c = max(a, 0) */
        for (size_t i = i0; i < i1; i++) c[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    case OP_RELU_BWD_ACC: /* c += a > 0 ? b : 0 (b loaded unconditionally: the select vectorizes) */
        for (size_t i = i0; i < i1; i++) {
            float bv = b[i];
            c[i] += a[i] > 0.0f ? bv : 0.0f;
        }
        break;
    case OP_RELU_BWD_SET: /* c = a > 0 ? b : 0 */
        for (size_t i = i0; i < i1; i++) {
            float bv = b[i];
            c[i] = a[i] > 0.0f ? bv : 0.0f;
        }
        break;
    case OP_ADD: /* c = a + b */
        for (size_t i = i0; i < i1; i++) c[i] = a[i] + b[i];
        break;
    case OP_ADD_RELU: /* c = max(a + b, 0) */
        for (size_t i = i0; i < i1; i++) {
            float v = a[i] + b[i];
            c[i] = v > 0.0f ? v : 0.0f;
        }
        break;
    case OP_ACC2: /* c += a; d += a */
        for (size_t i = i0; i < i1; i++) {
            c[i] += a[i];
            d[i] += a[i];
        }
        break;
    }
}

/* Runs op over n elements, split into static contiguous thread shares. */
static void ew_run(ew_op op, size_t n, const float *a, const float *b, float *c, float *d) {
    if (n < PAR_MIN) {
        ew_range(op, 0, n, a, b, c, d);
        return;
    }
#pragma omp parallel
    {
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        /* shares rounded to 16 floats so that two threads never write one cache line */
        size_t i0 = (n * t / nt) & ~(size_t)15, i1 = t + 1 == nt ? n : (n * (t + 1) / nt) & ~(size_t)15;
        ew_range(op, i0, i1, a, b, c, d);
    }
}

/* y = max(x, 0); y may be x.  x, y: (n) */
void rn_relu_forward(size_t n, const float *x, float *y) { ew_run(OP_RELU, n, x, NULL, y, NULL); }

/* dx += dy where the output was positive (PyTorch's threshold_backward).  (n) */
void rn_relu_backward(size_t n, const float *y, const float *dy, float *dx) {
    ew_run(OP_RELU_BWD_ACC, n, y, dy, dx, NULL);
}

/* ReLU backward with flags: RN_FUSE_SET writes dx = (y > 0 ? dy : 0), and
** then dx may be dy (the mask applied in place).  y, dy, dx: (n) */
void rn_relu_backward_ex(size_t n, const float *y, const float *dy, float *dx, int flags) {
    ew_run((flags & RN_FUSE_SET) ? OP_RELU_BWD_SET : OP_RELU_BWD_ACC, n, y, dy, dx, NULL);
}

/* y = a + b; y may be a or b.  (n) */
void rn_add_forward(size_t n, const float *a, const float *b, float *y) { ew_run(OP_ADD, n, a, b, y, NULL); }

/* y = max(a + b, 0), the residual add fused with the block's ReLU; y may be
** a or b.  (n) */
void rn_add_relu_forward(size_t n, const float *a, const float *b, float *y) {
    ew_run(OP_ADD_RELU, n, a, b, y, NULL);
}

/* da += dy, db += dy; either may be NULL (that operand's gradient shares
** dy's memory, or is not wanted).  (n) */
void rn_add_backward(size_t n, const float *dy, float *da, float *db) {
    if (da && db) ew_run(OP_ACC2, n, dy, NULL, da, db);
    else if (da || db) ew_run(OP_ADD, n, dy, da ? da : db, da ? da : db, NULL);
}
