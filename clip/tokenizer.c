#include "clip/tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stb/stb_image.h>   // stbi_zlib_decode_noheader_malloc (the implementation is in libstb)

#include "clip/unicode.h"
#include "engine/io/config.h"
#include "engine/core/crc32.h"
#include "engine/core/error.h"
#include "engine/core/strmap.h"
#include "engine/io/file_read.h"
#include "engine/io/model_files.h"
#include "engine/io/safetensors.h"

#define TOKENIZER_MAX_BYTES (256u << 20)   // vocab.json / merges.txt / bpe .gz files

// CLIP keeps the first 49152 - 256 - 2 merges of its BPE file (the vocabulary is 256 byte
// characters, 256 of them with </w>, one token per merge, and 2 special tokens: 49408).
#define CLIP_N_MERGES (49152 - 256 - 2)
#define COMMA_BACKTRACK 20   // A1111's comma_padding_backtrack default

// ---- the merge map: (id, id) -> (rank, merged id); strings -> ids are a strmap ----

typedef struct { uint64_t *keys; int *rank, *merged; size_t cap; } pairmap;

static uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1); }

static void pairmap_init(pairmap *m, size_t n) {
    m->cap = hash_capacity(2 * n + 1);
    m->keys = sl_calloc(m->cap, sizeof *m->keys);
    m->rank = sl_calloc(m->cap, sizeof *m->rank);
    m->merged = sl_calloc(m->cap, sizeof *m->merged);
}

static void pairmap_put(pairmap *m, int a, int b, int rank, int merged) {
    uint64_t k = pair_key(a, b);
    size_t i = hash_mix64(k) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != k) i = (i + 1) & (m->cap - 1);
    if (m->keys[i]) return;   // a repeated merge keeps its first (best) rank
    m->keys[i] = k;
    m->rank[i] = rank;
    m->merged[i] = merged;
}

