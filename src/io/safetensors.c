/*
** safetensors reader and writer (the format is described in safetensors.h).
**
** Reading trusts nothing: every length is checked before it is used, JSON
** numbers must be exact integers below 2^53, byte ranges must lie inside the
** data section, match their shape and dtype and not overlap, and names must
** be unique. cJSON parses a NUL-terminated copy of the header, so it can
** never read past it whatever the bytes are.
**
** Writing builds the header with cJSON (numbers as raw text so they print
** exactly), packs tensor data back to back in the given order and replaces
** the destination atomically through a temp file and rename().
*/
#include "io/safetensors.h"

#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* JSON integers must lie below 2^53, where every double is an exact integer. */
#define ST_INT_LIMIT ((uint64_t)1 << 53)

typedef struct {
    const char *name;
    size_t size;
} st_dtype_info;

static const st_dtype_info ST_DTYPES[] = {
    [RN_DT_F32] = {"F32", 4}, [RN_DT_F64] = {"F64", 8}, [RN_DT_F16] = {"F16", 2},
    [RN_DT_BF16] = {"BF16", 2}, [RN_DT_I64] = {"I64", 8}, [RN_DT_I32] = {"I32", 4},
    [RN_DT_I16] = {"I16", 2}, [RN_DT_I8] = {"I8", 1}, [RN_DT_U8] = {"U8", 1},
    [RN_DT_BOOL] = {"BOOL", 1},
};
#define ST_NDTYPES (sizeof ST_DTYPES / sizeof ST_DTYPES[0])

/* What a parse needs to report errors and bound offsets. */
typedef struct {
    const char *what;   /* file path or buffer description, prefixes messages */
    uint64_t data_size; /* bytes in the data section, after the header */
    rn_error *err;
} st_ctx;

/* A tensor's byte range in the data section, for the overlap check. */
typedef struct {
    uint64_t begin, end;
    const char *name;
} st_range;

/* ---- dtypes ------------------------------------------------------------ */

/* Returns the safetensors spelling of a dtype, for headers and messages;
** "?" for a value outside the enum so callers can always print it. */
const char *rn_dtype_name(rn_dtype d) {
    return (unsigned)d < ST_NDTYPES ? ST_DTYPES[d].name : "?";
}

/* Returns the bytes per element of a dtype, needed to size tensor data;
** 0 for a value outside the enum. */
size_t rn_dtype_size(rn_dtype d) {
    return (unsigned)d < ST_NDTYPES ? ST_DTYPES[d].size : 0;
}

/* Looks a dtype up by its safetensors name, as headers spell it; returns 1
** and sets *out when found, 0 otherwise. */
int rn_dtype_from_name(const char *name, rn_dtype *out) {
    for (size_t i = 0; name && i < ST_NDTYPES; i++) {
        if (strcmp(name, ST_DTYPES[i].name) == 0) {
            *out = (rn_dtype)i;
            return 1;
        }
    }
    return 0;
}

/* ---- small helpers ------------------------------------------------------ */

/* Decodes a little-endian uint64: the header length field is stored so
** whatever the host byte order. */
static uint64_t get_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Encodes a little-endian uint64, the writer's header length field. */
static void put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Converts a JSON number to an exact integer in 0..2^53-1 (cJSON keeps
** numbers as doubles, which are exact only there); returns 0 for anything
** else: non-numbers, negatives, fractions, huge values, NaN, infinity. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d < (double)ST_INT_LIMIT)) return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

/* Multiplies a by b into *out, returning 0 instead when the product would
** overflow, so hostile shapes cannot wrap around to a small byte count. */
static int mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* Orders two strings through pointers to them, for qsort. */
static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails with RN_ERR_FORMAT or RN_ERR_ARG (`code`) when two of n strings are
** equal. The strings are the leading char pointer of n structs `stride`
** bytes apart from base (name of rn_st_tensor/rn_st_out, key of
** rn_st_meta); sorting a copy finds duplicates in O(n log n). */
static rn_status check_unique(const char *what, rn_status code, const void *base, size_t stride,
                              size_t n, const char *kind, rn_error *err) {
    const char **names = malloc((n ? n : 1) * sizeof *names);
    const char *dup = NULL;
    if (!names) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory checking %ss", what, kind);
    for (size_t i = 0; i < n; i++)
        memcpy(&names[i], (const char *)base + i * stride, sizeof names[i]);
    if (n > 1) qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
    rn_status s = dup ? rn_fail(err, code, "%s: duplicate %s \"%s\"", what, kind, dup) : RN_OK;
    free(names);
    return s;
}

