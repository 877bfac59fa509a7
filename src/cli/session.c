/*
** Data, augmentation and loaders for the commands that train or evaluate;
** see session.h.
*/
#include "cli/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* Opens the dataset halves, printing the error on failure, and how many
** files of an image folder were passed over (not images, broken links). */
int rn_session_open_data(const char *spec, const char *labels, rn_dataset *train, rn_dataset *valid) {
    rn_error err;
    if (rn_dataset_open(spec ? spec : "fashion-mnist", labels, train, valid, &err)) {
        rn_cli_error("%s", err.msg);
        return -1;
    }
    const rn_dataset *half[2] = {train, valid};
    for (int i = 0; i < 2; i++)
        if (half[i] && half[i]->skipped)
            fprintf(stderr, "resnet: %s: %zu images; skipped %zu file%s that %s not .jpg/.jpeg/.png images "
                    "(or broken links)\n", half[i]->source, half[i]->n, half[i]->skipped,
                    half[i]->skipped == 1 ? "" : "s", half[i]->skipped == 1 ? "is" : "are");
    return 0;
}

/* Prints the loader's messages about undecodable files (each once) and,
** when any were skipped, their count; so a run over a folder with broken
** images says what it left out. */
void rn_session_print_skipped(rn_loader *l, int total) {
    char msg[1200];
    if (!l) return;
    while (rn_loader_take_message(l, msg, sizeof msg)) fprintf(stderr, "resnet: skipped %s\n", msg);
    size_t n = rn_loader_skipped(l);
    if (total && n) fprintf(stderr, "resnet: %zu image files could not be decoded and were skipped\n", n);
}

/* The augmentation preset a data spec gets by default. */
const char *rn_session_kind(const char *spec) { return rn_dataset_preset_name(spec); }

/* The preset the options ask for: --preset, else the data kind's. */
static const char *preset_of(const rn_data_args *a) { return a->preset ? a->preset : rn_session_kind(a->data); }

/* Reads --size, defaulting by data kind (28 IDX, 32 CIFAR, 224 folders). */
int rn_session_size(const rn_data_args *a, int *h, int *w) {
    const char *kind = rn_session_kind(a->data);
    int d = !strcmp(kind, "cifar") ? 32 : !strcmp(kind, "imagenet") ? 224 : 28;
    *h = *w = d;
    return rn_args_size("size", a->size, h, w);
}

/* Applies one float option to *field when given. */
static int opt_float(const char *name, const char *text, double lo, double hi, float *field) {
    double v = *field;
    if (rn_args_float(name, text, lo, hi, &v)) return -1;
    *field = (float)v;
    return 0;
}

/* Applies one integer option to *field when given. */
static int opt_int(const char *name, const char *text, long lo, long hi, int *field) {
    long v = *field;
    if (rn_args_int(name, text, lo, hi, &v)) return -1;
    *field = (int)v;
    return 0;
}

/* Parses "LO,HI" with 1 <= LO <= HI <= 65536 (strtol, so that an
** overflowing number is refused rather than wrapped); -1 when malformed. */
static int scale_range(const char *text, int *lo, int *hi) {
    char *end;
    long a = strtol(text, &end, 10), b;
    if (end == text || *end != ',') return -1;
    const char *p = end + 1;
    b = strtol(p, &end, 10);
    if (end == p || *end || a < 1 || b < a || b > 65536) return -1;
    *lo = (int)a, *hi = (int)b;
    return 0;
}

