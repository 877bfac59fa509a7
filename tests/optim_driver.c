/*
** The C side of the optimizer and schedule tests (tests/optim.py).
**
**   optim_driver run SPEC IN OUT
**       SPEC is a text file of "key values..." lines (see read_spec); IN holds
**       float32 params[n] then grads[steps][n]. Runs `steps` optimizer steps
**       with the schedule (group g gets lr * mult[g]), zeroing the gradients
**       outside the ranges and of frozen groups and clipping when asked (as
**       torch sees no grad there), and writes to OUT:
**       params float32[n], each state buffer float32[n], steps int64[nranges],
**       then per step lr double[groups], mom double, grad norm double.
**   optim_driver sched SPEC OUT
**       Writes lr, mom (doubles) for steps 0..total_steps.
**   optim_driver mults LO HI N
**       Prints rn_even_mults(LO, HI, N), one %.17g a line.
**   optim_driver clip IN N MAX OUT
**       Reads float32[N], clips, writes the norm (double) and the grads.
**   optim_driver errors
**       Feeds bad configs to rn_optim_create / rn_sched_check and prints one
**       "rejected <code> <message>" or "accepted" line for each.
*/
#include "train/optim.h"
#include "train/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANGES 64
#define MAX_GROUPS 8

/* Everything a run needs, read from SPEC. */
typedef struct {
    rn_optim_config cfg;
    rn_schedule sched;
    size_t n;
    long steps, resume;
    int ngroups, nranges;
    double mult[MAX_GROUPS];
    long frozen_until[MAX_GROUPS]; /* group frozen for steps < this */
    rn_param_range ranges[MAX_RANGES];
    double clip;
} spec;

/* Prints a message and exits: a test driver may die loudly. */
static void die(const char *what) {
    fprintf(stderr, "optim_driver: %s\n", what);
    exit(1);
}

/* Maps a schedule name to its kind. */
static rn_sched_kind sched_kind(const char *name) {
    const char *names[] = {"onecycle", "cosine", "step", "constant", "exp"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, names[i])) return (rn_sched_kind)i;
    die("unknown schedule");
    return RN_SCHED_CONSTANT;
}

/* Maps an optimizer name to its kind. */
static rn_optim_kind optim_kind(const char *name) {
    if (!strcmp(name, "sgd")) return RN_OPTIM_SGD;
    if (!strcmp(name, "adam")) return RN_OPTIM_ADAM;
    if (!strcmp(name, "adamw")) return RN_OPTIM_ADAMW;
    die("unknown optimizer");
    return RN_OPTIM_SGD;
}

