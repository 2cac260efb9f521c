// Whole-file reads: the one reader behind configs, tokenizer files, images and file copies.
#pragma once
#include <stddef.h>

// Reads all of `path` (a regular file or a pipe) into a buffer that ends with an extra NUL byte
// (so text can be parsed in place); *len gets the byte count. Files over max_bytes are refused
// with "<what> larger than N MB". NULL with sl_error naming the file on any failure. free() it.
char *read_file(const char *path, size_t *len, size_t max_bytes, const char *what);
