// A tiny CLIP-format tokenizer for tests on the tiny models (shared by several test files).
#include <stdio.h>
#include <stdlib.h>

#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

const char *tiny_tokenizer(void) {
    const char *dir = tmp_path("tok");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0) return NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *f = fopen(path, "w");
    // CLIP's byte -> unicode map: printable Latin-1 bytes map to themselves, the rest to 256+k
    int cp[256], k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[b] = printable ? b : 256 + k++;
    }
    fputc('{', f);
    int id = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            char u[8];
            int c = cp[b], n = 0;
            if (c < 0x80) u[n++] = (char)c;
            else { u[n++] = (char)(0xC0 | (c >> 6)); u[n++] = (char)(0x80 | (c & 0x3F)); }
            u[n] = 0;
            if (c == '"' || c == '\\') fprintf(f, "\"\\%s%s\": %d, ", u, pass ? "</w>" : "", id++);
            else fprintf(f, "\"%s%s\": %d, ", u, pass ? "</w>" : "", id++);
        }
    fprintf(f, "\"do\": %d, \"dog</w>\": %d, ", id, id + 1);
    id += 2;
    for (; id < 998; id++) fprintf(f, "\"filler%d\": %d, ", id, id);
    fprintf(f, "\"<|startoftext|>\": 998, \"<|endoftext|>\": 999}");
    fclose(f);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    f = fopen(path, "w");
    fprintf(f, "#version: 0.2\nd o\ndo g</w>\n");
    fclose(f);
    return dir;
}
