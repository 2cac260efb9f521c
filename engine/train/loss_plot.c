#include "engine/train/loss_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/png.h"
#include "engine/core/error.h"

enum { PW = 720, PH = 420, ML = 64, MR = 16, MT = 16, MB = 40 };

typedef struct { uint8_t *px; } canvas;

static void dot(canvas *c, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= PW || y >= PH) return;
    memcpy(c->px + ((size_t)y * PW + x) * 3, rgb, 3);
}

static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        dot(c, x0, y0, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) { e += dy; x0 += sx; }
        if (e2 <= dx) { e += dx; y0 += sy; }
    }
}

// a 3x5 font for tick labels: digits, '.', '-', 'e'
static const char *glyph(char ch) {
    static const char *digits[10] = {"111101101101111", "010110010010111", "111001111100111", "111001111001111",
                                     "101101111001001", "111100111001111", "111100111101111", "111001001001001",
                                     "111101111101111", "111101111001111"};
    if (ch >= '0' && ch <= '9') return digits[ch - '0'];
    if (ch == '.') return "000000000000010";
    if (ch == '-') return "000000111000000";
    if (ch == 'e') return "000111111100111";
    return "000000000000000";
}

static void text(canvas *c, int x, int y, const char *s, const uint8_t rgb[3]) {
    for (; *s; s++, x += 8) {
        const char *g = glyph(*s);
        for (int r = 0; r < 5; r++)
            for (int q = 0; q < 3; q++)
                if (g[r * 3 + q] == '1')
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++) dot(c, x + q * 2 + b, y + r * 2 + a, rgb);
    }
}

int loss_plot_write(const char *path, const int64_t *steps, const float *loss, const float *ema, int n) {
    canvas c = {sl_malloc((size_t)PW * PH * 3)};
    memset(c.px, 255, (size_t)PW * PH * 3);
    const uint8_t black[3] = {0, 0, 0}, grey[3] = {150, 170, 210}, red[3] = {200, 30, 30}, tick[3] = {90, 90, 90};
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(loss[i])) { lo = fmin(lo, loss[i]); hi = fmax(hi, loss[i]); }
    if (!(lo <= hi)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-12) { hi += 0.5 * fabs(hi) + 1e-6; lo -= 0.5 * fabs(lo) + 1e-6; }
    int64_t s0 = n ? steps[0] : 0, s1 = n ? steps[n - 1] : 1;
    if (s1 <= s0) s1 = s0 + 1;
    const int x0 = ML, x1 = PW - MR, y0 = PH - MB, y1 = MT;
#define PX(s) (x0 + (int)lround((double)((s) - s0) / (double)(s1 - s0) * (x1 - x0)))
#define PY(v) (y0 - (int)lround(((v) - lo) / (hi - lo) * (y0 - y1)))
    line(&c, x0, y0, x1, y0, black);
    line(&c, x0, y0, x0, y1, black);
    char buf[32];
    for (int k = 0; k <= 5; k++) {   // ticks with labels
        int64_t s = s0 + (int64_t)llround((double)(s1 - s0) * k / 5.0);
        int x = PX(s);
        line(&c, x, y0, x, y0 + 5, black);
        snprintf(buf, sizeof buf, "%lld", (long long)s);
        text(&c, x - 4 * (int)strlen(buf), y0 + 10, buf, tick);
        double v = lo + (hi - lo) * k / 5.0;
        int y = PY(v);
        line(&c, x0 - 5, y, x0, y, black);
        snprintf(buf, sizeof buf, "%.3g", v);
        text(&c, x0 - 8 - 8 * (int)strlen(buf), y - 5, buf, tick);
    }
    for (int i = 0; i < n; i++)
        if (isfinite(loss[i])) {
            int x = PX(steps[i]), y = PY(loss[i]);
            for (int a = -1; a <= 1; a++)
                for (int b = -1; b <= 1; b++) dot(&c, x + a, y + b, grey);
        }
    for (int i = 1; i < n; i++)
        if (isfinite(ema[i - 1]) && isfinite(ema[i])) {
            line(&c, PX(steps[i - 1]), PY(ema[i - 1]), PX(steps[i]), PY(ema[i]), red);
            line(&c, PX(steps[i - 1]), PY(ema[i - 1]) + 1, PX(steps[i]), PY(ema[i]) + 1, red);
        }
#undef PX
#undef PY
    const char *keys[] = {"Title"}, *vals[] = {"training loss (points) and its EMA (line) per optimizer step"};
    int rc = png_write(path, c.px, PW, PH, 3, keys, vals, 1);
    free(c.px);
    return rc;
}
