// CLIP's byte-level BPE tokenizer (OpenAI CLIP / OpenCLIP / transformers' CLIPTokenizer).
// Text -> clean-up (ftfy-like fixes, HTML unescape, whitespace collapse, lower-case) -> words by
// CLIP's pattern (special tokens, contractions, letter runs, single digits, other runs) -> UTF-8
// bytes mapped to printable characters -> BPE merges by rank, `</w>` marking a word's end -> ids.
#pragma once
#include <stdint.h>

#include "clip/text_clean.h"   // clip_clean_text

// The context lengths (positions) the encoders take: a row holds BOS, at least one token and EOS.
#define CLIP_MIN_CONTEXT 3
#define CLIP_MAX_CONTEXT 65536

typedef struct clip_tokenizer clip_tokenizer;

// Loads from `path`: a folder holding vocab.json + merges.txt (a diffusers `tokenizer/`), or
// OpenAI's bpe_simple_vocab_16e6.txt.gz; a diffusers model folder (its tokenizer/); or the .gz
// file itself. The pad token comes from special_tokens_map.json / tokenizer_config.json next to
// the vocabulary when present (transformers' precedence), else it is the EOS token.
// NULL with sl_error.
clip_tokenizer *clip_tokenizer_load(const char *path);
clip_tokenizer *clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt);
clip_tokenizer *clip_tokenizer_load_gz(const char *gz_path);
// The vocabulary compiled into the program (clip/vocab/: OpenAI's bpe_simple_vocab_16e6, MIT).
clip_tokenizer *clip_tokenizer_load_default(void);
// Its gzip bytes (for `init`, which writes them into the folders it makes).
const unsigned char *clip_default_vocab_gz(size_t *len);
void clip_tokenizer_free(clip_tokenizer *t);

// The tokenizer for a model, as the commands resolve it. `model` is a diffusers folder (uses its
// tokenizer/), a tokenizer folder or .gz, or a single-file checkpoint. `tokenizer_dir` (may be
// NULL) overrides the vocabulary; a model that carries none (every single-file checkpoint, a
// tokenizer/ with only configs) gets the built-in one. Unless the model's tokenizer configs say
// otherwise, the pad token follows the text encoder (OpenCLIP pads with id 0, OpenAI
// CLIP with EOS). NULL with sl_error.
clip_tokenizer *clip_tokenizer_for_model(const char *model, const char *tokenizer_dir);

int clip_tokenizer_bos(const clip_tokenizer *t);
int clip_tokenizer_eos(const clip_tokenizer *t);
int clip_tokenizer_pad(const clip_tokenizer *t);
void clip_tokenizer_set_pad(clip_tokenizer *t, int id);
int clip_tokenizer_vocab_size(const clip_tokenizer *t);
// model_max_length from tokenizer_config.json (77 when absent).
int clip_tokenizer_max_length(const clip_tokenizer *t);
// The vocabulary string of an id ("a</w>"), or NULL when out of range.
const char *clip_tokenizer_token(const clip_tokenizer *t, int id);
// The id of a vocabulary string, or -1.
int clip_tokenizer_lookup(const clip_tokenizer *t, const char *token);

// The BPE ids of `text` without BOS/EOS (malloc'd, *n of them; never NULL).
int *clip_tokenize(const clip_tokenizer *t, const char *text, int *n);

// ids (ctx) = [BOS, first ctx-2 tokens, EOS, pad...]. Returns the number of text tokens before
// truncation; when that exceeds ctx-2 and `warn` is set, prints a warning. -1 with sl_error when
// ctx is outside CLIP_MIN_CONTEXT..CLIP_MAX_CONTEXT.
int clip_encode(const clip_tokenizer *t, const char *text, int ctx, int32_t *ids, int warn);

// Long prompts, A1111 style: the tokens are cut into chunks of ctx-2 (a full chunk breaks after
// its last comma when that comma is within the last 20 tokens, moving the rest to the next
// chunk), each chunk becomes [BOS, chunk, EOS, pad...]. Returns malloc'd (n_chunks, ctx) ids,
// n_chunks >= 1 (the empty prompt gives one chunk). The text encoder encodes each row; the
// conditionings are concatenated along the sequence: (n_chunks·ctx, D). NULL with sl_error when
// ctx is outside CLIP_MIN_CONTEXT..CLIP_MAX_CONTEXT.
int32_t *clip_encode_chunks(const clip_tokenizer *t, const char *text, int ctx, int *n_chunks);
// The same chunking from token ids, where an id < 0 is A1111's BREAK (the current chunk ends
// there, padded), with optional per-token weights w (NULL = all 1): *w_out (may be NULL) gets
// malloc'd (n_chunks, ctx) weights that follow the tokens into their chunks, 1 for BOS, EOS and
// padding.
int32_t *clip_chunk_tokens(const clip_tokenizer *t, const int *tok, const float *w, int n, int ctx, int *n_chunks,
                           float **w_out);
// One row [BOS, the first min(n, ctx-2) tokens, EOS, pad...].
void clip_ids_row(const clip_tokenizer *t, const int *tok, int n, int ctx, int32_t *ids);
