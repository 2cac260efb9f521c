#include "clip/text_clean.h"

#include <stdlib.h>
#include <string.h>

#include "clip/unicode.h"
#include "engine/core/error.h"

// Windows-1252 meaning of the bytes 0x80..0x9F (0 where cp1252 leaves them undefined).
static const uint16_t CP1252[32] = {
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
};

static int ftfy_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// ftfy's fix_latin_ligatures: the character's expansion into out (returns its length, 0 = none).
static int ligature(uint32_t c, uint32_t out[3]) {
    switch (c) {
    case 0xFB00: out[0] = 'f', out[1] = 'f'; return 2;
    case 0xFB01: out[0] = 'f', out[1] = 'i'; return 2;
    case 0xFB02: out[0] = 'f', out[1] = 'l'; return 2;
    case 0xFB03: out[0] = 'f', out[1] = 'f', out[2] = 'i'; return 3;
    case 0xFB04: out[0] = 'f', out[1] = 'f', out[2] = 'l'; return 3;
    case 0xFB05: out[0] = 0x17F, out[1] = 't'; return 2;
    case 0xFB06: out[0] = 's', out[1] = 't'; return 2;
    case 0x0132: out[0] = 'I', out[1] = 'J'; return 2;
    case 0x0133: out[0] = 'i', out[1] = 'j'; return 2;
    case 0x0149: out[0] = 0x2BC, out[1] = 'n'; return 2;
    case 0x01C4: out[0] = 'D', out[1] = 0x17D; return 2;
    case 0x01C5: out[0] = 'D', out[1] = 0x17E; return 2;
    case 0x01C6: out[0] = 'd', out[1] = 0x17E; return 2;
    case 0x01C7: out[0] = 'L', out[1] = 'J'; return 2;
    case 0x01C8: out[0] = 'L', out[1] = 'j'; return 2;
    case 0x01C9: out[0] = 'l', out[1] = 'j'; return 2;
    case 0x01CA: out[0] = 'N', out[1] = 'J'; return 2;
    case 0x01CB: out[0] = 'N', out[1] = 'j'; return 2;
    case 0x01CC: out[0] = 'n', out[1] = 'j'; return 2;
    case 0x01F1: out[0] = 'D', out[1] = 'Z'; return 2;
    case 0x01F2: out[0] = 'D', out[1] = 'z'; return 2;
    case 0x01F3: out[0] = 'd', out[1] = 'z'; return 2;
    default: return 0;
    }
}

static uint32_t narrow(uint32_t c) {
    // ftfy's fix_character_width (NFKC of full-width forms)
    if (c >= 0xFF01 && c <= 0xFF5E) return c - 0xFEE0;
    if (c == 0x3000) return ' ';
    static const uint16_t FW_SIGNS[7] = {0xA2, 0xA3, 0xAC, 0xAF, 0xA6, 0xA5, 0x20A9};   // U+FFE0..U+FFE6
    if (c >= 0xFFE0 && c <= 0xFFE6) return FW_SIGNS[c - 0xFFE0];
    return c;
}

static uint32_t uncurl(uint32_t c) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) return '\'';
    if (c >= 0x201C && c <= 0x201F) return '"';
    return c;
}

uint32_t *clean_ftfy(const uint32_t *cp, size_t n, size_t *n_out) {
    uint32_t *out = sl_malloc((3 * n + 1) * sizeof *out);   // a ligature grows by at most 2
    size_t o = 0;
    uint32_t tmp[3];
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp[i];
        if (c >= 0x80 && c <= 0x9F && CP1252[c - 0x80]) c = CP1252[c - 0x80];
        if (ftfy_control(c)) continue;
        int k = ligature(c, tmp);
        if (k) {
            for (int j = 0; j < k; j++) out[o++] = uncurl(tmp[j]);
            continue;
        }
        c = uncurl(narrow(c));
        // NFC: compose with the previous character when the pair has a primary composite
        if (o > 0) {
            uint32_t comp = uni_compose(out[o - 1], c);
            if (comp) { out[o - 1] = comp; continue; }
        }
        out[o++] = c;
    }
    *n_out = o;
    return out;
}

// ---- HTML ----

