/*
** CIFAR-10 and CIFAR-100, binary version ("cifar10:DIR", "cifar100:DIR").
**
** CIFAR-10: data_batch_1..5.bin (training) and test_batch.bin, records of
** 1 label byte + 3072 pixel bytes. CIFAR-100: train.bin and test.bin,
** records of coarse label, fine label, 3072 pixel bytes (we use the fine
** label). Pixels are stored planar (1024 R, 1024 G, 1024 B, rows of 32) and
** converted here to HWC. DIR may be the extracted directory itself or its
** parent (cifar-10-batches-bin/, cifar-100-binary/).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/data_internal.h"

#define CIFAR_SIDE 32
#define CIFAR_PIX (CIFAR_SIDE * CIFAR_SIDE * 3)
#define CIFAR_CHUNK 512   /* records read per fread */

/* What differs between the two datasets. */
typedef struct {
    int hundred;           /* 0: CIFAR-10, 1: CIFAR-100 */
    int nclasses;
    size_t record;         /* bytes per record */
    const char *subdir;    /* what the archive extracts to */
    const char *names_file;
} cifar_kind;

/* Builds "a/b" into fresh memory; NULL when out of memory. */
static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Returns 1 if path is an existing regular file. */
static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Finds the directory holding the batches: DIR itself or DIR/<subdir>,
** recognized by its test file. *out is malloc'd. */
static rn_status cifar_dir(const char *dir, const cifar_kind *k, char **out, rn_error *err) {
    const char *test = k->hundred ? "test.bin" : "test_batch.bin";
    char *cand[2] = {rn_ds_strdup(dir), path_join(dir, k->subdir)};
    *out = NULL;
    for (int i = 0; i < 2 && !*out; i++) {
        char *t = cand[i] ? path_join(cand[i], test) : NULL;
        if (t && is_file(t)) {
            *out = cand[i];
            cand[i] = NULL;
        }
        free(t);
    }
    free(cand[0]);
    free(cand[1]);
    if (*out) return RN_OK;
    return rn_fail(err, RN_ERR_IO, "%s: no %s here or in %s/%s (expected the CIFAR-%d binary version)",
                   dir, test, dir, k->subdir, k->hundred ? 100 : 10);
}

/* Appends the records of one batch file to d (pixels HWC, labels), checking
** the size is a whole number of records and every label is in range. */
static rn_status cifar_file(const char *path, const cifar_kind *k, rn_dataset *d, rn_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return rn_fail(err, RN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    rn_status s = RN_OK;
    if (fstat(fileno(fp), &st) != 0) s = rn_fail(err, RN_ERR_IO, "%s: cannot stat", path);
    else if (st.st_size <= 0 || (size_t)st.st_size % k->record != 0)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: size %lld is not a positive multiple of the %zu-byte record",
                    path, (long long)st.st_size, k->record);
    size_t add = s == RN_OK ? (size_t)st.st_size / k->record : 0, n0 = d->n;
    uint8_t *chunk = s == RN_OK ? malloc(k->record * CIFAR_CHUNK) : NULL;
    uint8_t *np = s == RN_OK ? realloc(d->pixels, (n0 + add) * CIFAR_PIX) : NULL;
    if (np) d->pixels = np;
    int *nl = np ? realloc(d->labels, (n0 + add) * sizeof *d->labels) : NULL;
    if (nl) d->labels = nl;
    if (s == RN_OK && (!chunk || !np || !nl)) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
    for (size_t r0 = 0; s == RN_OK && r0 < add; r0 += CIFAR_CHUNK) {
        size_t m = add - r0 < CIFAR_CHUNK ? add - r0 : CIFAR_CHUNK;
        if (fread(chunk, k->record, m, fp) != m) {
            s = rn_fail(err, RN_ERR_IO, "%s: read error", path);
            break;
        }
        for (size_t r = 0; r < m && s == RN_OK; r++) {
            const uint8_t *rec = chunk + r * k->record;
            int label = rec[k->hundred];
            if (label >= k->nclasses) {
                s = rn_fail(err, RN_ERR_FORMAT, "%s: record %zu has label %d, expected < %d", path,
                            r0 + r, label, k->nclasses);
                break;
            }
            const uint8_t *planes = rec + k->record - CIFAR_PIX;
            uint8_t *dst = d->pixels + (n0 + r0 + r) * CIFAR_PIX;
            // planes: (3,32,32) -> dst: (32,32,3)
            for (int p = 0; p < CIFAR_SIDE * CIFAR_SIDE; p++)
                for (int ch = 0; ch < 3; ch++) dst[p * 3 + ch] = planes[ch * CIFAR_SIDE * CIFAR_SIDE + p];
            d->labels[n0 + r0 + r] = label;
        }
    }
    if (s == RN_OK) d->n = n0 + add;
    free(chunk);
    fclose(fp);
    return s;
}