// The slot of (a, b), or -1.
static long pairmap_find(const pairmap *m, int a, int b) {
    uint64_t k = pair_key(a, b);
    size_t i = hash_mix64(k) & (m->cap - 1);
    while (m->keys[i]) {
        if (m->keys[i] == k) return (long)i;
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

// ---- the tokenizer ----

struct clip_tokenizer {
    int n_vocab;
    char **tokens;         // id -> vocabulary string
    strmap vocab;          // vocabulary string -> id
    pairmap merges;        // (left id, right id) -> rank, merged id
    int byte_id[256];      // a byte as a symbol inside a word
    int byte_end_id[256];  // ... and as a word's last symbol (with </w>)
    uint32_t byte_cp[256]; // GPT-2/CLIP bytes_to_unicode
    int bos, eos, pad, comma, max_length;
};

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
// get the code points 256.. in byte order, so that every byte is a visible character.
static void bytes_to_unicode(uint32_t cp[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

void clip_tokenizer_free(clip_tokenizer *t) {
    if (!t) return;
    if (t->tokens)
        for (int i = 0; i < t->n_vocab; i++) free(t->tokens[i]);
    free(t->tokens);
    strmap_free(&t->vocab);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.merged);
    free(t);
}

// Splits merges text into lines 1..CLIP_N_MERGES (line 0 is the "#version" header), each "a b".
// Returns the number of merges; lefts/rights point into `text` (which is modified).
static int split_merges(const char *path, char *text, char ***lefts, char ***rights) {
    char **l = sl_malloc(CLIP_N_MERGES * sizeof *l), **r = sl_malloc(CLIP_N_MERGES * sizeof *r);
    int n = 0, line = 0;
    char *p = text;
    while (*p && n < CLIP_N_MERGES) {
        char *end = strchr(p, '\n');
        if (end) *end = 0;
        if (line > 0) {
            size_t len = strlen(p);
            if (len && p[len - 1] == '\r') p[--len] = 0;
            char *sp = strchr(p, ' ');
            if (len == 0 && !end) break;   // trailing newline at the end of the file
            if (!sp || sp == p || !sp[1] || strchr(sp + 1, ' ')) {
                free(l);
                free(r);
                return sl_error(path, "line %d: expected a merge 'left right', got '%.40s'", line + 1, p);
            }
            *sp = 0;
            l[n] = p;
            r[n] = sp + 1;
            n++;
        }
        line++;
        if (!end) break;
        p = end + 1;
    }
    *lefts = l;
    *rights = r;
    return n;
}

// Builds the string -> id map and the merge table, and finds the byte and special tokens.
static int finish(clip_tokenizer *t, const char *path, char **lefts, char **rights, int n_merges) {
    strmap_init(&t->vocab, (size_t)t->n_vocab);
    for (int i = 0; i < t->n_vocab; i++) {
        if (!t->tokens[i]) return sl_error(path, "the vocabulary has no token with id %d", i);
        if (strmap_put(&t->vocab, t->tokens[i], i) >= 0)
            return sl_error(path, "token '%s' appears twice in the vocabulary", t->tokens[i]);
    }
    bytes_to_unicode(t->byte_cp);
    for (int b = 0; b < 256; b++) {
        char s[16];
        int k = utf8_encode(t->byte_cp[b], s);
        s[k] = 0;
        t->byte_id[b] = strmap_get(&t->vocab, s);
        strcpy(s + k, "</w>");
        t->byte_end_id[b] = strmap_get(&t->vocab, s);
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return sl_error(path, "the vocabulary lacks the byte token for 0x%02X (not a CLIP vocabulary)", b);
    }
    pairmap_init(&t->merges, (size_t)n_merges);
    char buf[1024];
    for (int i = 0; i < n_merges; i++) {
        int a = strmap_get(&t->vocab, lefts[i]), b = strmap_get(&t->vocab, rights[i]);
        snprintf(buf, sizeof buf, "%s%s", lefts[i], rights[i]);
        int m = strmap_get(&t->vocab, buf);
        if (a < 0 || b < 0 || m < 0)
            return sl_error(path, "merge %d '%s %s': %s is not in the vocabulary", i + 1, lefts[i], rights[i],
                            a < 0 ? "the left part" : b < 0 ? "the right part" : "the merged token");
        pairmap_put(&t->merges, a, b, i, m);
    }
    t->bos = strmap_get(&t->vocab, "<|startoftext|>");
    t->eos = strmap_get(&t->vocab, "<|endoftext|>");
    if (t->bos < 0 || t->eos < 0) return sl_error(path, "the vocabulary lacks <|startoftext|> or <|endoftext|>");
    t->pad = t->eos;
    t->comma = strmap_get(&t->vocab, ",</w>");
    t->max_length = 77;
    return 0;
}

clip_tokenizer *clip_tokenizer_load_hf(const char *vocab_json, const char *merges_txt) {
    size_t len;
    char *text = read_file(vocab_json, &len, TOKENIZER_MAX_BYTES, "tokenizer file");
    if (!text) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        sl_error(vocab_json, "not a JSON object of token -> id");
        return NULL;
    }
    clip_tokenizer *t = sl_calloc(1, sizeof *t);
    int n = cJSON_GetArraySize(root), max_id = -1;
    for (cJSON *it = root->child; it; it = it->next) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= n || it->valuedouble != it->valueint) {
            sl_error(vocab_json, "token '%.40s': the id must be an integer in [0, %d)", it->string, n);
            goto fail;
        }
        if (it->valueint > max_id) max_id = it->valueint;
    }
    t->n_vocab = max_id + 1;
    t->tokens = sl_calloc((size_t)t->n_vocab, sizeof *t->tokens);
    for (cJSON *it = root->child; it; it = it->next) {
        if (t->tokens[it->valueint]) {
            sl_error(vocab_json, "id %d is given to both '%s' and '%s'", it->valueint, t->tokens[it->valueint], it->string);
            goto fail;
        }
        t->tokens[it->valueint] = sl_strdup(it->string);
    }
    cJSON_Delete(root);
    root = NULL;
    char *mtext = read_file(merges_txt, &len, TOKENIZER_MAX_BYTES, "tokenizer file");
    if (!mtext) goto fail;
    char **l = NULL, **r = NULL;
    int nm = split_merges(merges_txt, mtext, &l, &r);
    int rc = nm < 0 ? -1 : finish(t, merges_txt, l, r, nm);
    free(l);
    free(r);
    free(mtext);
    if (rc != 0) goto fail;
    return t;
fail:
    cJSON_Delete(root);
    clip_tokenizer_free(t);
    return NULL;
}

// ---- gzip (RFC 1952) around a raw deflate stream ----

