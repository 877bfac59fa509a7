/*
** The threaded data loader (see loader.h).
**
** Batch b of an epoch is built by one worker into slot b % nslots of a
** ring. A worker claims the next unclaimed batch only when its slot is
** empty; the consumer takes batches strictly in order, keeps the one it
** was handed until its next call, then frees that slot. Everything shared
** is guarded by one mutex; the batch buffers themselves are written only
** by the worker that claimed the slot and read only after it is READY.
**
** Abandoning an epoch (rn_loader_start again, rn_loader_free) bumps a
** generation counter that filling workers poll between samples, then
** waits until no worker is filling before the slots are reused.
**
** Skipped files are recorded in the slot of their batch and published
** (counted, queued as messages) when the consumer takes that batch, so
** the counts seen by the caller do not depend on how far ahead the
** workers happen to be.
*/
#include "data/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/rng.h"

#define RN_LOADER_MAX_WORKERS 256

enum { SLOT_EMPTY, SLOT_FILLING, SLOT_READY };

/* One batch buffer of the ring and what its filling produced. */
typedef struct {
    int state;          /* SLOT_*, guarded by the loader's mutex */
    rn_batch batch;
    rn_status status;   /* RN_OK, or the error that stopped this batch */
    rn_error err;
    int nskip;          /* undecodable samples of this batch */
    size_t *skip_idx;   /* their dataset indices (batch entries) */
    char **skip_msg;    /* their messages, owned until published (may be NULL) */
} slot;

struct rn_loader {
    const rn_dataset *d;
    rn_augment aug;
    rn_loader_config cfg;
    size_t n, nbatches, sample_floats;
    int min_side;
    size_t *order;          /* the epoch's order; written only while no worker fills */
    int epoch;
    slot *slots;
    int nslots;
    pthread_t *threads;
    int nthreads;
    int sync_init;          /* mutex and conditions initialized */
    pthread_mutex_t mu;
    pthread_cond_t work;    /* workers wait here for a claimable batch */
    pthread_cond_t ready;   /* the consumer and rn_loader_start wait here */
    /* guarded by mu: */
    int quit, active, started, busy;
    size_t claim, cur, end; /* next batch to claim, next to hand out, end of epoch */
    slot *held;             /* the slot the caller holds */
    rn_status failed;       /* sticky error of this epoch */
    rn_error fail_err;
    unsigned char *reported;/* per sample: skip already counted */
    size_t skipped;
    char **msgs;            /* pending messages msgs[head..nmsg) */
    size_t nmsg, head, cap_msg;
    atomic_uint gen;        /* bumped to abandon in-flight work */
};

/* splitmix64's finalizer: a strong 64-bit mix. */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The seed of one sample's augmentation, from (seed, epoch, index) only. */
uint64_t rn_loader_sample_seed(uint64_t seed, int epoch, size_t index) {
    return mix64(mix64(mix64(seed) ^ (uint64_t)(uint32_t)epoch) ^ (uint64_t)index);
}