/* Reads one spec line's values for key `k` into *s. */
static void read_key(FILE *f, const char *k, spec *s) {
    char w[64];
    rn_schedule *c = &s->sched;
    int ok = 1;
    if (!strcmp(k, "optim")) ok = fscanf(f, "%63s", w) == 1, s->cfg.kind = optim_kind(w);
    else if (!strcmp(k, "wd")) ok = fscanf(f, "%lf", &s->cfg.weight_decay) == 1;
    else if (!strcmp(k, "nesterov")) ok = fscanf(f, "%d", &s->cfg.nesterov) == 1;
    else if (!strcmp(k, "beta2")) ok = fscanf(f, "%lf", &s->cfg.beta2) == 1;
    else if (!strcmp(k, "eps")) ok = fscanf(f, "%lf", &s->cfg.eps) == 1;
    else if (!strcmp(k, "sched")) ok = fscanf(f, "%63s", w) == 1, c->kind = sched_kind(w);
    else if (!strcmp(k, "lr")) ok = fscanf(f, "%lf", &c->lr_max) == 1;
    else if (!strcmp(k, "total")) ok = fscanf(f, "%ld", &c->total_steps) == 1;
    else if (!strcmp(k, "pct_start")) ok = fscanf(f, "%lf", &c->pct_start) == 1;
    else if (!strcmp(k, "div")) ok = fscanf(f, "%lf", &c->div_factor) == 1;
    else if (!strcmp(k, "final_div")) ok = fscanf(f, "%lf", &c->final_div) == 1;
    else if (!strcmp(k, "mom")) ok = fscanf(f, "%lf %lf", &c->mom_max, &c->mom_min) == 2;
    else if (!strcmp(k, "warmup")) ok = fscanf(f, "%ld", &c->warmup_steps) == 1;
    else if (!strcmp(k, "gamma")) ok = fscanf(f, "%lf", &c->gamma) == 1;
    else if (!strcmp(k, "lr_end")) ok = fscanf(f, "%lf", &c->lr_end) == 1;
    else if (!strcmp(k, "milestones")) {
        ok = fscanf(f, "%d", &c->nmilestones) == 1 && c->nmilestones >= 0 && c->nmilestones <= 8;
        for (int i = 0; ok && i < c->nmilestones; i++) ok = fscanf(f, "%ld", &c->milestones[i]) == 1;
    } else if (!strcmp(k, "n")) ok = fscanf(f, "%zu", &s->n) == 1;
    else if (!strcmp(k, "steps")) ok = fscanf(f, "%ld", &s->steps) == 1;
    else if (!strcmp(k, "resume")) ok = fscanf(f, "%ld", &s->resume) == 1;
    else if (!strcmp(k, "clip")) ok = fscanf(f, "%lf", &s->clip) == 1;
    else if (!strcmp(k, "groups")) {
        ok = fscanf(f, "%d", &s->ngroups) == 1 && s->ngroups >= 1 && s->ngroups <= MAX_GROUPS;
        for (int i = 0; ok && i < s->ngroups; i++) ok = fscanf(f, "%lf", &s->mult[i]) == 1;
    } else if (!strcmp(k, "frozen")) {
        int g;
        ok = fscanf(f, "%d", &g) == 1 && g >= 0 && g < MAX_GROUPS && fscanf(f, "%ld", &s->frozen_until[g]) == 1;
    } else if (!strcmp(k, "range")) {
        rn_param_range *r = &s->ranges[s->nranges];
        ok = s->nranges < MAX_RANGES && fscanf(f, "%zu %zu %d %d", &r->off, &r->len, &r->group, &r->decay) == 4;
        s->nranges++;
    } else
        die(k);
    if (!ok) die(k);
}

/* Reads SPEC; "sched KIND" resets the schedule to rn_sched_init's defaults
** for KIND (keeping lr and total), so it comes before the schedule's fields. */
static spec read_spec(const char *path) {
    spec s = {0};
    char key[64];
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    rn_sched_init(&s.sched, RN_SCHED_CONSTANT, 0.1, 1);
    s.ngroups = 1;
    s.mult[0] = 1;
    s.resume = -1;
    while (fscanf(f, "%63s", key) == 1) {
        read_key(f, key, &s);
        if (!strcmp(key, "sched")) /* a new kind starts from its own defaults */
            rn_sched_init(&s.sched, s.sched.kind, s.sched.lr_max, s.sched.total_steps);
    }
    fclose(f);
    for (int r = 0; r < s.nranges; r++)
        if (s.ranges[r].off + s.ranges[r].len > s.n) die("a range ends after n");
    rn_error e;
    if (rn_sched_check(&s.sched, &e)) die(e.msg);
    return s;
}

/* Reads exactly n floats from fp. */
static void read_floats(FILE *fp, float *x, size_t n) {
    if (fread(x, sizeof(float), n, fp) != n) die("short input file");
}

/* Writes n bytes to fp. */
static void write_bytes(FILE *fp, const void *x, size_t size, size_t n) {
    if (fwrite(x, size, n, fp) != n) die("write failed");
}

/* Creates the optimizer for spec s. */
static rn_optim *make_optim(const spec *s) {
    rn_optim *o;
    rn_error e;
    if (rn_optim_create(&s->cfg, s->ranges, s->nranges, s->ngroups, &o, &e)) die(e.msg);
    return o;
}

/* A checkpoint round trip: copies the state out, frees the optimizer,
** creates a new one and restores the state into it. */
static rn_optim *reload(rn_optim *o, const spec *s) {
    int ns = rn_optim_nstate(o), nr;
    float *saved[2] = {NULL, NULL};
    size_t len = 0;
    const char *name;
    int64_t steps[MAX_RANGES];
    for (int i = 0; i < ns; i++) {
        float *b = rn_optim_state(o, i, &name, &len);
        if (!(saved[i] = malloc(sizeof(float) * (len ? len : 1)))) die("out of memory");
        memcpy(saved[i], b, sizeof(float) * len);
    }
    int64_t *st = rn_optim_steps(o, &nr); /* sets nr: not inside memcpy's arguments */
    memcpy(steps, st, sizeof(int64_t) * (size_t)nr);
    rn_optim_free(o);
    o = make_optim(s);
    for (int i = 0; i < ns; i++) {
        memcpy(rn_optim_state(o, i, &name, &len), saved[i], sizeof(float) * len);
        free(saved[i]);
    }
    st = rn_optim_steps(o, &nr);
    memcpy(st, steps, sizeof(int64_t) * (size_t)nr);
    return o;
}

