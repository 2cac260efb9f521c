// CLIP's prompt clean-up before tokenization (OpenAI CLIP's basic_clean + whitespace_clean +
// lower()): what ftfy.fix_text does to ordinary prompts, HTML entities unescaped twice,
// whitespace collapsed and stripped, then Python's str.lower().
#pragma once
#include <stddef.h>
#include <stdint.h>

// Returns the cleaned text as malloc'd UTF-8.
char *clip_clean_text(const char *text);

// The steps, on code-point arrays; each returns a malloc'd array of *n_out code points.
// ftfy's fixes that matter for prompts: C1 controls as Windows-1252, control characters removed,
// Latin ligatures split, full-width forms narrowed, curly quotes straightened, NFC composition.
uint32_t *clean_ftfy(const uint32_t *cp, size_t n, size_t *n_out);
// Python's html.unescape: &name; (common names; the Latin-1 ones also without ';'), &#NNN;,
// &#xHH; (with Python's replacements for invalid references).
uint32_t *clean_html_unescape(const uint32_t *cp, size_t n, size_t *n_out);
