// A1111's "Model hash" (the first 10 hex digits of the weights file's SHA-256), cached like
// A1111 does: hashing a 2-4 GB checkpoint takes seconds, so the digest is kept in
// $XDG_CACHE_HOME/singlora/hashes.tsv (else ~/.cache/...) keyed by path, size and mtime.
#pragma once

// The SHA-256 hex (65 bytes) of a model's weights: the file itself, or a diffusers folder's
// unet weights. 0, or -1 with sl_error. A cache that cannot be read or written is ignored.
int model_sha256(const char *model_path, char hex[65]);
