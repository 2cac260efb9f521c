#include "clip/unicode.h"

static int in_ranges(const uint32_t (*r)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int uni_is_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(UNI_LETTER, UNI_LETTER_N, cp);
}

int uni_is_number(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(UNI_NUMBER, UNI_NUMBER_N, cp);
}

int uni_is_space(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t uni_lower(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    // the runs are ordered: every code point of run k is below every one of run k+1
    int lo = 0, hi = UNI_LOWER_N - 1, found = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if ((int64_t)cp >= UNI_LOWER[mid][0]) { found = mid; lo = mid + 1; }
        else hi = mid - 1;
    }
    if (found < 0) return cp;
    const int32_t *r = UNI_LOWER[found];
    int64_t off = (int64_t)cp - r[0];
    if (off % r[2] == 0 && off / r[2] < r[1]) return (uint32_t)((int64_t)cp + r[3]);
    return cp;
}

uint32_t uni_compose(uint32_t a, uint32_t b) {
    // Hangul syllables compose algorithmically: L + V -> LV, LV + T -> LVT
    const uint32_t SB = 0xAC00, LB = 0x1100, VB = 0x1161, TB = 0x11A7, NV = 21, NT = 28;
    if (a >= LB && a < LB + 19 && b >= VB && b < VB + NV) return SB + ((a - LB) * NV + (b - VB)) * NT;
    if (a >= SB && a < SB + 11172 && (a - SB) % NT == 0 && b > TB && b < TB + NT) return a + (b - TB);
    int lo = 0, hi = UNI_COMPOSE_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const uint32_t *e = UNI_COMPOSE[mid];
        if (a < e[0] || (a == e[0] && b < e[1])) hi = mid - 1;
        else if (a > e[0] || b > e[1]) lo = mid + 1;
        else return e[2];
    }
    return 0;
}
