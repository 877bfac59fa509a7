/*
** `resnet train`: trains a network on a dataset with the fastai-style
** recipe (one-cycle, AdamW or SGD, fine-tuning a pretrained model with a
** frozen body first), printing the epoch table and writing checkpoints.
**
** `--resume DIR` continues a run from DIR's last checkpoint: the command
** line of the run is stored in the checkpoint and read first, so the
** resumed run uses the same settings, and flags given now override them
** (more --epochs, say).
*/
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/session.h"
#include "cli/train_opts.h"
#include "dist/dist.h"
#include "train/lrfind.h"
#include "train/memory.h"
#include "train/plot.h"
#include "train/trainer.h"

static const char *usage_text =
    "usage: resnet train [options]\n"
    "\n"
    "Trains a ResNet and prints one row per epoch: epoch, train_loss (smoothed),\n"
    "valid_loss, accuracy (and top-5 beyond 10 classes), time.\n"
    "\n"
    RN_DATA_HELP
    "model (default: resnet20 for 28/32-pixel data, resnet18 for folders):\n"
    RN_ARCH_HELP
    "  --init M.safetensors pretrained weights (torchvision/timm names); another class count gets a new head\n"
    "  --zero-init-residual start each residual branch's last BN at 0\n"
    RN_TRAIN_HELP
    "run:\n"
    "  --out DIR            write last.safetensors, best.safetensors, log.csv, curves.png\n"
    "  --resume DIR         continue the run checkpointed in DIR (its settings, then these flags)\n"
    "  --steps N            stop after N optimizer steps in all (checkpointing when --out is given)\n"
    "  --save-every N       also checkpoint every N steps (default: at the end of each epoch)\n"
    "  --skip-nonfinite     skip a step whose loss or gradient is NaN/Inf (default: stop with an error)\n"
    "  Ctrl-C / SIGTERM     finish the current step, checkpoint, and print how to resume\n"
    "  --seed S             seed of initialization, order and augmentation (default 0)\n"
    "  --threads T          compute threads (default: all cores)\n"
    RN_DTYPE_HELP
    "data-parallel (started as 'mpirun -np N resnet train ...'; --bs is the global batch,\n"
    "which N must divide; rank 0 prints and writes the checkpoints):\n"
    "  --sync-bn            batchnorm statistics over the global batch (default: per rank)\n"
    "  --bucket-mb MB       gradient allreduce bucket size (default 1)\n"
    "  --dist-timeout S     seconds to wait for a silent rank before failing the job (default 300)\n"
    "output:\n"
    "  --quiet              print nothing but errors\n"
    "  --json               one JSON object per epoch on stdout instead of the table:\n"
    "                       {\"epoch\", \"epochs\", \"train_loss\", \"valid_loss\", \"accuracy\", \"top5\", \"seconds\"}\n"
    "  --config FILE        options from a JSON or TOML file; the command line overrides it\n"
    "\n"
    "The progress bar is drawn only on a terminal (NO_COLOR=1: no colour).\n"
    "exit status: 0 done (or stopped by --steps), 1 failure while running, 2 bad usage\n";

static const char *lr_find_usage =
    "usage: resnet lr-find [options]\n"
    "\n"
    "fastai's learning-rate finder: trains for up to --iters steps while the rate\n"
    "grows exponentially, records the smoothed loss, stops when it diverges, prints\n"
    "the suggested rate (fastai's valley rule) and draws the curve. The model is\n"
    "not changed. Takes every data, model and optimizer option of 'resnet train'.\n"
    "\n"
    "  --start-lr R         first rate (default 1e-7)\n"
    "  --end-lr R           last rate (default 10)\n"
    "  --iters N            steps at most (default 100)\n"
    "  --plot FILE          draw loss against rate (PNG or SVG; default lr-find.png)\n";