/* Formats a shape as "[2, 3]" into buf for error messages. */
static void shape_str(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* ---- reading: one tensor entry ------------------------------------------ */

/* Picks out the "dtype", "shape" and "data_offsets" members of a tensor
** entry into m[0..2]; any other member, or one given twice, is an error
** because cJSON would silently use the first of two. */
static rn_status entry_members(const st_ctx *c, const char *name, const cJSON *e,
                               const cJSON *m[3]) {
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *it;
    m[0] = m[1] = m[2] = NULL;
    cJSON_ArrayForEach(it, e) {
        const char *key = it->string ? it->string : "";
        int k = 0;
        while (k < 3 && strcmp(key, keys[k]) != 0) k++;
        if (k == 3)
            return rn_fail(c->err, RN_ERR_FORMAT, "%s: tensor \"%s\": unexpected member \"%s\"",
                           c->what, name, key);
        if (m[k])
            return rn_fail(c->err, RN_ERR_FORMAT, "%s: tensor \"%s\": \"%s\" appears twice",
                           c->what, name, key);
        m[k] = it;
    }
    for (int k = 0; k < 3; k++)
        if (!m[k])
            return rn_fail(c->err, RN_ERR_FORMAT, "%s: tensor \"%s\": missing \"%s\"", c->what,
                           name, keys[k]);
    return RN_OK;
}

/* Reads a tensor's "dtype" member, which must name a supported dtype. */
static rn_status parse_dtype(const st_ctx *c, const char *name, const cJSON *v, rn_dtype *out) {
    if (!cJSON_IsString(v) || !v->valuestring)
        return rn_fail(c->err, RN_ERR_FORMAT, "%s: tensor \"%s\": dtype is not a string", c->what,
                       name);
    if (!rn_dtype_from_name(v->valuestring, out))
        return rn_fail(c->err, RN_ERR_FORMAT,
                       "%s: tensor \"%s\": unknown dtype \"%s\" (expected F32, F64, F16, BF16, "
                       "I64, I32, I16, I8, U8 or BOOL)",
                       c->what, name, v->valuestring);
    return RN_OK;
}

/* Reads a tensor's "shape" member into t: an array of at most
** RN_ST_MAX_DIMS exact non-negative integers ([] is a scalar). */
static rn_status parse_shape(const st_ctx *c, const char *name, const cJSON *v, rn_st_tensor *t) {
    const cJSON *d;
    int ndim = 0;
    if (!cJSON_IsArray(v))
        return rn_fail(c->err, RN_ERR_FORMAT, "%s: tensor \"%s\": shape is not an array", c->what,
                       name);
    cJSON_ArrayForEach(d, v) {
        uint64_t u;
        if (ndim == RN_ST_MAX_DIMS)
            return rn_fail(c->err, RN_ERR_FORMAT,
                           "%s: tensor \"%s\": shape has more than %d dimensions", c->what, name,
                           RN_ST_MAX_DIMS);
        if (!json_uint(d, &u))
            return rn_fail(c->err, RN_ERR_FORMAT,
                           "%s: tensor \"%s\": shape[%d] is not an integer in 0..2^53-1", c->what,
                           name, ndim);
        t->shape[ndim++] = (int64_t)u;
    }
    t->ndim = ndim;
    return RN_OK;
}

/* Computes the bytes a tensor's shape and dtype need, failing when the
** element count or byte count overflows 64 bits. */
static rn_status shape_bytes(const st_ctx *c, const char *name, const rn_st_tensor *t,
                             uint64_t *out) {
    uint64_t n = rn_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (!mul_u64(n, (uint64_t)t->shape[i], &n)) {
            char s[256];
            shape_str(t->shape, t->ndim, s, sizeof s);
            return rn_fail(c->err, RN_ERR_FORMAT, "%s: tensor \"%s\": shape %s is too large",
                           c->what, name, s);
        }
    }
    *out = n;
    return RN_OK;
}

/* Reads a tensor's "data_offsets" member: two exact integers
** begin <= end with end inside the data section. */
static rn_status parse_offsets(const st_ctx *c, const char *name, const cJSON *v, st_range *r) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !json_uint(v->child, &r->begin) ||
        !json_uint(v->child->next, &r->end))
        return rn_fail(c->err, RN_ERR_FORMAT,
                       "%s: tensor \"%s\": data_offsets is not two integers [begin, end]", c->what,
                       name);
    if (r->begin > r->end)
        return rn_fail(c->err, RN_ERR_FORMAT,
                       "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                       "] has begin after end",
                       c->what, name, r->begin, r->end);
    if (r->end > c->data_size)
        return rn_fail(c->err, RN_ERR_FORMAT,
                       "%s: tensor \"%s\": data_offsets end %" PRIu64
                       " is past the end of the data section (%" PRIu64 " bytes)",
                       c->what, name, r->end, c->data_size);
    return RN_OK;
}

