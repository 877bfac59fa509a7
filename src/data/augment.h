/*
** Augmentation: from a decoded uint8 image to one normalized float sample.
**
** Every geometric step (crop, resize, flip, rotation, zoom, perspective
** warp) is folded into ONE map from output pixel to source coordinate, a
** 3x3 homography, sampled once with bilinear interpolation. Coordinates
** are continuous with pixel i spanning [i, i+1) (centers at i + 0.5), as in
** torchvision and PIL, so an output pixel index o reads the source at
** (o + 0.5) * scale - 0.5 and an integer translation copies pixels exactly.
** When the map shrinks the image by more than 2x the source is first
** box-averaged by an integer factor, so downscaling does not alias.
**
** A sample is drawn in two steps, exposed so that tests and tools can
** pick the random parameters themselves:
**     rn_augment_draw    seed -> rn_augment_params (every random choice)
**     rn_augment_render  image + params -> floats
** rn_augment_sample does both. The result is a function of the seed only.
**
** Order of operations (torchvision/fastai): geometry, then photometric
** changes (lighting, PCA) on the [0,1] values, then normalization
** ((v/255 - mean) / std), then random erasing.
*/
#ifndef RN_AUGMENT_H
#define RN_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "data/data.h"

typedef struct {
    int out_h, out_w, out_c;    /* output size; out_c = model input channels (1 or 3): gray<->RGB
                                   (ITU-R 601 luma 0.299/0.587/0.114 for RGB->gray) */
    /* training geometry (each 0 = off); the first that is set wins:
       scale_lo, then presize (with min_scale applied to its canvas), then
       min_scale, then pad; none: the evaluation geometry */
    int presize;                /* fastai item Resize(presize): random square crop of the image resized
                                   to presize x presize, before the batch-level augmentations */
    float min_scale, max_scale; /* random-resized-crop area fraction (torchvision RandomResizedCrop:
                                   10 attempts, then center-crop fallback); max 0 = 1 */
    float min_ratio, max_ratio; /* aspect range, log-uniform (default 3/4, 4/3) */
    int scale_lo, scale_hi;     /* He et al.: shorter side uniform in [lo,hi], random out_h x out_w crop */
    int pad;                    /* CIFAR style: zero-pad by pad pixels, random out_h x out_w crop */
    int flip;                   /* horizontal flip with p = 0.5 */
    float max_rotate;           /* degrees, uniform in [-max,max], counter-clockwise (fastai 10) */
    float max_zoom;             /* zoom uniform in [1, max_zoom] (fastai 1.1); <= 1 = off */
    float max_warp;             /* perspective warp magnitude (fastai 0.2) */
    float p_affine;             /* probability each of rotate/zoom/warp is applied (fastai 0.75) */
    float max_lighting;         /* brightness and contrast change (fastai 0.2) */
    float p_lighting;           /* probability each of brightness/contrast is applied (fastai 0.75) */
    float pca_std;              /* AlexNet PCA color augmentation std (0.1), ImageNet eigen-decomposition;
                                   applied only when out_c = 3 */
    float erase_p;              /* random erasing probability (torchvision RandomErasing: scale
                                   0.02-0.33, ratio 0.3-3.3, value standard normal) */
    /* evaluation geometry (also training when no training geometry is set) */
    int eval_resize;            /* shorter side before the center crop (torchvision 256 -> 224);
                                   0 = resize straight to the output size */
    /* normalization */
    float mean[3], std[3];
} rn_augment;

/* Every random choice of one sample. Identity values: flip 0, angle 0,
** zoom 1, warp 0, brightness 0.5, contrast 1, pca 0, erase 0. */
typedef struct {
    /* source region mapped onto the whole output, in continuous source
       coordinates; may extend past the image (pad-and-crop) */
    double x0, y0, bw, bh;
    int border;                 /* RN_BORDER_*: what lies outside the image */
    int flip;                   /* horizontal flip of the output */
    double angle;               /* degrees, counter-clockwise */
    double zoom, zoom_cx, zoom_cy; /* zoom >= 1; center offset in normalized output units */
    double warp_x, warp_y;      /* fastai's perspective magnitudes */
    double brightness, contrast;/* fastai's lighting, in logit space */
    double pca[3];              /* alpha per eigenvector */
    int erase, erase_y, erase_x, erase_h, erase_w; /* erased box in output pixels */
    uint64_t erase_seed;        /* seed of the box's normal values */
} rn_augment_params;

enum { RN_BORDER_CLAMP = 0, RN_BORDER_ZERO = 1, RN_BORDER_REFLECT = 2 };

/* Everything off, mean 0, std 1, ratio 3/4..4/3 and probabilities 0.75
** (they only matter once the matching magnitude is set). */
void rn_augment_default(rn_augment *a, int out_h, int out_w, int out_c);

/* Named recipes: "fashion-mnist"/"idx", "cifar", "imagenet", "fastai",
** "paper", "none". Sizes in the recipes are scaled to the output size.
** "fashion-mnist"/"idx" and "none" leave mean 0 / std 1 for the caller to
** fill with rn_dataset_stats. Unknown name: RN_ERR_ARG listing the names. */
rn_status rn_augment_preset(const char *kind, int out_h, int out_w, int out_c, rn_augment *a,
                            rn_error *err);

/* Checks a configuration (sizes, channels, ranges, std != 0). */
rn_status rn_augment_check(const rn_augment *a, rn_error *err);

/* Smallest shorter side a source image needs so that the map does not
** upsample more than the recipe intends: what the loader passes to the
** JPEG decoder's DCT scaling (rn_dataset_get's min_side). */
int rn_augment_min_side(const rn_augment *a, int train);

/* Draws every random choice for an in_h x in_w image. train = 0 gives the
** deterministic evaluation geometry and no other change. */
void rn_augment_draw(const rn_augment *a, int in_h, int in_w, int train, uint64_t seed,
                     rn_augment_params *p);

/* The composed map as a row-major 3x3 homography: output continuous
** coordinates (x, y, 1) -> source continuous coordinates (after division). */
void rn_augment_matrix(const rn_augment *a, const rn_augment_params *p, double m[9]);

/* Renders one sample.  in: (h,w,c) uint8  out: (out_h,out_w,out_c) float */
void rn_augment_render(const rn_augment *a, const rn_image *in, const rn_augment_params *p,
                       float *out);

/* rn_augment_draw + rn_augment_render: deterministic for a given seed.
** out: (out_h,out_w,out_c) float, normalized. */
void rn_augment_sample(const rn_augment *a, const rn_image *in, int train, uint64_t seed, float *out);

/* Per-channel mean and std (population) of pixel/255 over a dataset, in
** double: every sample of a memory dataset, an evenly spaced subset of at
** most max_samples (0 = all) of a file dataset (undecodable files are left
** out). Gray datasets fill all three entries with the one channel's value. */
rn_status rn_dataset_stats(const rn_dataset *d, size_t max_samples, float mean[3], float std[3],
                           rn_error *err);

#endif