/* Every option of `resnet train` and `resnet lr-find`. */
typedef struct {
    rn_data_args d;
    rn_arch_args a;
    rn_train_args t;
    const char *init, *out, *resume, *steps, *seed, *threads, *dtype, *save_every;
    const char *start_lr, *end_lr, *iters, *plot; /* lr-find */
    const char *bucket_mb, *dist_timeout;         /* data-parallel */
    int zero_init_residual, lr_find, quiet, json, sync_bn, skip_nonfinite;
} train_args;

/* Parses argv into *o; returns 1 for --help, -1 on error. Options of the
** other command (lr-find's sweep, train's --out/--resume/--steps) are refused. */
static int parse(int argc, char **argv, train_args *o) {
    const char *cmd = o->lr_find ? "lr-find" : "train";
    const rn_opt opts[] = {RN_DATA_OPTS(o->d), RN_ARCH_OPTS(o->a), RN_TRAIN_OPTS(o->t),
                           {"init", &o->init, 0}, {"seed", &o->seed, 0}, {"threads", &o->threads, 0},
                           {"dtype", &o->dtype, 0}, {"zero-init-residual", 0, &o->zero_init_residual}, {"out", &o->out, 0},
                           {"resume", &o->resume, 0}, {"steps", &o->steps, 0}, {"start-lr", &o->start_lr, 0},
                           {"end-lr", &o->end_lr, 0}, {"iters", &o->iters, 0}, {"plot", &o->plot, 0},
                           {"quiet", 0, &o->quiet}, {"json", 0, &o->json},
                           {"sync-bn", 0, &o->sync_bn}, {"bucket-mb", &o->bucket_mb, 0},
                           {"dist-timeout", &o->dist_timeout, 0}, {"save-every", &o->save_every, 0},
                           {"skip-nonfinite", 0, &o->skip_nonfinite}, {0, 0, 0}};
    int r = rn_args_parse(cmd, argc, argv, opts);
    if (r) return r;
    const char *wrong = o->lr_find ? (o->out ? "--out" : o->resume ? "--resume" : o->steps ? "--steps"
                                      : o->quiet ? "--quiet" : o->json ? "--json" : o->sync_bn ? "--sync-bn"
                                      : o->bucket_mb ? "--bucket-mb" : o->dist_timeout ? "--dist-timeout"
                                      : o->save_every ? "--save-every" : NULL)
                                   : (o->start_lr ? "--start-lr" : o->end_lr ? "--end-lr" : o->iters ? "--iters"
                                      : o->plot ? "--plot" : NULL);
    if (wrong) {
        rn_cli_error("%s: unknown option '%s' (see 'resnet %s --help')", cmd, wrong, cmd);
        return -1;
    }
    return 0;
}

/* Whether argument a is option name, as "--name" or "--name=value". */
static int is_option(const char *a, const char *name) {
    size_t n = strlen(name);
    return !strncmp(a, name, n) && (a[n] == 0 || a[n] == '=');
}

/* The command line to store with checkpoints: argv without --resume and
** --steps (a resumed run should neither resume again nor stop at once) and
** without --out (a resumed run writes where it was resumed from, so that
** a run directory can be moved or copied and resumed there). */
static char *args_json(int argc, char **argv) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 1; arr && i < argc; i++) {
        const char *a = argv[i];
        int valued = !strchr(a, '=') && i + 1 < argc;
        if (is_option(a, "--quiet") || is_option(a, "--json")) continue; /* how this run prints, not the run */
        if (is_option(a, "--resume") || is_option(a, "--steps") || is_option(a, "--out")) {
            i += valued;
            continue;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateString(a));
    }
    char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    return s;
}

