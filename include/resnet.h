/*
** resnet: ResNet training and inference in C, on the CPU.
**
** One public header. Every function that can fail returns an rn_status
** (RN_OK is 0) and, when given a non-NULL rn_error, fills it with a message
** that names the file, tensor or argument and what was expected. The library
** never prints, never exits and never aborts on bad input.
**
** Thread safety: distinct rn_model objects may be used from distinct
** threads freely. On ONE model, the running calls (rn_model_forward,
** rn_model_train_step, rn_classify_file, rn_classify_pixels) may be made
** from several threads at once: a lock inside the model serializes the
** network passes (each pass already uses every core through OpenMP), and
** the preprocessing runs in the calling thread. Calls that change a model
** (rn_model_init, rn_model_load, rn_model_set_precision, writing through
** rn_model_params, rn_train) and rn_model_free must not overlap any other
** call on the same model.
**
** Ownership: every object made by an rn_*_create or rn_model_open is
** released by its rn_*_free; pointers returned by accessors belong to the
** object and live as long as it does. Arrays passed in are only read
** during the call, unless a comment says otherwise.
**
** Versioning: RN_VERSION_MAJOR/MINOR/PATCH are the version of this header,
** rn_version() that of the library linked; the shared library's SONAME
** (libresnet.so.MAJOR) changes when the ABI does.
*/
#ifndef RESNET_H
#define RESNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RN_VERSION_MAJOR 0
#define RN_VERSION_MINOR 2
#define RN_VERSION_PATCH 0
#define RN_VERSION "0.2.0"

/* Error codes. */
typedef enum {
    RN_OK = 0,
    RN_ERR_ARG = 1,    /* an argument is out of range or malformed */
    RN_ERR_IO = 2,     /* a file could not be opened, read or written */
    RN_ERR_FORMAT = 3, /* a file's contents are malformed */
    RN_ERR_NOMEM = 4,  /* an allocation failed */
    RN_ERR_MISMATCH = 5, /* a file does not fit the model (tensor names, shapes, dtypes) */
    RN_ERR_UNSUPPORTED = 6 /* this CPU lacks an instruction set the request needs */
} rn_status;

/* A message buffer filled by failing calls. */
typedef struct {
    rn_status code;
    char msg[1024];
} rn_error;

/* Returns the linked library's version string ("MAJOR.MINOR.PATCH", the
** RN_VERSION it was built with). Static storage; thread-safe. */
const char *rn_version(void);

/* A short English name of a status code ("bad argument", "I/O error", ...).
** Static storage; thread-safe. */
const char *rn_status_name(rn_status code);

/* ---- architecture ----------------------------------------------------- */

typedef enum {
    RN_BLOCK_BASIC,             /* two 3x3 convs (ResNet-18/34, CIFAR ResNets) */
    RN_BLOCK_BOTTLENECK,        /* 1x1, 3x3, 1x1 with expansion 4 (ResNet-50+) */
    RN_BLOCK_PREACT_BASIC,      /* BN-ReLU-conv, He et al. 2016 */
    RN_BLOCK_PREACT_BOTTLENECK
} rn_block_kind;

typedef enum {
    RN_STEM_IMAGENET, /* 7x7/2 conv, BN, ReLU, 3x3/2 max pool */
    RN_STEM_CIFAR     /* 3x3/1 conv, BN, ReLU (conv only for pre-activation nets) */
} rn_stem_kind;

#define RN_MAX_STAGES 8

/* Everything that defines a network's structure. */
typedef struct {
    char arch[64];          /* the name it was made from, or "custom" */
    rn_block_kind block;
    rn_stem_kind stem;
    int nstages;
    int blocks[RN_MAX_STAGES];  /* blocks per stage */
    int widths[RN_MAX_STAGES];  /* planes per stage (bottleneck output is 4x) */
    int stride_on_1x1;      /* bottleneck: 1 = paper/Caffe "v1", 0 = torchvision "v1.5" */
    char shortcut;          /* 'B' projection (default) or 'A' strided identity + zero channels */
    int classes;            /* default 1000 */
    int in_channels;        /* default 3 */
    float bn_eps;           /* default 1e-5 */
    float bn_momentum;      /* default 0.1, PyTorch's meaning */
} rn_spec;

