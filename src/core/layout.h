/*
** Conversions between PyTorch's NCHW layout (files, users' buffers) and
** the NHWC layout used inside.
*/
#ifndef RN_LAYOUT_H
#define RN_LAYOUT_H

#include <stddef.h>

/* dst: (N,H,W,C) <- src: (N,C,H,W) */
static inline void rn_nchw_to_nhwc(const float *src, float *dst, int n, int c, int h, int w) {
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < h * w; p++)
                dst[((size_t)i * h * w + p) * c + ch] = src[((size_t)i * c + ch) * h * w + p];
}

#endif
