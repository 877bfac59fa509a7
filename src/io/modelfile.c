/*
** Model files: rn_model <-> safetensors with torchvision's state_dict names
** and layouts, so `torchvision.models.resnet50(num_classes=K)` loads a file
** written here with load_state_dict(strict=True), and the reverse.
**
** Convolution weights are OIHW in files and HWIO inside; the transpose
** happens here, once. __metadata__ carries the architecture, so a file is
** self-describing; a file without it (a converted torchvision checkpoint)
** has its architecture inferred from the tensor names and shapes.
*/
#include "io/safetensors.h"
#include "model/model.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies an OIHW tensor into HWIO storage (to_file 0) or back (to_file 1).
** dims: O, I, K, K. Elements are copied with memcpy: a file's tensor data
** need not be 4-byte aligned (its offset is whatever the header says). */
static void transpose_oihw(const int64_t *d, const void *src, void *dst, int to_file) {
    size_t O = (size_t)d[0], I = (size_t)d[1], K = (size_t)d[2] * (size_t)d[3];
    const char *s = src;
    char *t = dst;
    for (size_t o = 0; o < O; o++)
        for (size_t i = 0; i < I; i++)
            for (size_t k = 0; k < K; k++) {
                size_t oihw = (o * I + i) * K + k, hwio = (k * I + i) * O + o;
                size_t from = to_file ? hwio : oihw, to = to_file ? oihw : hwio;
                memcpy(t + to * sizeof(float), s + from * sizeof(float), sizeof(float));
            }
}

/* Formats a shape as "[64, 3, 7, 7]". */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

/* Where entry t's data lives in the model (float or int64). */
static void *entry_data(const rn_model *m, const rn_tensor_entry *t) {
    switch (t->home) {
    case RN_T_PARAM: return m->params + t->off;
    case RN_T_BUFFER: return m->buffers + t->off;
    default: return m->nbt + t->off;
    }
}

/* Checks one file tensor against the model's entry: dtype and shape. */
static rn_status check_tensor(const char *path, const rn_tensor_entry *t, const rn_st_tensor *f, rn_error *err) {
    char a[96], b[96];
    rn_dtype want = t->home == RN_T_COUNT ? RN_DT_I64 : RN_DT_F32;
    int same = f->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = f->shape[i] == t->shape[i];
    if (!same)
        return rn_fail(err, RN_ERR_MISMATCH, "%s: tensor %s has shape %s, expected %s", path, t->name,
                       shape_str(a, sizeof a, f->ndim, f->shape), shape_str(b, sizeof b, t->ndim, t->shape));
    if (f->dtype != want)
        return rn_fail(err, RN_ERR_MISMATCH, "%s: tensor %s has dtype %s, expected %s", path, t->name,
                       rn_dtype_name(f->dtype), rn_dtype_name(want));
    return RN_OK;
}

/* Parses "a,b,c" floats into out (at most n); returns how many. */
static int parse_floats(const char *s, float *out, int n) {
    int k = 0;
    while (s && *s && k < n) {
        char *end;
        out[k++] = strtof(s, &end);
        if (end == s) return 0;
        s = *end == ',' ? end + 1 : end;
    }
    return k;
}

