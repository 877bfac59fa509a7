/*
** rn_spec -> the layer list and the state_dict tensor table.
**
** Layers and tensors are added in torchvision's module order, so a model
** file written here lists its tensors the way torch.save would.
*/
#include "model/model.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Build state: the model under construction and the first failure. */
typedef struct {
    rn_model *m;
    rn_status st;
} builder;

/* Grows an array of `size`-byte items to hold one more; 0 on failure. */
static int grow(void **arr, int *cap, int n, size_t size) {
    if (n < *cap) return 1;
    int nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, (size_t)nc * size);
    if (!p) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

/* Channels of activation x (-1 is the input image). */
static int channels(const rn_model *m, int x) { return x < 0 ? m->spec.in_channels : m->layers[x].c_out; }

/* Appends a layer reading `src` and returns its index (its activation id),
** or -1 once anything has failed. */
static int add_layer(builder *b, rn_layer_kind kind, const char *name, int src, int c_out) {
    rn_model *m = b->m;
    if (b->st) return -1;
    if (!grow((void **)&m->layers, &m->cap_layers, m->nlayers, sizeof(rn_layer))) {
        b->st = RN_ERR_NOMEM;
        return -1;
    }
    rn_layer *l = &m->layers[m->nlayers];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->src = src;
    l->src2 = -1;
    l->c_in = channels(m, src);
    l->c_out = c_out;
    return m->nlayers++;
}

/* Registers state_dict tensor `prefix.suffix` stored at off. */
static void add_tensor(builder *b, const char *prefix, const char *suffix, rn_tensor_home home, size_t off,
                       int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int hwio) {
    rn_model *m = b->m;
    if (b->st) return;
    if (!grow((void **)&m->tensors, &m->cap_tensors, m->ntensors, sizeof(rn_tensor_entry))) {
        b->st = RN_ERR_NOMEM;
        return;
    }
    rn_tensor_entry *t = &m->tensors[m->ntensors++];
    snprintf(t->name, sizeof t->name, "%s.%s", prefix, suffix);
    t->home = home;
    t->off = off;
    t->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    memcpy(t->shape, d, sizeof d);
    t->hwio = hwio;
}

/* Adds a convolution (weights OIHW in files, HWIO inside). */
static int conv(builder *b, const char *name, int src, int c_out, int k, int stride, int pad, int bias) {
    int i = add_layer(b, RN_L_CONV, name, src, c_out);
    if (i < 0) return i;
    rn_model *m = b->m;
    rn_layer *l = &m->layers[i];
    l->k = k, l->stride = stride, l->pad = pad, l->bias = bias;
    l->w = m->nparams;
    m->nparams += (size_t)k * k * l->c_in * c_out;
    add_tensor(b, name, "weight", RN_T_PARAM, l->w, 4, c_out, l->c_in, k, k, 1);
    if (bias) {
        l->b = m->nparams;
        m->nparams += c_out;
        add_tensor(b, name, "bias", RN_T_PARAM, l->b, 1, c_out, 0, 0, 0, 0);
    }
    return i;
}

/* Adds a batchnorm over src's channels with its five state_dict tensors. */
static int bnorm(builder *b, const char *name, int src, int zero_init) {
    rn_model *m = b->m;
    if (b->st) return -1;
    int c = channels(m, src);
    int i = add_layer(b, RN_L_BN, name, src, c);
    if (i < 0) return i;
    rn_layer *l = &m->layers[i];
    l->zero_init = zero_init;
    l->w = m->nparams, l->b = m->nparams + c;
    m->nparams += 2 * (size_t)c;
    l->rmean = m->nbuffers, l->rvar = m->nbuffers + c;
    m->nbuffers += 2 * (size_t)c;
    l->stat = m->nstats;
    m->nstats += c;
    l->bn = m->nbn++;
    add_tensor(b, name, "weight", RN_T_PARAM, l->w, 1, c, 0, 0, 0, 0);
    add_tensor(b, name, "bias", RN_T_PARAM, l->b, 1, c, 0, 0, 0, 0);
    add_tensor(b, name, "running_mean", RN_T_BUFFER, l->rmean, 1, c, 0, 0, 0, 0);
    add_tensor(b, name, "running_var", RN_T_BUFFER, l->rvar, 1, c, 0, 0, 0, 0);
    add_tensor(b, name, "num_batches_tracked", RN_T_COUNT, (size_t)l->bn, 0, 0, 0, 0, 0, 0);
    return i;
}