/* Fails unless a tensor's byte range holds exactly what its shape and
** dtype need. */
static rn_status check_span(const st_ctx *c, const char *name, const rn_st_tensor *t,
                            const st_range *r, uint64_t nbytes) {
    char s[256];
    if (r->end - r->begin == nbytes) return RN_OK;
    shape_str(t->shape, t->ndim, s, sizeof s);
    return rn_fail(c->err, RN_ERR_FORMAT,
                   "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                   " bytes but %s shape %s needs %" PRIu64,
                   c->what, name, r->begin, r->end, r->end - r->begin, rn_dtype_name(t->dtype), s,
                   nbytes);
}

/* Validates one tensor entry and fills t (all but its name) and its byte
** range r; data is the start of the data section. */
static rn_status parse_tensor(const st_ctx *c, const char *name, const cJSON *e,
                              const unsigned char *data, rn_st_tensor *t, st_range *r) {
    const cJSON *m[3];
    uint64_t nbytes = 0;
    rn_status s;
    if (!cJSON_IsObject(e))
        return rn_fail(c->err, RN_ERR_FORMAT, "%s: tensor \"%s\": entry is not an object",
                       c->what, name);
    if ((s = entry_members(c, name, e, m)) != RN_OK) return s;
    if ((s = parse_dtype(c, name, m[0], &t->dtype)) != RN_OK) return s;
    if ((s = parse_shape(c, name, m[1], t)) != RN_OK) return s;
    if ((s = shape_bytes(c, name, t, &nbytes)) != RN_OK) return s;
    if ((s = parse_offsets(c, name, m[2], r)) != RN_OK) return s;
    if ((s = check_span(c, name, t, r, nbytes)) != RN_OK) return s;
    t->data = data + r->begin;
    t->nbytes = (size_t)nbytes;
    return RN_OK;
}

/* ---- reading: the whole header ------------------------------------------ */

/* Reads "__metadata__" into f: an object whose members are all strings,
** with unique keys. */
static rn_status parse_meta(const st_ctx *c, const cJSON *obj, rn_st_file *f) {
    const cJSON *it;
    int n;
    if (!cJSON_IsObject(obj))
        return rn_fail(c->err, RN_ERR_FORMAT, "%s: __metadata__ is not an object", c->what);
    n = cJSON_GetArraySize(obj);
    f->meta = calloc(n > 0 ? (size_t)n : 1, sizeof *f->meta);
    if (!f->meta) return rn_fail(c->err, RN_ERR_NOMEM, "%s: out of memory for metadata", c->what);
    cJSON_ArrayForEach(it, obj) {
        rn_st_meta *m = &f->meta[f->nmeta];
        if (!cJSON_IsString(it) || !it->valuestring || !it->string)
            return rn_fail(c->err, RN_ERR_FORMAT, "%s: __metadata__ \"%s\" is not a string",
                           c->what, it->string ? it->string : "");
        m->key = strdup(it->string);
        m->value = strdup(it->valuestring);
        f->nmeta++;
        if (!m->key || !m->value)
            return rn_fail(c->err, RN_ERR_NOMEM, "%s: out of memory for metadata", c->what);
    }
    return check_unique(c->what, RN_ERR_FORMAT, &f->meta[0].key, sizeof *f->meta,
                        (size_t)f->nmeta, "__metadata__ key", c->err);
}

/* Parses the tensor entry `it` into the next slot of f and ranges. */
static rn_status add_tensor(const st_ctx *c, const cJSON *it, const unsigned char *data,
                            rn_st_file *f, st_range *ranges) {
    rn_st_tensor *t = &f->tensors[f->ntensors];
    st_range *r = &ranges[f->ntensors];
    rn_status s = parse_tensor(c, it->string, it, data, t, r);
    if (s != RN_OK) return s;
    t->name = strdup(it->string);
    if (!t->name) return rn_fail(c->err, RN_ERR_NOMEM, "%s: out of memory for names", c->what);
    r->name = t->name;
    f->ntensors++;
    return RN_OK;
}

/* Walks the header object, sending "__metadata__" to parse_meta and every
** other member to add_tensor. */
static rn_status parse_entries(const st_ctx *c, const cJSON *root, const unsigned char *data,
                               rn_st_file *f, st_range *ranges) {
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        rn_status s;
        if (!it->string)
            return rn_fail(c->err, RN_ERR_FORMAT, "%s: header member without a name", c->what);
        if (strcmp(it->string, "__metadata__") != 0)
            s = add_tensor(c, it, data, f, ranges);
        else if (f->meta)
            s = rn_fail(c->err, RN_ERR_FORMAT, "%s: __metadata__ appears twice", c->what);
        else
            s = parse_meta(c, it, f);
        if (s != RN_OK) return s;
    }
    return RN_OK;
}

