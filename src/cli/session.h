/*
** What train, lr-find, eval and predict share: the data options, opening
** a dataset, the augmentation a dataset kind gets by default with the
** user's changes on top, the preprocessing a model file carries, and the
** loaders. Functions print their own "resnet: error: ..." and return -1 on
** failure (2 for bad usage, via the caller), so commands stay short.
*/
#ifndef RN_SESSION_H
#define RN_SESSION_H

#include "cli/args.h"
#include "data/augment.h"
#include "data/data.h"
#include "data/loader.h"

/* Options about the data and its augmentation. */
typedef struct {
    const char *data, *labels, *size, *preset, *workers, *bs, *normalize;
    const char *min_scale, *rotate, *zoom, *warp, *lighting, *pca, *erase, *pad, *presize, *scale_aug, *eval_resize;
    int strict, no_augment, no_shuffle, drop_last, no_flip;
} rn_data_args;

#define RN_DATA_OPTS(d)                                                                                          \
    {"data", &(d).data, 0}, {"labels", &(d).labels, 0}, {"size", &(d).size, 0}, {"preset", &(d).preset, 0},      \
    {"workers", &(d).workers, 0}, {"bs", &(d).bs, 0}, {"normalize", &(d).normalize, 0},                          \
    {"min-scale", &(d).min_scale, 0}, {"rotate", &(d).rotate, 0}, {"zoom", &(d).zoom, 0},                        \
    {"warp", &(d).warp, 0}, {"lighting", &(d).lighting, 0}, {"pca", &(d).pca, 0}, {"erase", &(d).erase, 0},      \
    {"pad", &(d).pad, 0}, {"presize", &(d).presize, 0}, {"scale-aug", &(d).scale_aug, 0},                        \
    {"eval-resize", &(d).eval_resize, 0}, {"strict", 0, &(d).strict}, {"no-augment", 0, &(d).no_augment},       \
    {"no-shuffle", 0, &(d).no_shuffle}, {"drop-last", 0, &(d).drop_last}, {"no-flip", 0, &(d).no_flip}

#define RN_DATA_HELP                                                                                  \
    "data:\n"                                                                                         \
    "  --data SPEC          fashion-mnist (default) | idx:DIR | cifar10:DIR | cifar100:DIR | DIR\n"   \
    "                       (DIR/train/<class>/*.jpg|png and DIR/val/ or DIR/valid/)\n"             \
    "  --labels FILE        readable class names for folder ids (lines 'n01440764 tench')\n"        \
    "  --size HxW           input size (default: 28 Fashion-MNIST/IDX, 32 CIFAR, 224 folders)\n"    \
    "  --bs N               batch size (default 128)\n"                                              \
    "  --workers N          loader threads (default: 0 = in the training thread for IDX/CIFAR, 1 for folders)\n"           \
    "  --strict             an undecodable image is an error (default: skipped and counted)\n"      \
    "  --no-shuffle         keep the data set's order\n"                                           \
    "  --drop-last          drop the last, smaller batch of each epoch\n"                          \
    "augmentation (the preset of the data kind, then these changes):\n"                            \
    "  --preset NAME        fashion-mnist|idx|cifar|imagenet|fastai|paper|none\n"                   \
    "  --no-augment         train on the evaluation transform\n"                                   \
    "  --normalize WHAT     dataset (statistics of the training set) | imagenet | none\n"          \
    "  --min-scale F        random-resized-crop smallest area fraction\n"                          \
    "  --presize S          fastai presize: random square crop at shorter side S first\n"          \
    "  --scale-aug LO,HI    shorter side in [LO,HI], then a random crop (He et al.)\n"             \
    "  --pad P              zero-pad by P and random-crop back (CIFAR style)\n"                    \
    "  --no-flip            no horizontal flips\n"                                                 \
    "  --rotate DEG --zoom Z --warp W --lighting L   fastai's affine and lighting changes\n"       \
    "  --pca STD            AlexNet PCA colour augmentation\n"                                     \
    "  --erase P            random erasing probability\n"                                          \
    "  --eval-resize S      evaluation: shorter side S then center crop (0: resize to --size)\n"

/* Opens the dataset and its validation half (either may be NULL). */
int rn_session_open_data(const char *spec, const char *labels, rn_dataset *train, rn_dataset *valid);
/* Prints the loader's skipped-file messages and (total != 0) their count. */
void rn_session_print_skipped(rn_loader *l, int total);
/* The augmentation preset name for a --data spec. */
const char *rn_session_kind(const char *spec);
/* Builds the training augmentation: the preset for the data kind (or
** --preset), the user's changes, and normalization statistics. */
int rn_session_augment(const rn_data_args *a, const rn_dataset *train, int h, int w, int c, rn_augment *aug);
/* Builds the evaluation transform a model file describes (its input size,
** mean/std and eval resize). */
void rn_session_model_augment(const rn_model *m, rn_augment *aug);
/* The loader configuration the options give over d (--bs, default 128;
** --workers, default 0 for in-memory data and 1 for files); train != 0
** augments and shuffles (unless --no-augment / --no-shuffle). */
int rn_session_loader_config(const rn_dataset *d, const rn_data_args *a, int train, uint64_t seed,
                             rn_loader_config *cfg);
/* Creates a loader; train != 0 augments (and shuffles unless no_shuffle). */
int rn_session_loader(const rn_dataset *d, const rn_augment *aug, const rn_data_args *a, int train, uint64_t seed,
                      rn_loader **out);
/* Validates the data options without opening anything; -1 after printing. */
int rn_session_check(const rn_data_args *a);
/* Reads --size (default by kind) into h, w. */
int rn_session_size(const rn_data_args *a, int *h, int *w);
/* Checks --bs against the batchnorm layers of m at h x w (training needs
** two values per channel): -1 after printing an error for a batch that is
** too small; sets a->drop_last (with a note) when only an epoch's last
** batch of one image would be. */
int rn_session_batch_fits(rn_model *m, const rn_dataset *train, int h, int w, rn_data_args *a);
/* Help line of --dtype, shared by the commands that run a model. */
#define RN_DTYPE_HELP                                                                                                  \
    "  --dtype T            fp32 (default) or bf16: convolutions in bfloat16 with fp32 sums\n"                          \
    "                       (AVX512_BF16; batchnorm, head, loss and optimizer stay fp32;\n"                          \
    "                       3x3 stride-1 layers by Winograd F(2x2,3x3)); bf16-direct: without Winograd\n"
/* Parses --dtype (NULL: fp32) into *prec; -1 after printing an error. */
int rn_session_dtype(const char *cmd, const char *dtype, rn_precision *prec);
/* The --dtype name of prec. */
const char *rn_session_dtype_name(rn_precision prec);
/* Sets the model's precision; -1 after printing why the CPU cannot. */
int rn_session_set_precision(const char *cmd, rn_model *m, rn_precision prec);

#endif
