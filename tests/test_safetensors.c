/*
** Tests for src/io/safetensors: a write/read round trip, hand-made corrupt
** files that must each be rejected with a message naming the file, and the
** writer's failure behaviour (missing directory, atomic replacement).
** Prints failed checks and the rejection messages, and last the line
** "N passed, M failed"; exits non-zero if anything failed.
*/
#include "io/safetensors.h"
#include "check.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Counters and the scratch directory, passed to every test. */
typedef struct {
    int pass, fail;
    char dir[256];
} tctx;

/* Writes a file whose length field says hlen, followed by `body` (blen
** bytes) and `zeros` zero bytes of data. */
static int write_framed(const char *path, uint64_t hlen, const void *body, size_t blen,
                        size_t zeros) {
    size_t n = 8 + blen + zeros;
    unsigned char *b = calloc(n, 1);
    int ok;
    if (!b) return 0;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, body, blen);
    ok = write_raw(path, b, n);
    free(b);
    return ok;
}

/* Reads path and checks it is rejected: RN_ERR_FORMAT or RN_ERR_IO, a
** message naming the file, and *f left empty. */
static void expect_reject(tctx *T, const char *label, const char *path) {
    rn_st_file f;
    rn_error err = {RN_OK, ""};
    rn_status s = rn_st_read(path, &f, &err);
    CHECK(T, s == RN_ERR_FORMAT || s == RN_ERR_IO);
    CHECK(T, err.code == s);
    CHECK(T, strstr(err.msg, path) != NULL);
    CHECK(T, f.buf == NULL && f.tensors == NULL && f.ntensors == 0 && f.meta == NULL);
    printf("  rejected %-22s (%d) %s\n", label, (int)s, err.msg);
    rn_st_free(&f);
}

/* Writes a file with header `json` (length field = its length) and `zeros`
** data bytes, then expects the reader to reject it. */
static void reject_json(tctx *T, const char *label, const char *json, size_t zeros) {
    char p[512];
    path_in(T->dir, label, p, sizeof p);
    CHECK(T, write_framed(p, strlen(json), json, strlen(json), zeros));
    expect_reject(T, label, p);
}

/* Writes a file with header `json` and `zeros` data bytes and expects the
** reader to accept it with ntensors tensors. */
static void accept_json(tctx *T, const char *label, const char *json, size_t zeros,
                        int ntensors) {
    char p[512];
    rn_st_file f;
    rn_error err = {RN_OK, ""};
    path_in(T->dir, label, p, sizeof p);
    CHECK(T, write_framed(p, strlen(json), json, strlen(json), zeros));
    if (!CHECK(T, rn_st_read(p, &f, &err) == RN_OK)) printf("  %s: %s\n", label, err.msg);
    CHECK(T, f.ntensors == ntensors);
    rn_st_free(&f);
}

/* Counts entries of dir whose name contains ".tmp." (leftover temp files). */
static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* Writes a one-tensor file at path holding the value v; returns the status. */
static rn_status write_scalar(const char *path, float v, rn_error *err) {
    rn_st_out t = {"v", RN_DT_F32, 1, {1}, &v};
    return rn_st_write(path, &t, 1, NULL, 0, err);
}

/* Reads the value written by write_scalar, or -1 if the file is unreadable. */
static float read_scalar(const char *path) {
    rn_st_file f;
    rn_error err;
    float v = -1.0f;
    if (rn_st_read(path, &f, &err) != RN_OK) return v;
    const rn_st_tensor *t = rn_st_find(&f, "v");
    if (t && t->nbytes == sizeof v) memcpy(&v, t->data, sizeof v);
    rn_st_free(&f);
    return v;
}

/* ---- round trip --------------------------------------------------------- */

