/*
** Elementwise layers: ReLU and the residual add. Both are memory-bound,
** so a plain loop the compiler vectorizes is as fast as anything else.
*/
#include "kernels.h"

/* y = max(x, 0).  x, y: (n) */
void rn_relu_forward(size_t n, const float *x, float *y) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx += dy where the output was positive (PyTorch's threshold_backward).  (n) */
void rn_relu_backward(size_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

/* y = a + b.  (n) */
void rn_add_forward(size_t n, const float *a, const float *b, float *y) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* da += dy, db += dy.  (n) */
void rn_add_backward(size_t n, const float *dy, float *da, float *db) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        da[i] += dy[i];
        db[i] += dy[i];
    }
}
