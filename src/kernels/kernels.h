/*
** The maths of the network: one forward and one backward per layer kind.
**
** Every kernel exists twice: rn_ref_* is the plain, obviously-correct loop
** nest that tests trust; rn_* (no "ref") is the fast version used in
** training and inference, tested against its reference twin on odd shapes.
**
** Conventions shared by every kernel:
**   - activations are NHWC float32: x[((n*H + h)*W + w)*C + c];
**   - convolution weights are HWIO: w[((kh*K + kw)*Ci + ci)*Co + co], so
**     the output channel is contiguous and vectorizes (files keep OIHW;
**     src/io converts once at load and save);
**   - fully connected weights are (O,I) as in PyTorch;
**   - every backward ADDS its input gradient into dx (dx += ...), so a
**     tensor read by two layers (a block input feeding both the residual
**     branch and the shortcut) gets the sum without extra bookkeeping; the
**     caller zeroes gradient buffers once per step. Parameter gradients
**     (dw, db, dgamma, dbeta) are accumulated the same way.
*/
#ifndef RN_KERNELS_H
#define RN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Shape of one 2-D convolution or pooling window, per sample. */
typedef struct {
    int n;              /* batch */
    int h, w, ci;       /* input height, width, channels */
    int oh, ow, co;     /* output height, width, channels */
    int k, stride, pad; /* square kernel, stride, symmetric zero padding */
    int bf16;           /* fast convolutions: multiply in bfloat16 (below) */
    int winograd;       /* with bf16: 3x3 stride-1 passes by Winograd F(2x2,3x3) (winograd.c) */
} rn_conv_shape;

/* bfloat16: the top 16 bits of a float32 (8 exponent bits, 7 mantissa
** bits). With rn_conv_shape.bf16 set, the fast convolution rounds its
** operands (x, w, dy) to bf16, to nearest even, and multiplies them with
** AVX512_BF16's dot product, accumulating in fp32 (denormal operands count
** as zero, as the instruction's conversion does); outputs and gradients
** stay fp32 (what PyTorch's CPU autocast computes). A pass whose reduction
** runs over an odd channel count (the forward of a 1- or 3-channel stem),
** and every pass on a CPU without the instruction, stays in fp32. */
static inline uint16_t rn_bf16_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x40u;
    const uint32_t r = (u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded; /* a NaN stays a (quiet) NaN */
    return (uint16_t)((u & 0x7F800000u) ? r : (u >> 16) & 0x8000u); /* denormals flush to zero */
}
static inline float rn_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Output size of a window of size k, stride s, padding p over length n. */
static inline int rn_out_size(int n, int k, int s, int p) { return (n + 2 * p - k) / s + 1; }

/* ---- convolution ------------------------------------------------------ */
/* y = conv(x, w) + b.  x: (N,H,W,Ci)  w: (K,K,Ci,Co)  b: (Co) or NULL  y: (N,OH,OW,Co) */
void rn_ref_conv_forward(const rn_conv_shape *s, const float *x, const float *w, const float *b, float *y);
/* dx += conv_transpose(dy, w); dw += x (*) dy; db += sum dy (each may be NULL to skip). */
void rn_ref_conv_backward(const rn_conv_shape *s, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db);

/* How the fast backward splits the weight gradient between the threads:
** a dw of at most this many floats (768 KB, which stays in a core's L2) by
** pixels, each thread summing a partial dw that are then added in thread
** order, so that each reads only its share of x and dy and needs no
** barrier (the same bits for the same thread count); a larger one by its
** rows, every thread summing all pixels for its rows (the same bits for
** any thread count). conv.c has the measurements behind the number. */
#define RN_CONV_SMALL_DW 196608

/* Fast versions. `ws` is scratch of at least rn_conv_workspace(s, nthreads) floats,
** nthreads >= the threads of the caller's parallel regions (omp_get_max_threads()).
** rn_conv_forward allocates its own scratch; rn_conv_forward_ws uses ws (no allocation). */
size_t rn_conv_workspace(const rn_conv_shape *s, int nthreads);
void rn_conv_forward(const rn_conv_shape *s, const float *x, const float *w, const float *b, float *y);
void rn_conv_forward_ws(const rn_conv_shape *s, const float *x, const float *w, const float *b, float *y, float *ws);
/* The same writing y in bf16 (uint16_t) with flags RN_BF16_ACT (below),
** for a bf16 shape (s->bf16): each value rounded to nearest even from the
** fp32 sum, as rn_bf16_from_f32 does. */
void rn_conv_forward_ex(const rn_conv_shape *s, const void *x, const float *w, const float *b, void *y, float *ws,
                        int flags);