/* Checks the three tensors of the round-trip file as read back. */
static void check_roundtrip_tensors(tctx *T, const rn_st_file *f, const float *a, int64_t s) {
    const rn_st_tensor *w = rn_st_find(f, "layer.weight");
    const rn_st_tensor *st = rn_st_find(f, "step");
    const rn_st_tensor *e = rn_st_find(f, "empty");
    CHECK(T, f->ntensors == 3);
    if (!CHECK(T, w && st && e)) return;
    CHECK(T, strcmp(f->tensors[0].name, "layer.weight") == 0);
    CHECK(T, strcmp(f->tensors[1].name, "step") == 0);
    CHECK(T, strcmp(f->tensors[2].name, "empty") == 0);
    CHECK(T, w->dtype == RN_DT_F32 && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3);
    CHECK(T, w->nbytes == 24 && memcmp(w->data, a, 24) == 0);
    CHECK(T, st->dtype == RN_DT_I64 && st->ndim == 0 && st->nbytes == 8);
    CHECK(T, memcmp(st->data, &s, 8) == 0);
    CHECK(T, rn_st_numel(st) == 1 && rn_st_numel(w) == 6 && rn_st_numel(e) == 0);
    CHECK(T, e->dtype == RN_DT_F32 && e->ndim == 1 && e->shape[0] == 0 && e->nbytes == 0);
    CHECK(T, rn_st_find(f, "missing") == NULL);
}

/* Checks the raw layout: header padded with spaces to 8 bytes, data
** packed right after it. */
static void check_roundtrip_layout(tctx *T, const rn_st_file *f) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->buf[i];
    CHECK(T, hlen % 8 == 0);
    CHECK(T, f->size == 8 + hlen + 24 + 8);
    CHECK(T, f->buf[8] == '{');
    CHECK(T, f->buf[8 + hlen - 1] == ' ' || f->buf[8 + hlen - 1] == '}');
    CHECK(T, (const unsigned char *)f->tensors[0].data == f->buf + 8 + hlen);
}

/* Writes F32 2x3, an I64 scalar and an empty tensor with metadata, reads
** them back and compares everything; returns the file's bytes (for the
** truncation tests) in *bytes and *n. */
static void test_roundtrip(tctx *T, unsigned char **bytes, size_t *n) {
    float a[6] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, -6.5f};
    int64_t s = -42;
    rn_st_out out[3] = {{"layer.weight", RN_DT_F32, 2, {2, 3}, a},
                        {"step", RN_DT_I64, 0, {0}, &s},
                        {"empty", RN_DT_F32, 1, {0}, NULL}};
    rn_st_meta meta[2] = {{"format", "pt"}, {"arch", "resnet18 \"quoted\"\n"}};
    rn_st_file f;
    rn_error err = {RN_OK, ""};
    char p[512];
    path_in(T->dir, "good.safetensors", p, sizeof p);
    if (!CHECK(T, rn_st_write(p, out, 3, meta, 2, &err) == RN_OK)) printf("  %s\n", err.msg);
    if (!CHECK(T, rn_st_read(p, &f, &err) == RN_OK)) {
        printf("  %s\n", err.msg);
        return;
    }
    check_roundtrip_tensors(T, &f, a, s);
    check_roundtrip_layout(T, &f);
    CHECK(T, f.nmeta == 2);
    CHECK(T, rn_st_meta_get(&f, "format") && strcmp(rn_st_meta_get(&f, "format"), "pt") == 0);
    CHECK(T, rn_st_meta_get(&f, "arch") &&
                 strcmp(rn_st_meta_get(&f, "arch"), "resnet18 \"quoted\"\n") == 0);
    CHECK(T, rn_st_meta_get(&f, "nope") == NULL);
    CHECK(T, count_tmp(T->dir) == 0);
    *n = f.size;
    *bytes = malloc(f.size);
    if (*bytes) memcpy(*bytes, f.buf, f.size);
    rn_st_free(&f);
    rn_st_free(&f); /* freeing twice is harmless */
}

/* ---- corrupt files ------------------------------------------------------ */

