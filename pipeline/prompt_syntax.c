// A1111's parse_prompt_attention, with its regular expression written out as a scanner: at
// each position the first of these that matches is taken
//   \( \) \[ \] \\ \  |  (  |  [  |  :\s*([+-]?[.\d]+)\s*\)  |  )  |  ]  |  [^\\()\[\]:]+  |  :
#include "pipeline/prompt_syntax.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/core/parse_num.h"

typedef struct {
    prompt_segment *v;
    int n, cap;
} segvec;

static void seg_push(segvec *a, const char *text, size_t len, double weight) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = sl_realloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    char *t = sl_malloc(len + 1);
    memcpy(t, text, len);
    t[len] = 0;
    a->v[a->n++] = (prompt_segment){t, weight};
}

typedef struct {
    int *v;
    int n, cap;
} stack;

static void stack_push(stack *s, int x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->v = sl_realloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n++] = x;
}

static void multiply_range(segvec *res, int start, double m) {
    for (int p = start; p < res->n; p++) res->v[p].weight *= m;
}

// Python's \w and \s closely enough for prompts: ASCII letters, digits, '_' and any non-ASCII
// byte are word characters
static int is_word(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }
static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// A text run, split on re.split(r"\s*\bBREAK\b\s*"): parts of weight 1 with BREAK (-1) between.
static void push_text(segvec *res, const char *s, size_t len) {
    size_t part = 0;
    for (size_t i = 0; i + 5 <= len; i++) {
        if (memcmp(s + i, "BREAK", 5) != 0) continue;
        if ((i > 0 && is_word((unsigned char)s[i - 1])) || (i + 5 < len && is_word((unsigned char)s[i + 5]))) continue;
        size_t a = i, b = i + 5;
        while (a > part && is_space((unsigned char)s[a - 1])) a--;
        while (b < len && is_space((unsigned char)s[b])) b++;
        seg_push(res, s + part, a - part, 1.0);
        seg_push(res, "BREAK", 5, -1.0);
        part = b;
        i = b - 1;
    }
    seg_push(res, s + part, len - part, 1.0);
}

// `:\s*([+-]?[.\d]+)\s*\)` at s: its length (0 when it does not match), the number's span
static size_t match_weight(const char *s, const char **num, size_t *num_len) {
    size_t i = 1;
    if (s[0] != ':') return 0;
    while (is_space((unsigned char)s[i])) i++;
    size_t a = i;
    if (s[i] == '+' || s[i] == '-') i++;
    size_t d = i;
    while (s[i] == '.' || isdigit((unsigned char)s[i])) i++;
    if (i == d) return 0;
    size_t b = i;
    while (is_space((unsigned char)s[i])) i++;
    if (s[i] != ')') return 0;
    *num = s + a;
    *num_len = b - a;
    return i + 1;
}

int prompt_parse_attention(const char *text, prompt_attention *out) {
    segvec res = {0};
    stack round = {0}, square = {0};
    const double round_mult = 1.1, square_mult = 1 / 1.1;
    size_t len = strlen(text);
    int rc = 0;
    for (size_t i = 0; i < len;) {
        const char *s = text + i, *num;
        size_t num_len = 0, k = 0;
        if (s[0] == '\\') {
            // an escaped bracket or backslash is that character; a lone backslash is dropped
            int esc = s[1] == '(' || s[1] == ')' || s[1] == '[' || s[1] == ']' || s[1] == '\\';
            seg_push(&res, s + 1, esc ? 1 : 0, 1.0);
            i += esc ? 2 : 1;
        } else if (s[0] == '(') {
            stack_push(&round, res.n);
            i++;
        } else if (s[0] == '[') {
            stack_push(&square, res.n);
            i++;
        } else if ((k = match_weight(s, &num, &num_len)) && round.n) {
            char buf[64], *end;
            snprintf(buf, sizeof buf, "%.*s", (int)(num_len < 63 ? num_len : 63), num);
            double w = strtod(buf, &end);
            if (end == buf || *end || num_len >= 63) {
                rc = sl_error(NULL, "prompt: the weight in '%.*s' is not a number", (int)k, s);
                break;
            }
            multiply_range(&res, round.v[--round.n], w);
            i += k;
        } else if (s[0] == ')' && round.n) {
            multiply_range(&res, round.v[--round.n], round_mult);
            i++;
        } else if (s[0] == ']' && square.n) {
            multiply_range(&res, square.v[--square.n], square_mult);
            i++;
        } else {
            // text: a run of ordinary characters, or one character no rule above took
            // (':', an unmatched ')' or ']', ':1.2)' outside brackets)
            size_t n = k ? k : 1;
            if (!strchr("\\()[]:", s[0]))
                for (n = 1; s[n] && !strchr("\\()[]:", s[n]); n++) {}
            push_text(&res, s, n);
            i += n;
        }
    }
    for (int p = 0; p < round.n; p++) multiply_range(&res, round.v[p], round_mult);
    for (int p = 0; p < square.n; p++) multiply_range(&res, square.v[p], square_mult);
    free(round.v);
    free(square.v);
    if (rc) {
        out->seg = res.v, out->n = res.n;
        prompt_attention_free(out);
        return -1;
    }
    if (res.n == 0) seg_push(&res, "", 0, 1.0);
    // merge neighbours of equal weight
    for (int p = 0; p + 1 < res.n;) {
        if (res.v[p].weight == res.v[p + 1].weight) {
            size_t a = strlen(res.v[p].text), b = strlen(res.v[p + 1].text);
            res.v[p].text = sl_realloc(res.v[p].text, a + b + 1);
            memcpy(res.v[p].text + a, res.v[p + 1].text, b + 1);
            free(res.v[p + 1].text);
            memmove(res.v + p + 1, res.v + p + 2, (size_t)(res.n - p - 2) * sizeof *res.v);
            res.n--;
        } else {
            p++;
        }
    }
    out->seg = res.v;
    out->n = res.n;
    return 0;
}