/* Orders byte ranges by begin, then end, for qsort. */
static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Fails if two tensors share a byte (empty tensors share none). Reorders
** ranges; sorted by begin, disjoint ranges each start at or after the end
** of the one before. */
static rn_status check_overlaps(const st_ctx *c, st_range *r, size_t n) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (r[i].begin < r[i].end) r[m++] = r[i];
    if (m > 1) qsort(r, m, sizeof *r, cmp_range);
    for (size_t i = 1; i < m; i++) {
        if (r[i].begin < r[i - 1].end)
            return rn_fail(c->err, RN_ERR_FORMAT,
                           "%s: tensors \"%s\" [%" PRIu64 ", %" PRIu64 ") and \"%s\" [%" PRIu64
                           ", %" PRIu64 ") overlap",
                           c->what, r[i - 1].name, r[i - 1].begin, r[i - 1].end, r[i].name,
                           r[i].begin, r[i].end);
    }
    return RN_OK;
}

/* Returns 1 if the n bytes at p are all JSON whitespace (the padding after
** the header object). */
static int all_space(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return 0;
    return 1;
}

/* Parses n header bytes into a cJSON object. Works on a NUL-terminated copy
** so cJSON cannot overrun; rejects NUL bytes, invalid JSON, anything but
** whitespace after the value, and a value that is not an object. */
static rn_status parse_json(const st_ctx *c, const unsigned char *hdr, size_t n, cJSON **out) {
    const char *end = NULL;
    char *text = malloc(n + 1);
    rn_status s = RN_OK;
    if (!text) return rn_fail(c->err, RN_ERR_NOMEM, "%s: out of memory for the header", c->what);
    memcpy(text, hdr, n);
    text[n] = '\0';
    *out = NULL;
    if (strlen(text) != n)
        s = rn_fail(c->err, RN_ERR_FORMAT, "%s: header contains a NUL byte at %zu", c->what,
                    strlen(text));
    else if (!(*out = cJSON_ParseWithLengthOpts(text, n, &end, 0)))
        s = rn_fail(c->err, RN_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu)",
                    c->what, end ? (size_t)(end - text) : (size_t)0);
    else if (!all_space(end, n - (size_t)(end - text)))
        s = rn_fail(c->err, RN_ERR_FORMAT, "%s: header has trailing data after the JSON at byte %zu",
                    c->what, (size_t)(end - text));
    else if (!cJSON_IsObject(*out))
        s = rn_fail(c->err, RN_ERR_FORMAT, "%s: header is not a JSON object", c->what);
    free(text);
    return s;
}

/* Allocates f->tensors and the range table, sized for every header member. */
static rn_status alloc_tables(const st_ctx *c, const cJSON *root, rn_st_file *f,
                              st_range **ranges) {
    int n = cJSON_GetArraySize(root);
    size_t cap = n > 0 ? (size_t)n : 1;
    f->tensors = calloc(cap, sizeof *f->tensors);
    *ranges = calloc(cap, sizeof **ranges);
    if (!f->tensors || !*ranges)
        return rn_fail(c->err, RN_ERR_NOMEM, "%s: out of memory for %d tensors", c->what, n);
    return RN_OK;
}

/* Parses and validates the JSON header (hdr, hlen bytes) into f; data is
** the start of the data section that offsets are relative to. */
static rn_status parse_header(const st_ctx *c, const unsigned char *hdr, size_t hlen,
                              const unsigned char *data, rn_st_file *f) {
    cJSON *root = NULL;
    st_range *ranges = NULL;
    rn_status s = parse_json(c, hdr, hlen, &root);
    if (s == RN_OK) s = alloc_tables(c, root, f, &ranges);
    if (s == RN_OK) s = parse_entries(c, root, data, f, ranges);
    if (s == RN_OK)
        s = check_unique(c->what, RN_ERR_FORMAT, &f->tensors[0].name, sizeof *f->tensors,
                         (size_t)f->ntensors, "tensor name", c->err);
    if (s == RN_OK) s = check_overlaps(c, ranges, (size_t)f->ntensors);
    free(ranges);
    cJSON_Delete(root);
    return s;
}

/* Checks the 8-byte length field against the buffer size and the 100 MB
** cap before anything is allocated for the header; sets *hlen and
** c->data_size. */
static rn_status check_lengths(st_ctx *c, const unsigned char *buf, size_t size, uint64_t *hlen) {
    if (size < 8)
        return rn_fail(c->err, RN_ERR_FORMAT,
                       "%s: only %zu bytes, too short for the 8-byte header length", c->what, size);
    *hlen = get_le64(buf);
    if (*hlen == 0) return rn_fail(c->err, RN_ERR_FORMAT, "%s: header length is 0", c->what);
    if (*hlen > size - 8)
        return rn_fail(c->err, RN_ERR_FORMAT,
                       "%s: header length %" PRIu64 " is more than the %zu bytes after it",
                       c->what, *hlen, size - 8);
    if (*hlen > RN_ST_MAX_HEADER)
        return rn_fail(c->err, RN_ERR_FORMAT,
                       "%s: header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes",
                       c->what, *hlen, RN_ST_MAX_HEADER);
    c->data_size = size - 8 - *hlen;
    return RN_OK;
}

