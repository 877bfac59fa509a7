/*
** Datasets: where training images come from, before augmentation.
**
** A dataset is a list of labelled samples. Small ones (IDX, CIFAR) are held
** in memory as uint8 pixels; image folders hold file paths and are decoded
** on demand by the loader's worker threads. Either way a sample comes out as
** an rn_image: uint8 pixels, HWC, 1 or 3 channels.
**
** Ownership: rn_dataset_free releases everything a dataset holds; an
** rn_image filled by rn_dataset_get or rn_image_decode_* is released with
** rn_image_free. Reading one dataset from several threads at once is safe
** (rn_dataset_get does not modify the dataset).
*/
#ifndef RN_DATA_H
#define RN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "resnet.h"

/* One decoded image: px[(y*w + x)*c + ch], c = 1 (gray) or 3 (RGB). */
typedef struct {
    int h, w, c;
    uint8_t *px;
} rn_image;

typedef enum { RN_DS_MEMORY, RN_DS_FILES } rn_dataset_kind;

typedef struct {
    rn_dataset_kind kind;
    char source[512];     /* what it was opened from, for messages */
    size_t n;             /* number of samples */
    int nclasses;
    char **class_names;   /* nclasses readable names ("T-shirt/top", "tench") */
    char **class_ids;     /* nclasses folder names (image folders) or NULL */
    int *labels;          /* n labels in [0, nclasses) */
    /* RN_DS_MEMORY: every sample has the same size */
    int h, w, c;
    uint8_t *pixels;      /* n * h * w * c bytes, HWC per sample */
    /* RN_DS_FILES: one path per sample, decoded to RGB (c = 3) */
    char **paths;
    size_t skipped;       /* files found but not images (reported when opened) */
} rn_dataset;

/* Opens the train and validation halves named by `spec`:
**   "fashion-mnist"        Debian's dataset-fashion-mnist files
**   "idx:DIR"              MNIST-format files in DIR (.gz or not)
**   "cifar10:DIR", "cifar100:DIR"   the binary versions
**   "DIR"                  DIR/train/<class>/... and DIR/val/<class>/... (or valid/)
** `labels_file` (may be NULL) maps folder names to readable class names,
** one "n01440764 tench" per line. Either output may be NULL to skip it.
** Errors name the file and what was wrong. */
rn_status rn_dataset_open(const char *spec, const char *labels_file, rn_dataset *train,
                          rn_dataset *valid, rn_error *err);
void rn_dataset_free(rn_dataset *d);
/* The augmentation preset a dataset spec gets by default: "fashion-mnist"
** (also for NULL), "idx", "cifar" or "imagenet" (image folders). */
const char *rn_dataset_preset_name(const char *spec);

/* Fills *out with sample i. Memory datasets copy the pixels; file datasets
** decode the file. `min_side` > 0 lets a JPEG be decoded at a reduced scale
** (libjpeg-turbo's DCT scaling) as long as its shorter side stays >= min_side.
** A file that cannot be decoded gives RN_ERR_FORMAT and a message naming it. */
rn_status rn_dataset_get(const rn_dataset *d, size_t i, int min_side, rn_image *out, rn_error *err);

/* Decodes a JPEG or PNG (recognized by its first bytes, not its name) into
** 3-channel RGB: grayscale, CMYK, palette, 16-bit and alpha are converted
** (alpha dropped), EXIF orientation applied. `min_side` as above. */
rn_status rn_image_decode_file(const char *path, int min_side, rn_image *out, rn_error *err);
rn_status rn_image_decode_mem(const uint8_t *buf, size_t len, const char *name, int min_side,
                              rn_image *out, rn_error *err);
void rn_image_free(rn_image *im);

#endif