/* Adds a layer with no parameters whose output has src's channels. */
static int plain(builder *b, rn_layer_kind kind, const char *name, int src) {
    if (b->st) return -1;
    int c = channels(b->m, src);
    return add_layer(b, kind, name, src, c);
}

/* Adds y = a + b. */
static int add2(builder *b, const char *name, int a, int c) {
    int i = plain(b, RN_L_ADD, name, a);
    if (i >= 0) b->m->layers[i].src2 = c;
    return i;
}

/* Adds "conv, then BN" and returns the BN layer. */
static int conv_bn(builder *b, const char *prefix, const char *cname, const char *bname, int src, int c_out,
                   int k, int stride, int zero_init) {
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "%s.%s", prefix, cname);
    snprintf(n2, sizeof n2, "%s.%s", prefix, bname);
    return bnorm(b, n2, conv(b, n1, src, c_out, k, stride, k / 2, 0), zero_init);
}

/* Adds the shortcut of a post-activation block: identity, a 1x1 projection
** with BN (option B), or strided identity with zero channels (option A). */
static int shortcut(builder *b, const char *prefix, int x, int c_out, int stride) {
    rn_model *m = b->m;
    if (b->st) return -1;
    int c_in = channels(m, x);
    if (stride == 1 && c_in == c_out) return x;
    if (m->spec.shortcut == 'A' && c_out >= c_in) {
        char name[64];
        snprintf(name, sizeof name, "%s.shortcut", prefix);
        int i = add_layer(b, RN_L_PADSKIP, name, x, c_out);
        if (i >= 0) m->layers[i].stride = stride, m->layers[i].pad = (c_out - c_in) / 2;
        return i;
    }
    return conv_bn(b, prefix, "downsample.0", "downsample.1", x, c_out, 1, stride, 0);
}

/* Post-activation basic or bottleneck block; returns the block output. */
static int block_post(builder *b, const char *p, int x, int planes, int stride) {
    const rn_spec *s = &b->m->spec;
    char name[64];
    int y, out;
    if (s->block == RN_BLOCK_BASIC) {
        out = planes;
        y = conv_bn(b, p, "conv1", "bn1", x, planes, 3, stride, 0);
        snprintf(name, sizeof name, "%s.relu1", p);
        y = plain(b, RN_L_RELU, name, y);
        y = conv_bn(b, p, "conv2", "bn2", y, planes, 3, 1, 1);
    } else {
        int s1 = s->stride_on_1x1 ? stride : 1, s3 = s->stride_on_1x1 ? 1 : stride;
        out = planes * 4;
        y = conv_bn(b, p, "conv1", "bn1", x, planes, 1, s1, 0);
        snprintf(name, sizeof name, "%s.relu1", p);
        y = plain(b, RN_L_RELU, name, y);
        y = conv_bn(b, p, "conv2", "bn2", y, planes, 3, s3, 0);
        snprintf(name, sizeof name, "%s.relu2", p);
        y = plain(b, RN_L_RELU, name, y);
        y = conv_bn(b, p, "conv3", "bn3", y, out, 1, 1, 1);
    }
    int sc = shortcut(b, p, x, out, stride);
    snprintf(name, sizeof name, "%s.add", p);
    y = add2(b, name, y, sc);
    snprintf(name, sizeof name, "%s.relu", p);
    return plain(b, RN_L_RELU, name, y);
}

/* Adds "BN, ReLU" before a pre-activation conv; returns the ReLU. */
static int bn_relu(builder *b, const char *p, const char *bname, int x) {
    char n1[64], n2[64];
    snprintf(n1, sizeof n1, "%s.%s", p, bname);
    snprintf(n2, sizeof n2, "%s.%s_relu", p, bname);
    return plain(b, RN_L_RELU, n2, bnorm(b, n1, x, 0));
}

