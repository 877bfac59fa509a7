/*
** ONNX export (see onnx.h), with a minimal protobuf writer.
**
** The protobuf wire format, all this file needs of it: a message is a
** sequence of fields, each a key then a value. The key is the varint
** (field_number << 3 | wire_type). Wire types used here:
**   0  varint: an integer in base-128 groups of 7 bits, least significant
**      first, the high bit of each byte set on all but the last byte
**      (int64 fields; negative values would take 10 bytes, none occur);
**   2  length-delimited: a varint byte count, then the bytes (strings,
**      bytes, and embedded messages, which are encoded the same way);
**   5  32-bit: four little-endian bytes (float fields).
** Fields may come in any order and repeated fields are simply repeated
** keys, so a message is built by appending. An embedded message needs its
** length first: small ones are built in their own buffer and appended;
** the large ones (initializers, the graph) get their length computed and
** their bulk written once, never copied through nested buffers.
**
** Field numbers are those of onnx.proto (ONNX 1.8+, IR version 7):
**   ModelProto: 1 ir_version, 2 producer_name, 3 producer_version,
**     7 graph, 8 opset_import, 14 metadata_props
**   OperatorSetIdProto: 1 domain, 2 version
**   StringStringEntryProto: 1 key, 2 value
**   GraphProto: 1 node, 2 name, 5 initializer, 11 input, 12 output
**   NodeProto: 1 input, 2 output, 3 name, 4 op_type, 5 attribute
**   AttributeProto: 1 name, 2 f, 3 i, 8 ints, 20 type (1 FLOAT, 2 INT, 7 INTS)
**   TensorProto: 1 dims, 2 data_type (1 FLOAT, 7 INT64), 8 name, 9 raw_data
**   ValueInfoProto: 1 name, 2 type; TypeProto: 1 tensor_type;
**   TypeProto.Tensor: 1 elem_type, 2 shape; TensorShapeProto: 1 dim;
**   Dimension: 1 dim_value, 2 dim_param
** raw_data is little-endian, as this host's memory (x86, ARM) is.
*/
#include "io/onnx.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "core/error.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONNX_IR_VERSION 7
#define ONNX_OPSET 13
enum { PB_VARINT = 0, PB_LEN = 2, PB_I32 = 5 };
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7 };

/* A growing byte buffer; oom records any failed allocation, so callers
** append freely and check once at the end. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} pb_buf;

/* ---- protobuf writer --------------------------------------------------- */