/* Applies the user's augmentation changes on top of a preset. */
static int apply_changes(const rn_data_args *a, rn_augment *g) {
    if (opt_float("min-scale", a->min_scale, 0.01, 1, &g->min_scale) || opt_float("rotate", a->rotate, 0, 180, &g->max_rotate) ||
        opt_float("zoom", a->zoom, 1, 4, &g->max_zoom) || opt_float("warp", a->warp, 0, 1, &g->max_warp) ||
        opt_float("lighting", a->lighting, 0, 1, &g->max_lighting) || opt_float("pca", a->pca, 0, 10, &g->pca_std) ||
        opt_float("erase", a->erase, 0, 1, &g->erase_p) || opt_int("pad", a->pad, 0, 4096, &g->pad) ||
        opt_int("presize", a->presize, 0, 65536, &g->presize) ||
        opt_int("eval-resize", a->eval_resize, 0, 65536, &g->eval_resize))
        return -1;
    if (a->min_scale && g->max_scale <= 0) g->max_scale = 1, g->min_ratio = 3.f / 4, g->max_ratio = 4.f / 3;
    if ((a->rotate || a->zoom || a->warp) && g->p_affine <= 0) g->p_affine = 0.75f;
    if (a->lighting && g->p_lighting <= 0) g->p_lighting = 0.75f;
    if (a->no_flip) g->flip = 0;
    if (a->scale_aug && scale_range(a->scale_aug, &g->scale_lo, &g->scale_hi)) {
        rn_cli_error("--scale-aug: '%s' is not LO,HI with 1 <= LO <= HI <= 65536", a->scale_aug);
        return -1;
    }
    return 0;
}

/* Sets mean/std: the training set's own statistics, ImageNet's, or none. */
static int normalization(const rn_data_args *a, const rn_dataset *train, rn_augment *g) {
    const char *how = a->normalize ? a->normalize : !strcmp(rn_session_kind(a->data), "imagenet") ? "imagenet" : "dataset";
    static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};
    rn_error err;
    if (!strcmp(how, "imagenet")) {
        memcpy(g->mean, in_mean, sizeof in_mean), memcpy(g->std, in_std, sizeof in_std);
    } else if (!strcmp(how, "none")) {
        for (int i = 0; i < 3; i++) g->mean[i] = 0, g->std[i] = 1;
    } else if (!strcmp(how, "dataset")) {
        if (rn_dataset_stats(train, 2000, g->mean, g->std, &err)) {
            rn_cli_error("%s", err.msg);
            return -1;
        }
    } else {
        rn_cli_error("--normalize: '%s' must be dataset, imagenet or none", how);
        return -1;
    }
    return 0;
}

/* Builds the training augmentation (see session.h). */
int rn_session_augment(const rn_data_args *a, const rn_dataset *train, int h, int w, int c, rn_augment *aug) {
    rn_error err;
    if (rn_augment_preset(preset_of(a), h, w, c, aug, &err)) {
        rn_cli_error("--preset: %s", err.msg);
        return -1;
    }
    if (apply_changes(a, aug) || normalization(a, train, aug)) return -1;
    return 0;
}

/* The evaluation transform stored with a model. */
void rn_session_model_augment(const rn_model *m, rn_augment *aug) { rn_model_eval_augment(m, aug); }

/* Fills the loader configuration of d from the options (see session.h). */
int rn_session_loader_config(const rn_dataset *d, const rn_data_args *a, int train, uint64_t seed,
                             rn_loader_config *cfg) {
    /* In-memory samples cost microseconds to augment: a loader thread would
    ** only preempt the compute threads on a small machine, so they are made
    ** in the training thread unless asked; decoding files needs a worker. */
    long bs = 128, workers = d->kind == RN_DS_MEMORY ? 0 : 1;
    if (rn_args_int("bs", a->bs, 1, 1 << 20, &bs) || rn_args_int("workers", a->workers, 0, 256, &workers)) return -1;
    *cfg = (rn_loader_config){.batch = (int)bs, .drop_last = train && a->drop_last,
                              .shuffle = train && !a->no_shuffle, .train = train && !a->no_augment,
                              .workers = (int)workers, .prefetch = 2 * (int)(workers > 0 ? workers : 1),
                              .strict = a->strict, .seed = seed};
    return 0;
}