/* Validates a file image and fills f; takes ownership of buf (size bytes),
** which f keeps on success and which is freed with f on failure. */
static rn_status parse_owned(unsigned char *buf, size_t size, const char *what, rn_st_file *f,
                             rn_error *err) {
    st_ctx c = {what, 0, err};
    uint64_t hlen = 0;
    rn_status s;
    memset(f, 0, sizeof *f);
    f->buf = buf;
    f->size = size;
    s = check_lengths(&c, buf, size, &hlen);
    if (s == RN_OK) s = parse_header(&c, buf + 8, (size_t)hlen, buf + 8 + hlen, f);
    if (s != RN_OK) rn_st_free(f);
    return s;
}

/* ---- reading: public entry points -------------------------------------- */

/* Finds the size of the open regular file fp, refusing directories, pipes
** and devices whose size is not known up front. */
static rn_status file_size(const char *path, FILE *fp, size_t *size, rn_error *err) {
    struct stat st;
    if (fstat(fileno(fp), &st) != 0)
        return rn_fail(err, RN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return rn_fail(err, RN_ERR_IO, "%s: not a regular file", path);
    if (st.st_size < 0 || (uint64_t)st.st_size >= SIZE_MAX)
        return rn_fail(err, RN_ERR_NOMEM, "%s: too large to read into memory", path);
    *size = (size_t)st.st_size;
    return RN_OK;
}

/* Reads all of the open file fp into a new buffer, checking that every
** byte the size promised arrived. */
static rn_status read_stream(const char *path, FILE *fp, unsigned char **out, size_t *size,
                             rn_error *err) {
    size_t n = 0, got;
    unsigned char *buf;
    rn_status s = file_size(path, fp, &n, err);
    if (s != RN_OK) return s;
    buf = malloc(n ? n : 1);
    if (!buf) return rn_fail(err, RN_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    got = fread(buf, 1, n, fp);
    if (got != n) {
        int e = ferror(fp) ? errno : 0;
        free(buf);
        if (e) return rn_fail(err, RN_ERR_IO, "%s: read failed: %s", path, strerror(e));
        return rn_fail(err, RN_ERR_IO, "%s: file shrank while reading (%zu of %zu bytes)", path,
                       got, n);
    }
    *out = buf;
    *size = n;
    return RN_OK;
}

/* Reads and validates a whole safetensors file into *f; on failure *f is
** empty and err names the file and the problem. */
rn_status rn_st_read(const char *path, rn_st_file *f, rn_error *err) {
    unsigned char *buf = NULL;
    size_t size = 0;
    FILE *fp;
    rn_status s;
    if (!f) return rn_fail(err, RN_ERR_ARG, "rn_st_read: no output file struct");
    memset(f, 0, sizeof *f);
    if (!path) return rn_fail(err, RN_ERR_ARG, "rn_st_read: no path");
    fp = fopen(path, "rb");
    if (!fp) return rn_fail(err, RN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    s = read_stream(path, fp, &buf, &size, err);
    fclose(fp); /* read-only stream: nothing to lose if closing fails */
    if (s != RN_OK) return s;
    return parse_owned(buf, size, path, f, err);
}

/* Reads only the header of the safetensors file at path and keeps its
** __metadata__ in f (no tensors, no data): checkpoints compare the CRCs
** two files carry without reading their weights. */
rn_status rn_st_read_meta(const char *path, rn_st_file *f, rn_error *err) {
    unsigned char len[8], *hdr = NULL;
    st_ctx c = {path, 0, err};
    uint64_t hlen = 0;
    cJSON *root = NULL;
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return rn_fail(err, RN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    rn_status s = fread(len, 1, 8, fp) == 8 ? RN_OK : rn_fail(err, RN_ERR_FORMAT, "%s: shorter than 8 bytes", path);
    if (s == RN_OK && ((hlen = get_le64(len)) == 0 || hlen > RN_ST_MAX_HEADER))
        s = rn_fail(err, RN_ERR_FORMAT, "%s: header length %" PRIu64 " is 0 or too large", path, hlen);
    if (s == RN_OK && !(hdr = malloc((size_t)hlen)))
        s = rn_fail(err, RN_ERR_NOMEM, "%s: out of memory for the header", path);
    if (s == RN_OK && fread(hdr, 1, (size_t)hlen, fp) != hlen)
        s = rn_fail(err, RN_ERR_FORMAT, "%s: file ends inside its %" PRIu64 "-byte header", path, hlen);
    fclose(fp);
    if (s == RN_OK) s = parse_json(&c, hdr, (size_t)hlen, &root);
    const cJSON *meta = root ? cJSON_GetObjectItemCaseSensitive(root, "__metadata__") : NULL;
    if (s == RN_OK && meta) s = parse_meta(&c, meta, f);
    cJSON_Delete(root);
    free(hdr);
    if (s != RN_OK) rn_st_free(f);
    return s;
}

/* Validates a file image held in memory (copied, so the caller keeps its
** buffer); used by fuzzers and for data not on disk. */
rn_status rn_st_parse(const void *data, size_t size, const char *what, rn_st_file *f,
                      rn_error *err) {
    unsigned char *buf;
    if (!what) what = "<buffer>";
    if (!f) return rn_fail(err, RN_ERR_ARG, "%s: no output file struct", what);
    memset(f, 0, sizeof *f);
    if (!data && size) return rn_fail(err, RN_ERR_ARG, "%s: NULL data", what);
    buf = malloc(size ? size : 1);
    if (!buf) return rn_fail(err, RN_ERR_NOMEM, "%s: cannot allocate %zu bytes", what, size);
    if (size) memcpy(buf, data, size);
    return parse_owned(buf, size, what, f, err);
}

/* Returns the tensor called name, or NULL; a linear scan, fine for the
** hundreds of tensors of a ResNet. */
const rn_st_tensor *rn_st_find(const rn_st_file *f, const char *name) {
    for (int i = 0; f && name && i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

/* Returns the __metadata__ value for key, or NULL if absent. */
const char *rn_st_meta_get(const rn_st_file *f, const char *key) {
    for (int i = 0; f && key && i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* Returns a tensor's element count (1 for a scalar); cannot overflow for
** tensors that were read, as the reader checked it. */
uint64_t rn_st_numel(const rn_st_tensor *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

/* Frees everything a read allocated and empties *f, so freeing twice or
** freeing an empty struct is harmless. */
void rn_st_free(rn_st_file *f) {
    if (!f) return;
    for (int i = 0; f->tensors && i < f->ntensors; i++) free(f->tensors[i].name);
    for (int i = 0; f->meta && i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

/* ---- writing: validation ------------------------------------------------ */

/* Computes the bytes an output tensor holds; returns 0 on a negative or
** too large dimension (anything the reader would reject) or overflow. */
static int out_nbytes(const rn_st_out *t, uint64_t *out) {
    uint64_t n = rn_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || (uint64_t)t->shape[i] >= ST_INT_LIMIT) return 0;
        if (!mul_u64(n, (uint64_t)t->shape[i], &n)) return 0;
    }
    *out = n;
    return 1;
}

/* Checks one tensor to write (index i): name, dtype, rank, shape, data;
** sets *nbytes to its data size. */
static rn_status check_out_tensor(const char *path, const rn_st_out *t, int i, uint64_t *nbytes,
                                  rn_error *err) {
    if (!t->name) return rn_fail(err, RN_ERR_ARG, "%s: tensor %d has no name", path, i);
    if (strcmp(t->name, "__metadata__") == 0)
        return rn_fail(err, RN_ERR_ARG, "%s: tensor %d may not be called __metadata__", path, i);
    if (rn_dtype_size(t->dtype) == 0)
        return rn_fail(err, RN_ERR_ARG, "%s: tensor \"%s\": invalid dtype %d", path, t->name,
                       (int)t->dtype);
    if (t->ndim < 0 || t->ndim > RN_ST_MAX_DIMS)
        return rn_fail(err, RN_ERR_ARG, "%s: tensor \"%s\": ndim %d is not in 0..%d", path,
                       t->name, t->ndim, RN_ST_MAX_DIMS);
    if (!out_nbytes(t, nbytes) || *nbytes > SIZE_MAX)
        return rn_fail(err, RN_ERR_ARG, "%s: tensor \"%s\": shape has a negative or too large "
                       "dimension", path, t->name);
    if (*nbytes > 0 && !t->data)
        return rn_fail(err, RN_ERR_ARG, "%s: tensor \"%s\": no data", path, t->name);
    return RN_OK;
}

/* Checks every metadata entry has a key and a value, keys unique. */
static rn_status check_out_meta(const char *path, const rn_st_meta *meta, int nmeta,
                                rn_error *err) {
    if (nmeta < 0 || (nmeta > 0 && !meta))
        return rn_fail(err, RN_ERR_ARG, "%s: bad metadata array (%d entries)", path, nmeta);
    for (int i = 0; i < nmeta; i++)
        if (!meta[i].key || !meta[i].value)
            return rn_fail(err, RN_ERR_ARG, "%s: metadata entry %d has a NULL key or value",
                           path, i);
    return nmeta > 0 ? check_unique(path, RN_ERR_ARG, &meta[0].key, sizeof *meta, (size_t)nmeta,
                                    "metadata key", err)
                     : RN_OK;
}

/* Checks all arguments of rn_st_write before anything touches the disk:
** each tensor, unique names, a total the reader can address, metadata. */
static rn_status check_outputs(const char *path, const rn_st_out *t, int n,
                               const rn_st_meta *meta, int nmeta, rn_error *err) {
    uint64_t total = 0;
    if (n < 0 || (n > 0 && !t))
        return rn_fail(err, RN_ERR_ARG, "%s: bad tensor array (%d entries)", path, n);
    for (int i = 0; i < n; i++) {
        uint64_t nb = 0;
        rn_status s = check_out_tensor(path, &t[i], i, &nb, err);
        if (s != RN_OK) return s;
        if (nb >= ST_INT_LIMIT - total)
            return rn_fail(err, RN_ERR_ARG, "%s: total tensor data is too large", path);
        total += nb;
    }
    if (n > 0) {
        rn_status s = check_unique(path, RN_ERR_ARG, &t[0].name, sizeof *t, (size_t)n,
                                   "tensor name", err);
        if (s != RN_OK) return s;
    }
    return check_out_meta(path, meta, nmeta, err);
}

/* ---- writing: the header ------------------------------------------------ */

/* Adds an array of integers to obj under key as raw JSON text, so every
** value prints exactly (cJSON formats numbers as doubles). */
static int add_int_array(cJSON *obj, const char *key, const uint64_t *v, int n) {
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    if (!arr) return 0;
    for (int i = 0; i < n; i++) {
        char num[24];
        cJSON *item;
        snprintf(num, sizeof num, "%" PRIu64, v[i]);
        item = cJSON_CreateRaw(num);
        if (!item || !cJSON_AddItemToArray(arr, item)) {
            cJSON_Delete(item);
            return 0;
        }
    }
    return 1;
}

/* Adds a tensor's {"dtype", "shape", "data_offsets"} entry to root. */
static int add_tensor_entry(cJSON *root, const rn_st_out *t, uint64_t begin, uint64_t end) {
    uint64_t shape[RN_ST_MAX_DIMS], off[2] = {begin, end};
    cJSON *e = cJSON_AddObjectToObject(root, t->name);
    if (!e || !cJSON_AddStringToObject(e, "dtype", rn_dtype_name(t->dtype))) return 0;
    for (int i = 0; i < t->ndim; i++) shape[i] = (uint64_t)t->shape[i];
    return add_int_array(e, "shape", shape, t->ndim) && add_int_array(e, "data_offsets", off, 2);
}

/* Adds "__metadata__" (first, as the reference writer places it) and every
** tensor with back-to-back offsets to root; returns 0 on allocation failure. */
static int fill_json(cJSON *root, const rn_st_out *t, int n, const rn_st_meta *meta, int nmeta) {
    uint64_t off = 0;
    if (nmeta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) return 0;
        for (int i = 0; i < nmeta; i++)
            if (!cJSON_AddStringToObject(m, meta[i].key, meta[i].value)) return 0;
    }
    for (int i = 0; i < n; i++) {
        uint64_t nb = 0;
        out_nbytes(&t[i], &nb); /* validated by check_outputs */
        if (!add_tensor_entry(root, &t[i], off, off + nb)) return 0;
        off += nb;
    }
    return 1;
}

/* Renders the file's header into a new buffer: the 8-byte length, the
** JSON, then spaces up to a multiple of 8 bytes so data starts aligned. */
static rn_status render_header(const char *path, const rn_st_out *t, int n,
                               const rn_st_meta *meta, int nmeta, unsigned char **out,
                               size_t *len, rn_error *err) {
    cJSON *root = cJSON_CreateObject();
    char *json = root && fill_json(root, t, n, meta, nmeta) ? cJSON_PrintUnformatted(root) : NULL;
    size_t jl, padded;
    unsigned char *h;
    cJSON_Delete(root);
    if (!json) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory building the header", path);
    jl = strlen(json);
    padded = jl + (8 - jl % 8) % 8;
    h = malloc(8 + padded);
    if (!h) {
        cJSON_free(json);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    put_le64(h, padded);
    memcpy(h + 8, json, jl);
    memset(h + 8 + jl, ' ', padded - jl);
    cJSON_free(json);
    *out = h;
    *len = 8 + padded;
    return RN_OK;
}

/* ---- writing: the file -------------------------------------------------- */

/* Writes n bytes to fp, reporting a short write against the file name. */
static rn_status write_bytes(FILE *fp, const void *p, size_t n, const char *name, rn_error *err) {
    if (n == 0 || fwrite(p, 1, n, fp) == n) return RN_OK;
    return rn_fail(err, RN_ERR_IO, "%s: write failed: %s", name, strerror(errno));
}

/* Writes the chunks to fp one after another, then flushes and fsyncs it
** so the bytes are on disk before the rename makes them visible. */
static rn_status write_contents(FILE *fp, const char *tmp, const rn_chunk *c, int n, rn_error *err) {
    rn_status s = RN_OK;
    for (int i = 0; i < n && s == RN_OK; i++) s = write_bytes(fp, c[i].data, c[i].size, tmp, err);
    if (s == RN_OK && fflush(fp) != 0)
        s = rn_fail(err, RN_ERR_IO, "%s: flush failed: %s", tmp, strerror(errno));
    if (s == RN_OK && fsync(fileno(fp)) != 0)
        s = rn_fail(err, RN_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    return s;
}

/* Creates the temp file and writes the whole file into it durably; removes
** it again on any failure. */
static rn_status write_temp(const char *tmp, const rn_chunk *c, int n, rn_error *err) {
    FILE *fp = fopen(tmp, "wb");
    rn_status s;
    if (!fp) return rn_fail(err, RN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    s = write_contents(fp, tmp, c, n, err);
    if (fclose(fp) != 0 && s == RN_OK)
        s = rn_fail(err, RN_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s != RN_OK) remove(tmp);
    return s;
}

/* Returns a new string "<path>.tmp.<pid>": same directory, so rename() is
** atomic, and unique per process. NULL if out of memory. */
static char *temp_path(const char *path) {
    size_t cap = strlen(path) + 32;
    char *p = malloc(cap);
    if (p) snprintf(p, cap, "%s.tmp.%ld", path, (long)getpid());
    return p;
}

/* Returns a new string holding the directory part of path ("." when there
** is none, "/" for files in the root). NULL if out of memory. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, slash ? path : ".", n);
    d[n] = '\0';
    return d;
}

/* fsyncs the directory holding path so the rename itself survives a
** crash. Filesystems that cannot sync directories (EINVAL) are accepted. */
static rn_status sync_dir(const char *path, rn_error *err) {
    char *dir = dir_of(path);
    int fd, e = 0;
    rn_status s = RN_OK;
    if (!dir) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        e = errno;
    } else {
        if (fsync(fd) != 0 && errno != EINVAL) e = errno;
        close(fd);
    }
    if (e)
        s = rn_fail(err, RN_ERR_IO, "%s: written, but syncing directory %s failed: %s", path, dir,
                    strerror(e));
    free(dir);
    return s;
}

/* Writes chunks to path atomically: a temp file beside path, written and
** fsynced, renamed over path, then the directory fsynced. Before the
** rename any failure leaves path untouched. Shared by every file writer. */
rn_status rn_write_atomic(const char *path, const rn_chunk *c, int n, rn_error *err) {
    rn_status s = RN_OK;
    char *tmp = temp_path(path);
    if (!tmp) return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
    s = write_temp(tmp, c, n, err);
    if (s == RN_OK && rename(tmp, path) != 0) {
        s = rn_fail(err, RN_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        remove(tmp);
    }
    if (s == RN_OK) s = sync_dir(path, err);
    free(tmp);
    return s;
}

/* Writes a safetensors file atomically: validate, render the header, then
** the header and each tensor's bytes as chunks through rn_write_atomic. */
rn_status rn_st_write(const char *path, const rn_st_out *t, int n, const rn_st_meta *meta,
                      int nmeta, rn_error *err) {
    unsigned char *hdr = NULL;
    size_t hlen = 0;
    rn_chunk *c;
    rn_status s;
    if (!path || !*path) return rn_fail(err, RN_ERR_ARG, "rn_st_write: no path");
    s = check_outputs(path, t, n, meta, nmeta, err);
    if (s == RN_OK) s = render_header(path, t, n, meta, nmeta, &hdr, &hlen, err);
    if (s != RN_OK) return s;
    c = malloc(((size_t)n + 1) * sizeof *c);
    if (!c) {
        free(hdr);
        return rn_fail(err, RN_ERR_NOMEM, "%s: out of memory", path);
    }
    c[0].data = hdr, c[0].size = hlen;
    for (int i = 0; i < n; i++) {
        uint64_t nb = 0;
        out_nbytes(&t[i], &nb); /* validated by check_outputs */
        c[i + 1].data = t[i].data, c[i + 1].size = (size_t)nb;
    }
    s = rn_write_atomic(path, c, n + 1, err);
    free(c);
    free(hdr);
    return s;
}
