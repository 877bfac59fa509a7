/*
** Data-parallel training over MPI (see dist.h): joining the job, the
** gradient buckets started during backward, the sums and broadcasts of
** the training loop, the heartbeat and the timeout that turns a hung rank
** into an error. Without MPI at build time (RN_HAVE_MPI undefined) only
** the single-rank paths remain.
**
** Every MPI call is made by the thread that called rn_dist_init, or by
** the OpenMP master thread in batchnorm, which is the same thread, so
** MPI_THREAD_FUNNELED is enough.
*/
#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

#ifdef RN_HAVE_MPI
#include <mpi.h>
#endif

enum { TAG_BEAT = 7301 };

struct rn_dist {
    int rank, size, mpi;   /* mpi: this process called MPI_Init */
    rn_dist_config cfg;
    rn_model *m;
    rn_model_hooks hooks;
    int nb, next;          /* buckets; the next one to start in this backward */
    size_t *lo;            /* bucket k is [lo[k], k ? lo[k-1] : nparams) */
    size_t *watermark;     /* per layer: after its backward, gradients at or above are final */
    double wait_s;         /* time waiting for buckets after backward */
    rn_status failed;      /* a timeout happened: every later call returns this */
    rn_error fail_err;
    long step;             /* the step this rank is at (heartbeat) */
    double beat_sent;      /* when this rank last sent its heartbeat */
    long *peer_step;       /* last heartbeat heard from each rank (rank 0: all; others: rank 0) */
    double *peer_time;     /* when it was heard */
#ifdef RN_HAVE_MPI
    MPI_Request *bucket_req;
    MPI_Request *beat_rx, *beat_tx;
    long *rx_val, *tx_val;
#endif
};


/* The rank count an MPI launcher announced in the environment (0: none). */
static int launcher_size(void) {
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v) v = getenv("PMI_SIZE");
    if (!v) v = getenv("PMIX_SIZE");
    return v ? atoi(v) : 0;
}

int rn_dist_rank(const rn_dist *d) { return d ? d->rank : 0; }
int rn_dist_size(const rn_dist *d) { return d ? d->size : 1; }
double rn_dist_wait_seconds(const rn_dist *d) { return d ? d->wait_s : 0; }
int rn_dist_nbuckets(const rn_dist *d) { return d ? d->nb : 0; }

/* Frees what attach and init allocated (not the MPI state). */
static void free_arrays(rn_dist *d) {
    free(d->lo);
    free(d->watermark);
    free(d->peer_step);
    free(d->peer_time);
#ifdef RN_HAVE_MPI
    free(d->bucket_req);
    free(d->beat_rx);
    free(d->beat_tx);
    free(d->rx_val);
    free(d->tx_val);
#endif
}

/* End of the parameters of layer l in the flat buffer (0: it has none). */
static size_t param_end(const rn_layer *l) {
    size_t e = 0, ws = (size_t)l->k * l->k * l->c_in * l->c_out;
    switch (l->kind) {
    case RN_L_CONV:
        e = l->w + ws;
        if (l->bias && l->b + (size_t)l->c_out > e) e = l->b + (size_t)l->c_out;
        break;
    case RN_L_BN: e = (l->w > l->b ? l->w : l->b) + (size_t)l->c_out; break;
    case RN_L_FC:
        e = l->w + (size_t)l->c_in * l->c_out;
        if (l->b + (size_t)l->c_out > e) e = l->b + (size_t)l->c_out;
        break;
    default: break;
    }
    return e;
}

#ifdef RN_HAVE_MPI

/* Seconds on a monotonic clock. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Records the heartbeats that arrived and listens for the next ones. */
static void poll_beats(rn_dist *d) {
    for (int p = 0; p < d->size; p++) {
        int done = 0;
        if (d->beat_rx[p] == MPI_REQUEST_NULL) continue;
        MPI_Test(&d->beat_rx[p], &done, MPI_STATUS_IGNORE);
        if (!done) continue;
        d->peer_step[p] = d->rx_val[p];
        d->peer_time[p] = now();
        MPI_Irecv(&d->rx_val[p], 1, MPI_LONG, p, TAG_BEAT, MPI_COMM_WORLD, &d->beat_rx[p]);
    }
}