void rn_conv_backward(const rn_conv_shape *s, const float *x, const float *w, const float *dy,
                      float *dx, float *dw, float *db, float *ws);
/* The same with flags: RN_FUSE_SET (below) writes dx = conv_transpose(dy, w)
** instead of adding to it, so that a first contribution needs no zeroing
** pass and dx is not read; RN_BF16_GRAD (below): dy holds bf16 values
** (uint16_t), for a bf16 shape (s->bf16) on a CPU with AVX512_BF16; its
** passes then read half the bytes, and where rn_conv_takes_bf16_grad(s)
** the results equal those from the same values in fp32 (elsewhere
** Winograd gives way to the direct passes). */
void rn_conv_backward_ex(const rn_conv_shape *s, const void *x, const float *w, const void *dy,
                         void *dx, float *dw, float *db, float *ws, int flags);
int rn_conv_takes_bf16_grad(const rn_conv_shape *s);
int rn_conv_gives_bf16_dx(const rn_conv_shape *s);
int rn_conv_takes_bf16_x(const rn_conv_shape *s);
/* bf16 inference with weights packed once: rn_conv_forward_packs says
** whether the forward of s runs as a direct bf16 GEMM (not by Winograd);
** rn_conv_pack_bf16 packs w (rn_conv_packed_values(s) bf16 values: more
** than K*K*Ci*Co when Ci is odd) for rn_conv_forward_packed, which then
** never reads w. */
int rn_conv_forward_packs(const rn_conv_shape *s);
size_t rn_conv_packed_values(const rn_conv_shape *s);
void rn_conv_pack_bf16(const rn_conv_shape *s, const float *w, uint16_t *wb);
void rn_conv_forward_packed(const rn_conv_shape *s, const float *x, const uint16_t *wb, const float *b, float *y,
                            float *ws);

/* ---- batch normalization ---------------------------------------------- */
/* Training mode: normalizes x with the batch statistics over (N,H,W) and
** stores mean and 1/sqrt(var+eps) (biased var) for the backward pass. When
** running_mean is not NULL, updates the running statistics PyTorch's way:
** r = (1-momentum)*r + momentum*batch, with the unbiased variance.
** x, y: (M,C) where M = N*H*W.  gamma, beta, mean, invstd: (C) */
void rn_ref_bn_forward_train(size_t m, int c, const float *x, const float *gamma, const float *beta,
                             float eps, float momentum, float *running_mean, float *running_var,
                             float *mean, float *invstd, float *y);
/* Eval mode: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta. */
void rn_ref_bn_forward_eval(size_t m, int c, const float *x, const float *gamma, const float *beta,
                            float eps, const float *running_mean, const float *running_var, float *y);
/* Backward of the training-mode forward (batch statistics).
** dx += ..., dgamma += sum dy*xhat, dbeta += sum dy. */
void rn_ref_bn_backward(size_t m, int c, const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, float *dgamma, float *dbeta);
void rn_bn_forward_train(size_t m, int c, const float *x, const float *gamma, const float *beta,
                         float eps, float momentum, float *running_mean, float *running_var,
                         float *mean, float *invstd, float *y);
void rn_bn_forward_eval(size_t m, int c, const float *x, const float *gamma, const float *beta,
                        float eps, const float *running_mean, const float *running_var, float *y);
void rn_bn_backward(size_t m, int c, const float *x, const float *gamma, const float *mean,
                    const float *invstd, const float *dy, float *dx, float *dgamma, float *dbeta);

