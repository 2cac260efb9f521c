// SHA-256 (FIPS 180-4), for model hashes as A1111 prints them (first 10 hex digits of the
// file's SHA-256, "AutoV2").
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[32]);
// hex (65 bytes) of a file's SHA-256; 0, or -1 with sl_error.
int sha256_file_hex(const char *path, char hex[65]);
