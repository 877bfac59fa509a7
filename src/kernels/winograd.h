/*
** Winograd F(2x2, 3x3) convolutions in bf16 (winograd.c), used by conv.c
** for 3x3 stride-1 layers when rn_conv_shape.winograd is set.
*/
#ifndef RN_WINOGRAD_H
#define RN_WINOGRAD_H

#include "cpu.h"
#include "kernels.h"

/* One Winograd convolution: dst = (or +=) conv3x3(src, the weights
** transformed into u) + bias, stride 1, zero padding `pad`.
** src: (N,H,W,C)  u: (16, C, Co) pair-interleaved (rn_wino_pack)
** bias: (Co) or NULL  dst: (N,OH,OW,Co) with OH = H + 2*pad - 2 */
typedef struct {
    const float *src;
    int n, h, w, c;
    float *dst;
    int oh, ow, co;
    int pad;
    const uint16_t *u;
    const float *bias;
    int acc;       /* dst += instead of dst = */
    uint16_t *dstb; /* the destination in bf16 instead (dst NULL, acc 0; RN_BF16_ACT) */
} rn_wino_job;

/* Whether s runs as Winograd on d (bf16, 3x3 stride 1, large enough). */
int rn_wino_applies(const rn_conv_shape *s, const rn_dispatch *d);
/* Floats of one thread's scratch for a reduction over c channels. */
size_t rn_wino_thread_floats(int c);
/* Transforms the layer weights w: (3,3,wci,wco) into u for the forward
** (flip = 0) or backward-data (flip = 1); inside a parallel region, every
** thread calling; ends with a barrier. */
void rn_wino_pack(const float *w, int wci, int wco, int flip, uint16_t *u);
/* Whether the weight gradient of s runs by Winograd, and the floats of its
** shared buffer. */
int rn_wino_dw_applies(const rn_conv_shape *s, const rn_dispatch *d);
size_t rn_wino_dw_floats(const rn_conv_shape *s);
/* dw += the weight gradient of s by Winograd, inside a parallel region,
** every thread calling with its own scratch tbuf (RN_WINO_DW_THREAD_FLOATS)
** and the shared buffer sh; ends with a barrier.
** x: (N,H,W,Ci)  dy: (N,OH,OW,Co)  dw: (3,3,Ci,Co) */
#define RN_WINO_DW_THREAD_FLOATS (16 * 48 * 64)
void rn_wino_weight_grad(const rn_conv_shape *s, const rn_dispatch *d, const float *x, const float *dy, float *dw,
                         float *sh, float *tbuf);
/* Runs job j inside a parallel region, every thread calling, with its own
** scratch tbuf; no barrier at the end. */
void rn_wino_run(const rn_wino_job *j, const rn_dispatch *d, float *tbuf);

#endif
