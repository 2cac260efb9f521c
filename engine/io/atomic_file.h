// Writing a file so that a crash never leaves a half-written file under its final name:
// write to a temp file beside it, fsync, rename over, fsync the directory.
#pragma once
#include <stddef.h>

// Writes the n buffers in order as the new content of `path`. 0, or -1 with sl_error.
int atomic_write(const char *path, const void *const *bufs, const size_t *lens, int n);