/* Reads class names, one per line, from the names file if it exists;
** otherwise the built-in CIFAR-10 names or "0".."99". */
static rn_status cifar_names(const char *dir, const cifar_kind *k, rn_dataset *d, rn_error *err) {
    static const char *const c10[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                        "dog",      "frog",       "horse", "ship", "truck"};
    char *path = path_join(dir, k->names_file);
    if (!path) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
    FILE *fp = is_file(path) ? fopen(path, "r") : NULL;
    if (!fp) {
        free(path);
        return k->hundred ? rn_ds_numbered_names(d, 100, err) : rn_ds_set_names(d, c10, 10, err);
    }
    rn_status s = rn_ds_numbered_names(d, k->nclasses, err);
    char *line = NULL;
    size_t cap = 0;
    int got = 0;
    while (s == RN_OK && got < k->nclasses && getline(&line, &cap, fp) >= 0) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                         line[n - 1] == '\t'))
            line[--n] = 0;
        if (n == 0) continue;
        char *copy = rn_ds_strdup(line);
        if (!copy) s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
        else {
            free(d->class_names[got]);
            d->class_names[got++] = copy;
        }
    }
    if (s == RN_OK && got < k->nclasses)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: %d class names, expected %d (one per line)", path, got,
                    k->nclasses);
    free(line);
    fclose(fp);
    free(path);
    return s;
}

/* Reads one half: the listed batch files into a memory dataset. */
static rn_status cifar_half(const char *dir, const cifar_kind *k, const char *const *files,
                            int nfiles, rn_dataset *d, rn_error *err) {
    d->h = d->w = CIFAR_SIDE;
    d->c = 3;
    rn_status s = RN_OK;
    for (int i = 0; i < nfiles && s == RN_OK; i++) {
        char *path = path_join(dir, files[i]);
        if (!path) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", dir);
        s = is_file(path) ? cifar_file(path, k, d, err)
                          : rn_fail(err, RN_ERR_IO, "%s: missing (CIFAR-%d batch)", path,
                                    k->hundred ? 100 : 10);
        free(path);
    }
    return s == RN_OK ? cifar_names(dir, k, d, err) : s;
}

/* Opens "cifar10:DIR" or "cifar100:DIR". */
rn_status rn_cifar_open(const char *dir, int hundred, rn_dataset *train, rn_dataset *valid,
                        rn_error *err) {
    static const char *const train10[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                           "data_batch_4.bin", "data_batch_5.bin"};
    static const char *const test10[1] = {"test_batch.bin"};
    static const char *const train100[1] = {"train.bin"};
    static const char *const test100[1] = {"test.bin"};
    cifar_kind k = hundred ? (cifar_kind){1, 100, 2 + CIFAR_PIX, "cifar-100-binary", "fine_label_names.txt"}
                           : (cifar_kind){0, 10, 1 + CIFAR_PIX, "cifar-10-batches-bin", "batches.meta.txt"};
    char *base = NULL;
    rn_status s = cifar_dir(dir, &k, &base, err);
    char src[600];
    if (s == RN_OK && train) {
        snprintf(src, sizeof src, "cifar%d:%s (train)", hundred ? 100 : 10, dir);
        rn_ds_reset(train, RN_DS_MEMORY, src);
        s = cifar_half(base, &k, hundred ? train100 : train10, hundred ? 1 : 5, train, err);
    }
    if (s == RN_OK && valid) {
        snprintf(src, sizeof src, "cifar%d:%s (test)", hundred ? 100 : 10, dir);
        rn_ds_reset(valid, RN_DS_MEMORY, src);
        s = cifar_half(base, &k, hundred ? test100 : test10, 1, valid, err);
    }
    free(base);
    if (s != RN_OK) {
        rn_dataset_free(train);
        rn_dataset_free(valid);
    }
    return s;
}