/* For --resume: builds argv = the stored command line, then this one.
** Strings are owned by *store (free with free_argv). */
static char **merged_argv(const char *dir, int argc, char **argv, int *out_argc) {
    char *json = NULL;
    rn_error err;
    if (rn_checkpoint_args(dir, &json, &err)) {
        rn_cli_error("--resume: %s", err.msg);
        return NULL;
    }
    cJSON *arr = cJSON_Parse(json);
    free(json);
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    char **v = n >= 0 ? calloc((size_t)n + (size_t)argc + 1, sizeof(char *)) : NULL;
    if (!v) {
        cJSON_Delete(arr);
        rn_cli_error("--resume: %s: the stored command line is unreadable", dir);
        return NULL;
    }
    v[0] = strdup(argv[0]);
    for (int i = 0; i < n; i++) v[1 + i] = strdup(cJSON_GetArrayItem(arr, i)->valuestring);
    for (int i = 1; i < argc; i++) v[n + i] = strdup(argv[i]);
    cJSON_Delete(arr);
    *out_argc = n + argc;
    return v;
}

/* Frees an argv made by merged_argv. */
static void free_argv(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* Everything a training run holds, for one cleanup path. */
typedef struct {
    rn_dataset train, valid;
    rn_augment aug, eval_aug;
    rn_model *model;
    rn_loader *tl, *vl;
    rn_report *report;
    rn_trainer *trainer;
    rn_train_config cfg;
    rn_precision prec; /* --dtype, checked before any data is read */
    char *args;
    rn_dist *dist;     /* the data-parallel job (train only; one rank without mpirun) */
} run;

/* Frees everything a run holds. */
static void run_free(run *r) {
    rn_trainer_free(r->trainer);
    rn_report_free(r->report);
    rn_loader_free(r->tl);
    rn_loader_free(r->vl);
    rn_model_free(r->model);
    rn_dataset_free(&r->train);
    rn_dataset_free(&r->valid);
    free(r->args);
}

/* Builds the model: architecture (defaulting by data), classes and
** channels from the data, initialization, pretrained weights. */
static int make_model(train_args *o, run *r, uint64_t seed) {
    rn_spec spec;
    rn_error err;
    int memory = r->train.kind == RN_DS_MEMORY;
    if (!o->a.arch && !o->a.blocks && !o->a.widths && !o->a.block) o->a.arch = memory ? "resnet20" : "resnet18";
    if (rn_arch_spec(&o->a, &spec)) return -1;
    if (!o->a.classes) spec.classes = r->train.nclasses;
    if (!o->a.in_channels) spec.in_channels = memory ? r->train.c : 3;
    if (spec.classes != r->train.nclasses) {
        rn_cli_error("--classes %d does not match the %d classes of %s", spec.classes, r->train.nclasses, r->train.source);
        return -1;
    }
    if (rn_model_create(&spec, &r->model, &err)) {
        rn_cli_error("%s", err.msg);
        return -1;
    }
    rn_model_init(r->model, seed, o->zero_init_residual);
    if (rn_session_set_precision(o->lr_find ? "lr-find" : "train", r->model, r->prec)) return -1;
    int new_head = 0;
    if (o->init && !o->resume && rn_model_load_pretrained(r->model, o->init, &new_head, &err)) {
        rn_cli_error("--init: %s", err.msg);
        return -1;
    }
    if (o->init && !o->resume && new_head)
        fprintf(stderr, "resnet: %s: new head for %d classes (the file's head has another class count)\n", o->init,
                spec.classes);
    return 0;
}

/* Stores what inference needs in the model (rn_model_describe). */
static int describe_model(run *r) {
    rn_error err;
    if (!rn_model_describe(r->model, &r->train, &r->aug, &err)) return 0;
    rn_cli_error("%s", err.msg);
    return -1;
}

/* Creates the output directory and any missing parents, as `mkdir -p`
** does (`--out runs/fm` on a fresh checkout has no runs/ yet). */
static int make_out_dir(const char *dir) {
    if (!dir) return 0;
    char path[4096];
    const size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        rn_cli_error("--out: the directory name must be 1 to %zu bytes long", sizeof path - 1);
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (char *p = path + 1;; p++) { /* each prefix ending at a '/', then the whole path */
        const char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            rn_cli_error("--out: cannot create directory %s: %s", path, strerror(errno));
            return -1;
        }
        *p = c;
        if (!c) break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rn_cli_error("--out: %s exists and is not a directory", dir);
        return -1;
    }
    return 0;
}