/* The error of a wait that ran out of time, naming the rank that stopped:
** the one whose heartbeat is the oldest, if it has been silent for longer
** than a waiting rank ever is (rank 0 hears every rank; the others hear
** rank 0). */
static rn_status timeout_error(rn_dist *d, const char *what, rn_error *err) {
    int late = -1;
    const double t = now(), silent = d->cfg.timeout / 2 < 5 ? d->cfg.timeout / 2 : 5;
    for (int p = 0; p < d->size; p++)
        if (p != d->rank && d->beat_rx[p] != MPI_REQUEST_NULL && t - d->peer_time[p] > silent &&
            (late < 0 || d->peer_time[p] < d->peer_time[late]))
            late = p;
    if (late >= 0)
        rn_fail(err, RN_ERR_IO, "rank %d: waited %.0f s for %s: rank %d stopped responding (its last heartbeat was "
                "for step %ld, %.0f s ago; this rank is at step %ld)", d->rank, d->cfg.timeout, what, late,
                d->peer_step[late], now() - d->peer_time[late], d->step);
    else
        rn_fail(err, RN_ERR_IO, "rank %d: waited %.0f s for %s at step %ld: another rank stopped responding%s",
                d->rank, d->cfg.timeout, what, d->step, d->rank ? " (rank 0 names it)" : "");
    d->failed = RN_ERR_IO;
    d->fail_err = *err;
    return RN_ERR_IO;
}

/* Whether ranks d->rank and p exchange heartbeats: a star around rank 0. */
static int beat_peer(const rn_dist *d, int p) { return p != d->rank && (d->rank == 0 || p == 0); }

/* Sends this rank's step to its heartbeat peers (a beat still in flight
** is not repeated: a beat only says "alive") and takes in theirs. */
static void send_beats(rn_dist *d) {
    for (int p = 0; p < d->size; p++) {
        if (!beat_peer(d, p)) continue;
        int done = 1;
        if (d->beat_tx[p] != MPI_REQUEST_NULL) MPI_Test(&d->beat_tx[p], &done, MPI_STATUS_IGNORE);
        if (!done) continue;
        d->tx_val[p] = d->step;
        MPI_Isend(&d->tx_val[p], 1, MPI_LONG, p, TAG_BEAT, MPI_COMM_WORLD, &d->beat_tx[p]);
    }
    d->beat_sent = now();
    poll_beats(d);
}

/* Waits for n requests, polling (MPI_Test moves non-blocking collectives
** forward) with a deadline and a heartbeat every second (a waiting rank is
** alive; a hung one falls silent); sleeps briefly between polls after a
** while so a rank that waits long leaves its core to the others. */
static rn_status wait_all(rn_dist *d, int n, MPI_Request *r, const char *what, rn_error *err) {
    const double deadline = now() + d->cfg.timeout;
    for (long polls = 0;; polls++) {
        int done = 0;
        MPI_Testall(n, r, &done, MPI_STATUSES_IGNORE);
        if (done) return RN_OK;
        if ((polls & 1023) == 0) {
            double t = now();
            if (t - d->beat_sent > 1.0) send_beats(d);
            else poll_beats(d);
            if (t > deadline) return timeout_error(d, what, err);
        }
        if (polls > 20000) nanosleep(&(struct timespec){0, 50000}, NULL);
    }
}

/* Joins the MPI job (see dist.h). */
static rn_status mpi_join(rn_dist *d, int *argc, char ***argv, rn_error *err) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return rn_fail(err, RN_ERR_IO, "MPI_Init_thread failed");
    d->mpi = 1;
    if (provided < MPI_THREAD_FUNNELED)
        return rn_fail(err, RN_ERR_UNSUPPORTED, "MPI provides thread level %d, below MPI_THREAD_FUNNELED", provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    size_t s = (size_t)d->size;
    d->peer_step = malloc(s * sizeof(long));
    d->peer_time = malloc(s * sizeof(double));
    d->beat_rx = malloc(s * sizeof(MPI_Request));
    d->beat_tx = malloc(s * sizeof(MPI_Request));
    d->rx_val = calloc(s, sizeof(long));
    d->tx_val = calloc(s, sizeof(long));
    if (!d->peer_step || !d->peer_time || !d->beat_rx || !d->beat_tx || !d->rx_val || !d->tx_val)
        return rn_fail(err, RN_ERR_NOMEM, "out of memory");
    for (int p = 0; p < d->size; p++) {
        d->peer_step[p] = -1, d->peer_time[p] = now();
        d->beat_rx[p] = d->beat_tx[p] = MPI_REQUEST_NULL;
        if (beat_peer(d, p))
            MPI_Irecv(&d->rx_val[p], 1, MPI_LONG, p, TAG_BEAT, MPI_COMM_WORLD, &d->beat_rx[p]);
    }
    return RN_OK;
}