/* Adds a bias-free conv named prefix.cname. */
static int conv_named(builder *b, const char *p, const char *cname, int x, int c_out, int k, int stride) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", p, cname);
    return conv(b, name, x, c_out, k, stride, k / 2, 0);
}

/* Full pre-activation block (He et al. 2016): BN-ReLU-conv. `preact` 0 is
** the paper's first unit, whose input is already activated by the stem.
** A projection shortcut reads the activated input, an identity the raw one. */
static int block_pre(builder *b, const char *p, int x, int planes, int stride, int preact) {
    const rn_spec *s = &b->m->spec;
    char name[64];
    int bottleneck = s->block == RN_BLOCK_PREACT_BOTTLENECK;
    int out = bottleneck ? planes * 4 : planes;
    int a = preact ? bn_relu(b, p, "bn1", x) : x;
    int y;
    if (!bottleneck) {
        y = conv_named(b, p, "conv1", a, planes, 3, stride);
        y = conv_named(b, p, "conv2", bn_relu(b, p, "bn2", y), planes, 3, 1);
    } else {
        int s1 = s->stride_on_1x1 ? stride : 1, s3 = s->stride_on_1x1 ? 1 : stride;
        y = conv_named(b, p, "conv1", a, planes, 1, s1);
        y = conv_named(b, p, "conv2", bn_relu(b, p, "bn2", y), planes, 3, s3);
        y = conv_named(b, p, "conv3", bn_relu(b, p, "bn3", y), out, 1, 1);
    }
    int c_in = b->st ? 0 : channels(b->m, x);
    int sc = x;
    if (stride != 1 || c_in != out) sc = conv_named(b, p, "downsample.0", a, out, 1, stride);
    snprintf(name, sizeof name, "%s.add", p);
    return add2(b, name, y, sc);
}

/* Adds the stem: conv1, bn1, relu (and the max pool on ImageNet). */
static int stem(builder *b) {
    const rn_spec *s = &b->m->spec;
    int x;
    if (s->stem == RN_STEM_IMAGENET) {
        x = bnorm(b, "bn1", conv(b, "conv1", -1, s->widths[0], 7, 2, 3, 0), 0);
        x = plain(b, RN_L_RELU, "relu", x);
        x = plain(b, RN_L_MAXPOOL, "maxpool", x);
        if (x >= 0) b->m->layers[x].k = 3, b->m->layers[x].stride = 2, b->m->layers[x].pad = 1;
        return x;
    }
    x = bnorm(b, "bn1", conv(b, "conv1", -1, s->widths[0], 3, 1, 1, 0), 0);
    return plain(b, RN_L_RELU, "relu", x);
}

/* Adds every stage, the pooling and the classifier. */
static void build(builder *b) {
    const rn_spec *s = &b->m->spec;
    int preact = s->block == RN_BLOCK_PREACT_BASIC || s->block == RN_BLOCK_PREACT_BOTTLENECK;
    int x = stem(b);
    for (int st = 0; st < s->nstages; st++)
        for (int i = 0; i < s->blocks[st]; i++) {
            char p[32];
            int stride = (i == 0 && st > 0) ? 2 : 1;
            snprintf(p, sizeof p, "layer%d.%d", st + 1, i);
            x = preact ? block_pre(b, p, x, s->widths[st], stride, !(st == 0 && i == 0))
                       : block_post(b, p, x, s->widths[st], stride);
        }
    if (preact) x = plain(b, RN_L_RELU, "bn_final_relu", bnorm(b, "bn_final", x, 0));
    x = plain(b, RN_L_GAP, "avgpool", x);
    int fc = add_layer(b, RN_L_FC, "fc", x, s->classes);
    if (fc < 0) return;
    rn_layer *l = &b->m->layers[fc];
    l->w = b->m->nparams;
    l->b = l->w + (size_t)s->classes * l->c_in;
    b->m->nparams = l->b + s->classes;
    add_tensor(b, "fc", "weight", RN_T_PARAM, l->w, 2, s->classes, l->c_in, 0, 0, 0);
    add_tensor(b, "fc", "bias", RN_T_PARAM, l->b, 1, s->classes, 0, 0, 0, 0);
}