/* Reads the optional metadata that is not architecture: normalization,
** preferred input size and class names. Malformed values are errors. */
static rn_status load_extras(rn_model *m, const rn_st_file *f, const char *path, rn_error *err) {
    const char *mean = rn_st_meta_get(f, "mean"), *std = rn_st_meta_get(f, "std");
    const char *size = rn_st_meta_get(f, "input_size"), *names = rn_st_meta_get(f, "class_names");
    float mv[4], sv[4];
    int nm = parse_floats(mean, mv, 4), ns = parse_floats(std, sv, 4);
    if (mean && std && (nm != ns || nm < 1))
        return rn_fail(err, RN_ERR_FORMAT, "%s: metadata mean '%s' / std '%s' are not matching float lists", path, mean, std);
    for (int i = 0; mean && std && i < nm; i++) m->mean[i] = mv[i], m->std[i] = sv[i];
    if (size && sscanf(size, "%dx%d", &m->input_h, &m->input_w) != 2)
        return rn_fail(err, RN_ERR_FORMAT, "%s: metadata input_size '%s' is not HxW", path, size);
    const char *resize = rn_st_meta_get(f, "resize");
    if (resize && (sscanf(resize, "%d", &m->eval_resize) != 1 || m->eval_resize < 0))
        return rn_fail(err, RN_ERR_FORMAT, "%s: metadata resize '%s' is not a non-negative integer", path, resize);
    if (!names) return RN_OK;
    cJSON *arr = cJSON_Parse(names);
    int k = m->spec.classes, ok = cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == k;
    char **cn = ok ? calloc((size_t)k, sizeof(char *)) : NULL;
    for (int i = 0; cn && i < k; i++) {
        cJSON *it = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsString(it) || !(cn[i] = strdup(it->valuestring))) ok = 0;
    }
    cJSON_Delete(arr);
    if (!ok || !cn) {
        for (int i = 0; cn && i < k; i++) free(cn[i]);
        free(cn);
        return rn_fail(err, RN_ERR_FORMAT, "%s: metadata class_names is not a JSON array of %d strings", path, k);
    }
    if (m->class_names) {
        for (int i = 0; i < k; i++) free(m->class_names[i]);
        free(m->class_names);
    }
    m->class_names = cn;
    return RN_OK;
}

/* Is tensor t the classifier head ("fc.weight", "fc.bias")? */
static int is_head(const char *name) { return !strncmp(name, "fc.", 3); }

/* Loads every tensor of an already-read file into m, refusing missing,
** unknown, mis-shaped and mis-typed tensors. With `pretrained`, a head of
** another class count is skipped (m keeps its own, freshly initialized),
** missing num_batches_tracked counters are allowed (timm omits them), and
** the file's class names and preprocessing are not taken; *new_head tells
** whether the head was skipped. */
static rn_status load_file(rn_model *m, const rn_st_file *f, const char *path, int pretrained, int *new_head,
                           rn_error *err) {
    int skip_head = 0;
    rn_model_touch(m);
    for (int i = 0; i < f->ntensors; i++) {
        int known = 0;
        for (int j = 0; j < m->ntensors && !known; j++) known = !strcmp(f->tensors[i].name, m->tensors[j].name);
        char b[96];
        if (!known)
            return rn_fail(err, RN_ERR_MISMATCH, "%s: unexpected tensor %s of shape %s (not part of %s)", path,
                           f->tensors[i].name, shape_str(b, sizeof b, f->tensors[i].ndim, f->tensors[i].shape),
                           m->spec.arch);
    }
    for (int j = 0; pretrained && j < m->ntensors; j++) {
        const rn_st_tensor *ft = rn_st_find(f, m->tensors[j].name);
        if (is_head(m->tensors[j].name) && ft && ft->ndim >= 1 && ft->shape[0] != m->tensors[j].shape[0]) skip_head = 1;
    }
    for (int j = 0; j < m->ntensors; j++) {
        const rn_tensor_entry *t = &m->tensors[j];
        const rn_st_tensor *ft = rn_st_find(f, t->name);
        char b[96];
        if ((skip_head && is_head(t->name)) || (pretrained && !ft && t->home == RN_T_COUNT)) continue;
        if (!ft)
            return rn_fail(err, RN_ERR_MISMATCH, "%s: missing tensor %s, expected shape %s", path, t->name,
                           shape_str(b, sizeof b, t->ndim, t->shape));
        rn_status st = check_tensor(path, t, ft, err);
        if (st) return st;
    }
    for (int j = 0; j < m->ntensors; j++) {
        const rn_tensor_entry *t = &m->tensors[j];
        const rn_st_tensor *ft = rn_st_find(f, t->name);
        if (!ft || (skip_head && is_head(t->name))) continue;
        if (t->hwio) transpose_oihw(t->shape, ft->data, entry_data(m, t), 0);
        else memcpy(entry_data(m, t), ft->data, ft->nbytes);
    }
    if (new_head) *new_head = skip_head;
    return pretrained ? RN_OK : load_extras(m, f, path, err);
}