/* Creates a loader over d (see session.h). */
int rn_session_loader(const rn_dataset *d, const rn_augment *aug, const rn_data_args *a, int train, uint64_t seed,
                      rn_loader **out) {
    rn_loader_config cfg;
    if (rn_session_loader_config(d, a, train, seed, &cfg)) return -1;
    rn_error err;
    if (rn_loader_create(d, aug, &cfg, out, &err)) {
        rn_cli_error("%s", err.msg);
        return -1;
    }
    return 0;
}

/* Validates every data option before any file is opened, so that a bad
** value is a usage error (exit 2) and not found after minutes of loading. */
int rn_session_check(const rn_data_args *a) {
    long v;
    int h, w;
    rn_augment g;
    rn_error err;
    if (rn_args_int("bs", a->bs, 1, 1 << 20, &v) || rn_args_int("workers", a->workers, 0, 256, &v) ||
        rn_session_size(a, &h, &w))
        return -1;
    if (rn_augment_preset(preset_of(a), h, w, 3, &g, &err)) {
        rn_cli_error("--preset: %s", err.msg);
        return -1;
    }
    if (a->normalize && strcmp(a->normalize, "dataset") && strcmp(a->normalize, "imagenet") && strcmp(a->normalize, "none")) {
        rn_cli_error("--normalize: '%s' must be dataset, imagenet or none", a->normalize);
        return -1;
    }
    return apply_changes(a, &g);
}

/* Checks that training batches of --bs images at h x w give every
** batchnorm layer of m at least two values per channel (a single value
** cannot be normalized, PyTorch refuses it too). When only the last,
** smaller batch of an epoch would hold one image, it is dropped (as with
** --drop-last) with a note, rather than failing after a whole epoch. */
int rn_session_batch_fits(rn_model *m, const rn_dataset *train, int h, int w, rn_data_args *a) {
    rn_error err;
    long bs = 128;
    size_t least = 2;
    const char *where = NULL;
    if (rn_model_shapes(m, h, w, &err)) {
        rn_cli_error("--size: %s", err.msg);
        return -1;
    }
    for (int i = 0; i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        if (l->kind == RN_L_BN && (size_t)l->h_out * l->w_out < least)
            least = (size_t)l->h_out * l->w_out, where = l->name;
    }
    if (!where || rn_args_int("bs", a->bs, 1, 1 << 20, &bs)) return where ? -1 : 0;
    if (bs < 2) {
        rn_cli_error("--bs %ld at --size %dx%d is too small to train %s: %s would normalize a single value per "
                     "channel; use --bs 2 or more", bs, h, w, m->spec.arch, where);
        return -1;
    }
    if (train->n % (size_t)bs == 1 && !a->drop_last) {
        fprintf(stderr, "resnet: %s: %zu images make a last batch of 1, too few for %s at %dx%d (%s); it is dropped "
                "each epoch (as with --drop-last)\n", train->source, train->n, m->spec.arch, h, w, where);
        a->drop_last = 1;
    }
    return 0;
}

/* The --dtype name of prec, for reports. */
const char *rn_session_dtype_name(rn_precision prec) {
    return prec == RN_PREC_BF16 ? "bf16" : prec == RN_PREC_BF16_DIRECT ? "bf16-direct" : "fp32";
}

/* Parses --dtype of command cmd (NULL: fp32); -1 after printing an error. */
int rn_session_dtype(const char *cmd, const char *dtype, rn_precision *prec) {
    int p = dtype ? rn_precision_parse(dtype) : RN_PREC_FP32;
    if (p < 0) {
        rn_cli_error("%s: --dtype must be fp32, bf16 or bf16-direct, not '%s'", cmd, dtype);
        return -1;
    }
    *prec = (rn_precision)p;
    return 0;
}

/* Sets m's precision; -1 after printing why this CPU cannot run it. */
int rn_session_set_precision(const char *cmd, rn_model *m, rn_precision prec) {
    rn_error err;
    if (rn_model_set_precision(m, prec, &err)) {
        rn_cli_error("%s: --dtype: %s", cmd, err.msg);
        return -1;
    }
    return 0;
}
