/*
** Checkpoints: see checkpoint.h for the files and why they are written in
** that order.
*/
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"
#include "io/safetensors.h"

#define MAX_STATE 8

/* CRC-32 (zlib's) of the parameters, buffers and BN counters, in memory order. */
uint32_t rn_model_crc(const rn_model *m) {
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32_z(c, (const Bytef *)m->params, m->nparams * sizeof(float));
    c = crc32_z(c, (const Bytef *)m->buffers, m->nbuffers * sizeof(float));
    c = crc32_z(c, (const Bytef *)m->nbt, (size_t)m->nbn * sizeof(int64_t));
    return (uint32_t)c;
}

/* Builds "dir/name" into buf. */
static const char *join(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* Writes the state file: optimizer buffers as tensors, the position as metadata. */
static rn_status write_state(const char *path, const rn_model *m, rn_optim *o, const rn_train_state *s,
                             const char *args_json, rn_error *err) {
    rn_st_out t[MAX_STATE + 1];
    int n = 0, nst = rn_optim_nstate(o), nranges = 0;
    char names[MAX_STATE][80];
    for (int i = 0; i < nst && i < MAX_STATE; i++, n++) {
        const char *name;
        size_t len;
        float *p = rn_optim_state(o, i, &name, &len);
        snprintf(names[i], sizeof names[i], "optim.%s", name);
        t[n] = (rn_st_out){names[i], RN_DT_F32, 1, {(int64_t)len}, p};
    }
    int64_t *steps = rn_optim_steps(o, &nranges);
    t[n++] = (rn_st_out){"optim.steps", RN_DT_I64, 1, {nranges}, steps};
    char v[7][64];
    snprintf(v[0], 64, "%d", s->epoch);
    snprintf(v[1], 64, "%zu", s->batch);
    snprintf(v[2], 64, "%ld", s->step);
    snprintf(v[3], 64, "%.17g", s->smooth_avg);
    snprintf(v[4], 64, "%ld", s->smooth_n);
    snprintf(v[5], 64, "%.17g", s->best);
    snprintf(v[6], 64, "%08x", rn_model_crc(m));
    rn_st_meta meta[] = {{"format", "resnet-train-state-1"}, {"epoch", v[0]}, {"batch", v[1]}, {"step", v[2]},
                         {"smooth_avg", v[3]}, {"smooth_n", v[4]}, {"best", v[5]}, {"model_crc32", v[6]},
                         {"args", (char *)(args_json ? args_json : "[]")}};
    return rn_st_write(path, t, n, meta, (int)(sizeof meta / sizeof meta[0]), err);
}

/* Whether every weight, buffer and counter is finite: a diverged model is
** never written over a good checkpoint. */
static int model_finite(const rn_model *m) {
    for (size_t i = 0; i < m->nparams; i++)
        if (!isfinite(m->params[i])) return 0;
    for (size_t i = 0; i < m->nbuffers; i++)
        if (!isfinite(m->buffers[i])) return 0;
    return 1;
}

/* Reads the "model_crc32" metadata of a file's header into *crc; 0 when
** the file or the key is missing or unreadable. */
static int file_crc(const char *path, uint32_t *crc) {
    rn_st_file f;
    rn_error e;
    if (rn_st_read_meta(path, &f, &e)) return 0;
    const char *v = rn_st_meta_get(&f, "model_crc32");
    char *end = NULL;
    if (v) *crc = (uint32_t)strtoul(v, &end, 16);
    int ok = v && end != v && !*end;
    rn_st_free(&f);
    return ok;
}

/* Whether the state file cur is known not to belong to the model file:
** a save that stopped between the two writes leaves a new state beside the
** old model, and the matching state is then the previous one, which must
** be kept (moving cur over it would leave no state for the model). */
static int state_is_stale(const char *cur, const char *model) {
    uint32_t a, b;
    return file_crc(cur, &a) && file_crc(model, &b) && a != b;
}

/* Removes temp files ("NAME.tmp.PID") that a killed save left in dir: each
** is a whole model or state that would otherwise fill the disk over many
** interrupted runs. Only this directory's checkpoint names are touched. */
static void remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        if ((!strncmp(n, "last.", 5) || !strncmp(n, "best.", 5)) && strstr(n, ".safetensors.tmp."))
            remove(join(path, sizeof path, dir, n));
    }
    if (d) closedir(d);
}

/* Writes the model, optimizer state and position to dir (see checkpoint.h). */
rn_status rn_ckpt_save(const char *dir, const rn_model *m, rn_optim *o, const rn_train_state *s,
                       const char *args_json, rn_error *err) {
    char cur[4096], prev[4096], model[4096], crc[16];
    join(cur, sizeof cur, dir, "last.state.safetensors");
    join(prev, sizeof prev, dir, "last.state.prev.safetensors");
    join(model, sizeof model, dir, "last.safetensors");
    if (!model_finite(m))
        return rn_fail(err, RN_ERR_ARG, "step %ld: the weights or batchnorm statistics are not finite (training "
                       "diverged: lower --lr); not writing them over the checkpoint in %s", s->step, dir);
    remove_stale_temps(dir);
    if (!state_is_stale(cur, model) && rename(cur, prev) != 0 && errno != ENOENT)
        return rn_fail(err, RN_ERR_IO, "%s: cannot rename to %s: %s", cur, prev, strerror(errno));
    rn_status st = write_state(cur, m, o, s, args_json, err);
    snprintf(crc, sizeof crc, "%08x", rn_model_crc(m));
    rn_st_meta meta = {"model_crc32", crc};
    if (!st) st = rn_model_save_meta(m, model, &meta, 1, err);
    if (!st) return RN_OK;
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    return rn_fail(err, st, "cannot write the checkpoint: %s (the previous checkpoint in %s is intact)", why, dir);
}