/* The MPI library's version string. */
const char *rn_dist_backend(void) {
    static char v[MPI_MAX_LIBRARY_VERSION_STRING]; /* written once, the same each time */
    int n = 0;
    MPI_Get_library_version(v, &n);
    char *comma = strchr(v, ',');
    if (comma) *comma = '\0';
    return v;
}

/* Records the step this rank starts and sends it as a heartbeat. */
void rn_dist_step(rn_dist *d, long step) {
    if (!d || d->size < 2) return;
    d->step = step;
    send_beats(d);
}

/* Starts the non-blocking sum of bucket k. */
static void start_bucket(rn_dist *d, int k) {
    size_t lo = d->lo[k], hi = k ? d->lo[k - 1] : d->m->nparams;
    MPI_Iallreduce(MPI_IN_PLACE, d->m->grads + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                   &d->bucket_req[k]);
}

/* The backward hook: starts every bucket the finished layer completed and
** lets the ones in flight progress. */
static void layer_done(void *ctx, int layer) {
    rn_dist *d = ctx;
    if (d->failed) return;
    while (d->next < d->nb && d->lo[d->next] >= d->watermark[layer]) start_bucket(d, d->next++);
    int done;
    if (d->next > 0) MPI_Testall(d->next, d->bucket_req, &done, MPI_STATUSES_IGNORE);
}

/* Waits for the buckets, averages gradients and loss (see dist.h). */
rn_status rn_dist_finish_grads(rn_dist *d, double *loss, rn_error *err) {
    if (!d || d->size < 2 || !d->m) return RN_OK;
    if (d->failed) return rn_fail(err, d->failed, "%s", d->fail_err.msg);
    double t0 = now();
    while (d->next < d->nb) start_bucket(d, d->next++);
    rn_status st = wait_all(d, d->nb, d->bucket_req, "the gradient sums", err);
    d->next = 0;
    d->wait_s += now() - t0;
    if (st) return st;
    const float inv = 1.0f / (float)d->size;
    float *g = d->m->grads;
    const size_t n = d->m->nparams;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= inv;
    if (!loss) return RN_OK;
    st = rn_dist_sum(d, loss, 1, err);
    *loss /= d->size;
    return st;
}

/* Sums n doubles across ranks in place. */
rn_status rn_dist_sum(rn_dist *d, double *v, int n, rn_error *err) {
    if (!d || d->size < 2) return RN_OK;
    if (d->failed) return rn_fail(err, d->failed, "%s", d->fail_err.msg);
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
    return wait_all(d, 1, &r, "a sum across ranks", err);
}

/* Broadcasts rank 0's bytes, in pieces that fit MPI's int counts. */
rn_status rn_dist_bcast(rn_dist *d, void *buf, size_t bytes, rn_error *err) {
    if (!d || d->size < 2) return RN_OK;
    if (d->failed) return rn_fail(err, d->failed, "%s", d->fail_err.msg);
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += piece) {
        MPI_Request r;
        size_t n = bytes - off < piece ? bytes - off : piece;
        MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
        rn_status st = wait_all(d, 1, &r, "rank 0's broadcast", err);
        if (st) return st;
    }
    return RN_OK;
}

