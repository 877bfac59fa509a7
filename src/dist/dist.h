/*
** Data-parallel training over MPI: every process (rank) holds the whole
** model, trains on its own share of each global batch, and the ranks
** average their gradients before every optimizer step, so all of them take
** the same step and keep the same weights (PyTorch DDP's and Horovod's
** scheme).
**
** Gradients are averaged in buckets: contiguous ranges of the flat gradient
** buffer, each started with a non-blocking MPI_Iallreduce as soon as the
** backward pass has finished every layer whose gradients lie in it (the
** backward runs from the last layer to the first, and the parameters of
** later layers sit later in the buffer), so the sums travel while the
** earlier layers are still computing. Between layers the hook also calls
** MPI_Test, which is what moves a non-blocking collective forward in
** OpenMPI (it has no progress thread by default).
**
** Batchnorm statistics are per rank by default (DDP's semantics: each rank
** normalizes with its own batch, and rank 0's running statistics are the
** model's; they are broadcast before evaluation and checkpoints). With
** sync_bn the per-channel moments are summed across ranks in the forward
** and backward passes (SyncBatchNorm's semantics), which makes N ranks with
** a global batch B compute what one rank computes with batch B.
**
** A rank that dies is noticed by mpirun, which ends the job and names it.
** A rank that hangs is noticed by the others: every wait is a loop of
** MPI_Test with a deadline, and the ranks send each other a heartbeat (the
** step they reached) at every step, so on timeout rank 0 can name the rank
** that stopped. The timeout makes the dist object failed: every later call
** returns the error at once, and the caller ends the job (rn_dist_abort).
**
** Built without MPI (no libopenmpi-dev at build time), rn_dist_init gives a
** single rank and everything here is a no-op; started by mpirun with more
** than one process, it fails with a message saying so.
*/
#ifndef RN_DIST_H
#define RN_DIST_H

#include <stddef.h>

#include "model/model.h"

typedef struct rn_dist rn_dist;

typedef struct {
    int sync_bn;          /* sum batchnorm moments across ranks */
    size_t bucket_floats; /* target gradient bucket size, in floats */
    double timeout;       /* seconds a rank may wait for the others before the job is failed */
} rn_dist_config;

/* Default bucket: 1 MiB of gradients (a few dozen buckets for resnet50). */
#define RN_DIST_BUCKET_FLOATS ((size_t)1 << 18)
#define RN_DIST_TIMEOUT 300.0

/* Joins the job: MPI_Init when started by an MPI launcher, else a single
** rank. *out is NULL only on failure. */
rn_status rn_dist_init(int *argc, char ***argv, rn_dist **out, rn_error *err);
/* This process's rank and the number of ranks. */
int rn_dist_rank(const rn_dist *d);
int rn_dist_size(const rn_dist *d);
/* "Open MPI v4.1.4, ..." when built with MPI, else "none". */
const char *rn_dist_backend(void);

/* Makes d average m's gradients in buckets during backward (and sums the
** batchnorm moments with sync_bn). No-op on a single rank. */
rn_status rn_dist_attach(rn_dist *d, rn_model *m, const rn_dist_config *c, rn_error *err);
/* Announces the start of optimizer step `step` (the heartbeat). */
void rn_dist_step(rn_dist *d, long step);
/* After backward: waits for every bucket, divides the sums by the rank
** count, and averages *loss across ranks too. */
rn_status rn_dist_finish_grads(rn_dist *d, double *loss, rn_error *err);
/* Sums n doubles across ranks, in place (every rank gets the total). */
rn_status rn_dist_sum(rn_dist *d, double *v, int n, rn_error *err);
/* Sets *flag to 1 on every rank if it is non-zero on any (a stop
** request that every rank must follow at the same step). */
rn_status rn_dist_any(rn_dist *d, int *flag, rn_error *err);
/* Copies rank 0's `bytes` bytes at buf to every rank. */
rn_status rn_dist_bcast(rn_dist *d, void *buf, size_t bytes, rn_error *err);
/* Fails unless every rank's value equals rank 0's (what = its name). */
rn_status rn_dist_check_same(rn_dist *d, unsigned long value, const char *what, rn_error *err);

/* Seconds spent in rn_dist_finish_grads waiting for buckets (the
** communication the backward pass did not hide), and the buckets planned. */
double rn_dist_wait_seconds(const rn_dist *d);
int rn_dist_nbuckets(const rn_dist *d);

/* Ends every rank of the job at once (MPI_Abort) after an error on this
** one; returns only on a single rank. */
void rn_dist_abort(rn_dist *d, int code);
/* Leaves the job (MPI_Finalize) and frees d. NULL is fine. */
void rn_dist_free(rn_dist *d);

/* Splits params [0, n) into buckets of about `target` floats whose edges
** fall on layer boundaries, from the top down: writes the bucket starts
** in decreasing order into lo (bucket k is [lo[k], k ? lo[k-1] : n)) and
** returns the count. ends: (nlayers) each layer's parameter end offset (0
** for none), in layer order. lo must hold nlayers + 1 entries. Also
** writes watermark: (nlayers) the largest end of layers 0..i-1, at and
** above which every gradient is final once layer i's backward is done. */
int rn_dist_plan_buckets(const size_t *ends, int nlayers, size_t n, size_t target, size_t *lo, size_t *watermark);

#endif