/* The epoch's order: identity, or a Fisher-Yates shuffle driven by an
** rn_rng seeded from (seed, epoch). */
static void make_order(rn_loader *l, int epoch) {
    for (size_t i = 0; i < l->n; i++) l->order[i] = i;
    if (!l->cfg.shuffle) return;
    rn_rng r = {mix64(mix64(l->cfg.seed ^ 0x53485546464C45ull) ^ (uint64_t)(uint32_t)epoch)};
    for (size_t i = l->n - 1; i > 0; i--) {
        size_t j = (size_t)(rn_rng_uniform(&r) * (double)(i + 1));
        if (j > i) j = i;
        size_t t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
}

/* Frees the skip messages a slot still owns. */
static void slot_clear(slot *s) {
    for (int i = 0; i < s->nskip; i++) free(s->skip_msg[i]);
    s->nskip = 0;
}

/* Fetches sample idx as an image: a view into a memory dataset, or a
** decoded file (*owned = 1, free with rn_image_free). */
static rn_status get_image(const rn_loader *l, size_t idx, rn_image *im, int *owned, rn_error *e) {
    const rn_dataset *d = l->d;
    *owned = 0;
    if (d->kind == RN_DS_MEMORY) {
        size_t sz = (size_t)d->h * d->w * d->c;
        *im = (rn_image){d->h, d->w, d->c, d->pixels + idx * sz};
        return RN_OK;
    }
    *im = (rn_image){0, 0, 0, NULL};
    rn_status st = rn_dataset_get(d, idx, l->min_side, im, e);
    *owned = st == RN_OK;
    return st;
}

/* Builds batch b into slot s: decode, augment, label, in order; skips
** undecodable files unless strict; stops early when the generation
** changes (the result is then discarded). Runs without the mutex. */
static void fill(rn_loader *l, slot *s, size_t b, unsigned gen) {
    size_t first = b * (size_t)l->cfg.batch, cnt = l->n - first;
    if (cnt > (size_t)l->cfg.batch) cnt = (size_t)l->cfg.batch;
    if (l->cfg.nshards > 1) { /* this rank's slice of the global batch */
        size_t k = (size_t)l->cfg.nshards, r = (size_t)l->cfg.shard, lo = cnt * r / k, hi = cnt * (r + 1) / k;
        first += lo, cnt = hi - lo;
    }
    slot_clear(s);
    s->batch.first = first;
    s->status = RN_OK;
    int k = 0;
    for (size_t t = 0; t < cnt; t++) {
        if (atomic_load_explicit(&l->gen, memory_order_relaxed) != gen) break;
        size_t idx = l->order[first + t];
        rn_image im;
        rn_error e = {RN_OK, ""};
        int owned;
        rn_status st = get_image(l, idx, &im, &owned, &e);
        if (st != RN_OK) {
            if (!l->cfg.strict && (st == RN_ERR_FORMAT || st == RN_ERR_IO)) {
                s->skip_idx[s->nskip] = idx;
                s->skip_msg[s->nskip++] = strdup(e.msg);
                continue;
            }
            s->status = st;
            s->err = e;
            break;
        }
        rn_augment_sample(&l->aug, &im, l->cfg.train, rn_loader_sample_seed(l->cfg.seed, l->epoch, idx),
                          s->batch.x + (size_t)k * l->sample_floats);
        s->batch.labels[k++] = l->d->labels[idx];
        if (owned) rn_image_free(&im);
    }
    s->batch.n = k;
}

/* Appends a message to the pending queue (taking ownership); dropped if
** memory is short. Caller holds the mutex. */
static void push_message(rn_loader *l, char *msg) {
    if (!msg) return;
    if (l->head == l->nmsg) l->head = l->nmsg = 0;
    if (l->nmsg == l->cap_msg) {
        size_t cap = l->cap_msg ? 2 * l->cap_msg : 16;
        char **m = realloc(l->msgs, cap * sizeof *m);
        if (!m) {
            free(msg);
            return;
        }
        l->msgs = m;
        l->cap_msg = cap;
    }
    l->msgs[l->nmsg++] = msg;
}

/* Publishes a slot's skips: each file counted and reported once. Caller
** holds the mutex. */
static void publish_skips(rn_loader *l, slot *s) {
    for (int i = 0; i < s->nskip; i++) {
        size_t idx = s->skip_idx[i];
        if (l->reported[idx]) {
            free(s->skip_msg[i]);
            continue;
        }
        l->reported[idx] = 1;
        l->skipped++;
        push_message(l, s->skip_msg[i]);
    }
    s->nskip = 0;
}

/* True when a worker may claim the next batch. Caller holds the mutex. */
static int can_claim(const rn_loader *l) {
    return l->active && l->claim < l->end && l->slots[l->claim % (size_t)l->nslots].state == SLOT_EMPTY;
}

/* Worker thread: claims batches in order and fills them until quit. */
static void *worker(void *arg) {
    rn_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && !can_claim(l)) pthread_cond_wait(&l->work, &l->mu);
        if (l->quit) break;
        size_t b = l->claim++;
        slot *s = &l->slots[b % (size_t)l->nslots];
        unsigned gen = atomic_load(&l->gen);
        s->state = SLOT_FILLING;
        l->busy++;
        pthread_mutex_unlock(&l->mu);
        fill(l, s, b, gen);
        pthread_mutex_lock(&l->mu);
        l->busy--;
        s->state = gen == atomic_load(&l->gen) ? SLOT_READY : SLOT_EMPTY;
        pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Stops and joins the worker threads. */
static void stop_workers(rn_loader *l) {
    if (!l->sync_init) return;
    pthread_mutex_lock(&l->mu);
    l->quit = 1;
    l->active = 0;
    atomic_fetch_add(&l->gen, 1);
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
    l->nthreads = 0;
}

/* Stops the workers (mid-epoch too) and frees everything. */
void rn_loader_free(rn_loader *l) {
    if (!l) return;
    stop_workers(l);
    if (l->sync_init) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->work);
        pthread_cond_destroy(&l->ready);
    }
    for (int i = 0; l->slots && i < l->nslots; i++) {
        slot_clear(&l->slots[i]);
        free(l->slots[i].batch.x);
        free(l->slots[i].batch.labels);
        free(l->slots[i].skip_idx);
        free(l->slots[i].skip_msg);
    }
    for (size_t i = l->head; i < l->nmsg; i++) free(l->msgs[i]);
    free(l->msgs);
    free(l->slots);
    free(l->threads);
    free(l->order);
    free(l->reported);
    free(l);
}