/* Fills *spec for a named architecture: resnet18..152, resnet50-v1,
** resnet101-v1, resnet152-v1, preact-resnet18..152, resnet20..110.
** classes and in_channels are set to 1000 and 3 (CIFAR nets: 10 and 3). */
rn_status rn_spec_from_name(const char *name, rn_spec *spec, rn_error *err);

/* Fills *spec for a custom network: `blocks` and `widths` like "3,4,6,3",
** `block` one of basic|bottleneck|preact-basic|preact-bottleneck,
** `stem` imagenet|cifar. */
rn_status rn_spec_custom(const char *blocks, const char *widths, const char *block,
                         const char *stem, rn_spec *spec, rn_error *err);

/* ---- model ------------------------------------------------------------ */

typedef struct rn_model rn_model;

/* Builds a model (parameters zeroed; see rn_model_init). */
rn_status rn_model_create(const rn_spec *spec, rn_model **out, rn_error *err);
void rn_model_free(rn_model *m);

/* Initializes parameters as torchvision does: Kaiming-normal (fan_out,
** ReLU gain) for convolutions, BN weight 1 and bias 0, running stats 0/1,
** PyTorch's default Linear init for fc; with zero_init_residual the last BN
** of each residual branch starts at weight 0. Deterministic for a seed. */
void rn_model_init(rn_model *m, uint64_t seed, int zero_init_residual);

/* The structure the model was built from. */
const rn_spec *rn_model_spec(const rn_model *m);
/* Number of trainable parameters (as torchvision counts them). */
size_t rn_model_param_count(const rn_model *m);

/* Loads parameters and buffers from a safetensors file with torchvision's
** names and layouts. Every tensor must be present with the right shape and
** dtype, and no other tensor may be present. */
rn_status rn_model_load(rn_model *m, const char *path, rn_error *err);
/* Creates the model a safetensors file describes (its __metadata__ holds
** the architecture) and loads it. */
rn_status rn_model_open(const char *path, rn_model **out, rn_error *err);
/* Writes parameters, buffers and metadata; the file appears whole or not at all. */
rn_status rn_model_save(const rn_model *m, const char *path, rn_error *err);

/* Per-layer summary, one row per layer with parameters or a shape change,
** for an input of h x w. Writes at most `cap` bytes of text into buf,
** returns the number of bytes the full text needs (like snprintf). */
size_t rn_model_summary(const rn_model *m, int h, int w, char *buf, size_t cap);
/* Multiply-accumulates of one forward pass of one h x w image. */
uint64_t rn_model_macs(const rn_model *m, int h, int w);

/* ---- running the network ---------------------------------------------- */

/* Arithmetic of the convolutions. RN_PREC_BF16 rounds their inputs,
** weights and output gradients to bfloat16 and sums the products in fp32
** (AVX512_BF16's vdpbf16ps, twice the multiplies of fp32 per instruction),
** which is what PyTorch's CPU autocast to bfloat16 computes; batchnorm,
** the head, the loss, the master weights and the optimizer stay fp32, and
** model files are fp32 either way. Under RN_PREC_BF16 the 3x3 stride-1
** convolutions of 64 channels or more, on a batch of 64 output tiles of
** 2x2 or more, run forward and backward-data (and the weight gradient,
** at most 8 tiles per input channel) by Winograd F(2x2,3x3): 2.25x fewer
** multiplies, the transformed values rounded to bf16 instead of the
** inputs, weights and gradients themselves, which about doubles the
** rounding error of those layers (still well inside bf16's precision).
** RN_PREC_BF16_DIRECT is bf16 without Winograd. */
typedef enum { RN_PREC_FP32 = 0, RN_PREC_BF16 = 1, RN_PREC_BF16_DIRECT = 2 } rn_precision;

