/*
** What the C test suites share: counting checks (CHECK prints the failing
** expression and its line), building scratch paths and writing raw files.
** A suite's context struct only needs `int pass, fail;` for CHECK.
*/
#ifndef RN_TESTS_CHECK_H
#define RN_TESTS_CHECK_H

#include <stdio.h>

#define CHECK(T, cond) check_count(&(T)->pass, &(T)->fail, (cond) != 0, __LINE__, #cond)

/* Records one check in *pass or *fail, printing the failing expression and
** line; returns ok so that a test can stop after a failed precondition. */
static inline int check_count(int *pass, int *fail, int ok, int line, const char *expr) {
    if (ok) {
        (*pass)++;
    } else {
        (*fail)++;
        printf("FAIL line %d: %s\n", line, expr);
    }
    return ok;
}

/* Builds "<dir>/<name>" into buf (cap bytes). */
static inline const char *path_in(const char *dir, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* Writes n raw bytes to path; returns 1 on success. */
static inline int write_raw(const char *path, const void *bytes, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    int ok = fwrite(bytes, 1, n, fp) == n;
    return fclose(fp) == 0 && ok;
}

#endif
