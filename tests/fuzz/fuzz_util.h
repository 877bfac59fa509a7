/*
** Helpers shared by the libFuzzer targets: a private scratch directory per
** fuzzing process (for the readers that take a path, as the CLI calls
** them) and files written into it from slices of the input.
*/
#ifndef RN_FUZZ_UTIL_H
#define RN_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Removes the scratch directory's files and the directory at exit. */
static char fuzz_dir_path[256];
static inline void fuzz_dir_cleanup(void) {
    char cmd[300];
    if (!fuzz_dir_path[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_path);
}

/* Returns this process's scratch directory, created on first use under
** $TMPDIR (default /tmp); aborts if it cannot be made (a harness bug). */
static inline const char *fuzz_dir(void) {
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    const char *t = getenv("TMPDIR");
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/rnfuzz.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fuzz_dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_dir_cleanup);
    return fuzz_dir_path;
}

/* Writes n bytes to DIR/name (replacing it), or removes it when n is
** (size_t)-1; returns the path in buf. Aborts on a write error. */
static inline const char *fuzz_file(const char *name, const uint8_t *p, size_t n, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", fuzz_dir(), name);
    if (n == (size_t)-1) {
        unlink(buf);
        return buf;
    }
    FILE *f = fopen(buf, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(buf);
        abort();
    }
    return buf;
}

/* Aborts (a finding) unless an error message starts with `who`: the
** library's rule is that every message names the file or argument. */
static inline void fuzz_check_msg(const char *msg, const char *who) {
    if (strncmp(msg, who, strlen(who)) != 0) {
        fprintf(stderr, "fuzz: error message does not name %s: %s\n", who, msg);
        abort();
    }
}

#endif
