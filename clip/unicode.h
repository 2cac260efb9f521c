// The bits of Unicode the CLIP tokenizer needs: UTF-8 (engine/core/utf8.h), the letter and number
// categories (\p{L}, \p{N}), Python's str.isspace() and str.lower() for single code points.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/core/utf8.h"   // utf8_decode, utf8_encode

int uni_is_letter(uint32_t cp);   // general category L*
int uni_is_number(uint32_t cp);   // general category N*
int uni_is_space(uint32_t cp);    // Python's str.isspace() (what re's \s matches)
uint32_t uni_lower(uint32_t cp);  // Python's str.lower() (single-character mappings)

// Generated tables (clip/unicode_tables.c).
extern const uint32_t UNI_LETTER[][2];
extern const int UNI_LETTER_N;
extern const uint32_t UNI_NUMBER[][2];
extern const int UNI_NUMBER_N;
extern const int32_t UNI_LOWER[][4];
extern const int UNI_LOWER_N;
extern const uint32_t UNI_COMPOSE[][3];
extern const int UNI_COMPOSE_N;

// The NFC composition of a + b (e.g. 'e' + U+0301 -> 'é'), or 0 when they do not compose.
uint32_t uni_compose(uint32_t a, uint32_t b);
