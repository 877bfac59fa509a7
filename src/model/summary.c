/*
** The per-layer table of `resnet summary` and the MAC count that
** benchmarks turn into GFLOP/s.
*/
#include "model/model.h"

#include <stdarg.h>
#include <stdio.h>

/* Multiply-accumulates of layer l for one sample (convs and fc only, as
** torchvision's published figures count them). */
static uint64_t layer_macs(const rn_layer *l) {
    if (l->kind == RN_L_CONV) return (uint64_t)l->h_out * l->w_out * l->c_out * l->c_in * l->k * l->k;
    if (l->kind == RN_L_FC) return (uint64_t)l->c_in * l->c_out;
    return 0;
}

/* Trainable parameters of layer l. */
static uint64_t layer_params(const rn_layer *l) {
    switch (l->kind) {
    case RN_L_CONV: return (uint64_t)l->k * l->k * l->c_in * l->c_out + (l->bias ? l->c_out : 0);
    case RN_L_BN: return 2 * (uint64_t)l->c_out;
    case RN_L_FC: return (uint64_t)l->c_in * l->c_out + l->c_out;
    default: return 0;
    }
}

/* Multiply-accumulates of one forward pass of one h x w image (0 if the
** input is too small for the network). */
uint64_t rn_model_macs(const rn_model *m, int h, int w) {
    if (rn_model_shapes((rn_model *)m, h, w, NULL)) return 0;
    uint64_t t = 0;
    for (int i = 0; i < m->nlayers; i++) t += layer_macs(&m->layers[i]);
    return t;
}

/* Appends formatted text to buf like snprintf, tracking the full length. */
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*len < cap ? buf + *len : NULL, *len < cap ? cap - *len : 0, fmt, ap);
    va_end(ap);
    if (k > 0) *len += (size_t)k;
}

/* Writes the summary table for an h x w input; returns the length needed. */
size_t rn_model_summary(const rn_model *m, int h, int w, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    if (rn_model_shapes((rn_model *)m, h, w, NULL)) {
        put(buf, cap, &len, "input %dx%d is too small for %s\n", h, w, m->spec.arch);
        return len;
    }
    uint64_t tp = 0, tm = 0;
    put(buf, cap, &len, "%-28s %-16s %12s %15s\n", "layer", "output (C,H,W)", "params", "MACs");
    put(buf, cap, &len, "%-28s %4d x %4d x %-4d %12s %15s\n", "input", m->spec.in_channels, h, w, "0", "0");
    for (int i = 0; i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        uint64_t p = layer_params(l), mac = layer_macs(l);
        tp += p, tm += mac;
        put(buf, cap, &len, "%-28s %4d x %4d x %-4d %12llu %15llu\n", l->name, l->c_out, l->h_out, l->w_out,
            (unsigned long long)p, (unsigned long long)mac);
    }
    put(buf, cap, &len, "params: %llu\nMACs: %llu\n", (unsigned long long)tp, (unsigned long long)tm);
    return len;
}
