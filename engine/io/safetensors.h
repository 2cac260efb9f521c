// safetensors: a memory-mapped reader that validates the whole header before use,
// and an atomic writer (temp file, fsync, rename).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/core/dtype.h"
#include "engine/core/tensor.h"

#define ST_MAX_HEADER (100u * 1024u * 1024u)

typedef struct {
    char *name;
    dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    size_t begin, end;   // byte range inside the data section
    const void *data;    // points into the mapping
    int used;            // set by loaders, to report tensors nothing consumed
} st_entry;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    st_entry *entries;   // sorted by name
    int n_entries;
    char **meta_keys, **meta_values;
    int n_meta;
} st_file;

// Opens and validates `path`. Returns NULL with sl_error set on any problem.
st_file *st_open(const char *path);
void st_close(st_file *f);

const st_entry *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key);   // NULL when absent
tensor st_tensor_view(const st_entry *e);                  // borrowed view of the data

// Loads tensor `name` as owned f32 (64-byte aligned), checking its shape when ndim >= 0
// (shape entries < 0 match anything). Marks it used. NULL with sl_error on failure.
float *st_load_f32(st_file *f, const char *name, int ndim, const int64_t *shape);
// 0 when x[0..n) (tensor `name` of f, widened) is all finite, else -1 with sl_error naming the
// file, the tensor and the first nan/inf. st_load_f32 checks with it: weights are finite.
int st_check_finite(const st_file *f, const char *name, const float *x, int64_t n);

// ---- writer ----
typedef struct st_writer st_writer;

st_writer *st_writer_new(void);
// Adds a tensor; data is borrowed until st_writer_save returns.
void st_writer_add(st_writer *w, const char *name, dtype dt, int ndim, const int64_t *shape,
                   const void *data);
void st_writer_meta(st_writer *w, const char *key, const char *value);
// Writes to a temp file next to `path`, fsyncs and renames. Tensors are laid out widest elements
// first (stable otherwise), as Python's safetensors does: each starts aligned to its element size.
// 0 on success, -1 with sl_error.
int st_writer_save(st_writer *w, const char *path);
void st_writer_free(st_writer *w);