/* Loads parameters and buffers from a safetensors file into m. */
rn_status rn_model_load(rn_model *m, const char *path, rn_error *err) {
    rn_st_file f;
    rn_status st = rn_st_read(path, &f, err);
    if (st) return st;
    st = load_file(m, &f, path, 0, NULL, err);
    rn_st_free(&f);
    return st;
}

/* Loads a pretrained body (torchvision, timm or our own file) into m for
** fine-tuning: as rn_model_load, but a classifier head with another class
** count is left as m has it (*new_head = 1) and metadata is ignored. */
rn_status rn_model_load_pretrained(rn_model *m, const char *path, int *new_head, rn_error *err) {
    rn_st_file f;
    rn_status st = rn_st_read(path, &f, err);
    if (st) return st;
    st = load_file(m, &f, path, 1, new_head, err);
    rn_st_free(&f);
    return st;
}

/* Formats ints as "3,4,6,3". */
static void join_ints(char *buf, size_t cap, const int *v, int n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len < cap; i++) len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", v[i]);
}

static const char *block_names[] = {"basic", "bottleneck", "preact-basic", "preact-bottleneck"};

/* Builds the __metadata__ pairs describing m; strings go into store. */
static int make_meta(const rn_model *m, rn_st_meta *meta, char store[][64]) {
    const rn_spec *s = &m->spec;
    static const char *keys[] = {"format", "arch", "block", "stem", "blocks", "widths", "stride_on_1x1",
                                 "shortcut", "classes", "in_channels", "bn_eps", "bn_momentum", "mean", "std",
                                 "input_size", "resize"};
    int n = (int)(sizeof keys / sizeof keys[0]), c = s->in_channels < 4 ? s->in_channels : 3;
    snprintf(store[0], 64, "pt");
    snprintf(store[1], 64, "%s", s->arch);
    snprintf(store[2], 64, "%s", block_names[s->block]);
    snprintf(store[3], 64, "%s", s->stem == RN_STEM_CIFAR ? "cifar" : "imagenet");
    join_ints(store[4], 64, s->blocks, s->nstages);
    join_ints(store[5], 64, s->widths, s->nstages);
    snprintf(store[6], 64, "%d", s->stride_on_1x1);
    snprintf(store[7], 64, "%c", s->shortcut);
    snprintf(store[8], 64, "%d", s->classes);
    snprintf(store[9], 64, "%d", s->in_channels);
    snprintf(store[10], 64, "%.9g", s->bn_eps);
    snprintf(store[11], 64, "%.9g", s->bn_momentum);
    store[12][0] = store[13][0] = 0;
    for (int i = 0; i < c; i++) {
        size_t l12 = strlen(store[12]), l13 = strlen(store[13]);
        snprintf(store[12] + l12, 64 - l12, "%s%.8g", i ? "," : "", m->mean[i]);
        snprintf(store[13] + l13, 64 - l13, "%s%.8g", i ? "," : "", m->std[i]);
    }
    snprintf(store[14], 64, "%dx%d", m->input_h, m->input_w);
    snprintf(store[15], 64, "%d", m->eval_resize);
    for (int i = 0; i < n; i++) meta[i].key = (char *)keys[i], meta[i].value = store[i];
    return n;
}

/* Returns the class names as a JSON array string (caller frees), or NULL. */
static char *class_names_json(const rn_model *m) {
    if (!m->class_names) return NULL;
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < m->spec.classes; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(m->class_names[i]));
    char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return s;
}

/* Writes m to path (atomically: see rn_st_write). */
rn_status rn_model_save(const rn_model *m, const char *path, rn_error *err) {
    return rn_model_save_meta(m, path, NULL, 0, err);
}