typedef struct { const char *name; uint32_t cp; int legacy; } entity;
// legacy: may appear without the ';' (HTML5's list of such names: the Latin-1 set and a few)
static const entity ENTITIES[] = {
    {"amp", 0x26, 1}, {"lt", 0x3C, 1}, {"gt", 0x3E, 1}, {"quot", 0x22, 1}, {"AMP", 0x26, 1}, {"LT", 0x3C, 1},
    {"GT", 0x3E, 1}, {"QUOT", 0x22, 1}, {"COPY", 0xA9, 1}, {"REG", 0xAE, 1}, {"apos", 0x27, 0},
    {"trade", 0x2122, 0}, {"hellip", 0x2026, 0}, {"mdash", 0x2014, 0}, {"ndash", 0x2013, 0},
    {"lsquo", 0x2018, 0}, {"rsquo", 0x2019, 0}, {"sbquo", 0x201A, 0}, {"ldquo", 0x201C, 0},
    {"rdquo", 0x201D, 0}, {"bdquo", 0x201E, 0}, {"bull", 0x2022, 0}, {"euro", 0x20AC, 0},
    {"dagger", 0x2020, 0}, {"Dagger", 0x2021, 0}, {"permil", 0x2030, 0}, {"prime", 0x2032, 0},
    {"Prime", 0x2033, 0}, {"larr", 0x2190, 0}, {"rarr", 0x2192, 0}, {"uarr", 0x2191, 0}, {"darr", 0x2193, 0},
    {"harr", 0x2194, 0}, {"hearts", 0x2665, 0}, {"spades", 0x2660, 0}, {"clubs", 0x2663, 0},
    {"diams", 0x2666, 0}, {"infin", 0x221E, 0}, {"ne", 0x2260, 0}, {"le", 0x2264, 0}, {"ge", 0x2265, 0},
    {"minus", 0x2212, 0}, {"sim", 0x223C, 0}, {"asymp", 0x2248, 0}, {"ensp", 0x2002, 0}, {"emsp", 0x2003, 0},
    {"thinsp", 0x2009, 0}, {"zwj", 0x200D, 0}, {"zwnj", 0x200C, 0}, {"lrm", 0x200E, 0}, {"rlm", 0x200F, 0},
    {"OElig", 0x152, 0}, {"oelig", 0x153, 0}, {"Scaron", 0x160, 0}, {"scaron", 0x161, 0}, {"Yuml", 0x178, 0},
    {"fnof", 0x192, 0}, {"circ", 0x2C6, 0}, {"tilde", 0x2DC, 0}, {"lsaquo", 0x2039, 0}, {"rsaquo", 0x203A, 0},
    {"Alpha", 0x391, 0}, {"Beta", 0x392, 0}, {"Gamma", 0x393, 0}, {"Delta", 0x394, 0}, {"Epsilon", 0x395, 0},
    {"Zeta", 0x396, 0}, {"Eta", 0x397, 0}, {"Theta", 0x398, 0}, {"Iota", 0x399, 0}, {"Kappa", 0x39A, 0},
    {"Lambda", 0x39B, 0}, {"Mu", 0x39C, 0}, {"Nu", 0x39D, 0}, {"Xi", 0x39E, 0}, {"Omicron", 0x39F, 0},
    {"Pi", 0x3A0, 0}, {"Rho", 0x3A1, 0}, {"Sigma", 0x3A3, 0}, {"Tau", 0x3A4, 0}, {"Upsilon", 0x3A5, 0},
    {"Phi", 0x3A6, 0}, {"Chi", 0x3A7, 0}, {"Psi", 0x3A8, 0}, {"Omega", 0x3A9, 0}, {"alpha", 0x3B1, 0},
    {"beta", 0x3B2, 0}, {"gamma", 0x3B3, 0}, {"delta", 0x3B4, 0}, {"epsilon", 0x3B5, 0}, {"zeta", 0x3B6, 0},
    {"eta", 0x3B7, 0}, {"theta", 0x3B8, 0}, {"iota", 0x3B9, 0}, {"kappa", 0x3BA, 0}, {"lambda", 0x3BB, 0},
    {"mu", 0x3BC, 0}, {"nu", 0x3BD, 0}, {"xi", 0x3BE, 0}, {"omicron", 0x3BF, 0}, {"pi", 0x3C0, 0},
    {"rho", 0x3C1, 0}, {"sigmaf", 0x3C2, 0}, {"sigma", 0x3C3, 0}, {"tau", 0x3C4, 0}, {"upsilon", 0x3C5, 0},
    {"phi", 0x3C6, 0}, {"chi", 0x3C7, 0}, {"psi", 0x3C8, 0}, {"omega", 0x3C9, 0},
};
// The Latin-1 entities U+00A0..U+00FF in code-point order (all legacy).
static const char *const LATIN1[96] = {
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo",
    "not", "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot",
    "cedil", "sup1", "ordm", "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",
    "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute",
    "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash",
    "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute", "acirc", "atilde",
    "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc",
    "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml", "divide", "oslash", "ugrave",
    "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
};

