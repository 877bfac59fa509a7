/*
** IDX files (MNIST, Fashion-MNIST): "idx:DIR" with train-images-idx3-ubyte,
** train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,
** each optionally gzip-compressed (.gz).
**
** Everything goes through zlib's gzread, which reads plain files too. The
** header's counts are never trusted for an allocation: the pixel buffer
** grows as data actually arrives, so a 16-byte file claiming 2^31 images
** fails after reading 16 bytes with "file is shorter than its header says".
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "core/error.h"
#include "data/data_internal.h"

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_MAX_SIDE 32768u
#define IDX_FIRST_CHUNK ((size_t)1 << 20)
#define IDX_MAX_READ ((size_t)1 << 24)   /* bytes per gzread call */

/* One IDX file's contents: count items of rows x cols bytes (labels: 1x1). */
typedef struct {
    char *path;
    uint8_t *data;
    uint32_t count, rows, cols;
} idx_file;

/* Reads a big-endian 32-bit value. */
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Finds DIR/name or DIR/name.gz (also the "train-images.idx3-ubyte" spelling
** some copies use); *out is a malloc'd path. */
static rn_status idx_find(const char *dir, const char *name, char **out, rn_error *err) {
    char alt[64];
    snprintf(alt, sizeof alt, "%s", name);
    char *dash = strchr(alt, '-');
    dash = dash ? strchr(dash + 1, '-') : NULL; /* "train-images-idx3" -> "train-images.idx3" */
    if (dash) *dash = '.';
    const char *names[2] = {name, alt};
    static const char *const ext[2] = {"", ".gz"};
    size_t cap = strlen(dir) + strlen(name) + 8;
    char *p = malloc(cap);
    if (!p) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            struct stat st;
            snprintf(p, cap, "%s/%s%s", dir, names[i], ext[j]);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                *out = p;
                return RN_OK;
            }
        }
    free(p);
    return rn_fail(err, RN_ERR_IO, "%s: no %s or %s.gz in this directory", dir, name, name);
}