// The inflated, NUL-terminated text of the gzip member u[0..n); `path` names it in errors.
static char *gunzip(const char *path, const unsigned char *u, size_t n, size_t *out_len) {
    const char *raw = (const char *)u;
    char *out = NULL;
    if (n < 18 || u[0] != 0x1F || u[1] != 0x8B || u[2] != 8) {
        sl_error(path, "not a gzip file");
        goto done;
    }
    int flags = u[3];
    size_t p = 10;
    if (flags & 4) {   // FEXTRA: 2-byte length, then that many bytes
        if (p + 2 > n) goto truncated;
        p += 2 + (size_t)(u[p] | u[p + 1] << 8);
    }
    for (int bit = 8; bit <= 16; bit *= 2)   // FNAME, FCOMMENT: zero-terminated
        if (flags & bit) {
            while (p < n && u[p]) p++;
            p++;
        }
    if (flags & 2) p += 2;   // FHCRC
    if (p + 8 > n) goto truncated;
    int got = 0;
    size_t payload = n - p - 8;
    if (payload > INT_MAX) { sl_error(path, "too large"); goto done; }
    out = stbi_zlib_decode_noheader_malloc(raw + p, (int)payload, &got);
    if (!out) { sl_error(path, "the deflate stream is corrupt"); goto done; }
    const unsigned char *tr = u + n - 8;
    uint32_t crc = (uint32_t)tr[0] | (uint32_t)tr[1] << 8 | (uint32_t)tr[2] << 16 | (uint32_t)tr[3] << 24;
    uint32_t isize = (uint32_t)tr[4] | (uint32_t)tr[5] << 8 | (uint32_t)tr[6] << 16 | (uint32_t)tr[7] << 24;
    if (isize != (uint32_t)got || crc != crc32_update(0, (const uint8_t *)out, (size_t)got)) {
        free(out);
        out = NULL;
        sl_error(path, "gzip size or CRC check failed (corrupt file)");
        goto done;
    }
    char *s = sl_malloc((size_t)got + 1);   // NUL-terminated copy
    memcpy(s, out, (size_t)got);
    s[got] = 0;
    free(out);
    out = s;
    *out_len = (size_t)got;
    goto done;
truncated:
    sl_error(path, "truncated gzip header");
done:
    return out;
}

// OpenAI's merge list (the inflated .txt.gz text, which it frees) to a tokenizer.
static clip_tokenizer *load_bpe_text(const char *gz_path, char *text) {
    char **l = NULL, **r = NULL;
    int nm = split_merges(gz_path, text, &l, &r);
    if (nm < 0) { free(text); return NULL; }
    // OpenAI's vocabulary: the 256 byte characters (in code point order, as bytes_to_unicode
    // lists them), the same with </w>, one token per merge, then the two special tokens
    clip_tokenizer *t = sl_calloc(1, sizeof *t);
    t->n_vocab = 512 + nm + 2;
    t->tokens = sl_calloc((size_t)t->n_vocab, sizeof *t->tokens);
    uint32_t cp[256];
    bytes_to_unicode(cp);
    uint32_t order[256];
    int k = 0;
    for (int b = 0; b < 256; b++)
        if (cp[b] < 256) order[k++] = cp[b];
    for (int b = 0; b < 256; b++)
        if (cp[b] >= 256) order[k++] = cp[b];
    for (int i = 0; i < 256; i++) {
        char s[16];
        int m = utf8_encode(order[i], s);
        s[m] = 0;
        t->tokens[i] = sl_strdup(s);
        strcpy(s + m, "</w>");
        t->tokens[256 + i] = sl_strdup(s);
    }
    for (int i = 0; i < nm; i++) {
        size_t a = strlen(l[i]), b = strlen(r[i]);
        char *s = sl_malloc(a + b + 1);
        memcpy(s, l[i], a);
        memcpy(s + a, r[i], b + 1);
        t->tokens[512 + i] = s;
    }
    t->tokens[512 + nm] = sl_strdup("<|startoftext|>");
    t->tokens[513 + nm] = sl_strdup("<|endoftext|>");
    int rc = finish(t, gz_path, l, r, nm);
    free(l);
    free(r);
    free(text);
    if (rc != 0) { clip_tokenizer_free(t); return NULL; }
    return t;
}

