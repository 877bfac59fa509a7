/*
** resnet: ResNet training and inference in C, on the CPU.
**
** One public header. Every function that can fail returns an rn_status
** (RN_OK is 0) and, when given a non-NULL rn_error, fills it with a message
** that names the file, tensor or argument and what was expected. The library
** never prints, never exits and never aborts on bad input.
**
** Thread safety: distinct rn_model objects may be used from distinct
** threads; one rn_model is not safe to use from two threads at once.
*/
#ifndef RESNET_H
#define RESNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RN_VERSION "0.1.0"

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

/* Returns the library version string, RN_VERSION. */
const char *rn_version(void);

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
** model files are fp32 either way. */
typedef enum { RN_PREC_FP32 = 0, RN_PREC_BF16 = 1 } rn_precision;

/* Sets m's convolution arithmetic (fp32 at creation). RN_PREC_BF16 fails
** with RN_ERR_UNSUPPORTED and a message on a CPU without AVX512_BF16. */
rn_status rn_model_set_precision(rn_model *m, rn_precision prec, rn_error *err);
/* Parses "fp32" (or "float32") and "bf16" (or "bfloat16"); -1 otherwise. */
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