/* Fused forms (one memory pass fewer each), flags an OR of:
**   RN_FUSE_RELU  forward: y = max(bn(x), 0) in the same pass; backward: dy
**                 is first masked by y > 0, y being that ReLU's output (the
**                 ReLU backward and the BN backward in one pass);
**   RN_FUSE_SET   backward: dx = ... instead of dx += ... (the first
**                 contribution to dx, which then needs no zeroing).
** The eval forward may run in place (y == x); the training forward may not.
** y (backward): (M,C), only read with RN_FUSE_RELU. */
#define RN_FUSE_RELU 1
#define RN_FUSE_SET 2
/* RN_BF16_GRAD: the gradient between a convolution and the BN after it
** kept in bf16: the BN backward writes dx rounded to bf16 (uint16_t, with
** RN_FUSE_SET), and the convolution's backward reads it as its dy. */
#define RN_BF16_GRAD 4
/* RN_BF16_ACT: the activation between a convolution and the BN after it
** kept in bf16: the convolution's forward writes y rounded to bf16
** (uint16_t; rn_conv_forward_ex), and the BN passes read it as their x
** (rn_bn_forward_train_sync, rn_bn_forward_eval_ex, rn_bn_backward_sync),
** widened exactly. As PyTorch's bf16 autocast does with a convolution's
** output, except that the BN's own arithmetic and output stay fp32. */
#define RN_BF16_ACT 8
/* RN_BF16_X: the activation between a BN (+ ReLU) and the convolutions
** reading it kept in bf16: the BN's forward writes y rounded to bf16
** (rn_bn_forward_train_sync, rn_bn_forward_eval_ex), and the convolutions
** read it as their x (rn_conv_forward_ex, rn_conv_backward_ex). Where
** rn_conv_takes_bf16_x, that is the value the convolution would have
** rounded x to: only the bytes change. */
#define RN_BF16_X 16
/* RN_BF16_DX: the gradient between a BN (+ ReLU) and the one convolution
** reading its output kept in bf16: the convolution's backward writes dx
** rounded to bf16 (uint16_t, with RN_FUSE_SET; rn_conv_backward_ex, where
** rn_conv_gives_bf16_dx), and the BN backward reads it as its dy
** (rn_bn_backward_sync), widened exactly. Unlike the flags above this
** rounds values kept in fp32 otherwise, as PyTorch's bf16 autocast does
** with a convolution's input gradient. */
#define RN_BF16_DX 32
void rn_bn_forward_train_ex(size_t m, int c, const float *x, const float *gamma, const float *beta, float eps,
                            float momentum, float *running_mean, float *running_var, float *mean, float *invstd,
                            float *y, int flags);
void rn_bn_forward_eval_ex(size_t m, int c, const void *x, const float *gamma, const float *beta, float eps,
                           const float *running_mean, const float *running_var, void *y, int flags);
void rn_bn_backward_ex(size_t m, int c, const float *x, const float *y, const float *gamma, const float *mean,
                       const float *invstd, const float *dy, float *dx, float *dgamma, float *dbeta, int flags);
/* Synchronized batchnorm (data-parallel training): sum(ctx, v, n) adds
** v[0..n) across all ranks in place; it is called by the calling thread's
** OpenMP master thread only. With it the statistics are those of the
** global batch: the moments are combined across ranks in the forward
** (two sums: the mean, then squared deviations about it) and sum(g),
** sum(g*xhat) in the backward, as torch.nn.SyncBatchNorm does; dgamma and
** dbeta stay this rank's own (the gradient averaging follows). A rank
** may have m = 0 rows; it still takes part in the sums. */
typedef struct {
    void (*sum)(void *ctx, double *v, int n);
    void *ctx;
} rn_bn_sync;
/* A fused ReLU's mask without its output: the training forward keeps the
** per-channel dmu and scale of its arithmetic (y = max(((x - x[0]) - dmu)
** * scale + beta, 0), x[0] this rank's first row) in `keep` (may be NULL),
** and the backward given them (`kept`, with the same beta) recomputes
** y > 0 from x bit for bit instead of reading y: one stream of memory
** fewer in both backward passes. dmu, scale: (C) */
typedef struct {
    float *dmu, *scale;
    const float *beta;
} rn_bn_relu_mask;
/* add, when not NULL, is a residual summed into the output before the
** ReLU: y = bn(x) + add (max(..., 0) with RN_FUSE_RELU), a residual block's
** last BN, its sum and its ReLU in one pass (then keep must be NULL: the
** mask depends on add). add, y: (M,C), y not add */
void rn_bn_forward_train_sync(size_t m, int c, const void *x, const float *gamma, const float *beta, float eps,
                              float momentum, float *running_mean, float *running_var, float *mean, float *invstd,
                              void *y, int flags, const rn_bn_sync *sync, const rn_bn_relu_mask *keep,
                              const float *add);
void rn_bn_backward_sync(size_t m, int c, const void *x, const float *y, const float *gamma, const float *mean,
                         const float *invstd, const void *dy, void *dx, float *dgamma, float *dbeta, int flags,
                         const rn_bn_sync *sync, const rn_bn_relu_mask *kept);
