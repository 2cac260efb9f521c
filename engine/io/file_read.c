#include "engine/io/file_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/error.h"

char *read_file(const char *path, size_t *len, size_t max_bytes, const char *what) {
    FILE *f = fopen(path, "rb");
    if (!f) { sl_error(path, "cannot open: %s", strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        sl_error(path, "cannot read: not a regular file (a folder)");
        return NULL;
    }
    // regular files are read in one go at their size; pipes grow the buffer as they go
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096, n = 0;
    if (cap - 1 > max_bytes) {
        fclose(f);
        sl_error(path, "%s larger than %zu MB", what, max_bytes >> 20);
        return NULL;
    }
    char *buf = sl_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_bytes) {
                fclose(f);
                free(buf);
                sl_error(path, "%s larger than %zu MB", what, max_bytes >> 20);
                return NULL;
            }
            cap *= 2;
            buf = sl_realloc(buf, cap);
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); sl_error(path, "read error"); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}
