/*
** Private to src/data: the per-format openers rn_dataset_open dispatches
** to, and small helpers they share. Each opener fills the outputs it is
** given (either may be NULL) and on failure leaves both empty.
*/
#ifndef RN_DATA_INTERNAL_H
#define RN_DATA_INTERNAL_H

#include "data/data.h"

/* "idx:DIR": MNIST-format train-* and t10k-* files, gzip or plain. */
rn_status rn_idx_open(const char *dir, rn_dataset *train, rn_dataset *valid, rn_error *err);
/* "cifar10:DIR" (hundred = 0) or "cifar100:DIR" (hundred = 1), binary version. */
rn_status rn_cifar_open(const char *dir, int hundred, rn_dataset *train, rn_dataset *valid,
                        rn_error *err);
/* "DIR": DIR/train/<class>/... and DIR/val/<class>/... (or valid/). */
rn_status rn_folder_open(const char *dir, const char *labels_file, rn_dataset *train,
                         rn_dataset *valid, rn_error *err);

/* Empties *d and sets its kind and source (truncated to fit). */
void rn_ds_reset(rn_dataset *d, rn_dataset_kind kind, const char *source);
/* Sets d->nclasses = k and class_names "0".."k-1" (class_ids stays NULL). */
rn_status rn_ds_numbered_names(rn_dataset *d, int k, rn_error *err);
/* Sets class_names from a NULL-free list of k strings (copied). */
rn_status rn_ds_set_names(rn_dataset *d, const char *const *names, int k, rn_error *err);
/* strdup that is C11 (strdup is POSIX); NULL when out of memory. */
char *rn_ds_strdup(const char *s);

#endif