/* Eval-mode BN folded into the convolution before it: wf = w * s and
** bf = (b - running_mean) * s + beta with s = gamma / sqrt(running_var + eps).
** w, wf: (rows, Co) (HWIO, rows = K*K*Ci)  bias: (Co) or NULL  bf: (Co) */
void rn_bn_fold(size_t rows, int co, const float *w, const float *bias, const float *gamma, const float *beta,
                float eps, const float *running_mean, const float *running_var, float *wf, float *bf);

/* ---- elementwise ------------------------------------------------------ */
/* y = max(x, 0); dx += dy where y > 0.  x, y: (n) */
void rn_relu_forward(size_t n, const float *x, float *y);
void rn_relu_backward(size_t n, const float *y, const float *dy, float *dx);
/* y = a + b; da += dy, db += dy.  (n) */
void rn_add_forward(size_t n, const float *a, const float *b, float *y);
void rn_add_backward(size_t n, const float *dy, float *da, float *db);
/* Fused and in-place forms: y = max(a + b, 0) (y may be a or b); relu
** backward with RN_FUSE_SET writes dx = (y > 0 ? dy : 0) (dx may be dy);
** rn_add_backward skips a NULL da or db. relu forward may run in place. */
void rn_add_relu_forward(size_t n, const float *a, const float *b, float *y);
void rn_relu_backward_ex(size_t n, const float *y, const float *dy, float *dx, int flags);

/* ---- pooling ---------------------------------------------------------- */
/* Max pooling with -inf padding; ties go to the first window position in
** (kh,kw) order, as PyTorch's CPU kernel does.  x: (N,H,W,C)  y: (N,OH,OW,C) */
void rn_maxpool_forward(const rn_conv_shape *s, const float *x, float *y);
void rn_maxpool_backward(const rn_conv_shape *s, const float *x, const float *y, const float *dy, float *dx);
/* The same through picks (pooling.c): the training forward also records
** which window position each output's gradient goes to (kh*k + kw, or
** RN_POOL_NONE), and the backward reads only them and dy, writing dx
** (set) or adding to it, with rn_maxpool_backward's bits. k*k < 255.
** pick: (N,OH,OW,C) */
#define RN_POOL_NONE 255
void rn_maxpool_forward_pick(const rn_conv_shape *s, const float *x, float *y, unsigned char *pick);
void rn_maxpool_backward_pick(const rn_conv_shape *s, const unsigned char *pick, const float *dy, float *dx, int set);
/* Global average pooling.  x: (N,H,W,C)  y: (N,C) */
void rn_gap_forward(int n, int hw, int c, const float *x, float *y);
void rn_gap_backward(int n, int hw, int c, const float *dy, float *dx);
/* Option-A shortcut of the CIFAR ResNets: y = x[:, ::2, ::2, :] with the
** channels zero-padded by `lo` in front and the rest behind.
** x: (N,H,W,Ci)  y: (N,OH,OW,Co), OH = ceil(H/stride) */
void rn_padskip_forward(const rn_conv_shape *s, int lo, const float *x, float *y);
void rn_padskip_backward(const rn_conv_shape *s, int lo, const float *dy, float *dx);

/* ---- head ------------------------------------------------------------- */
/* y = x w^T + b.  x: (N,I)  w: (O,I)  b: (O)  y: (N,O) */
void rn_fc_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
void rn_fc_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                    float *dx, float *dw, float *db);
/* The same in bf16 (for a bf16 model, on a CPU with AVX512_BF16): x, W
** and dy rounded to bf16, the products summed in fp32 (db from the fp32
** dy), y and the gradients in fp32. The forward takes W packed by
** rn_fc_pack_bf16 as wt, or packs it itself when wt is NULL; ws is scratch
** of rn_fc_workspace_bf16(n, in, out) floats.
** wt: (even(I)/2, O) pairs of bf16 values: wt[(k/2)*2*O + 2*o + k%2] = w[o][k] */
size_t rn_fc_workspace_bf16(int n, int in, int out);
void rn_fc_pack_bf16(int in, int out, const float *w, uint16_t *wt);
void rn_fc_forward_bf16(int n, int in, int out, const float *x, const float *w, const uint16_t *wt, const float *b,
                        float *y, float *ws);
void rn_fc_backward_bf16(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db, float *ws);
/* Mean softmax cross-entropy over the batch with label smoothing eps
** (PyTorch's CrossEntropyLoss(label_smoothing=eps)). Writes dlogits (not
** accumulated) when not NULL, already divided by n.  logits: (N,K) labels: (N) */
double rn_softmax_xent(int n, int k, const float *logits, const int *labels, float smoothing, float *dlogits);

#endif
