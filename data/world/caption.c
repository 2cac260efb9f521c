#include "data/world/caption.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "data/world/palette.h"
#include "engine/core/error.h"

static const char *article(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

// "a red star", "an orange ring", "a sks star" ("sks star" in a photo caption)
static size_t object_text(const world_scene *s, const world_object *o, const char *token, int photo, char *buf, size_t n) {
    int k;
    if (o->is_subject && s->has_subject)
        k = snprintf(buf, n, "%s%s %s", photo ? "" : "a ", token ? token : "sks", shape_name(o->shape));
    else
        k = snprintf(buf, n, "%s %s %s", article(palette_name(o->colour)), palette_name(o->colour), shape_name(o->shape));
    return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}

void caption_write(const world_scene *s, const char *token, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    int photo = s->has_subject && s->n_objects == 1 && s->obj[0].is_subject;
    if (photo) k += (size_t)snprintf(buf, n, "a photo of ");
    for (int i = 0; i < s->n_objects && k < n; i++) {
        if (i > 0) k += (size_t)snprintf(buf + k, n - k, " and ");
        if (k < n) k += object_text(s, &s->obj[i], token, photo, buf + k, n - k);
    }
    const char *bg = palette_name(s->background);
    if (k < n) snprintf(buf + k, n - k, " on %s %s background", article(bg), bg);
}

#define MAX_WORDS 32

typedef struct {
    char words[MAX_WORDS][32];
    int n, pos;
    const char *text, *token, *what;
} parser;

static int is_vocab(const parser *p, const char *w) {
    static const char *const GRAMMAR[] = {"a", "an", "photo", "of", "and", "on", "background"};
    for (size_t i = 0; i < sizeof GRAMMAR / sizeof GRAMMAR[0]; i++)
        if (!strcmp(w, GRAMMAR[i])) return 1;
    return palette_find(w) >= 0 || shape_find(w) >= 0 || (p->token && !strcmp(w, p->token));
}

static int fail(parser *p, const char *expected) {
    const char *w = p->pos < p->n ? p->words[p->pos] : NULL;
    if (w && !is_vocab(p, w))
        return sl_error(p->what, "caption '%s': unknown word '%s' (colours: %s; shapes: %s%s%s)", p->text, w,
                        palette_list(), shape_list(), p->token ? "; subject token: " : "", p->token ? p->token : "");
    return sl_error(p->what, "caption '%s': expected %s %s%s%s (captions read like 'a red star and a blue circle on a green background')",
                    p->text, expected, w ? "at '" : "at the end", w ? w : "", w ? "'" : "");
}

static const char *peek(const parser *p) { return p->pos < p->n ? p->words[p->pos] : ""; }
static int accept(parser *p, const char *w) {
    if (strcmp(peek(p), w)) return 0;
    p->pos++;
    return 1;
}

static int parse_object(parser *p, world_object *o) {
    if (!accept(p, "a")) accept(p, "an");
    memset(o, 0, sizeof *o);
    if (p->token && accept(p, p->token)) {
        o->is_subject = 1;
        o->colour = -1;
    } else {
        if ((o->colour = palette_find(peek(p))) < 0) return fail(p, p->token ? "a colour or the subject token" : "a colour");
        p->pos++;
    }
    if ((o->shape = shape_find(peek(p))) < 0) return fail(p, "a shape");
    p->pos++;
    return 0;
}

int caption_parse(const char *text, const char *token, world_scene *s, const char *what) {
    parser p = {.text = text, .token = token, .what = what};
    for (const char *c = text; *c;) {
        while (*c && isspace((unsigned char)*c)) c++;
        if (!*c) break;
        if (p.n == MAX_WORDS) return sl_error(what, "caption '%s': more than %d words", text, MAX_WORDS);
        size_t k = 0;
        while (*c && !isspace((unsigned char)*c)) {
            if (k + 1 < sizeof p.words[0]) p.words[p.n][k++] = (char)tolower((unsigned char)*c);
            c++;
        }
        while (k > 0 && strchr(".,;!", p.words[p.n][k - 1])) k--;
        p.words[p.n][k] = 0;
        if (k) p.n++;
    }
    memset(s, 0, sizeof *s);
    if (p.n >= 3 && !strcmp(p.words[0], "a") && !strcmp(p.words[1], "photo") && !strcmp(p.words[2], "of")) p.pos = 3;
    if (parse_object(&p, &s->obj[0]) != 0) return -1;
    s->n_objects = 1;
    if (accept(&p, "and")) {
        if (parse_object(&p, &s->obj[1]) != 0) return -1;
        s->n_objects = 2;
    }
    if (!accept(&p, "on")) return fail(&p, "'on'");
    if (!accept(&p, "a")) accept(&p, "an");
    if ((s->background = palette_find(peek(&p))) < 0) return fail(&p, "a background colour");
    p.pos++;
    if (!accept(&p, "background")) return fail(&p, "'background'");
    if (p.pos != p.n) return fail(&p, "the end of the caption");
    for (int i = 0; i < s->n_objects; i++) {
        if (s->obj[i].is_subject) s->has_subject = 1;
        else if (s->obj[i].colour == s->background)
            return sl_error(what, "caption '%s': the %s %s is on a background of its own colour", text,
                            palette_name(s->obj[i].colour), shape_name(s->obj[i].shape));
    }
    return 0;
}