/* Writes m to path with up to RN_MODEL_EXTRA_META more metadata pairs
** (checkpoints add the weights' CRC-32). */
rn_status rn_model_save_meta(const rn_model *m, const char *path, const rn_st_meta *extra, int nextra,
                             rn_error *err) {
    rn_st_out *outs = calloc((size_t)m->ntensors, sizeof *outs);
    float *tmp = malloc(m->nparams * sizeof(float));
    char store[16][64];
    rn_st_meta meta[18 + RN_MODEL_EXTRA_META];
    if (nextra < 0 || nextra > RN_MODEL_EXTRA_META) {
        free(outs), free(tmp);
        return rn_fail(err, RN_ERR_ARG, "%s: %d extra metadata pairs, at most %d", path, nextra, RN_MODEL_EXTRA_META);
    }
    if (!outs || !tmp) {
        free(outs), free(tmp);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory saving the model", path);
    }
    for (int j = 0; j < m->ntensors; j++) {
        const rn_tensor_entry *t = &m->tensors[j];
        rn_st_out *o = &outs[j];
        o->name = t->name;
        o->dtype = t->home == RN_T_COUNT ? RN_DT_I64 : RN_DT_F32;
        o->ndim = t->ndim;
        for (int i = 0; i < t->ndim; i++) o->shape[i] = t->shape[i];
        o->data = entry_data(m, t);
        if (t->hwio) {
            transpose_oihw(t->shape, m->params + t->off, tmp + t->off, 1);
            o->data = tmp + t->off;
        }
    }
    int nmeta = make_meta(m, meta, store);
    char *names = class_names_json(m);
    if (names) meta[nmeta].key = "class_names", meta[nmeta++].value = names;
    for (int i = 0; i < nextra; i++) meta[nmeta++] = extra[i];
    rn_status st = rn_st_write(path, outs, m->ntensors, meta, nmeta, err);
    cJSON_free(names);
    free(outs);
    free(tmp);
    return st;
}

/* Reads an integer metadata value into *out when present. */
static rn_status meta_int(const rn_st_file *f, const char *path, const char *key, int *out, rn_error *err) {
    const char *v = rn_st_meta_get(f, key);
    char *end;
    if (!v) return RN_OK;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 0 || x > 1000000)
        return rn_fail(err, RN_ERR_FORMAT, "%s: metadata %s '%s' is not a valid integer", path, key, v);
    *out = (int)x;
    return RN_OK;
}

/* Builds the spec from the metadata this library writes. */
static rn_status spec_from_meta(const rn_st_file *f, const char *path, rn_spec *s, rn_error *err) {
    const char *arch = rn_st_meta_get(f, "arch");
    rn_error e;
    rn_status st = arch && strcmp(arch, "custom")
                       ? rn_spec_from_name(arch, s, &e)
                       : rn_spec_custom(rn_st_meta_get(f, "blocks"), rn_st_meta_get(f, "widths"),
                                        rn_st_meta_get(f, "block"), rn_st_meta_get(f, "stem"), s, &e);
    if (st) return rn_fail(err, RN_ERR_FORMAT, "%s: metadata does not describe an architecture: %s", path, e.msg);
    const char *sc = rn_st_meta_get(f, "shortcut"), *eps = rn_st_meta_get(f, "bn_eps");
    const char *mom = rn_st_meta_get(f, "bn_momentum");
    if (sc) s->shortcut = sc[0];
    if (eps) s->bn_eps = strtof(eps, NULL);
    if (mom) s->bn_momentum = strtof(mom, NULL);
    if ((st = meta_int(f, path, "stride_on_1x1", &s->stride_on_1x1, err))) return st;
    if ((st = meta_int(f, path, "classes", &s->classes, err))) return st;
    return meta_int(f, path, "in_channels", &s->in_channels, err);
}

/* Shape of the named tensor, or NULL. */
static const int64_t *tshape(const rn_st_file *f, const char *name, int ndim) {
    const rn_st_tensor *t = rn_st_find(f, name);
    return t && t->ndim == ndim ? t->shape : NULL;
}