/* Validates the architecture options before the data is opened. */
static int check_arch(const train_args *o) {
    rn_spec spec;
    rn_arch_args a = o->a;
    if (!a.arch && !a.blocks && !a.widths && !a.block) a.arch = "resnet20";
    return rn_arch_spec(&a, &spec);
}

/* Creates a loader over d as rn_session_loader does; a data-parallel rank's
** loader hands out only its slice of every batch. */
static int make_loader(const run *r, const rn_dataset *d, const rn_augment *aug, const rn_data_args *a, int train,
                       uint64_t seed, rn_loader **out) {
    rn_loader_config cfg;
    rn_error err;
    const int ranks = rn_dist_size(r->dist);
    if (rn_session_loader_config(d, a, train, seed, &cfg)) return -1;
    if (ranks > 1 && cfg.batch % ranks) {
        rn_cli_error("--bs %d is the global batch: the %d ranks must divide it", cfg.batch, ranks);
        return -1;
    }
    if (ranks > 1) cfg.shard = rn_dist_rank(r->dist), cfg.nshards = ranks;
    if (rn_loader_create(d, aug, &cfg, out, &err)) {
        rn_cli_error("%s", err.msg);
        return -1;
    }
    return 0;
}

/* Refuses, before any big allocation, a batch size, input size and
** architecture whose training step, optimizer state and loader batches
** would not fit in the memory available (see train/memory.h). */
static int check_memory(train_args *o, run *r, int h, int w) {
    rn_loader_config lc;
    rn_error err;
    if (rn_session_loader_config(&r->train, &o->d, 1, 0, &lc)) return -1;
    int c = r->model->spec.in_channels;
    double batch = (double)lc.batch * h * w * c * sizeof(float), queued = lc.workers ? lc.prefetch + 1 : 1;
    size_t loaders = (size_t)(batch * queued * (r->valid.n ? 2 : 1));
    int states = r->cfg.optim.kind == RN_OPTIM_SGD ? 1 : 2;
    if (rn_train_memory_check(r->model, lc.batch, h, w, states, loaders, &err)) {
        rn_cli_error("%s", err.msg);
        return -1;
    }
    return 0;
}

/* Converts and checks every option that needs no file, so that a bad
** value is a usage error (exit 2) before minutes of loading: fills r->cfg,
** r->prec and *seed, *threads, *h, *w; returns 0 or 2. */
static int check_args(train_args *o, run *r, long *seed, long *threads, int *h, int *w) {
    long steps = 0, save_every = 0;
    if (rn_args_int("seed", o->seed, 0, 0x7fffffffffffffffL, seed) || rn_args_int("threads", o->threads, 1, 1024, threads) ||
        rn_args_int("steps", o->steps, 1, 0x7fffffffffffffffL, &steps) ||
        rn_args_int("save-every", o->save_every, 1, 0x7fffffffffffffffL, &save_every) || rn_session_size(&o->d, h, w) ||
        rn_train_config_from_args(&o->t, &r->cfg) || rn_session_check(&o->d) || check_arch(o) ||
        rn_session_dtype(o->lr_find ? "lr-find" : "train", o->dtype, &r->prec))
        return 2;
    r->cfg.max_steps = steps, r->cfg.save_every = save_every, r->cfg.skip_nonfinite = o->skip_nonfinite;
    return 0;
}

