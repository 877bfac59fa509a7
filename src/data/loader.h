/*
** The threaded data loader: decodes and augments the next batches on its
** own pthreads (not OpenMP) while the training step runs, into a bounded
** ring of batch slots.
**
** Determinism: the order of an epoch and every sample's augmentation are
** functions of (seed, epoch, sample index) only, never of thread timing or
** of the number of workers; workers = 0 (everything in the caller's
** thread) gives bit-identical batches. An epoch can be started at any
** batch (resume mid-epoch) and gives the same batches from there on.
**
** Data-parallel training shards every batch: with nshards > 1, batch b of
** the epoch is still positions [b*batch, (b+1)*batch) of the epoch's order
** (the same order on every rank, from the seed), and this loader builds
** only its slice [first + cnt*shard/nshards, first + cnt*(shard+1)/nshards)
** of the cnt positions. Batches are then handed out even when empty, so
** every rank takes the same number of steps.
**
** Undecodable files (RN_ERR_FORMAT or RN_ERR_IO from the decoder) are
** skipped: the batch they fall in is smaller, a batch left empty is passed
** over, and each such file is counted once and reported once through
** rn_loader_take_message. In strict mode the decoder's error is returned.
**
** Memory: (prefetch + 1) batch buffers of batch * out_h * out_w * out_c
** floats.
*/
#ifndef RN_LOADER_H
#define RN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"
#include "data/data.h"

typedef struct {
    int batch, drop_last, shuffle, train, workers, prefetch; /* prefetch = batches queued ahead (0: 2*workers) */
    int strict;        /* an undecodable file is fatal instead of skipped */
    uint64_t seed;
    int shard, nshards; /* data-parallel: hand out only slice `shard` of nshards of every batch (0, 0: all) */
} rn_loader_config;

/* One batch.  x: (n,H,W,C) normalized floats  labels: (n)  first: the
** batch's first position in the epoch's order. */
typedef struct {
    int n;
    float *x;
    int *labels;
    size_t first;
} rn_batch;

typedef struct rn_loader rn_loader;

/* Creates a loader over d (which must outlive it) with a copy of the
** augmentation and configuration, and starts its worker threads. */
rn_status rn_loader_create(const rn_dataset *d, const rn_augment *a, const rn_loader_config *cfg,
                           rn_loader **out, rn_error *err);

/* Starts epoch `epoch` (0-based) at batch `start` (resume mid-epoch),
** abandoning whatever epoch was in flight. */
rn_status rn_loader_start(rn_loader *l, int epoch, size_t start, rn_error *err);

/* Batches per epoch. */
size_t rn_loader_batches(const rn_loader *l);

/* Next batch in order; *b = NULL at the end of the epoch. The batch stays
** valid until the next call. An error (strict mode, out of memory) is
** returned again by every later call until the next rn_loader_start. */
rn_status rn_loader_next(rn_loader *l, const rn_batch **b, rn_error *err);

/* Undecodable files skipped so far (each counted once, in batch order). */
size_t rn_loader_skipped(const rn_loader *l);

/* Copies the oldest pending skip message ("PATH: reason", as the decoder
** put it) into buf and returns 1, or returns 0 when there is none. */
int rn_loader_take_message(rn_loader *l, char *buf, size_t cap);

/* Stops the workers (mid-epoch too) and frees everything. NULL is fine. */
void rn_loader_free(rn_loader *l);

/* The seed of one sample's augmentation: a hash of (seed, epoch, index). */
uint64_t rn_loader_sample_seed(uint64_t seed, int epoch, size_t index);

/* Loader throughput: images per second over the first max_batches
** batches of epoch 0 (at least one batch); a negative value and *err on
** failure. */
double rn_loader_bench(const rn_dataset *d, const rn_augment *a, const rn_loader_config *cfg,
                       size_t max_batches, rn_error *err);

#endif
