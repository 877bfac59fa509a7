/*
** The inside of an rn_model.
**
** A ResNet is a fixed graph, so it needs no autograd: a model is an ordered
** list of layers of a few kinds, each reading one or two earlier layers'
** outputs (activation i is the output of layer i; -1 is the input image).
** A residual block is a run of such layers ending in an ADD that names the
** tensor it skips from. Every architecture is a different list.
**
** Storage follows llm.c's habit: all trainable parameters in one float
** buffer, their gradients in a second of the same length, BN running stats
** in a third, so the optimizer, the allreduce and the checkpoint are each
** one loop. `tensors` maps torchvision's state_dict names onto them.
*/
#ifndef RN_MODEL_H
#define RN_MODEL_H

#include <pthread.h>

#include "resnet.h"
#include "data/augment.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"

typedef enum { RN_L_CONV, RN_L_BN, RN_L_RELU, RN_L_MAXPOOL, RN_L_ADD, RN_L_PADSKIP, RN_L_GAP, RN_L_FC } rn_layer_kind;

typedef struct {
    rn_layer_kind kind;
    char name[64];      /* state_dict prefix ("layer1.0.conv1") or a display name */
    int src, src2;      /* activations read (-1 = input image); src2 only for ADD */
    int c_in, c_out;    /* channels in and out */
    int k, stride, pad; /* CONV, MAXPOOL; PADSKIP uses stride and pad = channels in front */
    int bias;           /* CONV: has a bias */
    int zero_init;      /* BN: last BN of a residual branch (zero_init_residual) */
    size_t w, b;        /* offsets in params: CONV/FC weight and bias, BN gamma and beta */
    size_t rmean, rvar; /* BN: offsets in buffers */
    size_t stat;        /* BN: offset in the saved batch mean / invstd arrays */
    int bn;             /* BN: index into num_batches_tracked */
    /* set by planning for an input size: */
    int h_in, w_in, h_out, w_out;
    /* how the layer runs in the planned arena (rn_model_plan, run.c): */
    int fuse_relu;      /* BN, ADD: also applies the ReLU reading it, in the same pass */
    int fuse_add;       /* BN in a training plan: the ADD reading it alone, whose sum (and ReLU) it
                           computes in its apply pass (that ADD's forward is skipped); else -1 */
    int bf16_grad;      /* CONV in a training plan: its output's gradient is kept in bf16 (written by
                           the BN after it, read by this conv's backward alone: RN_BF16_GRAD) */
    int bf16_act;       /* CONV in a bf16 training plan: its output is kept in bf16 (written by its
                           forward, read by the BN after it alone: RN_BF16_ACT) */
    int bf16_x;         /* BN (and the ReLU fused into it) in a bf16 training plan: its output is kept in
                           bf16, read only by convolutions that would round it anyway (RN_BF16_X) */
    int bf16_dy;        /* BN (and the ReLU fused into it) in a bf16 training plan: its output's gradient
                           is kept in bf16, written by the one convolution reading it (RN_BF16_DX) */
    int skip;           /* RN_SKIP_FWD: its forward is done by a neighbour; RN_SKIP_BWD: its backward too */
    int fold;           /* CONV in an eval plan: index of the BN folded into it, else -1 */
    unsigned char gmode[2]; /* backward: what it does to the gradient of src, src2 (RN_G_*) */
} rn_layer;

/* Flags of rn_layer.skip. */
#define RN_SKIP_FWD 1
#define RN_SKIP_BWD 2
/* What a layer's backward does to the gradient of one of its inputs:
** add into it, zero it first, overwrite it, or nothing (it shares the
** memory of the layer's own output gradient, which already holds it). */
enum { RN_G_ACC = 0, RN_G_ZERO, RN_G_SET, RN_G_ALIAS };

/* What data-parallel training (src/dist) adds to a training step:
** layer_done runs after each layer's backward (its parameter gradients are
** then final, so their bucket may be sent), and bn, when bn.sum is set,
** makes training-mode batchnorm use every rank's batch. */
typedef struct {
    void (*layer_done)(void *ctx, int layer);
    void *ctx;
    rn_bn_sync bn;
} rn_model_hooks;

/* Where a state_dict tensor lives. */
typedef enum { RN_T_PARAM, RN_T_BUFFER, RN_T_COUNT } rn_tensor_home;

typedef struct {
    char name[80];
    rn_tensor_home home;
    size_t off;          /* offset in params or buffers; index in nbt for RN_T_COUNT */
    int ndim;
    int64_t shape[4];    /* PyTorch's shape (OIHW for convolution weights) */
    int hwio;            /* stored internally as HWIO: transpose at load and save */
} rn_tensor_entry;