/* Sets m's convolution arithmetic (fp32 at creation). The bf16 forms fail
** with RN_ERR_UNSUPPORTED and a message on a CPU without AVX512_BF16. */
rn_status rn_model_set_precision(rn_model *m, rn_precision prec, rn_error *err);
/* Parses "fp32" (or "float32"), "bf16" (or "bfloat16") and "bf16-direct";
** -1 otherwise. */
int rn_precision_parse(const char *s);

/* Runs the network on x: (N,H,W,C) float32 NHWC and writes logits (N,K).
** train != 0 uses batch statistics and updates the running stats.
** Plans (allocates) activation memory for the shape on first use. */
rn_status rn_model_forward(rn_model *m, const float *x, int n, int h, int w, int train,
                           float *logits, rn_error *err);

/* Runs forward in training mode, the loss against labels, and backward.
** Gradients are written (not accumulated) to the model's gradient buffer.
** Returns the mean cross-entropy loss in *loss. */
rn_status rn_model_train_step(rn_model *m, const float *x, const int *labels, int n, int h, int w,
                              float label_smoothing, float *logits, double *loss, rn_error *err);

/* Flat parameter and gradient buffers (length rn_model_param_count). The
** layout is internal (convolution weights HWIO). bf16 inference keeps a
** packed copy of the weights, which rn_model_params marks stale: after
** writing through a pointer obtained before the last forward pass, call
** rn_model_params again before the next. */
float *rn_model_params(rn_model *m);
float *rn_model_grads(rn_model *m);

/* ---- classifying images ----------------------------------------------- */

/* Element type of a pixel buffer: bytes 0..255, or floats in [0, 1]
** (value/255; rounded to 8 bits, the precision of image files, before
** the model's preprocessing). */
typedef enum { RN_PIXELS_RGB8 = 0, RN_PIXELS_FLOAT = 1 } rn_pixel_type;
/* Memory order of a pixel buffer: (H,W,C) interleaved or (C,H,W) planar. */
typedef enum { RN_LAYOUT_NHWC = 0, RN_LAYOUT_NCHW = 1 } rn_layout;

/* One image in memory, of any size. channels is 1 (gray), 3 (RGB) or 4
** (RGBA; alpha is dropped). */
typedef struct {
    const void *data;     /* h*w*channels elements of `type` */
    rn_pixel_type type;
    rn_layout layout;
    int height, width, channels;
} rn_pixels;

/* Classifies one image with the model's own preprocessing, as `resnet
** predict` does: the input size, the evaluation resize (shorter side, then
** center crop), gray<->RGB conversion and mean/std a model file carries
** (rn_model_open; a model made with rn_model_create uses 224x224 or 32x32
** and ImageNet statistics until trained with rn_train or loaded).
** Writes rn_model_spec(m)->classes softmax probabilities to probs.
** Thread-safe on one model (see the top of this header). */
rn_status rn_classify_pixels(rn_model *m, const rn_pixels *img, float *probs, rn_error *err);
/* The same for a JPEG or PNG file (recognized by content; EXIF orientation
** applied). Errors name the file. */
rn_status rn_classify_file(rn_model *m, const char *path, float *probs, rn_error *err);

/* Fills idx with the indices of the k largest of n values, largest first
** (ties: lower index first); returns the number written (min(k, n)). */
int rn_top_k(const float *values, int n, int k, int *idx);
/* Class i's name from the model file ("T-shirt/top"), or NULL when the
** model has no names or i is out of range. Owned by the model. */
const char *rn_model_class_name(const rn_model *m, int i);

/* ---- training ----------------------------------------------------------- */

/* What the per-step callback sees, after each optimizer step. */
typedef struct {
    int epoch;            /* 0-based */
    long step;            /* optimizer steps taken so far, this one included */
    size_t batch, batches; /* batches done in this epoch, and per epoch */
    double loss;          /* this batch's loss */
    double smooth_loss;   /* the smoothed running loss (what the progress bar shows) */
    double lr;            /* the head's learning rate of this step */
} rn_step_info;

