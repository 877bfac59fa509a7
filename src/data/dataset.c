/*
** Datasets: opening one by its spec, handing out samples, freeing it.
**
** rn_dataset_open only dispatches on the spec's prefix; the formats live in
** idx.c, cifar.c and folder.c. rn_dataset_get is what the loader's worker
** threads call: it reads the dataset and never writes it, so any number of
** threads may share one.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/data_internal.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* Copies s into fresh memory; NULL when out of memory. */
char *rn_ds_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Empties *d and records what it was opened from. */
void rn_ds_reset(rn_dataset *d, rn_dataset_kind kind, const char *source) {
    memset(d, 0, sizeof *d);
    d->kind = kind;
    snprintf(d->source, sizeof d->source, "%s", source);
}

/* Sets class_names to copies of names[0..k). */
rn_status rn_ds_set_names(rn_dataset *d, const char *const *names, int k, rn_error *err) {
    d->class_names = calloc((size_t)(k > 0 ? k : 1), sizeof *d->class_names);
    if (!d->class_names) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", d->source);
    d->nclasses = k;
    for (int i = 0; i < k; i++)
        if (!(d->class_names[i] = rn_ds_strdup(names[i])))
            return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", d->source);
    return RN_OK;
}

/* Sets k classes named "0".."k-1", for formats without class names. */
rn_status rn_ds_numbered_names(rn_dataset *d, int k, rn_error *err) {
    d->class_names = calloc((size_t)(k > 0 ? k : 1), sizeof *d->class_names);
    if (!d->class_names) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", d->source);
    d->nclasses = k;
    for (int i = 0; i < k; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        if (!(d->class_names[i] = rn_ds_strdup(num)))
            return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", d->source);
    }
    return RN_OK;
}

/* Frees an array of n strings (NULL entries allowed) and the array. */
static void free_strings(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Releases everything a dataset holds and leaves it empty (safe twice). */
void rn_dataset_free(rn_dataset *d) {
    if (!d) return;
    free_strings(d->class_names, (size_t)(d->nclasses > 0 ? d->nclasses : 0));
    free_strings(d->class_ids, (size_t)(d->nclasses > 0 ? d->nclasses : 0));
    free_strings(d->paths, d->paths ? d->n : 0);
    free(d->labels);
    free(d->pixels);
    memset(d, 0, sizeof *d);
}

/* Debian's Fashion-MNIST: IDX files with the dataset's class names. */
static rn_status open_fashion(rn_dataset *train, rn_dataset *valid, rn_error *err) {
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                          "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                          "Bag",         "Ankle boot"};
    struct stat st;
    if (stat(FASHION_DIR, &st) != 0 || !S_ISDIR(st.st_mode))
        return rn_fail(err, RN_ERR_IO,
                       "%s: not found; install Debian's dataset-fashion-mnist package "
                       "(apt-get install dataset-fashion-mnist)",
                       FASHION_DIR);
    rn_status s = rn_idx_open(FASHION_DIR, train, valid, err);
    rn_dataset *half[2] = {train, valid};
    for (int i = 0; s == RN_OK && i < 2; i++) {
        rn_dataset *d = half[i];
        if (!d) continue;
        if (d->nclasses > 10) {
            s = rn_fail(err, RN_ERR_FORMAT, "%s: labels go up to %d, Fashion-MNIST has 10 classes",
                        d->source, d->nclasses - 1);
            break;
        }
        free_strings(d->class_names, (size_t)d->nclasses);
        d->class_names = NULL;
        s = rn_ds_set_names(d, names, 10, err);
    }
    if (s != RN_OK) {
        rn_dataset_free(train);
        rn_dataset_free(valid);
    }
    return s;
}

/* Opens the dataset named by spec; see data.h for the forms. */
rn_status rn_dataset_open(const char *spec, const char *labels_file, rn_dataset *train,
                          rn_dataset *valid, rn_error *err) {
    if (train) memset(train, 0, sizeof *train);
    if (valid) memset(valid, 0, sizeof *valid);
    if (!spec || !*spec) return rn_fail(err, RN_ERR_ARG, "dataset: empty dataset name");
    int folder = strcmp(spec, "fashion-mnist") != 0 && strncmp(spec, "idx:", 4) != 0 &&
                 strncmp(spec, "cifar10:", 8) != 0 && strncmp(spec, "cifar100:", 9) != 0;
    if (labels_file && !folder)
        return rn_fail(err, RN_ERR_ARG, "%s: a labels file (%s) applies only to image folders",
                       spec, labels_file);
    if (strcmp(spec, "fashion-mnist") == 0) return open_fashion(train, valid, err);
    if (strncmp(spec, "idx:", 4) == 0) return rn_idx_open(spec + 4, train, valid, err);
    if (strncmp(spec, "cifar10:", 8) == 0) return rn_cifar_open(spec + 8, 0, train, valid, err);
    if (strncmp(spec, "cifar100:", 9) == 0) return rn_cifar_open(spec + 9, 1, train, valid, err);
    return rn_folder_open(spec, labels_file, train, valid, err);
}

/* Fills *out with sample i: a copy of a memory sample, or a decoded file.
** Reads d only, so it is safe from several threads at once. */
rn_status rn_dataset_get(const rn_dataset *d, size_t i, int min_side, rn_image *out,
                         rn_error *err) {
    out->px = NULL;
    out->h = out->w = out->c = 0;
    if (i >= d->n)
        return rn_fail(err, RN_ERR_ARG, "%s: sample %zu out of range (%zu samples)", d->source, i,
                       d->n);
    if (d->kind == RN_DS_FILES) return rn_image_decode_file(d->paths[i], min_side, out, err);
    size_t sz = (size_t)d->h * d->w * d->c;
    out->px = malloc(sz ? sz : 1);
    if (!out->px) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory for sample %zu", d->source, i);
    memcpy(out->px, d->pixels + i * sz, sz);
    out->h = d->h;
    out->w = d->w;
    out->c = d->c;
    return RN_OK;
}

/* The augmentation preset of a dataset spec (see data.h). */
const char *rn_dataset_preset_name(const char *spec) {
    if (!spec || !strcmp(spec, "fashion-mnist")) return "fashion-mnist";
    if (!strncmp(spec, "idx:", 4)) return "idx";
    if (!strncmp(spec, "cifar10:", 8) || !strncmp(spec, "cifar100:", 9)) return "cifar";
    return "imagenet";
}