/* Checks the dataset and configuration a loader is created with. */
static rn_status check_args(const rn_dataset *d, const rn_augment *a, const rn_loader_config *c,
                            rn_error *err) {
    if (!d || !a || !c) return rn_fail(err, RN_ERR_ARG, "data loader: NULL dataset, augmentation or config");
    if (d->n == 0 || !d->labels)
        return rn_fail(err, RN_ERR_ARG, "data loader: %s: the dataset is empty", d->source);
    if (d->kind == RN_DS_MEMORY && (!d->pixels || d->h < 1 || d->w < 1 || d->c < 1))
        return rn_fail(err, RN_ERR_ARG, "data loader: %s: memory dataset without pixels", d->source);
    if (d->kind == RN_DS_FILES && !d->paths)
        return rn_fail(err, RN_ERR_ARG, "data loader: %s: file dataset without paths", d->source);
    if (c->batch < 1) return rn_fail(err, RN_ERR_ARG, "data loader: batch size %d, expected >= 1", c->batch);
    if (c->workers < 0 || c->workers > RN_LOADER_MAX_WORKERS)
        return rn_fail(err, RN_ERR_ARG, "data loader: %d workers, expected 0..%d", c->workers,
                       RN_LOADER_MAX_WORKERS);
    if (c->nshards < 0 || (c->nshards > 0 && (c->shard < 0 || c->shard >= c->nshards)))
        return rn_fail(err, RN_ERR_ARG, "data loader: shard %d of %d, expected 0 <= shard < shards", c->shard,
                       c->nshards);
    if (c->prefetch < 0 || c->prefetch > 1024)
        return rn_fail(err, RN_ERR_ARG, "data loader: prefetch %d, expected 0..1024", c->prefetch);
    return rn_augment_check(a, err);
}

/* Allocates the ring slots. */
static rn_status alloc_slots(rn_loader *l, rn_error *err) {
    size_t bs = (size_t)l->cfg.batch;
    if (l->cfg.nshards > 1) bs = (bs + (size_t)l->cfg.nshards - 1) / (size_t)l->cfg.nshards; /* the largest slice */
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    if (!l->slots) return rn_fail(err, RN_ERR_NOMEM, "data loader: out of memory for %d slots", l->nslots);
    for (int i = 0; i < l->nslots; i++) {
        slot *s = &l->slots[i];
        void *x = NULL;
        if (posix_memalign(&x, 64, bs * l->sample_floats * sizeof(float)) != 0) x = NULL;
        s->batch.x = x;
        s->batch.labels = malloc(bs * sizeof(int));
        s->skip_idx = malloc(bs * sizeof(size_t));
        s->skip_msg = malloc(bs * sizeof(char *));
        if (!s->batch.x || !s->batch.labels || !s->skip_idx || !s->skip_msg)
            return rn_fail(err, RN_ERR_NOMEM, "data loader: out of memory for a batch of %zu x %zu floats",
                           bs, l->sample_floats);
    }
    return RN_OK;
}

