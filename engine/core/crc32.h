// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as PNG chunks and gzip members use it.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Continues a CRC over p[0..n): start with crc = 0; crc32_update(crc32_update(0, a), b) is the
// CRC of a followed by b.
uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n);