/* Appends n raw bytes. */
static void pb_raw(pb_buf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

/* Appends v as a varint (7 bits a byte, high bit = more follow). */
static void pb_varint(pb_buf *b, uint64_t v) {
    unsigned char t[10];
    size_t n = 0;
    do {
        t[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    pb_raw(b, t, n);
}

/* Bytes the varint of v takes. */
static size_t pb_varint_size(uint64_t v) {
    size_t n = 1;
    while (v >>= 7) n++;
    return n;
}

/* Appends a field key. */
static void pb_key(pb_buf *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

/* Appends an integer field (int32/int64/enum, non-negative here). */
static void pb_int(pb_buf *b, int field, int64_t v) {
    pb_key(b, field, PB_VARINT);
    pb_varint(b, (uint64_t)v);
}

/* Appends a length-delimited field holding n bytes. */
static void pb_bytes(pb_buf *b, int field, const void *data, size_t n) {
    pb_key(b, field, PB_LEN);
    pb_varint(b, n);
    pb_raw(b, data, n);
}

/* Appends a string field. */
static void pb_str(pb_buf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

/* Appends a float field (32-bit little-endian). */
static void pb_float(pb_buf *b, int field, float f) {
    pb_key(b, field, PB_I32);
    pb_raw(b, &f, 4);
}

/* Appends sub as an embedded message field and frees sub. */
static void pb_msg(pb_buf *b, int field, pb_buf *sub) {
    if (sub->oom) b->oom = 1;
    pb_bytes(b, field, sub->p, sub->n);
    free(sub->p);
    memset(sub, 0, sizeof *sub);
}

/* ---- ONNX messages ----------------------------------------------------- */

/* Appends an AttributeProto to a node's attribute list: of type INTS
** (the n values of v), INT (v[0]) or FLOAT (f). */
static void attr(pb_buf *attrs, const char *name, int type, const int64_t *v, int n, float f) {
    pb_buf a = {0};
    pb_str(&a, 1, name);
    if (type == ATTR_FLOAT) pb_float(&a, 2, f);
    else if (type == ATTR_INT) pb_int(&a, 3, v[0]);
    else
        for (int i = 0; i < n; i++) pb_int(&a, 8, v[i]);
    pb_int(&a, 20, type);
    pb_msg(attrs, 5, &a);
}

/* Appends the kernel_shape, strides and pads of a square window. */
static void attr_window(pb_buf *attrs, int k, int stride, int pad) {
    int64_t ks[2] = {k, k}, st[2] = {stride, stride}, pd[4] = {pad, pad, pad, pad};
    attr(attrs, "kernel_shape", ATTR_INTS, ks, 2, 0);
    attr(attrs, "strides", ATTR_INTS, st, 2, 0);
    attr(attrs, "pads", ATTR_INTS, pd, 4, 0);
}

/* Appends a NodeProto to the graph: op on inputs `in` (nin) writing `out`;
** attrs (may be NULL) holds encoded attribute fields and is freed. */
static void node(pb_buf *g, const char *op, const char *name, const char *const *in, int nin, const char *out,
                 pb_buf *attrs) {
    pb_buf nd = {0};
    for (int i = 0; i < nin; i++) pb_str(&nd, 1, in[i]);
    pb_str(&nd, 2, out);
    pb_str(&nd, 3, name);
    pb_str(&nd, 4, op);
    if (attrs) {
        if (attrs->oom) nd.oom = 1;
        pb_raw(&nd, attrs->p, attrs->n);
        free(attrs->p);
    }
    pb_msg(g, 1, &nd);
}

/* Appends a TensorProto initializer with raw little-endian data: the
** small fields go through a buffer, the data straight into the graph. */
static void initializer(pb_buf *g, const char *name, int dtype, const int64_t *dims, int nd, const void *data,
                        size_t nbytes) {
    pb_buf h = {0};
    for (int i = 0; i < nd; i++) pb_int(&h, 1, dims[i]);
    pb_int(&h, 2, dtype);
    pb_str(&h, 8, name);
    if (h.oom) g->oom = 1;
    pb_key(g, 5, PB_LEN);
    pb_varint(g, h.n + 1 + pb_varint_size(nbytes) + nbytes); /* key 9 takes one byte */
    pb_raw(g, h.p, h.n);
    pb_bytes(g, 9, data, nbytes);
    free(h.p);
}

/* Appends a float initializer of the given shape. */
static void init_f32(pb_buf *g, const char *name, const float *v, const int64_t *dims, int nd) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    initializer(g, name, ONNX_FLOAT, dims, nd, v, n * sizeof(float));
}

/* Appends a 1-D int64 initializer (Slice and Pad arguments). */
static void init_i64(pb_buf *g, const char *name, const int64_t *v, int n) {
    int64_t d = n;
    initializer(g, name, ONNX_INT64, &d, 1, v, (size_t)n * sizeof(int64_t));
}

/* Appends a graph input or output (field 11 or 12): a float tensor of
** dims, where a negative dim is the symbolic batch "N". */
static void value_info(pb_buf *g, int field, const char *name, const int64_t *dims, int nd) {
    pb_buf shape = {0}, tt = {0}, ty = {0}, vi = {0};
    for (int i = 0; i < nd; i++) {
        pb_buf d = {0};
        if (dims[i] < 0) pb_str(&d, 2, "N");
        else pb_int(&d, 1, dims[i]);
        pb_msg(&shape, 1, &d);
    }
    pb_int(&tt, 1, ONNX_FLOAT);
    pb_msg(&tt, 2, &shape);
    pb_msg(&ty, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &ty);
    pb_msg(g, field, &vi);
}

/* ---- the network ------------------------------------------------------- */

/* Export state: the model, the graph being written, per-layer flags. */
typedef struct {
    rn_model *m;
    pb_buf g;
    int *folded;   /* BN layers folded into their convolution */
    float *wbuf;   /* OIHW weights and bias of one convolution */
} exporter;

/* The tensor name of activation i: "input", "logits" or the layer name. */
static const char *act(const exporter *x, int i) {
    if (i < 0) return "input";
    return i == x->m->nlayers - 1 ? "logits" : x->m->layers[i].name;
}

/* The BN layer reading conv i when it is i's only reader, else -1. */
static int foldable_bn(const rn_model *m, int i) {
    int reader = -1, readers = 0;
    for (int j = 0; j < m->nlayers; j++)
        if (m->layers[j].src == i || m->layers[j].src2 == i) reader = j, readers++;
    return readers == 1 && m->layers[reader].kind == RN_L_BN ? reader : -1;
}

/* Emits conv i (with its BN folded in when it has one) as Conv with OIHW
** weights: W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps),
** in the arithmetic of the C inference's rn_bn_fold. */
static void emit_conv(exporter *x, int i) {
    const rn_model *m = x->m;
    const rn_layer *l = &m->layers[i];
    int bn = foldable_bn(m, i), O = l->c_out, I = l->c_in, K = l->k * l->k;
    const float *P = m->params, *hwio = P + l->w;
    float *w = x->wbuf, *b = x->wbuf + (size_t)O * I * K;
    for (int o = 0; o < O; o++) {
        float s = 1.0f, bias = l->bias ? P[l->b + o] : 0.0f;
        if (bn >= 0) {
            const rn_layer *n = &m->layers[bn];
            s = (float)(P[n->w + o] / sqrt((double)m->buffers[n->rvar + o] + m->spec.bn_eps));
            bias = (bias - m->buffers[n->rmean + o]) * s + P[n->b + o];
        }
        b[o] = bias;
        for (int c = 0; c < I; c++)
            for (int k = 0; k < K; k++) w[((size_t)o * I + c) * K + k] = hwio[((size_t)k * I + c) * O + o] * s;
    }
    char wn[96], bn_name[96];
    snprintf(wn, sizeof wn, "%s.weight", l->name);
    snprintf(bn_name, sizeof bn_name, "%s.bias", l->name);
    int64_t wd[4] = {O, I, l->k, l->k}, bd = O;
    init_f32(&x->g, wn, w, wd, 4);
    int has_bias = bn >= 0 || l->bias;
    if (has_bias) init_f32(&x->g, bn_name, b, &bd, 1);
    if (bn >= 0) x->folded[bn] = 1;
    pb_buf a = {0};
    attr_window(&a, l->k, l->stride, l->pad);
    const char *in[3] = {act(x, l->src), wn, bn_name};
    node(&x->g, "Conv", l->name, in, has_bias ? 3 : 2, act(x, bn >= 0 ? bn : i), &a);
}

/* Emits an unfolded BN layer as BatchNormalization with its four tensors. */
static void emit_bn(exporter *x, int i) {
    const rn_model *m = x->m;
    const rn_layer *l = &m->layers[i];
    static const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    const float *src[4] = {m->params + l->w, m->params + l->b, m->buffers + l->rmean, m->buffers + l->rvar};
    char names[4][96];
    const char *in[5] = {act(x, l->src), names[0], names[1], names[2], names[3]};
    int64_t c = l->c_out;
    for (int k = 0; k < 4; k++) {
        snprintf(names[k], sizeof names[k], "%s.%s", l->name, suffix[k]);
        init_f32(&x->g, names[k], src[k], &c, 1);
    }
    pb_buf a = {0};
    attr(&a, "epsilon", ATTR_FLOAT, NULL, 0, m->spec.bn_eps);
    node(&x->g, "BatchNormalization", l->name, in, 5, act(x, i), &a);
}

/* Emits the option-A shortcut: every stride-th row and column (Slice),
** then l->pad zero channels in front and the rest behind (Pad). */
static void emit_padskip(exporter *x, int i) {
    const rn_layer *l = &x->m->layers[i];
    char n[5][96];
    static const char *suffix[5] = {"starts", "ends", "axes", "steps", "pads"};
    for (int k = 0; k < 5; k++) snprintf(n[k], sizeof n[k], "%s.%s", l->name, suffix[k]);
    int64_t starts[2] = {0, 0}, ends[2] = {INT64_MAX, INT64_MAX}, axes[2] = {2, 3}, steps[2] = {l->stride, l->stride};
    int64_t pads[8] = {0, l->pad, 0, 0, 0, l->c_out - l->c_in - l->pad, 0, 0};
    init_i64(&x->g, n[0], starts, 2);
    init_i64(&x->g, n[1], ends, 2);
    init_i64(&x->g, n[2], axes, 2);
    init_i64(&x->g, n[3], steps, 2);
    init_i64(&x->g, n[4], pads, 8);
    char sliced[96], slice_node[96];
    snprintf(sliced, sizeof sliced, "%s.strided", l->name);
    snprintf(slice_node, sizeof slice_node, "%s.slice", l->name);
    const char *in[5] = {act(x, l->src), n[0], n[1], n[2], n[3]};
    node(&x->g, "Slice", slice_node, in, 5, sliced, NULL);
    const char *pin[2] = {sliced, n[4]};
    node(&x->g, "Pad", l->name, pin, 2, act(x, i), NULL);
}

/* Emits the classifier: Flatten (N,C,1,1) -> (N,C), then Gemm with fc's
** (K,C) weight transposed and its bias. */
static void emit_fc(exporter *x, int i) {
    const rn_model *m = x->m;
    const rn_layer *l = &m->layers[i];
    char flat[96], fnode[96];
    snprintf(flat, sizeof flat, "%s.flat", l->name);
    snprintf(fnode, sizeof fnode, "%s.flatten", l->name);
    int64_t wd[2] = {l->c_out, l->c_in}, bd = l->c_out;
    init_f32(&x->g, "fc.weight", m->params + l->w, wd, 2);
    init_f32(&x->g, "fc.bias", m->params + l->b, &bd, 1);
    pb_buf a = {0}, t = {0};
    int64_t one = 1;
    attr(&a, "axis", ATTR_INT, &one, 1, 0);
    const char *in[3] = {act(x, l->src), "fc.weight", "fc.bias"};
    node(&x->g, "Flatten", fnode, in, 1, flat, &a);
    attr(&t, "transB", ATTR_INT, &one, 1, 0);
    in[0] = flat;
    node(&x->g, "Gemm", l->name, in, 3, act(x, i), &t);
}

/* Emits layer i as its ONNX node(s). */
static void emit_layer(exporter *x, int i) {
    const rn_layer *l = &x->m->layers[i];
    const char *in[2] = {act(x, l->src), act(x, l->src2)};
    pb_buf a = {0};
    switch (l->kind) {
    case RN_L_CONV: emit_conv(x, i); break;
    case RN_L_BN:
        if (!x->folded[i]) emit_bn(x, i);
        break;
    case RN_L_RELU: node(&x->g, "Relu", l->name, in, 1, act(x, i), NULL); break;
    case RN_L_ADD: node(&x->g, "Add", l->name, in, 2, act(x, i), NULL); break;
    case RN_L_MAXPOOL:
        attr_window(&a, l->k, l->stride, l->pad);
        node(&x->g, "MaxPool", l->name, in, 1, act(x, i), &a);
        break;
    case RN_L_PADSKIP: emit_padskip(x, i); break;
    case RN_L_GAP: node(&x->g, "GlobalAveragePool", l->name, in, 1, act(x, i), NULL); break;
    case RN_L_FC: emit_fc(x, i); break;
    }
}

/* Floats of the largest convolution's weights plus bias. */
static size_t largest_conv(const rn_model *m) {
    size_t most = 1;
    for (int i = 0; i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        size_t n = (size_t)l->k * l->k * l->c_in * l->c_out + l->c_out;
        if (l->kind == RN_L_CONV && n > most) most = n;
    }
    return most;
}

/* Appends a metadata_props entry to the model head. */
static void meta_prop(pb_buf *h, const char *key, const char *value) {
    pb_buf e = {0};
    pb_str(&e, 1, key);
    pb_str(&e, 2, value);
    pb_msg(h, 14, &e);
}

/* Formats the first c floats of v as "a,b,c". */
static void join_floats(char *buf, size_t cap, const float *v, int c) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < c && len < cap; i++) len += (size_t)snprintf(buf + len, cap - len, "%s%.8g", i ? "," : "", v[i]);
}

/* The ModelProto fields before the graph: versions, opset, the model's
** preprocessing as metadata_props, and the graph's key and length (the
** graph's bytes follow as the next chunk of the file). */
static void model_head(const rn_model *m, pb_buf *h, size_t graph_bytes) {
    char mean[64], std[64], size[32];
    int c = m->spec.in_channels < 4 ? m->spec.in_channels : 3;
    pb_buf op = {0};
    pb_int(h, 1, ONNX_IR_VERSION);
    pb_str(h, 2, "resnet");
    pb_str(h, 3, rn_version());
    pb_int(&op, 2, ONNX_OPSET);
    pb_msg(h, 8, &op);
    join_floats(mean, sizeof mean, m->mean, c);
    join_floats(std, sizeof std, m->std, c);
    snprintf(size, sizeof size, "%dx%d", m->input_h, m->input_w);
    meta_prop(h, "arch", m->spec.arch);
    meta_prop(h, "mean", mean);
    meta_prop(h, "std", std);
    meta_prop(h, "input_size", size);
    pb_key(h, 7, PB_LEN);
    pb_varint(h, graph_bytes);
}

/* Writes the GraphProto of m into x->g: name, nodes and initializers in
** layer order, the input and the output. */
static void build_graph(exporter *x, int batch, int h, int w) {
    const rn_model *m = x->m;
    int64_t in[4] = {batch > 0 ? batch : -1, m->spec.in_channels, h, w}, out[2] = {in[0], m->spec.classes};
    pb_str(&x->g, 2, m->spec.arch);
    for (int i = 0; i < m->nlayers; i++) emit_layer(x, i);
    value_info(&x->g, 11, "input", in, 4);
    value_info(&x->g, 12, "logits", out, 2);
}

/* Builds the graph and the head and writes them as the file's two chunks. */
static rn_status write_model(rn_model *m, const char *path, int batch, int h, int w, rn_error *err) {
    exporter x = {m, {0}, calloc((size_t)m->nlayers, sizeof(int)), malloc(largest_conv(m) * sizeof(float))};
    pb_buf head = {0};
    rn_status st = RN_OK;
    if (x.folded && x.wbuf) build_graph(&x, batch, h, w);
    if (x.folded && x.wbuf && !x.g.oom) model_head(m, &head, x.g.n);
    if (!x.folded || !x.wbuf || x.g.oom || head.oom) {
        st = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory building the ONNX graph", path);
    } else if (head.n + x.g.n > (size_t)INT32_MAX) { /* protobuf messages end at 2 GiB */
        st = rn_fail(err, RN_ERR_ARG, "%s: %s takes %zu bytes as ONNX, over protobuf's 2 GiB limit", path,
                     m->spec.arch, head.n + x.g.n);
    } else {
        rn_chunk c[2] = {{head.p, head.n}, {x.g.p, x.g.n}};
        st = rn_write_atomic(path, c, 2, err);
    }
    free(head.p);
    free(x.g.p);
    free(x.folded);
    free(x.wbuf);
    return st;
}

/* Writes m as ONNX to path (see onnx.h), holding m's lock so no pass runs
** meanwhile; the layer shapes, which belong to m's plan, are put back. */
rn_status rn_onnx_export(rn_model *m, const char *path, int batch, int h, int w, rn_error *err) {
    rn_error e;
    if (h <= 0 || w <= 0) h = m->input_h, w = m->input_w;
    if (batch < 0) return rn_fail(err, RN_ERR_ARG, "%s: batch size %d is negative", path, batch);
    pthread_mutex_lock(&m->lock);
    rn_status st = rn_model_shapes(m, h, w, &e);
    if (st) rn_fail(err, st, "%s: %s", path, e.msg);
    else st = write_model(m, path, batch, h, w, err);
    if (m->arena) rn_model_shapes(m, m->plan_h, m->plan_w, NULL);
    pthread_mutex_unlock(&m->lock);
    return st;
}