clip_tokenizer *clip_tokenizer_load_gz(const char *gz_path) {
    size_t n, len;
    char *raw = read_file(gz_path, &n, TOKENIZER_MAX_BYTES, "tokenizer file");
    if (!raw) return NULL;
    char *text = gunzip(gz_path, (const unsigned char *)raw, n, &len);
    free(raw);
    return text ? load_bpe_text(gz_path, text) : NULL;
}

clip_tokenizer *clip_tokenizer_load_default(void) {
    size_t n, len;
    const unsigned char *gz = clip_default_vocab_gz(&n);
    char *text = gunzip("(built-in CLIP vocabulary)", gz, n, &len);
    return text ? load_bpe_text("(built-in CLIP vocabulary)", text) : NULL;
}

// ---- folders and configs ----

static int file_in(char *buf, size_t len, const char *dir, const char *name) {
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return n > 0 && (size_t)n < len && path_exists(buf);
}

// A special token given as "text" or {"content": "text"}.
static const char *token_content(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

// Reads pad_token (special_tokens_map.json wins over tokenizer_config.json, as in transformers)
// and model_max_length from `dir`. Returns 1 when a pad token was found, 0 when not, -1 on error.
static int read_special_config(clip_tokenizer *t, const char *dir) {
    char path[4096];
    const char *files[2] = {"tokenizer_config.json", "special_tokens_map.json"};
    int found = 0;
    for (int f = 0; f < 2; f++) {
        if (!file_in(path, sizeof path, dir, files[f])) continue;
        json_config *c = config_load(path);
        if (!c) return -1;
        const cJSON *pad = cJSON_GetObjectItemCaseSensitive(c->root, "pad_token");
        if (pad && !cJSON_IsNull(pad)) {
            const char *s = token_content(pad);
            int id = s ? strmap_get(&t->vocab, s) : -1;
            if (id < 0) {
                sl_error(path, "pad_token '%s' is not in the vocabulary", s ? s : "?");
                config_free(c);
                return -1;
            }
            t->pad = id;
            found = 1;
        }
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(c->root, "model_max_length");
        // transformers writes a huge sentinel when there is no limit; keep 77 then
        if (cJSON_IsNumber(ml) && ml->valuedouble >= 2 && ml->valuedouble <= 100000) t->max_length = ml->valueint;
        config_free(c);
    }
    return found;
}

clip_tokenizer *clip_tokenizer_load(const char *path) {
    char a[4096], b[4096];
    size_t n = strlen(path);
    if (!path_is_dir(path)) {
        if (n > 3 && !strcmp(path + n - 3, ".gz")) return clip_tokenizer_load_gz(path);
        sl_error(path, path_exists(path) ? "not a tokenizer folder or .gz vocabulary"
                                         : "no such file or folder");
        return NULL;
    }
    if (file_in(a, sizeof a, path, "tokenizer") && path_is_dir(a)) return clip_tokenizer_load(a);
    clip_tokenizer *t = NULL;
    if (file_in(a, sizeof a, path, "vocab.json") && file_in(b, sizeof b, path, "merges.txt"))
        t = clip_tokenizer_load_hf(a, b);
    else if (file_in(a, sizeof a, path, "bpe_simple_vocab_16e6.txt.gz"))
        t = clip_tokenizer_load_gz(a);
    else {
        sl_error(path, "no tokenizer here: expected vocab.json + merges.txt, bpe_simple_vocab_16e6.txt.gz, or a "
                       "tokenizer/ folder");
        return NULL;
    }
    if (t && read_special_config(t, path) < 0) { clip_tokenizer_free(t); return NULL; }
    return t;
}

static int has_tokenizer_files(const char *dir) {
    char a[4096];
    return file_in(a, sizeof a, dir, "vocab.json") || file_in(a, sizeof a, dir, "bpe_simple_vocab_16e6.txt.gz");
}

// OpenCLIP (SD 2.x) pads with id 0 ("!"); OpenAI CLIP (SD 1.x) with EOS. -1: unknown model.
static int family_pad(const clip_tokenizer *t, const char *model) {
    char a[4096];
    if (path_is_dir(model)) {
        if (!file_in(a, sizeof a, model, "text_encoder/config.json")) return -1;
        json_config *c = config_load(a);
        if (!c) return -1;
        const char *act = NULL;
        int pad = config_string_or(c, "hidden_act", "quick_gelu", &act) == 0 && !strcmp(act, "gelu") ? 0 : t->eos;
        config_free(c);
        return pad;
    }
    st_file *f = st_open(model);
    if (!f) return -1;
    int pad = -1;
    if (st_find(f, "cond_stage_model.model.token_embedding.weight")) pad = 0;
    else if (st_find(f, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") ||
             st_find(f, "cond_stage_model.transformer.embeddings.token_embedding.weight"))
        pad = t->eos;
    st_close(f);
    return pad;
}

clip_tokenizer *clip_tokenizer_for_model(const char *model, const char *tokenizer_dir) {
    char own[4096];
    int is_dir = path_is_dir(model);
    if (!is_dir && !path_exists(model)) { sl_error(model, "no such file or folder"); return NULL; }
    int has_own = is_dir && file_in(own, sizeof own, model, "tokenizer") && path_is_dir(own);
    if (!tokenizer_dir) {
        if (has_own && has_tokenizer_files(own)) return clip_tokenizer_load(own);
        size_t n = strlen(model);
        if (!has_own && ((is_dir && has_tokenizer_files(model)) || (!is_dir && n > 3 && !strcmp(model + n - 3, ".gz"))))
            return clip_tokenizer_load(model);
    }
    // --tokenizer's vocabulary, else the built-in one (the model carries none: every single-file
    // checkpoint; SD 1.x and 2.x share the vocabulary)
    clip_tokenizer *t = tokenizer_dir ? clip_tokenizer_load(tokenizer_dir) : clip_tokenizer_load_default();
    if (!t) return NULL;
    // the pad token belongs to the model: its own tokenizer config, else its text encoder family
    int rc = has_own ? read_special_config(t, own) : 0;
    if (rc < 0) { clip_tokenizer_free(t); return NULL; }
    if (rc == 0) {
        int pad = family_pad(t, model);
        if (pad >= 0) t->pad = pad;
        sl_error_clear();
    }
    return t;
}

int clip_tokenizer_bos(const clip_tokenizer *t) { return t->bos; }
int clip_tokenizer_eos(const clip_tokenizer *t) { return t->eos; }
int clip_tokenizer_pad(const clip_tokenizer *t) { return t->pad; }
void clip_tokenizer_set_pad(clip_tokenizer *t, int id) { t->pad = id; }
int clip_tokenizer_vocab_size(const clip_tokenizer *t) { return t->n_vocab; }
int clip_tokenizer_max_length(const clip_tokenizer *t) { return t->max_length; }
const char *clip_tokenizer_token(const clip_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab ? t->tokens[id] : NULL;
}
int clip_tokenizer_lookup(const clip_tokenizer *t, const char *token) { return strmap_get(&t->vocab, token); }

// ---- encoding ----

typedef struct { int *v; int n, cap; } intvec;

static void push(intvec *a, int x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = sl_realloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

// BPE on one word's bytes: start from single bytes (the last with </w>) and merge the pair
// of lowest rank, every non-overlapping occurrence left to right, until no pair has a rank.
static void bpe_word(const clip_tokenizer *t, const unsigned char *b, int nb, intvec *out) {
    int *sym = sl_malloc((size_t)nb * sizeof *sym);
    for (int i = 0; i < nb; i++) sym[i] = i == nb - 1 ? t->byte_end_id[b[i]] : t->byte_id[b[i]];
    int n = nb;
    while (n > 1) {
        int best = INT_MAX, merged = -1, a = 0, c = 0;
        for (int i = 0; i + 1 < n; i++) {
            long s = pairmap_find(&t->merges, sym[i], sym[i + 1]);
            if (s >= 0 && t->merges.rank[s] < best) {
                best = t->merges.rank[s];
                merged = t->merges.merged[s];
                a = sym[i];
                c = sym[i + 1];
            }
        }
        if (merged < 0) break;
        int o = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == c) { sym[o++] = merged; i += 2; }
            else sym[o++] = sym[i++];
        }
        n = o;
    }
    for (int i = 0; i < n; i++) push(out, sym[i]);
    free(sym);
}

static int match_ascii(const uint32_t *cp, int n, int i, const char *s) {
    int k = 0;
    for (; s[k]; k++)
        if (i + k >= n || cp[i + k] != (unsigned char)s[k]) return 0;
    return k;
}

// Length of the contraction at i ('s 't 're 've 'm 'll 'd), or 0.
static int contraction(const uint32_t *cp, int n, int i) {
    if (cp[i] != '\'' || i + 1 >= n) return 0;
    uint32_t c = cp[i + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
    if (i + 2 < n) {
        uint32_t d = cp[i + 2];
        if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
    }
    return 0;
}

int *clip_tokenize(const clip_tokenizer *t, const char *text, int *n_out) {
    char *clean = clip_clean_text(text);
    size_t len = strlen(clean);
    uint32_t *cp = sl_malloc((len + 1) * sizeof *cp);
    size_t *off = sl_malloc((len + 1) * sizeof *off);   // byte offset of each code point
    int n = 0;
    for (size_t i = 0; i < len;) {
        int k;
        off[n] = i;
        cp[n++] = utf8_decode(clean + i, len - i, &k);
        i += (size_t)k;
    }
    off[n] = len;
    intvec out = {0};
    // CLIP's pattern, first alternative that matches at each position:
    // <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
    for (int i = 0; i < n;) {
        int j, k;
        if ((k = match_ascii(cp, n, i, "<|startoftext|>"))) { push(&out, t->bos); i += k; continue; }
        if ((k = match_ascii(cp, n, i, "<|endoftext|>"))) { push(&out, t->eos); i += k; continue; }
        if ((k = contraction(cp, n, i))) j = i + k;
        else if (uni_is_letter(cp[i])) for (j = i + 1; j < n && uni_is_letter(cp[j]); j++) {}
        else if (uni_is_number(cp[i])) j = i + 1;
        else if (uni_is_space(cp[i])) { i++; continue; }
        else
            for (j = i + 1; j < n && !uni_is_space(cp[j]) && !uni_is_letter(cp[j]) && !uni_is_number(cp[j]); j++) {}
        bpe_word(t, (const unsigned char *)clean + off[i], (int)(off[j] - off[i]), &out);
        i = j;
    }
    free(cp);
    free(off);
    free(clean);
    *n_out = out.n;
    if (!out.v) out.v = sl_malloc(sizeof(int));
    return out.v;
}

// The text of tokens (</w> as a space, byte characters back to bytes), malloc'd.
static char *decode_tokens(const clip_tokenizer *t, const int *ids, int n) {
    size_t cap = 16;
    for (int i = 0; i < n; i++) cap += strlen(t->tokens[ids[i]]);
    char *s = sl_malloc(cap);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        const char *p = t->tokens[ids[i]];
        size_t len = strlen(p);
        for (size_t j = 0; j < len;) {
            if (!strncmp(p + j, "</w>", 4)) { s[o++] = ' '; j += 4; continue; }
            int k;
            uint32_t c = utf8_decode(p + j, len - j, &k);
            j += (size_t)k;
            int byte = -1;
            for (int b = 0; b < 256 && byte < 0; b++)
                if (t->byte_cp[b] == c) byte = b;
            if (byte >= 0) s[o++] = (char)byte;
        }
    }
    while (o > 0 && s[o - 1] == ' ') o--;
    s[o] = 0;
    return s;
}

static void fill_row(const clip_tokenizer *t, const int *tok, int n, int ctx, int32_t *ids) {
    ids[0] = t->bos;
    for (int i = 0; i < n; i++) ids[1 + i] = tok[i];
    ids[1 + n] = t->eos;
    for (int i = n + 2; i < ctx; i++) ids[i] = t->pad;
}

static int check_context(int ctx) {
    if (ctx < CLIP_MIN_CONTEXT || ctx > CLIP_MAX_CONTEXT)
        return sl_error(NULL, "a context of %d positions: the tokenizer needs %d..%d (BOS, a token, EOS)", ctx,
                        CLIP_MIN_CONTEXT, CLIP_MAX_CONTEXT);
    return 0;
}

int clip_encode(const clip_tokenizer *t, const char *text, int ctx, int32_t *ids, int warn) {
    if (check_context(ctx) != 0) return -1;
    int n;
    int *tok = clip_tokenize(t, text, &n);
    int keep = n < ctx - 2 ? n : ctx - 2;
    if (n > keep && warn) {
        char *lost = decode_tokens(t, tok + keep, n - keep);
        sl_warn("the prompt is %d tokens long; CLIP reads %d, so \"%.200s%s\" is dropped (--long-prompts keeps it)",
                n, keep, lost, strlen(lost) > 200 ? "..." : "");
        free(lost);
    }
    fill_row(t, tok, keep, ctx, ids);
    free(tok);
    return n;
}

void clip_ids_row(const clip_tokenizer *t, const int *tok, int n, int ctx, int32_t *ids) {
    if (n > ctx - 2) n = ctx - 2;
    fill_row(t, tok, n, ctx, ids);
}

int32_t *clip_chunk_tokens(const clip_tokenizer *t, const int *tok, const float *w, int n, int ctx, int *n_chunks,
                           float **w_out) {
    if (check_context(ctx) != 0) return NULL;
    int chunk_len = ctx - 2;
    // chunk boundaries as A1111's FrozenCLIPEmbedderWithCustomWords draws them
    intvec starts = {0}, lens = {0};
    int *chunk = sl_malloc((size_t)(chunk_len + 1) * sizeof *chunk);
    float *cw = sl_malloc((size_t)(chunk_len + 1) * sizeof *cw);
    int *flat = sl_malloc((size_t)(n + 1) * sizeof *flat);   // the tokens, chunk after chunk
    float *flat_w = sl_malloc((size_t)(n + 1) * sizeof *flat_w);
    int nflat = 0, clen = 0, last_comma = -1;
#define NEXT_CHUNK()                                                             \
    do {                                                                         \
        push(&starts, nflat);                                                    \
        push(&lens, clen);                                                       \
        memcpy(flat + nflat, chunk, (size_t)clen * sizeof *chunk);               \
        memcpy(flat_w + nflat, cw, (size_t)clen * sizeof *cw);                   \
        nflat += clen;                                                           \
        clen = 0;                                                                \
        last_comma = -1;                                                         \
    } while (0)
    for (int i = 0; i < n; i++) {
        if (tok[i] < 0) {   // BREAK: the chunk ends here, even an empty one
            NEXT_CHUNK();
            continue;
        }
        if (tok[i] == t->comma) {
            last_comma = clen;
        } else if (clen == chunk_len && last_comma != -1 && clen - last_comma <= COMMA_BACKTRACK) {
            // move the words after the chunk's last comma into the next chunk
            int brk = last_comma + 1, nmove = clen - brk;
            int moved[COMMA_BACKTRACK + 1];
            float moved_w[COMMA_BACKTRACK + 1];
            memcpy(moved, chunk + brk, (size_t)nmove * sizeof *chunk);
            memcpy(moved_w, cw + brk, (size_t)nmove * sizeof *cw);
            clen = brk;
            NEXT_CHUNK();
            memcpy(chunk, moved, (size_t)nmove * sizeof *chunk);
            memcpy(cw, moved_w, (size_t)nmove * sizeof *cw);
            clen = nmove;
        }
        if (clen == chunk_len) NEXT_CHUNK();
        cw[clen] = w ? w[i] : 1.0f;
        chunk[clen++] = tok[i];
    }
    if (clen > 0 || starts.n == 0) NEXT_CHUNK();
#undef NEXT_CHUNK
    int32_t *ids = sl_malloc((size_t)starts.n * (size_t)ctx * sizeof *ids);
    for (int c = 0; c < starts.n; c++) fill_row(t, flat + starts.v[c], lens.v[c], ctx, ids + (size_t)c * ctx);
    if (w_out) {
        // BOS, EOS and padding keep weight 1
        float *wo = sl_malloc((size_t)starts.n * (size_t)ctx * sizeof *wo);
        for (size_t q = 0; q < (size_t)starts.n * ctx; q++) wo[q] = 1.0f;
        for (int c = 0; c < starts.n; c++)
            memcpy(wo + (size_t)c * ctx + 1, flat_w + starts.v[c], (size_t)lens.v[c] * sizeof *wo);
        *w_out = wo;
    }
    *n_chunks = starts.n;
    free(starts.v);
    free(lens.v);
    free(chunk);
    free(cw);
    free(flat);
    free(flat_w);
    return ids;
}

int32_t *clip_encode_chunks(const clip_tokenizer *t, const char *text, int ctx, int *n_chunks) {
    int n;
    int *tok = clip_tokenize(t, text, &n);
    int32_t *ids = clip_chunk_tokens(t, tok, NULL, n, ctx, n_chunks, NULL);
    free(tok);
    return ids;
}