/* Opens data and model and builds the loaders; returns an exit code. */
static int setup_data(train_args *o, run *r) {
    long seed = 0, threads = 0;
    int h, w;
    if (check_args(o, r, &seed, &threads, &h, &w)) return 2;
    const char *nan_step = getenv("RN_TEST_NAN_GRAD_STEP"); /* fault injection for tests/faults.sh */
    r->cfg.test_nan_step = nan_step ? atol(nan_step) : 0;
    if (threads > 0) omp_set_num_threads((int)threads);
    if (rn_session_open_data(o->d.data, o->d.labels, &r->train, &r->valid) || make_model(o, r, (uint64_t)seed))
        return 1;
    if (rn_session_batch_fits(r->model, &r->train, h, w, &o->d)) return 2;
    if (check_memory(o, r, h, w)) return 1;
    int c = r->model->spec.in_channels < 3 ? r->model->spec.in_channels : 3;
    if (rn_session_augment(&o->d, &r->train, h, w, c, &r->aug) || describe_model(r)) return 1;
    rn_session_model_augment(r->model, &r->eval_aug);
    if (make_loader(r, &r->train, &r->aug, &o->d, 1, (uint64_t)seed, &r->tl) ||
        make_loader(r, &r->valid, &r->eval_aug, &o->d, 0, (uint64_t)seed, &r->vl))
        return 1;
    return 0;
}

/* --json: prints one epoch as a JSON line (NaN as null) for scripts. */
static int json_epoch(const rn_epoch_info *e, void *user) {
    (void)user;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", e->epoch);
    cJSON_AddNumberToObject(o, "epochs", e->epochs);
    cJSON_AddNumberToObject(o, "train_loss", e->train_loss);
    cJSON_AddNumberToObject(o, "valid_loss", e->valid_loss);
    cJSON_AddNumberToObject(o, "accuracy", e->accuracy);
    cJSON_AddNumberToObject(o, "top5", e->top5);
    cJSON_AddNumberToObject(o, "seconds", e->seconds);
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s), fflush(stdout);
    free(s);
    cJSON_Delete(o);
    return 0;
}

/* Opens everything and builds the trainer (resuming when asked). */
static int setup(train_args *o, run *r, int argc, char **argv) {
    rn_error err;
    rn_dist_config dc = {o->sync_bn, RN_DIST_BUCKET_FLOATS, RN_DIST_TIMEOUT};
    double mb = 1;
    if (rn_args_float("bucket-mb", o->bucket_mb, 1e-3, 1e4, &mb) ||
        rn_args_float("dist-timeout", o->dist_timeout, 1, 1e6, &dc.timeout))
        return 2;
    dc.bucket_floats = (size_t)(mb * (1 << 20) / sizeof(float));
    int code = setup_data(o, r);
    const int lead = rn_dist_rank(r->dist) == 0; /* only rank 0 writes and prints */
    if (code || (lead && make_out_dir(o->out))) return code ? code : 1;
    r->args = args_json(argc, argv);
    r->cfg.out_dir = lead ? o->out : NULL, r->cfg.args_json = r->args, r->cfg.dist = r->dist;
    int tty = isatty(STDOUT_FILENO), color = tty && !getenv("NO_COLOR");
    if (o->json && lead) r->cfg.on_epoch = json_epoch;
    if ((lead && !o->quiet && !o->json &&
         rn_report_create(stdout, tty, color, r->model->spec.classes > 10, &r->report, &err)) ||
        rn_dist_attach(r->dist, r->model, &dc, &err) ||
        rn_trainer_create(r->model, r->tl, r->vl, &r->cfg, r->report, &r->trainer, &err) ||
        (o->resume && rn_trainer_resume(r->trainer, o->resume, &err))) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    const rn_train_state *s = rn_trainer_state(r->trainer);
    if (o->resume)
        fprintf(stderr, "resnet: resuming %s at epoch %d, batch %zu (step %ld)\n", o->resume, s->epoch, s->batch,
                s->step);
    return 0;
}

/* The signal that asked training to stop (0: none). A signal handler can
** only reach a global; the trainer polls it through cfg.stop after each step. */
static volatile sig_atomic_t stop_signal;