/* Parses a metadata integer/float value of a state file. */
static rn_status meta_num(const rn_st_file *f, const char *path, const char *key, double *out, rn_error *err) {
    const char *v = rn_st_meta_get(f, key);
    char *end;
    if (!v) return rn_fail(err, RN_ERR_FORMAT, "%s: metadata has no '%s'", path, key);
    *out = strtod(v, &end);
    if (end == v || *end) return rn_fail(err, RN_ERR_FORMAT, "%s: metadata '%s' is '%s', not a number", path, key, v);
    return RN_OK;
}

/* Reads the position of a state file into *s. */
static rn_status read_position(const rn_st_file *f, const char *path, rn_train_state *s, rn_error *err) {
    double v[6];
    static const char *keys[] = {"epoch", "batch", "step", "smooth_avg", "smooth_n", "best"};
    for (int i = 0; i < 6; i++) {
        rn_status st = meta_num(f, path, keys[i], &v[i], err);
        if (st) return st;
    }
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[4] < 0)
        return rn_fail(err, RN_ERR_FORMAT, "%s: negative epoch, batch or step", path);
    s->epoch = (int)v[0], s->batch = (size_t)v[1], s->step = (long)v[2];
    s->smooth_avg = v[3], s->smooth_n = (long)v[4], s->best = v[5];
    return RN_OK;
}

/* Copies one tensor of the state file into dst (len elements of size es). */
static rn_status read_buffer(const rn_st_file *f, const char *path, const char *name, rn_dtype dt, void *dst,
                             size_t len, rn_error *err) {
    const rn_st_tensor *t = rn_st_find(f, name);
    if (!t) return rn_fail(err, RN_ERR_FORMAT, "%s: missing tensor %s", path, name);
    if (t->dtype != dt || t->ndim != 1 || (size_t)t->shape[0] != len)
        return rn_fail(err, RN_ERR_MISMATCH, "%s: tensor %s has %s[%lld], expected %s[%zu]", path, name,
                       rn_dtype_name(t->dtype), t->ndim ? (long long)t->shape[0] : 0LL, rn_dtype_name(dt), len);
    memcpy(dst, t->data, t->nbytes);
    return RN_OK;
}

/* Restores optimizer state and position from one state file if it belongs
** to weights with CRC `crc`; RN_ERR_MISMATCH when it does not. */
static rn_status load_state(const char *path, uint32_t crc, rn_optim *o, rn_train_state *s, rn_error *err) {
    rn_st_file f;
    rn_status st = rn_st_read(path, &f, err);
    if (st) return st;
    const char *c = rn_st_meta_get(&f, "model_crc32");
    if (!c || strtoul(c, NULL, 16) != crc) {
        rn_st_free(&f);
        return rn_fail(err, RN_ERR_MISMATCH, "%s: belongs to other weights than last.safetensors", path);
    }
    st = read_position(&f, path, s, err);
    for (int i = 0; !st && i < rn_optim_nstate(o); i++) {
        const char *name;
        size_t len;
        float *p = rn_optim_state(o, i, &name, &len);
        char full[80];
        snprintf(full, sizeof full, "optim.%s", name);
        st = read_buffer(&f, path, full, RN_DT_F32, p, len, err);
    }
    int nranges = 0;
    int64_t *steps = rn_optim_steps(o, &nranges);
    if (!st) st = read_buffer(&f, path, "optim.steps", RN_DT_I64, steps, (size_t)nranges, err);
    rn_st_free(&f);
    return st;
}

/* Loads the model, then the state (or the previous state) that matches it. */
rn_status rn_ckpt_load(const char *dir, rn_model *m, rn_optim *o, rn_train_state *s, rn_error *err) {
    char cur[4096], prev[4096], model[4096];
    join(cur, sizeof cur, dir, "last.state.safetensors");
    join(prev, sizeof prev, dir, "last.state.prev.safetensors");
    rn_status st = rn_model_load(m, join(model, sizeof model, dir, "last.safetensors"), err);
    if (st) return st;
    uint32_t crc = rn_model_crc(m);
    rn_error e1;
    st = load_state(cur, crc, o, s, &e1);
    if (st == RN_OK) return RN_OK;
    st = load_state(prev, crc, o, s, err);
    if (st == RN_OK) return RN_OK;
    return rn_fail(err, e1.code, "%s: no training state matches its weights (%s)", model, e1.msg);
}

/* Reads the command line saved with the checkpoint in dir (either state file). */
rn_status rn_checkpoint_args(const char *dir, char **json, rn_error *err) {
    char path[4096];
    rn_st_file f;
    rn_status st = rn_st_read(join(path, sizeof path, dir, "last.state.safetensors"), &f, err);
    if (st) st = rn_st_read(join(path, sizeof path, dir, "last.state.prev.safetensors"), &f, err);
    if (st) return st;
    const char *a = rn_st_meta_get(&f, "args");
    *json = a ? strdup(a) : NULL;
    rn_st_free(&f);
    if (!a) return rn_fail(err, RN_ERR_FORMAT, "%s: metadata has no 'args'", path);
    return *json ? RN_OK : rn_fail(err, RN_ERR_NOMEM, "out of memory");
}