// The entity named by the code points name[0..len) (ASCII), or 0; *legacy gets its flag.
static uint32_t entity_lookup(const uint32_t *name, size_t len, int *legacy) {
    char buf[40];
    if (len == 0 || len >= sizeof buf) return 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] >= 0x80) return 0;
        buf[i] = (char)name[i];
    }
    buf[len] = 0;
    for (size_t i = 0; i < sizeof ENTITIES / sizeof ENTITIES[0]; i++)
        if (!strcmp(buf, ENTITIES[i].name)) { *legacy = ENTITIES[i].legacy; return ENTITIES[i].cp; }
    for (int i = 0; i < 96; i++)
        if (!strcmp(buf, LATIN1[i])) { *legacy = 1; return 0xA0 + (uint32_t)i; }
    return 0;
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_xdigit(uint32_t c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

// Python's html._replace_charref for a numeric reference; 0 = remove it.
static uint32_t charref(uint64_t num) {
    if (num == 0) return 0xFFFD;
    if (num == 0x0D) return '\r';
    if (num >= 0x80 && num <= 0x9F) return CP1252[num - 0x80] ? CP1252[num - 0x80] : (uint32_t)num;
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return 0xFFFD;
    if ((num >= 0x1 && num <= 0x8) || (num >= 0xE && num <= 0x1F) || (num >= 0x7F && num <= 0x9F) ||
        (num >= 0xFDD0 && num <= 0xFDEF) || num == 0xB || (num & 0xFFFE) == 0xFFFE)
        return 0;
    return (uint32_t)num;
}

uint32_t *clean_html_unescape(const uint32_t *cp, size_t n, size_t *n_out) {
    uint32_t *out = sl_malloc((n + 1) * sizeof *out);   // unescaping never grows the text
    size_t o = 0, i = 0;
    while (i < n) {
        if (cp[i] != '&') { out[o++] = cp[i++]; continue; }
        size_t j = i + 1;
        if (j < n && cp[j] == '#') {
            // &#123; or &#x7B; (the ';' is optional)
            int hex = j + 1 < n && (cp[j + 1] == 'x' || cp[j + 1] == 'X');
            size_t k = j + 1 + (size_t)hex, d0 = k;
            uint64_t num = 0;
            while (k < n && (hex ? is_xdigit(cp[k]) : is_digit(cp[k]))) {
                uint32_t c = cp[k] | 0x20;
                uint32_t v = is_digit(cp[k]) ? cp[k] - '0' : c - 'a' + 10;
                if (num <= 0xFFFFFFFFull) num = num * (hex ? 16 : 10) + v;   // saturates past U+10FFFF
                k++;
            }
            if (k == d0) { out[o++] = cp[i++]; continue; }
            if (k < n && cp[k] == ';') k++;
            uint32_t c = charref(num);
            if (c) out[o++] = c;
            i = k;
            continue;
        }
        // a name: up to 32 characters other than \t \n \f space < & # ;
        size_t k = j;
        while (k < n && k - j < 32 && cp[k] != '\t' && cp[k] != '\n' && cp[k] != '\f' && cp[k] != ' ' &&
               cp[k] != '<' && cp[k] != '&' && cp[k] != '#' && cp[k] != ';')
            k++;
        int legacy = 0;
        uint32_t c = 0;
        if (k > j && k < n && cp[k] == ';' && (c = entity_lookup(cp + j, k - j, &legacy))) {
            out[o++] = c;
            i = k + 1;
            continue;
        }
        // the longest legacy name (at least 2 characters) that prefixes the text
        size_t best = 0;
        for (size_t len = k - j; len >= 2; len--)
            if ((c = entity_lookup(cp + j, len, &legacy)) && legacy) { best = len; break; }
        if (best) {
            out[o++] = c;
            i = j + best;
            continue;
        }
        out[o++] = cp[i++];
    }
    *n_out = o;
    return out;
}

static uint32_t *decode_all(const char *s, size_t *n) {
    size_t len = strlen(s);
    uint32_t *cp = sl_malloc((len + 1) * sizeof *cp);
    size_t m = 0;
    for (size_t i = 0; i < len;) {
        int k;
        cp[m++] = utf8_decode(s + i, len - i, &k);
        i += (size_t)k;
    }
    *n = m;
    return cp;
}

// Replaces *cp (n code points) by the result of a step.
static void step(uint32_t **cp, size_t *n, uint32_t *(*fn)(const uint32_t *, size_t, size_t *)) {
    size_t m;
    uint32_t *r = fn(*cp, *n, &m);
    free(*cp);
    *cp = r;
    *n = m;
}

char *clip_clean_text(const char *text) {
    size_t n;
    uint32_t *cp = decode_all(text, &n);
    // ftfy unescapes HTML first (when the text has no '<'), then CLIP unescapes twice more
    int has_lt = 0;
    for (size_t i = 0; i < n; i++) has_lt |= cp[i] == '<';
    if (!has_lt) step(&cp, &n, clean_html_unescape);
    step(&cp, &n, clean_ftfy);
    step(&cp, &n, clean_html_unescape);
    step(&cp, &n, clean_html_unescape);
    // whitespace runs -> one space, stripped at both ends; then lower-case. İ lower-cases to
    // two code points in Python (i + combining dot), the one such case.
    char *out = sl_malloc(n * 8 + 1);
    size_t o = 0;
    int pending_space = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp[i];
        if (uni_is_space(c)) { pending_space = o > 0; continue; }
        if (pending_space) { out[o++] = ' '; pending_space = 0; }
        if (c == 0x130) {
            out[o++] = 'i';
            o += (size_t)utf8_encode(0x307, out + o);
            continue;
        }
        o += (size_t)utf8_encode(uni_lower(c), out + o);
    }
    out[o] = 0;
    free(cp);
    return out;
}