/* Infers the architecture of a torchvision-style state_dict without our
** metadata: stem from conv1, block kind from conv3 / bn_final, stages and
** widths from the layerS.I.conv1 tensors, classes from fc. The stride
** placement cannot be seen in shapes: torchvision's (v1.5) is assumed. */
static rn_status spec_from_tensors(const rn_st_file *f, const char *path, rn_spec *s, rn_error *err) {
    const int64_t *c1 = tshape(f, "conv1.weight", 4), *fc = tshape(f, "fc.weight", 2);
    char name[64];
    if (!c1 || !fc)
        return rn_fail(err, RN_ERR_FORMAT, "%s: no metadata and no conv1.weight / fc.weight to infer the architecture from",
                       path);
    int preact = rn_st_find(f, "bn_final.weight") != NULL, bottleneck = rn_st_find(f, "layer1.0.conv3.weight") != NULL;
    rn_spec_from_name("resnet18", s, NULL); /* for the defaults (BN eps, momentum); stages are set below */
    memset(s->blocks, 0, sizeof s->blocks);
    memset(s->widths, 0, sizeof s->widths);
    s->block = (rn_block_kind)((preact ? 2 : 0) + bottleneck);
    s->stem = c1[2] == 7 ? RN_STEM_IMAGENET : RN_STEM_CIFAR;
    s->in_channels = (int)c1[1];
    s->classes = (int)fc[0];
    s->nstages = 0;
    s->shortcut = 'B';
    for (int st = 0; st < RN_MAX_STAGES; st++) {
        snprintf(name, sizeof name, "layer%d.0.conv1.weight", st + 1);
        const int64_t *w = tshape(f, name, 4);
        if (!w) break;
        int n = 0;
        do snprintf(name, sizeof name, "layer%d.%d.conv1.weight", st + 1, ++n);
        while (rn_st_find(f, name));
        s->blocks[st] = n, s->widths[st] = (int)w[0], s->nstages = st + 1;
        snprintf(name, sizeof name, "layer%d.0.downsample.0.weight", st + 1);
        if (st > 0 && !rn_st_find(f, name)) s->shortcut = 'A';
    }
    if (s->nstages == 0) return rn_fail(err, RN_ERR_FORMAT, "%s: no layer1.0.conv1.weight: not a ResNet state_dict", path);
    snprintf(s->arch, sizeof s->arch, "custom");
    return RN_OK;
}

/* Gives an inferred spec its canonical name when it equals a named one. */
static void name_spec(rn_spec *s) {
    static const char *names[] = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                  "preact-resnet18", "preact-resnet34", "preact-resnet50", "preact-resnet101",
                                  "preact-resnet152", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        rn_spec k;
        rn_spec_from_name(names[i], &k, NULL);
        if (k.block == s->block && k.stem == s->stem && k.nstages == s->nstages &&
            !memcmp(k.blocks, s->blocks, sizeof k.blocks) && !memcmp(k.widths, s->widths, sizeof k.widths)) {
            snprintf(s->arch, sizeof s->arch, "%s", names[i]);
            return;
        }
    }
}

/* Creates the model a safetensors file describes and loads it. */
rn_status rn_model_open(const char *path, rn_model **out, rn_error *err) {
    rn_st_file f;
    rn_spec s;
    rn_model *m = NULL;
    rn_status st = rn_st_read(path, &f, err);
    if (st) return st;
    if (rn_st_meta_get(&f, "arch") || rn_st_meta_get(&f, "block")) st = spec_from_meta(&f, path, &s, err);
    else if (!(st = spec_from_tensors(&f, path, &s, err))) name_spec(&s);
    if (!st) st = rn_model_create(&s, &m, err);
    if (!st) st = load_file(m, &f, path, 0, NULL, err);
    rn_st_free(&f);
    if (st) {
        rn_model_free(m);
        return st;
    }
    *out = m;
    return RN_OK;
}
