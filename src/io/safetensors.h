/*
** safetensors files: reading (with full validation) and atomic writing.
**
** Layout: an 8-byte little-endian uint64 N, then N bytes of JSON mapping
** tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} plus an
** optional "__metadata__" object of string -> string, then the data
** section. Offsets are relative to the first byte after the header; data
** is raw little-endian.
**
** A file that is read is kept whole in memory (rn_st_file.buf) and every
** tensor's data pointer points into it. Those pointers are NOT aligned for
** their dtype in general: copy out with memcpy rather than casting.
*/
#ifndef RN_IO_SAFETENSORS_H
#define RN_IO_SAFETENSORS_H

#include "resnet.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RN_DT_F32,
    RN_DT_F64,
    RN_DT_F16,
    RN_DT_BF16,
    RN_DT_I64,
    RN_DT_I32,
    RN_DT_I16,
    RN_DT_I8,
    RN_DT_U8,
    RN_DT_BOOL
} rn_dtype;

#define RN_ST_MAX_DIMS 8
/* Largest JSON header accepted on read. */
#define RN_ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

/* A tensor of a file that was read. name is owned by the rn_st_file; data
** points into its buf (possibly unaligned) and spans nbytes. */
typedef struct {
    char *name;
    rn_dtype dtype;
    int ndim;
    int64_t shape[RN_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} rn_st_tensor;

/* One __metadata__ entry. */
typedef struct {
    char *key;
    char *value;
} rn_st_meta;

/* A whole file in memory: tensors in header order, metadata in header order. */
typedef struct {
    unsigned char *buf;
    size_t size;
    rn_st_tensor *tensors;
    int ntensors;
    rn_st_meta *meta;
    int nmeta;
} rn_st_file;

/* The safetensors name of a dtype ("F32", ...), "?" for an invalid value. */
const char *rn_dtype_name(rn_dtype d);
/* Bytes per element of a dtype, 0 for an invalid value. */
size_t rn_dtype_size(rn_dtype d);
/* Looks up a dtype by its safetensors name; returns 1 if found, else 0. */
int rn_dtype_from_name(const char *name, rn_dtype *out);

/* Reads and validates a whole file. *f is overwritten (not freed first);
** on failure it is left empty and err names the file and the problem
** (RN_ERR_IO for open/read failures, RN_ERR_FORMAT for bad contents). */
rn_status rn_st_read(const char *path, rn_st_file *f, rn_error *err);
/* Reads only the header's __metadata__ into *f (f->ntensors is 0). */
rn_status rn_st_read_meta(const char *path, rn_st_file *f, rn_error *err);
/* Same from a memory buffer (copied); `what` names it in messages. */
rn_status rn_st_parse(const void *data, size_t size, const char *what, rn_st_file *f,
                      rn_error *err);
/* The tensor called name, or NULL. */
const rn_st_tensor *rn_st_find(const rn_st_file *f, const char *name);
/* The metadata value for key, or NULL if absent. */
const char *rn_st_meta_get(const rn_st_file *f, const char *key);
/* Number of elements of a tensor (1 for a scalar, shape []). */
uint64_t rn_st_numel(const rn_st_tensor *t);
/* Frees everything a read allocated and leaves *f empty; safe on an empty f. */
void rn_st_free(rn_st_file *f);

/* A tensor to write. data may be NULL only when the tensor has no elements. */
typedef struct {
    const char *name;
    rn_dtype dtype;
    int ndim;
    int64_t shape[RN_ST_MAX_DIMS];
    const void *data;
} rn_st_out;

/* Writes tensors (in the given order, data packed back to back as the
** reference implementation requires) and metadata (may be NULL/0)
** atomically: writes `path.tmp.<pid>`, fflush + fsync, renames it over
** path, fsyncs the directory. On failure before the rename the temp file
** is removed and any old file at path is untouched. The JSON header is
** padded with spaces to a multiple of 8 bytes. */
rn_status rn_st_write(const char *path, const rn_st_out *t, int n, const rn_st_meta *meta,
                      int nmeta, rn_error *err);

/* A piece of a file to write: size bytes at data. */
typedef struct {
    const void *data;
    size_t size;
} rn_chunk;

/* Writes the chunks one after another to path atomically, as rn_st_write
** does (temp file, fsync, rename, directory fsync); errors name the file. */
rn_status rn_write_atomic(const char *path, const rn_chunk *c, int n, rn_error *err);

#endif