/* What the per-epoch callback sees, after validation. NaN where there is
** no validation set. */
typedef struct {
    int epoch, epochs;    /* 0-based epoch just finished, of `epochs` */
    double train_loss;    /* smoothed training loss at the end of the epoch */
    double valid_loss, accuracy, top5;
    double seconds;       /* of this epoch, validation included */
} rn_epoch_info;

/* Callbacks return 0 to go on, non-zero to stop training (early stopping):
** after this step (the position is checkpointed when out_dir is set), or
** after this epoch. They run in the thread that called rn_train. */
typedef int (*rn_step_callback)(const rn_step_info *info, void *user);
typedef int (*rn_epoch_callback)(const rn_epoch_info *info, void *user);

/* A training run: the defaults of `resnet train` (see rn_train_defaults). */
typedef struct {
    const char *data;     /* "fashion-mnist", "idx:DIR", "cifar10:DIR", "cifar100:DIR", or an image
                             folder DIR with DIR/train/<class>/ and DIR/val/<class>/ */
    int height, width;    /* input size; 0 = 28 (IDX), 32 (CIFAR), 224 (folders) */
    int epochs;           /* 5 */
    int batch;            /* 128 */
    const char *optimizer;/* "adamw" (default), "adam" or "sgd" */
    double lr;            /* peak of the one-cycle schedule; 0 = 3e-3 (Adam/AdamW), 0.1 (SGD) */
    double weight_decay;  /* < 0 = 0.01 AdamW, 0 Adam, 5e-4 SGD */
    uint64_t seed;        /* order and augmentation (the model is initialized by the caller) */
    long max_steps;       /* stop after this many steps (0 = no limit) */
    int workers;          /* loader threads; -1 = 0 for IDX/CIFAR, 1 for folders */
    const char *out_dir;  /* existing directory for checkpoints, log.csv and curves.png; NULL = none */
    rn_step_callback on_step;   /* may be NULL */
    rn_epoch_callback on_epoch; /* may be NULL */
    void *user;           /* passed to the callbacks */
} rn_train_options;

/* The class count and image channels (1 gray, 3 colour) of a dataset spec
** (see rn_train_options.data), to build a model that fits it. Reads the
** labels (and scans an image folder); errors name the file. */
rn_status rn_data_info(const char *data, int *classes, int *channels, rn_error *err);

/* Fills *o with the defaults above (data "fashion-mnist"). */
void rn_train_defaults(rn_train_options *o);

/* Trains m on o->data with `resnet train`'s recipe: the data kind's
** augmentation preset, normalization by the training set's statistics
** (ImageNet's for folders), one-cycle schedule, validation after every
** epoch. m's class count and input channels must match the data
** (RN_ERR_MISMATCH otherwise); its class names, input size and
** normalization are set so that rn_model_save writes a file that
** rn_classify_* and `resnet predict` use as trained. With the same seed
** and thread count, the weights equal those of `resnet train` with the
** same settings. Not thread-safe on m (nothing else may use m meanwhile). */
rn_status rn_train(rn_model *m, const rn_train_options *o, rn_error *err);

/* ---- optimizer -------------------------------------------------------- */

/* SGD with momentum, dampening 0, optional Nesterov and coupled weight
** decay, PyTorch's torch.optim.SGD update rule. */
typedef struct {
    float lr, momentum, weight_decay;
    int nesterov;
} rn_sgd_config;

typedef struct rn_sgd rn_sgd;
rn_status rn_sgd_create(size_t nparams, rn_sgd **out, rn_error *err);
void rn_sgd_free(rn_sgd *opt);
/* One update of params (n) with grads (n). */
void rn_sgd_step(rn_sgd *opt, const rn_sgd_config *cfg, float *params, const float *grads, size_t n);

#ifdef __cplusplus
}
#endif
#endif