void prompt_attention_free(prompt_attention *a) {
    for (int i = 0; i < a->n; i++) free(a->seg[i].text);
    free(a->seg);
    a->seg = NULL;
    a->n = 0;
}

int prompt_segment_is_break(const prompt_segment *s) { return s->weight == -1.0 && strcmp(s->text, "BREAK") == 0; }

// ---- <lora:NAME:W> ----

// A <lora:NAME:W> weight: finite and at most the strength an adapter may be applied with.
static int parse_float(const char *s, size_t n, float *out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    double v;
    if (parse_double(NULL, buf, -ADAPTER_SCALE_MAX, ADAPTER_SCALE_MAX, &v) != 0) return -1;
    *out = (float)v;
    return 0;
}

int prompt_take_loras(const char *prompt, char **text, prompt_lora **tags, int *n) {
    size_t len = strlen(prompt), o = 0;
    char *t = sl_malloc(len + 1);
    prompt_lora *v = NULL;
    int nv = 0;
    for (size_t i = 0; i < len;) {
        // A1111's re_extra_net: <(\w+):([^>]+)>
        size_t k = i + 1;
        while (k < len && is_word((unsigned char)prompt[k])) k++;
        const char *close = prompt[i] == '<' && k > i + 1 && prompt[k] == ':' ? strchr(prompt + k + 1, '>') : NULL;
        int is_lora = close && close > prompt + k + 1 && k - i - 1 == 4 && strncmp(prompt + i + 1, "lora", 4) == 0;
        if (!is_lora) {
            t[o++] = prompt[i++];
            continue;
        }
        // fields NAME[:TE_WEIGHT[:UNET_WEIGHT]]
        const char *f[3] = {prompt + k + 1, NULL, NULL}, *end = close;
        size_t fl[3] = {0};
        int nf = 1;
        for (const char *p = f[0]; p < end; p++)
            if (*p == ':' && nf < 3) f[nf++] = p + 1;
        for (int q = 0; q < nf; q++) fl[q] = (size_t)((q + 1 < nf ? f[q + 1] - 1 : end) - f[q]);
        float w = 1.0f, wu;
        if ((nf > 1 && parse_float(f[1], fl[1], &w)) || (nf > 2 && parse_float(f[2], fl[2], &wu))) {
            sl_error(NULL, "prompt: '%.*s': the weight is not a number", (int)(close - prompt - i + 1), prompt + i);
            free(t);
            prompt_loras_free(v, nv);
            return -1;
        }
        if (nf > 2) w = wu;
        v = sl_realloc(v, (size_t)(nv + 1) * sizeof *v);
        v[nv].name = sl_malloc(fl[0] + 1);
        memcpy(v[nv].name, f[0], fl[0]);
        v[nv].name[fl[0]] = 0;
        v[nv++].weight = w;
        i = (size_t)(close - prompt) + 1;
    }
    t[o] = 0;
    *text = t;
    *tags = v;
    *n = nv;
    return 0;
}

void prompt_loras_free(prompt_lora *tags, int n) {
    for (int i = 0; i < n; i++) free(tags[i].name);
    free(tags);
}