/* Checks the ranges of a spec before anything is built from it. */
static rn_status check_spec(const rn_spec *s, rn_error *err) {
    if (s->classes < 1 || s->classes > 1000000)
        return rn_fail(err, RN_ERR_ARG, "classes must be in [1, 1000000], got %d", s->classes);
    if (s->in_channels < 1 || s->in_channels > 4096)
        return rn_fail(err, RN_ERR_ARG, "input channels must be in [1, 4096], got %d", s->in_channels);
    if (s->nstages < 1 || s->nstages > RN_MAX_STAGES)
        return rn_fail(err, RN_ERR_ARG, "stages must be in [1, %d], got %d", RN_MAX_STAGES, s->nstages);
    if (s->shortcut != 'A' && s->shortcut != 'B')
        return rn_fail(err, RN_ERR_ARG, "shortcut must be A or B, got '%c'", s->shortcut);
    if (!(s->bn_eps > 0) || !(s->bn_momentum >= 0 && s->bn_momentum <= 1))
        return rn_fail(err, RN_ERR_ARG, "BN eps must be > 0 and momentum in [0, 1]");
    for (int i = 0; i < s->nstages; i++)
        if (s->blocks[i] < 1 || s->widths[i] < 1)
            return rn_fail(err, RN_ERR_ARG, "stage %d: blocks and widths must be positive", i + 1);
    return RN_OK;
}

/* Builds a model with zeroed parameters and its buffers allocated. */
rn_status rn_model_create(const rn_spec *spec, rn_model **out, rn_error *err) {
    rn_status st = check_spec(spec, err);
    if (st) return st;
    rn_model *m = calloc(1, sizeof *m);
    if (!m) return rn_fail(err, RN_ERR_NOMEM, "out of memory creating the model");
    m->spec = *spec;
    if (pthread_mutex_init(&m->lock, NULL)) {
        free(m);
        return rn_fail(err, RN_ERR_NOMEM, "cannot create the lock of %s", spec->arch);
    }
    float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int i = 0; i < 3; i++) m->mean[i] = mean[i], m->std[i] = std[i];
    m->input_h = m->input_w = spec->stem == RN_STEM_CIFAR ? 32 : 224;
    builder b = {m, RN_OK};
    build(&b);
    if (!b.st) {
        m->params = calloc(m->nparams, sizeof(float));
        m->grads = calloc(m->nparams, sizeof(float));
        m->buffers = calloc(m->nbuffers ? m->nbuffers : 1, sizeof(float));
        m->nbt = calloc(m->nbn ? (size_t)m->nbn : 1, sizeof(int64_t));
        if (!m->params || !m->grads || !m->buffers || !m->nbt) b.st = RN_ERR_NOMEM;
    }
    if (b.st) {
        rn_model_free(m);
        return rn_fail(err, b.st, "out of memory creating %s", spec->arch);
    }
    *out = m;
    return RN_OK;
}

/* Frees a model and everything it owns. */
void rn_model_free(rn_model *m) {
    if (!m) return;
    if (m->class_names) {
        for (int i = 0; i < m->spec.classes; i++) free(m->class_names[i]);
        free(m->class_names);
    }
    free(m->layers);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->buffers);
    free(m->nbt);
    free(m->act);
    free(m->pick);
    free(m->arena);
    free(m->prep);
    free(m->prep_off);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Accessors for the public API. */
const rn_spec *rn_model_spec(const rn_model *m) { return &m->spec; }
size_t rn_model_param_count(const rn_model *m) { return m->nparams; }
float *rn_model_params(rn_model *m) {
    rn_model_touch(m); /* the caller may write through the pointer */
    return m->params;
}
float *rn_model_grads(rn_model *m) { return m->grads; }