/* Truncates the good file at several points; each must be rejected. */
static void test_truncated(tctx *T, const unsigned char *good, size_t n) {
    uint64_t hlen = 0;
    char p[512], label[64];
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | good[i];
    size_t cuts[] = {0, 4, 7, 8, 8 + hlen / 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 10, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(label, sizeof label, "truncated-at-%zu", cuts[i]);
        path_in(T->dir, label, p, sizeof p);
        CHECK(T, write_raw(p, good, cuts[i]));
        expect_reject(T, label, p);
    }
}

/* Files whose 8-byte length field is wrong, or that cannot be read. */
static void test_bad_lengths(tctx *T) {
    char p[512];
    const char *j = "{}      ";
    expect_reject(T, "missing-file", path_in(T->dir, "does-not-exist", p, sizeof p));
    expect_reject(T, "directory", T->dir);
    CHECK(T, write_raw(path_in(T->dir, "zero-bytes", p, sizeof p), "", 0));
    expect_reject(T, "zero-bytes", p);
    CHECK(T, write_framed(path_in(T->dir, "hlen-zero", p, sizeof p), 0, j, 8, 0));
    expect_reject(T, "hlen-zero", p);
    CHECK(T, write_framed(path_in(T->dir, "hlen-past-end", p, sizeof p), 1000, j, 8, 0));
    expect_reject(T, "hlen-past-end", p);
    CHECK(T, write_framed(path_in(T->dir, "hlen-2^60", p, sizeof p), (uint64_t)1 << 60, j, 8, 0));
    expect_reject(T, "hlen-2^60", p);
    CHECK(T, write_framed(path_in(T->dir, "hlen-max", p, sizeof p), UINT64_MAX, j, 8, 0));
    expect_reject(T, "hlen-max", p);
    CHECK(T, write_framed(path_in(T->dir, "nul-in-header", p, sizeof p), 8, "{}  \0   ", 8, 0));
    expect_reject(T, "nul-in-header", p);
}