/* Reads up to n bytes; returns the count read or -1 on a zlib error. */
static long long gz_read_some(gzFile gz, uint8_t *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < IDX_MAX_READ ? n - got : IDX_MAX_READ;
        int r = gzread(gz, dst + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* Describes the zlib error state for a message. */
static const char *gz_msg(gzFile gz) {
    int code;
    const char *m = gzerror(gz, &code);
    return code == Z_ERRNO ? strerror(errno) : m;
}

/* Reads `total` bytes of data, growing the buffer only as data arrives, so
** that a header's claim costs nothing until the bytes are really there. */
static rn_status idx_read_data(gzFile gz, idx_file *f, size_t total, rn_error *err) {
    size_t cap = total < IDX_FIRST_CHUNK ? total : IDX_FIRST_CHUNK, have = 0;
    f->data = malloc(cap ? cap : 1);
    if (!f->data) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", f->path);
    for (;;) {
        long long r = gz_read_some(gz, f->data + have, cap - have);
        if (r < 0) return rn_fail(err, RN_ERR_FORMAT, "%s: %s", f->path, gz_msg(gz));
        have += (size_t)r;
        if (have < cap)
            return rn_fail(err, RN_ERR_FORMAT,
                           "%s: file is shorter than its header says (%u items of %ux%u = %zu "
                           "bytes of data declared, %zu present)",
                           f->path, f->count, f->rows, f->cols, total, have);
        if (have == total) break;
        size_t ncap = cap > total / 2 ? total : cap * 2;
        uint8_t *nd = realloc(f->data, ncap);
        if (!nd) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", f->path);
        f->data = nd;
        cap = ncap;
    }
    uint8_t extra;
    long long r = gz_read_some(gz, &extra, 1);
    if (r < 0) return rn_fail(err, RN_ERR_FORMAT, "%s: %s", f->path, gz_msg(gz));
    if (r > 0)
        return rn_fail(err, RN_ERR_FORMAT, "%s: file is longer than its header says (%zu bytes of data declared)",
                       f->path, total);
    return RN_OK;
}

/* Reads and checks one IDX file: images (magic 0x803, 3 dimensions) or
** labels (magic 0x801, 1 dimension). */
static rn_status idx_read(idx_file *f, int images, rn_error *err) {
    gzFile gz = gzopen(f->path, "rb");
    if (!gz) return rn_fail(err, RN_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    gzbuffer(gz, 1u << 18); /* fewer, larger reads than zlib's 8 KiB default */
    uint8_t hdr[16];
    size_t hlen = images ? 16 : 8;
    uint32_t want = images ? IDX_IMAGES_MAGIC : IDX_LABELS_MAGIC;
    rn_status s = RN_OK;
    long long r = gz_read_some(gz, hdr, hlen);
    if (r < 0) s = rn_fail(err, RN_ERR_FORMAT, "%s: %s", f->path, gz_msg(gz));
    else if ((size_t)r < 4 || be32(hdr) != want)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: not an IDX %s file (magic 0x%08x expected, got %s0x%08x)",
                    f->path, images ? "images" : "labels", want, (size_t)r < 4 ? "only a partial " : "",
                    (size_t)r < 4 ? 0u : be32(hdr));
    else if ((size_t)r < hlen)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: file is shorter than its %zu-byte header", f->path, hlen);
    if (s == RN_OK) {
        f->count = be32(hdr + 4);
        f->rows = images ? be32(hdr + 8) : 1;
        f->cols = images ? be32(hdr + 12) : 1;
        if (f->count == 0)
            s = rn_fail(err, RN_ERR_FORMAT, "%s: header declares no items", f->path);
        else if (f->rows == 0 || f->cols == 0 || f->rows > IDX_MAX_SIDE || f->cols > IDX_MAX_SIDE ||
                 (size_t)f->rows * f->cols > ((size_t)1 << 28))
            s = rn_fail(err, RN_ERR_FORMAT, "%s: implausible image size %ux%u in header", f->path,
                        f->rows, f->cols);
    }
    if (s == RN_OK) s = idx_read_data(gz, f, (size_t)f->count * f->rows * f->cols, err);
    gzclose(gz);
    return s;
}

/* Reads one half ("train" or "t10k") into a memory dataset; *maxlabel gets
** its largest label. */
static rn_status idx_half(const char *dir, const char *prefix, rn_dataset *d, int *maxlabel,
                          rn_error *err) {
    char name[64];
    idx_file im = {0}, lb = {0};
    rn_status s;
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    s = idx_find(dir, name, &im.path, err);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    if (s == RN_OK) s = idx_find(dir, name, &lb.path, err);
    if (s == RN_OK) s = idx_read(&lb, 0, err);
    if (s == RN_OK) s = idx_read(&im, 1, err);
    if (s == RN_OK && im.count != lb.count)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: %u images but %s has %u labels", im.path, im.count,
                    lb.path, lb.count);
    if (s == RN_OK) d->labels = malloc((size_t)lb.count * sizeof *d->labels);
    if (s == RN_OK && !d->labels) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", lb.path);
    if (s == RN_OK) {
        *maxlabel = 0;
        for (uint32_t i = 0; i < lb.count; i++) {
            d->labels[i] = lb.data[i];
            if (lb.data[i] > *maxlabel) *maxlabel = lb.data[i];
        }
        d->n = im.count;
        d->h = (int)im.rows;
        d->w = (int)im.cols;
        d->c = 1;
        d->pixels = im.data;
        im.data = NULL;
    }
    free(im.path);
    free(lb.path);
    free(im.data);
    free(lb.data);
    return s;
}

/* Reads only the training labels, for their largest value: the class count
** of a validation half opened alone must not depend on which classes the
** test set happens to contain. */
static rn_status idx_train_maxlabel(const char *dir, int *maxlabel, rn_error *err) {
    idx_file lb = {0};
    rn_status s = idx_find(dir, "train-labels-idx1-ubyte", &lb.path, err);
    if (s == RN_OK) s = idx_read(&lb, 0, err);
    for (uint32_t i = 0; s == RN_OK && i < lb.count; i++)
        if (lb.data[i] > *maxlabel) *maxlabel = lb.data[i];
    free(lb.path);
    free(lb.data);
    return s;
}

/* Opens "idx:DIR": train-* as training data, t10k-* as validation. Both
** halves get nclasses = largest training label + 1, names "0".."K-1"; a
** validation label beyond the training ones is an error. */
rn_status rn_idx_open(const char *dir, rn_dataset *train, rn_dataset *valid, rn_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rn_fail(err, RN_ERR_IO, "%s: not a directory", dir);
    char src[600];
    rn_dataset *half[2] = {train, valid};
    static const char *const prefix[2] = {"train", "t10k"};
    int maxl[2] = {-1, -1}, k = 0;
    rn_status s = RN_OK;
    for (int i = 0; i < 2 && s == RN_OK; i++) {
        if (!half[i]) continue;
        snprintf(src, sizeof src, "idx:%s (%s)", dir, prefix[i]);
        rn_ds_reset(half[i], RN_DS_MEMORY, src);
        s = idx_half(dir, prefix[i], half[i], &maxl[i], err);
        if (maxl[i] + 1 > k) k = maxl[i] + 1;
    }
    if (s == RN_OK && !train) s = idx_train_maxlabel(dir, &maxl[0], err);
    if (s == RN_OK && train && valid && (train->h != valid->h || train->w != valid->w))
        s = rn_fail(err, RN_ERR_FORMAT, "%s: training images are %dx%d but t10k images are %dx%d",
                    dir, train->h, train->w, valid->h, valid->w);
    if (s == RN_OK && valid && maxl[1] > maxl[0])
        s = rn_fail(err, RN_ERR_FORMAT,
                    "%s: t10k labels go up to %d but training labels only up to %d", dir, maxl[1],
                    maxl[0]);
    for (int i = 0; i < 2 && s == RN_OK; i++)
        if (half[i]) s = rn_ds_numbered_names(half[i], k, err);
    if (s != RN_OK) {
        rn_dataset_free(train);
        rn_dataset_free(valid);
    }
    return s;
}
