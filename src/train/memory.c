/*
** Memory planning of a training run: see memory.h.
*/
#include "train/memory.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/error.h"

/* Reads the first unsigned number in the file at path into *v; 0 when the
** file is missing or holds no number ("max" in a cgroup v2 limit). */
static int read_number(const char *path, unsigned long long *v) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fscanf(f, "%llu", v) == 1;
    fclose(f);
    return ok;
}

/* Lowers *best to limit - used (0 when used exceeds it), naming the source. */
static void lower(size_t *best, const char **source, unsigned long long limit, unsigned long long used,
                  const char *name) {
    unsigned long long room = limit > used ? limit - used : 0;
    if (room < *best) *best = (size_t)room, *source = name;
}

/* MemAvailable of /proc/meminfo in bytes; 0 when it cannot be read. */
static int mem_available(unsigned long long *bytes) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    int ok = 0;
    while (f && !ok && fgets(line, sizeof line, f)) ok = sscanf(line, "MemAvailable: %llu kB", bytes) == 1;
    if (f) fclose(f);
    *bytes *= 1024;
    return ok;
}

/* Bytes this process can still have (see memory.h). */
size_t rn_memory_available(const char **source) {
    size_t best = SIZE_MAX;
    unsigned long long limit, used;
    *source = "no limit found";
    if (mem_available(&limit)) lower(&best, source, limit, 0, "MemAvailable in /proc/meminfo");
    if (read_number("/sys/fs/cgroup/memory.max", &limit) && read_number("/sys/fs/cgroup/memory.current", &used))
        lower(&best, source, limit, used, "the cgroup's memory.max");
    if (read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit) &&
        read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes", &used))
        lower(&best, source, limit, used, "the cgroup's memory.limit_in_bytes");
    struct rlimit r;
    unsigned long long pages;
    if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY && read_number("/proc/self/statm", &pages))
        lower(&best, source, r.rlim_cur, pages * (unsigned long long)sysconf(_SC_PAGESIZE), "RLIMIT_AS (ulimit -v)");
    return best;
}

/* Refuses a run that would not fit (see memory.h). */
rn_status rn_train_memory_check(rn_model *m, int n, int h, int w, int optim_states, size_t extra, rn_error *err) {
    size_t arena = 0;
    rn_status st = rn_model_plan_size(m, n, h, w, 1, &arena, err);
    if (st) return st;
    double optim = (double)optim_states * (double)m->nparams * sizeof(float);
    double need = (double)arena + optim + (double)extra;
    const char *source;
    size_t avail = rn_memory_available(&source);
    if (need <= (double)avail) return RN_OK;
    return rn_fail(err, RN_ERR_NOMEM,
                   "training %s on batches of %d at %dx%d needs %.2f GB more memory (activations %.2f GB, optimizer "
                   "state %.2f GB, data batches %.2f GB), but only %.2f GB is available (%s); use a smaller --bs "
                   "or --size", m->spec.arch, n, h, w, need / 1e9, arena / 1e9, optim / 1e9, extra / 1e9,
                   avail / 1e9, source);
}