/* live[i] = 1 where element i belongs to a range of a group not frozen,
** else 0: torch has no gradient there (gaps, grad None). */
static void mark_live(const spec *s, const int *frozen, float *live) {
    memset(live, 0, sizeof(float) * s->n);
    for (int r = 0; r < s->nranges; r++)
        if (!frozen[s->ranges[r].group])
            for (size_t i = 0; i < s->ranges[r].len; i++) live[s->ranges[r].off + i] = 1;
}

/* The run mode: see the file comment. */
static void run(const char *spec_path, const char *in, const char *out) {
    spec s = read_spec(spec_path);
    size_t n = s.n;
    float *p = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n), *live = malloc(sizeof(float) * n);
    double *log = malloc(sizeof(double) * (size_t)s.steps * (size_t)(s.ngroups + 2));
    FILE *fi = fopen(in, "rb"), *fo;
    if (!p || !g || !live || !log || !fi) die("setup");
    read_floats(fi, p, n);
    rn_optim *o = make_optim(&s);
    double *row = log;
    for (long t = 0; t < s.steps; t++, row += s.ngroups + 2) {
        double lr[MAX_GROUPS], mom = rn_sched_mom(&s.sched, t), base = rn_sched_lr(&s.sched, t);
        int frozen[MAX_GROUPS];
        read_floats(fi, g, n);
        for (int k = 0; k < s.ngroups; k++) lr[k] = base * s.mult[k], frozen[k] = t < s.frozen_until[k];
        mark_live(&s, frozen, live);
        for (size_t i = 0; i < n; i++) g[i] *= live[i]; /* no gradient outside ranges or in frozen groups */
        double norm = s.clip > 0 ? rn_clip_grad_norm(g, n, s.clip) : 0;
        if (t == s.resume) o = reload(o, &s);
        rn_optim_step(o, lr, mom, frozen, p, g);
        memcpy(row, lr, sizeof(double) * (size_t)s.ngroups);
        row[s.ngroups] = mom, row[s.ngroups + 1] = norm;
    }
    fclose(fi);
    if (!(fo = fopen(out, "wb"))) die(out);
    write_bytes(fo, p, sizeof(float), n);
    for (int i = 0; i < rn_optim_nstate(o); i++) {
        size_t len;
        const char *name;
        float *b = rn_optim_state(o, i, &name, &len);
        if (len != n) die("state length differs from n");
        write_bytes(fo, b, sizeof(float), len);
    }
    int nr;
    int64_t *steps = rn_optim_steps(o, &nr);
    write_bytes(fo, steps, sizeof(int64_t), (size_t)nr);
    write_bytes(fo, log, sizeof(double), (size_t)s.steps * (size_t)(s.ngroups + 2));
    if (fclose(fo)) die(out);
    rn_optim_free(o);
    free(p), free(g), free(live), free(log);
}

/* The sched mode: lr and mom for steps 0..total_steps. */
static void sched(const char *spec_path, const char *out) {
    spec s = read_spec(spec_path);
    FILE *fo = fopen(out, "wb");
    if (!fo) die(out);
    for (long t = 0; t <= s.sched.total_steps; t++) {
        double v[2] = {rn_sched_lr(&s.sched, t), rn_sched_mom(&s.sched, t)};
        write_bytes(fo, v, sizeof(double), 2);
    }
    if (fclose(fo)) die(out);
}

/* The clip mode: norm and clipped gradients. */
static void clip(const char *in, size_t n, double max_norm, const char *out) {
    float *g = malloc(sizeof(float) * (n ? n : 1));
    FILE *fi = fopen(in, "rb"), *fo;
    if (!g || !fi) die(in);
    read_floats(fi, g, n);
    fclose(fi);
    double norm = rn_clip_grad_norm(g, n, max_norm);
    if (!(fo = fopen(out, "wb"))) die(out);
    write_bytes(fo, &norm, sizeof norm, 1);
    write_bytes(fo, g, sizeof(float), n);
    if (fclose(fo)) die(out);
    free(g);
}