/* Initializes the mutex and conditions and starts the workers. */
static rn_status start_workers(rn_loader *l, rn_error *err) {
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return rn_fail(err, RN_ERR_NOMEM, "data loader: cannot create a mutex");
    if (pthread_cond_init(&l->work, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        return rn_fail(err, RN_ERR_NOMEM, "data loader: cannot create a condition variable");
    }
    if (pthread_cond_init(&l->ready, NULL) != 0) {
        pthread_cond_destroy(&l->work);
        pthread_mutex_destroy(&l->mu);
        return rn_fail(err, RN_ERR_NOMEM, "data loader: cannot create a condition variable");
    }
    l->sync_init = 1;
    int want = l->cfg.workers;
    if (want == 0) return RN_OK;
    l->threads = calloc((size_t)want, sizeof *l->threads);
    if (!l->threads) return rn_fail(err, RN_ERR_NOMEM, "data loader: out of memory for %d threads", want);
    for (int i = 0; i < want; i++) {
        if (pthread_create(&l->threads[i], NULL, worker, l) != 0)
            return rn_fail(err, RN_ERR_NOMEM, "data loader: cannot start worker thread %d of %d", i + 1, want);
        l->nthreads = i + 1;
    }
    return RN_OK;
}

/* Creates a loader and starts its workers (see loader.h). */
rn_status rn_loader_create(const rn_dataset *d, const rn_augment *a, const rn_loader_config *cfg,
                           rn_loader **out, rn_error *err) {
    *out = NULL;
    rn_status st = check_args(d, a, cfg, err);
    if (st != RN_OK) return st;
    rn_loader *l = calloc(1, sizeof *l);
    if (!l) return rn_fail(err, RN_ERR_NOMEM, "data loader: out of memory");
    l->d = d;
    l->aug = *a;
    l->cfg = *cfg;
    l->n = d->n;
    l->nbatches = cfg->drop_last ? d->n / (size_t)cfg->batch : (d->n + (size_t)cfg->batch - 1) / (size_t)cfg->batch;
    l->sample_floats = (size_t)a->out_h * a->out_w * a->out_c;
    l->min_side = rn_augment_min_side(a, cfg->train);
    l->nslots = cfg->workers == 0 ? 1 : (cfg->prefetch > 0 ? cfg->prefetch : 2 * cfg->workers) + 1;
    atomic_init(&l->gen, 0);
    l->order = malloc(l->n * sizeof *l->order);
    l->reported = calloc(l->n, 1);
    if (!l->order || !l->reported)
        st = rn_fail(err, RN_ERR_NOMEM, "data loader: out of memory for %zu samples", l->n);
    if (st == RN_OK) st = alloc_slots(l, err);
    if (st == RN_OK) st = start_workers(l, err);
    if (st != RN_OK) {
        rn_loader_free(l);
        return st;
    }
    *out = l;
    return RN_OK;
}

/* Starts an epoch at a batch, abandoning the one in flight. */
rn_status rn_loader_start(rn_loader *l, int epoch, size_t start, rn_error *err) {
    if (epoch < 0 || start > l->nbatches)
        return rn_fail(err, RN_ERR_ARG, "data loader: start at epoch %d batch %zu, expected epoch >= 0 and "
                       "batch <= %zu", epoch, start, l->nbatches);
    pthread_mutex_lock(&l->mu);
    atomic_fetch_add(&l->gen, 1);
    l->active = 0;
    while (l->busy > 0) pthread_cond_wait(&l->ready, &l->mu);
    for (int i = 0; i < l->nslots; i++) {
        slot_clear(&l->slots[i]);
        l->slots[i].state = SLOT_EMPTY;
    }
    l->held = NULL;
    l->epoch = epoch;
    make_order(l, epoch);
    l->claim = l->cur = start;
    l->end = l->nbatches;
    l->failed = RN_OK;
    l->started = 1;
    l->active = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return RN_OK;
}

/* Batches per epoch. */
size_t rn_loader_batches(const rn_loader *l) { return l->nbatches; }

/* Takes the finished slot s (mutex held): publishes its skips, and
** returns 1 if it holds a batch to hand out, 0 if it was empty, or -1
** after recording its error. Slots not handed out are freed. */
static int take_slot(rn_loader *l, slot *s) {
    publish_skips(l, s);
    if (s->status != RN_OK) {
        l->failed = s->status;
        l->fail_err = s->err;
    }
    if (s->status == RN_OK && (s->batch.n > 0 || l->cfg.nshards > 1)) return 1;
    s->state = SLOT_EMPTY;
    pthread_cond_broadcast(&l->work);
    return s->status != RN_OK ? -1 : 0;
}

/* Next batch in order (see loader.h). */
rn_status rn_loader_next(rn_loader *l, const rn_batch **b, rn_error *err) {
    *b = NULL;
    pthread_mutex_lock(&l->mu);
    if (!l->started) {
        pthread_mutex_unlock(&l->mu);
        return rn_fail(err, RN_ERR_ARG, "data loader: rn_loader_start was not called");
    }
    if (l->held) {
        l->held->state = SLOT_EMPTY;
        l->held = NULL;
        pthread_cond_broadcast(&l->work);
    }
    while (l->failed == RN_OK && l->cur < l->end) {
        size_t bi = l->cur++;
        slot *s = &l->slots[bi % (size_t)l->nslots];
        if (l->nthreads == 0) { /* synchronous: build it here */
            unsigned gen = atomic_load(&l->gen);
            s->state = SLOT_FILLING;
            pthread_mutex_unlock(&l->mu);
            fill(l, s, bi, gen);
            pthread_mutex_lock(&l->mu);
            s->state = SLOT_READY;
        }
        while (s->state != SLOT_READY) pthread_cond_wait(&l->ready, &l->mu);
        int r = take_slot(l, s);
        if (r > 0) {
            l->held = s;
            *b = &s->batch;
            break;
        }
    }
    rn_status st = l->failed;
    if (st != RN_OK) rn_fail(err, st, "%s", l->fail_err.msg);
    pthread_mutex_unlock(&l->mu);
    return st;
}

/* Undecodable files skipped so far. */
size_t rn_loader_skipped(const rn_loader *l) {
    rn_loader *m = (rn_loader *)l; /* the mutex is not part of the value */
    pthread_mutex_lock(&m->mu);
    size_t n = m->skipped;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* Pops the oldest pending skip message into buf. */
int rn_loader_take_message(rn_loader *l, char *buf, size_t cap) {
    pthread_mutex_lock(&l->mu);
    int got = l->head < l->nmsg;
    if (got) {
        char *m = l->msgs[l->head++];
        if (cap > 0) {
            size_t len = strlen(m);
            if (len >= cap) len = cap - 1;
            memcpy(buf, m, len);
            buf[len] = '\0';
        }
        free(m);
    }
    pthread_mutex_unlock(&l->mu);
    return got;
}

/* Seconds on the monotonic clock. */
static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Images per second over the first max_batches batches of epoch 0. */
double rn_loader_bench(const rn_dataset *d, const rn_augment *a, const rn_loader_config *cfg,
                       size_t max_batches, rn_error *err) {
    rn_loader *l;
    if (rn_loader_create(d, a, cfg, &l, err) != RN_OK) return -1.0;
    double t0 = now_seconds();
    size_t images = 0;
    rn_status st = rn_loader_start(l, 0, 0, err);
    for (size_t k = 0; st == RN_OK && k < (max_batches ? max_batches : 1); k++) {
        const rn_batch *b;
        st = rn_loader_next(l, &b, err);
        if (st != RN_OK || !b) break;
        images += (size_t)b->n;
    }
    double dt = now_seconds() - t0;
    rn_loader_free(l);
    if (st != RN_OK) return -1.0;
    return dt > 0 ? (double)images / dt : 0.0;
}