/* Ends the whole job. */
void rn_dist_abort(rn_dist *d, int code) {
    if (d && d->mpi && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

/* Cancels the heartbeat receives still posted. */
static void stop_beats(rn_dist *d) {
    for (int p = 0; d->beat_rx && p < d->size; p++) {
        if (d->beat_rx[p] != MPI_REQUEST_NULL) {
            MPI_Cancel(&d->beat_rx[p]);
            MPI_Wait(&d->beat_rx[p], MPI_STATUS_IGNORE);
        }
        if (d->beat_tx[p] != MPI_REQUEST_NULL) MPI_Wait(&d->beat_tx[p], MPI_STATUS_IGNORE);
    }
}

/* Leaves the job and frees d. */
void rn_dist_free(rn_dist *d) {
    if (!d) return;
    if (d->m && d->m->hooks == &d->hooks) d->m->hooks = NULL;
    if (d->mpi) {
        if (!d->failed) stop_beats(d);
        MPI_Finalize();
    }
    free_arrays(d);
    free(d);
}

#else /* no MPI: one rank */

const char *rn_dist_backend(void) { return "none"; }
void rn_dist_step(rn_dist *d, long step) { (void)d, (void)step; }
static void layer_done(void *ctx, int layer) { (void)ctx, (void)layer; }
rn_status rn_dist_finish_grads(rn_dist *d, double *loss, rn_error *err) { return (void)d, (void)loss, (void)err, RN_OK; }
rn_status rn_dist_sum(rn_dist *d, double *v, int n, rn_error *err) { return (void)d, (void)v, (void)n, (void)err, RN_OK; }
rn_status rn_dist_bcast(rn_dist *d, void *buf, size_t bytes, rn_error *err) {
    return (void)d, (void)buf, (void)bytes, (void)err, RN_OK;
}
void rn_dist_abort(rn_dist *d, int code) { (void)d, (void)code; }
void rn_dist_free(rn_dist *d) {
    if (!d) return;
    free_arrays(d);
    free(d);
}

#endif

/* Joins the job, or makes a single rank (see dist.h). */
rn_status rn_dist_init(int *argc, char ***argv, rn_dist **out, rn_error *err) {
    rn_dist *d = calloc(1, sizeof *d);
    *out = NULL;
    if (!d) return rn_fail(err, RN_ERR_NOMEM, "out of memory");
    d->size = 1;
    d->cfg = (rn_dist_config){0, RN_DIST_BUCKET_FLOATS, RN_DIST_TIMEOUT};
    rn_status st = RN_OK;
#ifdef RN_HAVE_MPI
    if (launcher_size() > 0) st = mpi_join(d, argc, argv, err);
#else
    (void)argc, (void)argv;
    if (launcher_size() > 1)
        st = rn_fail(err, RN_ERR_UNSUPPORTED, "started by an MPI launcher with %d processes, but this resnet was "
                     "built without MPI (install libopenmpi-dev and rebuild)", launcher_size());
#endif
    if (st) {
        rn_dist_free(d);
        return st;
    }
    *out = d;
    return RN_OK;
}

/* The batchnorm hook: sums through MPI (a failure is kept in d and
** returned after the step). */
static void bn_sum(void *ctx, double *v, int n) {
    rn_error e;
    rn_dist_sum(ctx, v, n, &e);
}

/* Plans the buckets for m and installs the hooks (see dist.h). */
rn_status rn_dist_attach(rn_dist *d, rn_model *m, const rn_dist_config *c, rn_error *err) {
    if (!d || d->size < 2) return RN_OK;
    if (!(c->timeout > 0) || c->bucket_floats == 0)
        return rn_fail(err, RN_ERR_ARG, "data-parallel: timeout %g s and bucket %zu floats must be positive",
                       c->timeout, c->bucket_floats);
    d->cfg = *c;
    d->m = m;
    size_t *ends = malloc((size_t)m->nlayers * sizeof *ends);
    d->lo = malloc(((size_t)m->nlayers + 1) * sizeof *d->lo);
    d->watermark = malloc((size_t)m->nlayers * sizeof *d->watermark);
    int ok = ends && d->lo && d->watermark;
#ifdef RN_HAVE_MPI
    ok = ok && (d->bucket_req = malloc(((size_t)m->nlayers + 1) * sizeof *d->bucket_req));
#endif
    if (!ok) {
        free(ends);
        return rn_fail(err, RN_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->nlayers; i++) ends[i] = param_end(&m->layers[i]);
    d->nb = rn_dist_plan_buckets(ends, m->nlayers, m->nparams, c->bucket_floats, d->lo, d->watermark);
    free(ends);
    d->hooks = (rn_model_hooks){layer_done, d, {c->sync_bn ? bn_sum : NULL, d}};
    m->hooks = &d->hooks;
    return RN_OK;
}

/* Whether any rank raised the flag (see dist.h). */
rn_status rn_dist_any(rn_dist *d, int *flag, rn_error *err) {
    double v = *flag != 0;
    rn_status st = rn_dist_sum(d, &v, 1, err);
    *flag = v > 0;
    return st;
}

/* Compares every rank's value with rank 0's (see dist.h). */
rn_status rn_dist_check_same(rn_dist *d, unsigned long value, const char *what, rn_error *err) {
    if (!d || d->size < 2) return RN_OK;
    unsigned long root = value;
    rn_status st = rn_dist_bcast(d, &root, sizeof root, err);
    double differ = root != value;
    if (!st) st = rn_dist_sum(d, &differ, 1, err);
    if (!st && differ > 0)
        st = rn_fail(err, RN_ERR_MISMATCH, "rank %d: %s differs from rank 0's on %.0f of %d ranks%s", d->rank, what,
                     differ, d->size, root != value ? ", this one among them" : "");
    return st;
}
