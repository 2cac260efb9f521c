#include "pipeline/a1111_params.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"

// ---- a growing string ----

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1) + 64;
        b->s = sl_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static char *dup_n(const char *s, size_t n) {
    char *d = sl_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }
static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// ---- JSON strings (json.dumps(ensure_ascii=False) / json.loads) ----

static void quote_json(sbuf *b, const char *v) {
    puts_(b, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char e[8];
        switch (*p) {
        case '"': puts_(b, "\\\""); break;
        case '\\': puts_(b, "\\\\"); break;
        case '\n': puts_(b, "\\n"); break;
        case '\r': puts_(b, "\\r"); break;
        case '\t': puts_(b, "\\t"); break;
        default:
            if (*p < 0x20) { snprintf(e, sizeof e, "\\u%04x", *p); puts_(b, e); }
            else put(b, (const char *)p, 1);
        }
    }
    puts_(b, "\"");
}

static void put_utf8(sbuf *b, unsigned cp) {
    char u[4];
    int n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000) u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 63)), u[2] = (char)(0x80 | (cp & 63)), n = 3;
    else u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 63)), u[2] = (char)(0x80 | (cp >> 6 & 63)),
         u[3] = (char)(0x80 | (cp & 63)), n = 4;
    put(b, u, (size_t)n);
}

// s[0..n) is "..." with JSON escapes: the string (malloc'd)
static char *unquote_json(const char *s, size_t n) {
    sbuf b = {0};
    puts_(&b, "");
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] != '\\' || i + 2 >= n) { put(&b, s + i, 1); continue; }
        char c = s[++i];
        if (c == 'n') puts_(&b, "\n");
        else if (c == 't') puts_(&b, "\t");
        else if (c == 'r') puts_(&b, "\r");
        else if (c == 'b') puts_(&b, "\b");
        else if (c == 'f') puts_(&b, "\f");
        else if (c == 'u' && i + 4 < n) {
            unsigned cp = (unsigned)strtoul((char[5]){s[i + 1], s[i + 2], s[i + 3], s[i + 4], 0}, NULL, 16);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u') {
                unsigned lo = (unsigned)strtoul((char[5]){s[i + 3], s[i + 4], s[i + 5], s[i + 6], 0}, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            put_utf8(&b, cp);
        } else put(&b, &c, 1);
    }
    return b.s;
}

// ---- writing ----

char *a1111_params_format(const char *prompt, const char *negative, const char *const *keys,
                          const char *const *values, int n) {
    sbuf b = {0};
    puts_(&b, prompt);
    if (negative) {
        puts_(&b, "\nNegative prompt: ");
        puts_(&b, negative);
    }
    puts_(&b, "\n");
    for (int i = 0; i < n; i++) {
        if (i) puts_(&b, ", ");
        puts_(&b, keys[i]);
        puts_(&b, ": ");
        // A1111's quote(): values with ',', ':' or a newline become JSON strings
        if (strpbrk(values[i], ",:\n")) quote_json(&b, values[i]);
        else puts_(&b, values[i]);
    }
    return b.s;
}

// ---- reading ----

// One match of re_param, \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$), at s[i]: its end
// (0 = no match here), the key and value spans.
static size_t match_param(const char *s, size_t len, size_t i, size_t *k0, size_t *k1, size_t *v0, size_t *v1) {
    while (i < len && is_space((unsigned char)s[i])) i++;
    if (i >= len || !is_word((unsigned char)s[i])) return 0;
    size_t k = i + 1;
    while (k < len && (is_word((unsigned char)s[k]) || s[k] == ' ' || s[k] == '-' || s[k] == '/')) k++;
    if (k - i < 2 || k >= len || s[k] != ':') return 0;
    *k0 = i, *k1 = k;
    size_t v = k + 1;
    while (v < len && is_space((unsigned char)s[v])) v++;
    if (v < len && s[v] == '"') {
        size_t q = v + 1, chars = 0;
        while (q < len && s[q] != '"') {
            if (s[q] == '\\') { if (q + 1 >= len) break; q++; }
            q++, chars++;
        }
        if (q < len && s[q] == '"' && chars > 0 && (q + 1 == len || s[q + 1] == ',')) {
            *v0 = v, *v1 = q + 1;
            return q + 1 < len ? q + 2 : q + 1;
        }
    }
    size_t e = v;
    while (e < len && s[e] != ',') e++;
    *v0 = v, *v1 = e;
    return e < len ? e + 1 : e;
}

// the pairs of `line` (re_param.findall); returns their count, storing them when p != NULL
static int find_params(const char *line, a1111_params *p) {
    size_t len = strlen(line);
    int count = 0;
    for (size_t i = 0; i < len;) {
        size_t k0, k1, v0, v1, end = match_param(line, len, i, &k0, &k1, &v0, &v1);
        if (!end) { i++; continue; }
        if (p) {
            p->keys = sl_realloc(p->keys, (size_t)(p->n + 1) * sizeof *p->keys);
            p->values = sl_realloc(p->values, (size_t)(p->n + 1) * sizeof *p->values);
            p->keys[p->n] = dup_n(line + k0, k1 - k0);
            int quoted = v1 - v0 >= 2 && line[v0] == '"' && line[v1 - 1] == '"';
            p->values[p->n++] = quoted ? unquote_json(line + v0, v1 - v0) : dup_n(line + v0, v1 - v0);
        }
        count++;
        i = end > i ? end : i + 1;
    }
    return count;
}

static char *strip(const char *s, size_t n) {
    while (n && is_space((unsigned char)*s)) s++, n--;
    while (n && is_space((unsigned char)s[n - 1])) n--;
    return dup_n(s, n);
}

int a1111_params_parse(const char *text, a1111_params *out) {
    memset(out, 0, sizeof *out);
    char *all = strip(text, strlen(text));
    char *last = strrchr(all, '\n');
    char *lastline = last ? last + 1 : all;
    int has_params = find_params(lastline, NULL) >= 3;
    if (has_params) {
        find_params(lastline, out);
        if (last) *last = 0;
        else all[0] = 0;
    }
    sbuf prompt = {0}, neg = {0};
    puts_(&prompt, "");
    int done_with_prompt = 0;
    for (char *line = all; line;) {
        char *nl = strchr(line, '\n');
        char *l = strip(line, nl ? (size_t)(nl - line) : strlen(line));
        char *body = l;
        if (strncmp(l, "Negative prompt:", 16) == 0) {
            done_with_prompt = 1;
            char *rest = strip(l + 16, strlen(l + 16));
            free(l);
            l = body = rest;
        }
        sbuf *b = done_with_prompt ? &neg : &prompt;
        if (b->n) puts_(b, "\n");
        puts_(b, body);
        free(l);
        line = nl ? nl + 1 : NULL;
    }
    free(all);
    out->prompt = prompt.s;
    out->negative = done_with_prompt ? (neg.s ? neg.s : sl_strdup("")) : NULL;
    return 0;
}

const char *a1111_params_get(const a1111_params *p, const char *key) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->keys[i], key) == 0) return p->values[i];
    return NULL;
}

void a1111_params_free(a1111_params *p) {
    free(p->prompt);
    free(p->negative);
    for (int i = 0; i < p->n; i++) free(p->keys[i]), free(p->values[i]);
    free(p->keys);
    free(p->values);
    memset(p, 0, sizeof *p);
}
