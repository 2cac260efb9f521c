// UTF-8: decoding, encoding and validation (RFC 3629: no overlong forms, no surrogates, nothing
// past U+10FFFF). The CLIP tokenizer decodes text with it; file formats whose text must be UTF-8
// (safetensors headers) are validated with it.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Decodes one code point from s (n bytes left, n >= 1); *len gets the bytes consumed.
// Invalid or truncated sequences decode as U+FFFD consuming one byte.
uint32_t utf8_decode(const char *s, size_t n, int *len);
// Writes cp as UTF-8 into out (at least 4 bytes); returns the byte count.
int utf8_encode(uint32_t cp, char *out);
// The offset of the first byte of s[0..n) that is not part of a valid UTF-8 sequence, or n.
size_t utf8_invalid_at(const char *s, size_t n);