struct rn_model {
    rn_spec spec;
    rn_layer *layers;
    int nlayers, cap_layers;
    rn_tensor_entry *tensors;
    int ntensors, cap_tensors;
    size_t nparams, nbuffers, nstats;
    int nbn;
    float *params, *grads, *buffers;
    int64_t *nbt;        /* num_batches_tracked per BN */
    /* metadata carried in model files */
    char **class_names;  /* classes entries or NULL */
    float mean[4], std[4];
    int input_h, input_w;
    int eval_resize;     /* shorter side before the center crop at inference (0: resize to input) */
    rn_precision prec;       /* arithmetic of the convolutions (rn_model_set_precision) */
    /* the plan: activation memory for one input shape. Layers whose
    ** lifetimes do not overlap share memory, and in-place layers share
    ** their input's, so act/dact pointers of different layers may be equal. */
    int plan_n, plan_h, plan_w, plan_train;
    float **act, **dact; /* per layer output and its gradient (NULL: none) */
    unsigned char **pick; /* per layer: a max pool's picks in training plans (NULL: none) */
    float *arena;        /* one allocation behind act, dact, stats and workspace */
    size_t arena_floats, tensor_floats; /* the whole arena; its activations and gradients */
    float *bn_mean, *bn_invstd, *ws, *fold_w; /* fold_w: folded conv weights and bias (eval plans) */
    float *bn_dmu, *bn_scale; /* per BN channel: a fused ReLU's forward arithmetic (rn_bn_relu_mask) */
    /* bf16 inference on an eval plan: each bf16 convolution's weights (BN
    ** folded) packed once, with their bias, at prep + prep_off[layer]; valid
    ** while prep_ok, which whatever may change the weights, the BN
    ** statistics or the plan clears (rn_model_touch). */
    float *prep;
    size_t *prep_off;
    int prep_ok;
    const float *input;  /* the image batch of the current step */
    const rn_model_hooks *hooks; /* data-parallel training, else NULL (not owned) */
    pthread_mutex_t lock; /* held by rn_model_forward and rn_model_train_step: one pass at a time */
};

/* Computes every layer's spatial size for an h x w input; fails with a
** message naming the first layer whose output would be empty. */
rn_status rn_model_shapes(rn_model *m, int h, int w, rn_error *err);
/* Makes sure activation memory is planned for (n, h, w); train adds gradients. */
rn_status rn_model_plan(rn_model *m, int n, int h, int w, int train, rn_error *err);
/* Bytes of the arena rn_model_plan would allocate for (n, h, w, train),
** computed without allocating it; the next forward plans again. */
rn_status rn_model_plan_size(rn_model *m, int n, int h, int w, int train, size_t *bytes, rn_error *err);
/* Backward pass from dlogits: (N,K) through every layer into grads. */
void rn_model_backward(rn_model *m, const float *dlogits);
/* Loads a pretrained body for fine-tuning: a head with another class count
** is kept as initialized (*new_head = 1); metadata is not taken. */
rn_status rn_model_load_pretrained(rn_model *m, const char *path, int *new_head, rn_error *err);
/* Writes m to path like rn_model_save, with up to RN_MODEL_EXTRA_META
** more metadata pairs. */
#define RN_MODEL_EXTRA_META 2
rn_status rn_model_save_meta(const rn_model *m, const char *path, const rn_st_meta *extra, int nextra,
                             rn_error *err);
/* Bytes of the current plan's arena: activations, gradients, BN batch
** statistics and workspace (0 before any forward). */
size_t rn_model_plan_bytes(const rn_model *m);
/* Marks the weights as changed: bf16 inference packs them again. */
static inline void rn_model_touch(rn_model *m) { m->prep_ok = 0; }
/* The evaluation transform a model carries: input size, channels (1 or 3),
** evaluation resize and mean/std (classify.c). */
void rn_model_eval_augment(const rn_model *m, rn_augment *aug);
/* Decodes an image file at the smallest scale m's preprocessing allows. */
rn_status rn_model_decode_file(const rn_model *m, const char *path, rn_image *im, rn_error *err);
/* Classifies a decoded image: m's preprocessing, forward, softmax into
** probs (classes floats). Thread-safe on one model. */
rn_status rn_classify_image(rn_model *m, const rn_image *im, float *probs, rn_error *err);
/* Elements of layer i's output for one sample. */
size_t rn_layer_size(const rn_layer *l);

#endif