/* Headers that are not JSON objects, or whose tensor entries are malformed. */
static void test_bad_json(tctx *T) {
    reject_json(T, "invalid-json", "{\"a\": {\"dtype\": \"F32\",", 0);
    reject_json(T, "non-object-array", "[1, 2, 3]", 0);
    reject_json(T, "non-object-string", "\"hello\"", 0);
    reject_json(T, "trailing-garbage", "{} x", 0);
    reject_json(T, "entry-not-object", "{\"a\": 5}", 0);
    reject_json(T, "missing-dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    reject_json(T, "missing-offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4);
    reject_json(T, "unknown-dtype",
                "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16);
    reject_json(T, "dtype-not-string",
                "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    reject_json(T, "unexpected-member",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4);
    reject_json(T, "duplicate-member",
                "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,"
                "4]}}",
                4);
    reject_json(T, "duplicate-names",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8);
}

/* Shapes that are not arrays of exact non-negative integers. */
static void test_bad_shapes(tctx *T) {
    reject_json(T, "negative-shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0);
    reject_json(T, "fractional-shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", 8);
    reject_json(T, "shape-above-2^53", "{\"a\":{\"dtype\":\"U8\",\"shape\":[9007199254740993],\"data_offsets\":[0,0]}}", 0);
    reject_json(T, "shape-1e300", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,0]}}", 0);
    reject_json(T, "shape-string-dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}", 2);
    reject_json(T, "shape-not-array", "{\"a\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", 2);
    reject_json(T, "too-many-dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1);
    reject_json(T, "element-count-overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0);
}

/* data_offsets that are malformed, out of range, inconsistent or overlapping. */
static void test_bad_offsets(tctx *T) {
    reject_json(T, "offsets-out-of-range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
    reject_json(T, "offsets-begin-after-end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8);
    reject_json(T, "offsets-three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8);
    reject_json(T, "offsets-fractional", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0.5,4.5]}}", 8);
    reject_json(T, "offsets-negative", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", 8);
    reject_json(T, "wrong-byte-count", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16);
    reject_json(T, "overlapping-offsets",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12);
    reject_json(T, "same-offsets",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                8);
}

/* Metadata that is not an object of unique string values. */
static void test_bad_meta(tctx *T) {
    reject_json(T, "meta-not-object", "{\"__metadata__\":[1]}", 0);
    reject_json(T, "meta-not-strings", "{\"__metadata__\":{\"k\":1}}", 0);
    reject_json(T, "meta-null", "{\"__metadata__\":null}", 0);
    reject_json(T, "meta-duplicate-key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0);
    reject_json(T, "meta-twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0);
}

/* Unusual but valid files: empty header object, gaps, empty tensors
** sharing an offset, leading/trailing whitespace. */
static void test_accepted(tctx *T) {
    accept_json(T, "empty-object", "{}      ", 0, 0);
    accept_json(T, "only-metadata", " {\"__metadata__\":{\"a\":\"b\"}}\n", 0, 0);
    accept_json(T, "gap-between",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                12, 2);
    accept_json(T, "empty-inside-other",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"e\":{\"dtype\":\"BOOL\",\"shape\":[3,0],\"data_offsets\":[4,4]}}",
                8, 2);
    accept_json(T, "exponent-integer",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e1],\"data_offsets\":[0,10]}}", 10, 1);
}

/* In-memory parsing: a good image, a short buffer named in the message and
** a header length just over the 100 MB cap. */
static void test_parse_memory(tctx *T, const unsigned char *good, size_t n) {
    rn_st_file f;
    rn_error err = {RN_OK, ""};
    size_t big = (size_t)RN_ST_MAX_HEADER + 16;
    unsigned char *b;
    CHECK(T, rn_st_parse(good, n, "good-image", &f, &err) == RN_OK && f.ntensors == 3);
    rn_st_free(&f);
    CHECK(T, rn_st_parse(good, 5, "short-image", &f, &err) == RN_ERR_FORMAT);
    CHECK(T, strstr(err.msg, "short-image") != NULL);
    b = calloc(big, 1);
    if (!CHECK(T, b != NULL)) return;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((RN_ST_MAX_HEADER + 1) >> (8 * i));
    CHECK(T, rn_st_parse(b, big, "huge-header", &f, &err) == RN_ERR_FORMAT);
    CHECK(T, strstr(err.msg, "huge-header") != NULL && strstr(err.msg, "limit") != NULL);
    printf("  rejected %-22s %s\n", "huge-header", err.msg);
    free(b);
}

/* ---- writer failures ---------------------------------------------------- */

/* Writing into a missing directory fails with a message naming the file. */
static void test_write_missing_dir(tctx *T) {
    char p[512];
    rn_error err = {RN_OK, ""};
    struct stat st;
    path_in(T->dir, "nope/x.safetensors", p, sizeof p);
    CHECK(T, write_scalar(p, 1.0f, &err) == RN_ERR_IO);
    CHECK(T, strstr(err.msg, p) != NULL);
    CHECK(T, stat(p, &st) != 0);
    printf("  write failed as expected: %s\n", err.msg);
}

/* Writing over an existing file replaces it, leaving no temp file; a
** failing rename (target is a directory) leaves no temp file either. */
static void test_write_replace(tctx *T) {
    char p[512], d[512];
    rn_error err = {RN_OK, ""};
    struct stat st;
    path_in(T->dir, "replace.safetensors", p, sizeof p);
    CHECK(T, write_scalar(p, 1.0f, &err) == RN_OK);
    CHECK(T, read_scalar(p) == 1.0f);
    CHECK(T, write_scalar(p, 2.0f, &err) == RN_OK);
    CHECK(T, read_scalar(p) == 2.0f);
    CHECK(T, count_tmp(T->dir) == 0);
    path_in(T->dir, "isdir", d, sizeof d);
    CHECK(T, mkdir(d, 0755) == 0);
    CHECK(T, write_scalar(d, 3.0f, &err) == RN_ERR_IO);
    CHECK(T, strstr(err.msg, d) != NULL);
    CHECK(T, stat(d, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(T, count_tmp(T->dir) == 0);
    printf("  write failed as expected: %s\n", err.msg);
}

/* In a read-only directory the write fails and the old file survives
** intact. Skipped as root, which ignores permissions. */
static void test_write_readonly(tctx *T) {
    char d[512], p[600];
    rn_error err = {RN_OK, ""};
    if (geteuid() == 0) {
        printf("  skip read-only directory test (running as root)\n");
        return;
    }
    path_in(T->dir, "ro", d, sizeof d);
    snprintf(p, sizeof p, "%s/m.safetensors", d);
    CHECK(T, mkdir(d, 0755) == 0);
    CHECK(T, write_scalar(p, 1.0f, &err) == RN_OK);
    CHECK(T, chmod(d, 0555) == 0);
    CHECK(T, write_scalar(p, 2.0f, &err) == RN_ERR_IO);
    CHECK(T, strstr(err.msg, p) != NULL);
    printf("  write failed as expected: %s\n", err.msg);
    CHECK(T, read_scalar(p) == 1.0f);
    CHECK(T, count_tmp(d) == 0);
    CHECK(T, chmod(d, 0755) == 0);
}

/* Bad arguments are refused with RN_ERR_ARG before any file is created. */
static void test_write_bad_args(tctx *T) {
    char p[512];
    float v[2] = {1.0f, 2.0f};
    rn_error err = {RN_OK, ""};
    struct stat st;
    rn_st_out dup[2] = {{"a", RN_DT_F32, 1, {1}, v}, {"a", RN_DT_F32, 1, {1}, v + 1}};
    rn_st_out reserved = {"__metadata__", RN_DT_F32, 1, {1}, v};
    rn_st_out negative = {"n", RN_DT_F32, 1, {-1}, v};
    rn_st_out nodata = {"x", RN_DT_F32, 1, {2}, NULL};
    rn_st_out baddtype = {"x", (rn_dtype)99, 1, {2}, v};
    rn_st_meta meta[2] = {{"k", "a"}, {"k", "b"}};
    path_in(T->dir, "badargs.safetensors", p, sizeof p);
    CHECK(T, rn_st_write(p, dup, 2, NULL, 0, &err) == RN_ERR_ARG && strstr(err.msg, p));
    CHECK(T, rn_st_write(p, &reserved, 1, NULL, 0, &err) == RN_ERR_ARG);
    CHECK(T, rn_st_write(p, &negative, 1, NULL, 0, &err) == RN_ERR_ARG);
    CHECK(T, rn_st_write(p, &nodata, 1, NULL, 0, &err) == RN_ERR_ARG);
    CHECK(T, rn_st_write(p, &baddtype, 1, NULL, 0, &err) == RN_ERR_ARG);
    CHECK(T, rn_st_write(p, dup, 1, meta, 2, &err) == RN_ERR_ARG);
    CHECK(T, stat(p, &st) != 0);
}

/* ---- driver ------------------------------------------------------------- */

/* Removes the scratch directory and everything in it (one level of
** subdirectories is all the tests create). */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    struct stat st;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(p, 0755);
            remove_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Runs every test in a fresh scratch directory and prints the tally. */
int main(void) {
    tctx T = {0, 0, "/tmp/rn_st_test.XXXXXX"};
    unsigned char *good = NULL;
    size_t n = 0;
    if (!mkdtemp(T.dir)) {
        perror("mkdtemp");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    test_roundtrip(&T, &good, &n);
    if (CHECK(&T, good != NULL && n > 40)) {
        test_truncated(&T, good, n);
        test_parse_memory(&T, good, n);
    }
    test_bad_lengths(&T);
    test_bad_json(&T);
    test_bad_shapes(&T);
    test_bad_offsets(&T);
    test_bad_meta(&T);
    test_accepted(&T);
    test_write_missing_dir(&T);
    test_write_replace(&T);
    test_write_readonly(&T);
    test_write_bad_args(&T);
    free(good);
    remove_tree(T.dir);
    printf("%d passed, %d failed\n", T.pass, T.fail);
    return T.fail ? 1 : 0;
}