/* SIGINT/SIGTERM: note the signal; the trainer finishes its step, checkpoints
** and returns. SA_RESETHAND makes a second Ctrl-C kill at once, which the
** atomic checkpoint files survive. */
static void on_stop_signal(int sig) { stop_signal = sig; }

/* Installs on_stop_signal for SIGINT and SIGTERM (SA_RESTART: reads and
** writes in progress are not cut short). A SIGINT ignored on entry stays
** ignored, as for any program a script starts in the background with `&`. */
static void catch_stop_signals(void) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* After a stop by signal: says where the run is and how to continue;
** returns the shell's exit code for death by that signal (128 + number). */
static int report_interrupt(const rn_train_state *s, const char *out) {
    const char *name = stop_signal == SIGINT ? "SIGINT" : "SIGTERM";
    if (out)
        fprintf(stderr, "resnet: interrupted by %s at epoch %d, batch %zu (step %ld); checkpoint written to %s; "
                "continue with: resnet train --resume %s\n", name, s->epoch, s->batch, s->step, out, out);
    else
        fprintf(stderr, "resnet: interrupted by %s at step %ld; nothing was saved (no --out)\n", name, s->step);
    return 128 + stop_signal;
}

/* Runs training after setup; returns the exit code. */
static int train(run *r, const char *out, int quiet) {
    rn_error err;
    r->cfg.stop = &stop_signal;
    catch_stop_signals();
    rn_status st = rn_trainer_fit(r->trainer, &err);
    rn_session_print_skipped(r->tl, 0);
    rn_session_print_skipped(r->vl, 0);
    long first, nonfinite = rn_trainer_skipped(r->trainer, &first);
    if (nonfinite)
        fprintf(stderr, "resnet: skipped %ld steps with a non-finite loss, gradient or batchnorm statistic (the first: step %ld)\n",
                nonfinite, first);
    if (st) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    const rn_train_state *s = rn_trainer_state(r->trainer);
    if (stop_signal && s->epoch < r->cfg.epochs + r->cfg.freeze_epochs) return report_interrupt(s, out);
    size_t skipped = rn_loader_skipped(r->tl) + rn_loader_skipped(r->vl);
    if (skipped) fprintf(stderr, "resnet: %zu image files could not be decoded and were skipped\n", skipped);
    if (rn_dist_size(r->dist) > 1 && rn_dist_rank(r->dist) == 0 && !quiet)
        fprintf(stderr, "resnet: %d ranks, %d gradient buckets; %.2f s of the run waited for gradient sums after "
                "backward\n", rn_dist_size(r->dist), rn_dist_nbuckets(r->dist), rn_dist_wait_seconds(r->dist));
    if (quiet || rn_dist_rank(r->dist) > 0) return 0;
    if (out && s->batch > 0)
        printf("stopped at epoch %d, batch %zu (step %ld); continue with: resnet train --resume %s\n", s->epoch,
               s->batch, s->step, out);
    else if (out)
        printf("model: %s/last.safetensors (best: %s/best.safetensors)\n", out, out);
    return 0;
}

/* Leaves the data-parallel job: with an error on a rank, ends every rank
** (the others would wait for it until the timeout); returns code. */
static int leave_job(rn_dist *d, int code) {
    if (code && rn_dist_size(d) > 1) {
        fflush(stdout);
        fflush(stderr);
        rn_dist_abort(d, code);
    }
    rn_dist_free(d);
    return code;
}

/* `resnet train` on this rank: see usage_text. */
static int train_cmd(int argc, char **argv, run *rp) {
    train_args o = {0};
    run r = {.dist = rp->dist};
    int pr = parse(argc, argv, &o), n = argc, code;
    char **v = NULL;
    if (pr == 1) return rn_dist_rank(r.dist) ? 0 : (fputs(usage_text, stdout), 0);
    if (pr < 0) return 2;
    if (o.resume) {
        const char *dir = o.resume;
        if (!(v = merged_argv(dir, argc, argv, &n))) return 2;
        memset(&o, 0, sizeof o);
        if (parse(n, v, &o) < 0) return free_argv(v, n), 2;
        o.resume = dir;
        if (!o.out) o.out = dir;
    }
    code = setup(&o, &r, n, v ? v : argv);
    if (!code) code = train(&r, o.out, o.quiet || o.json);
    run_free(&r);
    free_argv(v, n);
    return code;
}

