// Small file helpers the subcommands share.
#pragma once
#include <stdint.h>

#include "engine/safetensors.h"

// 1 when s ends with suffix (ASCII case-insensitive: ".PNG" is a PNG too).
int ends_with(const char *s, const char *suffix);

// ---- files: each returns 0, or -1 with sl_error naming the path ----

// Creates dir and any missing parents (an existing folder is fine).
int mkdir_p(const char *dir);
// Copies the file `from` to `to` (written atomically: a crash leaves no half file).
int copy_file(const char *from, const char *to);
// Copies every regular file directly inside the folder `from` into the folder `to`.
int copy_folder_files(const char *from, const char *to);

// ---- inputs of the `forward` commands (safetensors files); each dies with one clear line ----

// The tensor `name` of f with ndim dims, none empty; `what` describes it for the errors, shape
// first, e.g. "(N, C, h, w) latents".
const st_entry *input_tensor(const st_file *f, const char *name, int ndim, const char *what);
// Dies unless e is F32.
void input_require_f32(const st_file *f, const st_entry *e, const char *what);
// The (N, L) I32 or I64 token ids in e as int32 (owned; free()).
int32_t *input_token_ids(const st_file *f, const st_entry *e);
