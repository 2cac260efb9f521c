#include "engine/core/utf8.h"

uint32_t utf8_decode(const char *s, size_t n, int *len) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t c = u[0];
    int need;
    uint32_t min;
    if (c < 0x80) { *len = 1; return c; }
    if (c >= 0xC2 && c <= 0xDF) { need = 1; c &= 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; c &= 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; c &= 0x07; min = 0x10000; }
    else { *len = 1; return 0xFFFD; }
    if ((size_t)need >= n) { *len = 1; return 0xFFFD; }
    for (int i = 1; i <= need; i++) {
        if ((u[i] & 0xC0) != 0x80) { *len = 1; return 0xFFFD; }
        c = (c << 6) | (u[i] & 0x3F);
    }
    // overlong forms, surrogates and values past U+10FFFF are not valid UTF-8
    if (c < min || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) { *len = 1; return 0xFFFD; }
    *len = need + 1;
    return c;
}

int utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) return utf8_encode(0xFFFD, out);
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_invalid_at(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int len;
        uint32_t c = utf8_decode(s + i, n - i, &len);
        if (c == 0xFFFD && len == 1) return i;   // a valid U+FFFD takes 3 bytes
        i += (size_t)len;
    }
    return n;
}