/* `resnet train`: joins the data-parallel job, if any, and trains. */
int rn_cmd_train(int argc, char **argv) {
    run r = {0};
    rn_error err;
    if (rn_dist_init(NULL, NULL, &r.dist, &err)) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    int code = train_cmd(argc, argv, &r);
    return leave_job(r.dist, code);
}

/* Reads lr-find's own options into *c (rates, steps); returns 0 or 2. */
static int lr_find_config(const train_args *o, rn_lr_find_config *c) {
    long iters = 100;
    *c = (rn_lr_find_config){1e-7, 10, 100, 0, 0};
    if (rn_args_float("start-lr", o->start_lr, 1e-12, 1e3, &c->start) || rn_args_float("end-lr", o->end_lr, 1e-12, 1e6, &c->end) ||
        rn_args_int("iters", o->iters, 10, 1000000, &iters))
        return 2;
    if (c->end <= c->start) {
        rn_cli_error("lr-find: --end-lr %g must be larger than --start-lr %g", c->end, c->start);
        return 2;
    }
    c->iters = (int)iters;
    return 0;
}

/* Runs the finder after setup_data, prints the suggestion, draws the curve. */
static int lr_find(train_args *o, run *r, rn_lr_find_config c) {
    rn_lr_curve curve;
    rn_error err;
    c.mom = r->cfg.mom_max, c.label_smoothing = r->cfg.label_smoothing;
    if (rn_lr_find(r->model, r->tl, &r->cfg.optim, &c, &curve, &err)) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    for (int i = 0; i < curve.n; i++) printf("%.6e %.6f\n", curve.lr[i], curve.loss[i]);
    const char *plot = o->plot ? o->plot : "lr-find.png";
    int ok = curve.n > 0 && isfinite(curve.suggested);
    if (ok) printf("suggested lr (valley): %.3g\n", curve.suggested);
    else printf("no suggestion: the sweep stopped after %d steps\n", curve.n);
    rn_series sr = {"smoothed loss", curve.lr, curve.loss, curve.n};
    rn_status st = rn_plot_lines(plot, "learning rate finder", "learning rate", "loss", &sr, 1, 1,
                                 ok ? curve.suggested : NAN, ok ? curve.loss[curve.suggested_index] : NAN, &err);
    rn_lr_curve_free(&curve);
    if (st) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    printf("curve: %s\n", plot);
    return 0;
}

/* `resnet lr-find`: see lr_find_usage. */
int rn_cmd_lr_find(int argc, char **argv) {
    train_args o = {.lr_find = 1};
    run r = {0};
    rn_lr_find_config c;
    int pr = parse(argc, argv, &o), code;
    if (pr == 1) return fputs(lr_find_usage, stdout), 0;
    if (pr < 0 || lr_find_config(&o, &c)) return 2;
    code = setup_data(&o, &r);
    if (!code) code = lr_find(&o, &r, c);
    run_free(&r);
    return code;
}

/* Parses and checks the options of `resnet train` or (lr_find != 0)
** `resnet lr-find` without opening any file or running anything; returns
** the exit code a run would stop with for them: 0 when they are valid
** (or --help), 2 after printing the error. */
int rn_cmd_train_check(int argc, char **argv, int lr_find) {
    train_args o = {.lr_find = lr_find};
    run r = {0};
    rn_lr_find_config c;
    long seed, threads;
    int h, w, pr = parse(argc, argv, &o);
    if (pr) return pr < 0 ? 2 : 0;
    if (lr_find && lr_find_config(&o, &c)) return 2;
    return check_args(&o, &r, &seed, &threads, &h, &w);
}