/* Prints how rn_optim_create took one config. */
static void try_optim(const char *label, rn_optim_config c, const rn_param_range *r, int nr, int ng) {
    rn_optim *o = NULL;
    rn_error e = {RN_OK, ""};
    rn_status st = rn_optim_create(&c, r, nr, ng, &o, &e);
    if (st) printf("%s rejected %d %s\n", label, (int)st, e.msg);
    else printf("%s accepted\n", label);
    rn_optim_free(o);
}

/* Prints how rn_sched_check took one schedule. */
static void try_sched(const char *label, rn_schedule s) {
    rn_error e = {RN_OK, ""};
    rn_status st = rn_sched_check(&s, &e);
    if (st) printf("%s rejected %d %s\n", label, (int)st, e.msg);
    else printf("%s accepted\n", label);
}

/* The errors mode: bad inputs that must be rejected, and good ones that must not. */
static void errors(void) {
    rn_optim_config sgd = {RN_OPTIM_SGD, 0, 0, 0, 0}, adam = {RN_OPTIM_ADAM, 0, 0, 0.99, 1e-5};
    rn_param_range ok[2] = {{0, 10, 0, 1}, {10, 5, 1, 0}}, overlap[2] = {{0, 10, 0, 1}, {9, 5, 1, 0}};
    rn_param_range badgroup[1] = {{0, 10, 2, 1}};
    try_optim("good_optim", adam, ok, 2, 2);
    try_optim("overlap", sgd, overlap, 2, 2);
    try_optim("bad_group", sgd, badgroup, 1, 2);
    try_optim("no_groups", sgd, ok, 2, 0);
    adam.beta2 = 1.0;
    try_optim("beta2_one", adam, ok, 2, 2);
    sgd.weight_decay = -1;
    try_optim("negative_wd", sgd, ok, 2, 2);
    sgd.kind = (rn_optim_kind)7;
    try_optim("bad_kind", sgd, ok, 2, 2);
    rn_schedule s;
    rn_sched_init(&s, RN_SCHED_ONECYCLE, 1e-3, 100);
    try_sched("good_sched", s);
    s.total_steps = 0;
    try_sched("zero_steps", s);
    rn_sched_init(&s, RN_SCHED_ONECYCLE, 1e-3, 100);
    s.pct_start = 1.5;
    try_sched("pct_start", s);
    rn_sched_init(&s, RN_SCHED_STEP, 1e-3, 100);
    s.nmilestones = 2, s.milestones[0] = 50, s.milestones[1] = 20;
    try_sched("unsorted_milestones", s);
    rn_sched_init(&s, RN_SCHED_COSINE, 1e-3, 100);
    s.warmup_steps = 101;
    try_sched("long_warmup", s);
    rn_sched_init(&s, RN_SCHED_EXP, 1e-3, 100);
    s.lr_end = 0;
    try_sched("exp_lr_end", s);
    rn_sched_init(&s, RN_SCHED_CONSTANT, -1, 100);
    try_sched("negative_lr", s);
}

/* Dispatches on the mode. */
int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "run")) run(argv[2], argv[3], argv[4]);
    else if (argc == 4 && !strcmp(argv[1], "sched")) sched(argv[2], argv[3]);
    else if (argc == 5 && !strcmp(argv[1], "mults")) {
        double out[64];
        int n = atoi(argv[4]);
        if (n < 1 || n > 64) die("mults: N must be 1..64");
        rn_even_mults(atof(argv[2]), atof(argv[3]), n, out);
        for (int i = 0; i < n; i++) printf("%.17g\n", out[i]);
    } else if (argc == 6 && !strcmp(argv[1], "clip"))
        clip(argv[2], (size_t)strtoull(argv[3], NULL, 10), atof(argv[4]), argv[5]);
    else if (argc == 2 && !strcmp(argv[1], "errors"))
        errors();
    else
        die("usage: optim_driver run SPEC IN OUT | sched SPEC OUT | mults LO HI N | clip IN N MAX OUT | errors");
    return 0;
}
