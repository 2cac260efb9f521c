#include "tools/io.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "engine/atomic_file.h"
#include "engine/error.h"
#include "engine/model_files.h"

int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int mkdir_p(const char *dir) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf) return sl_error(dir, "path too long");
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sl_error(dir, "cannot create folder: %s", strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sl_error(dir, "cannot create folder: %s", strerror(errno));
    if (!path_is_dir(buf)) return sl_error(dir, "exists and is not a folder");
    return 0;
}

int copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) return sl_error(from, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, n = 0, k;
    char *buf = sl_malloc(cap);
    while ((k = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += k) == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) sl_die(NULL, "out of memory");
            buf = grown;
        }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return sl_error(from, "read error"); }
    const void *bufs[1] = {buf};
    int rc = atomic_write(to, bufs, &n, 1);
    free(buf);
    return rc;
}

int copy_folder_files(const char *from, const char *to) {
    DIR *d = opendir(from);
    if (!d) return sl_error(from, "cannot open folder: %s", strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        char a[4096], b[4096];
        struct stat st;
        if ((size_t)snprintf(a, sizeof a, "%s/%s", from, e->d_name) >= sizeof a) continue;
        if (stat(a, &st) != 0 || !S_ISREG(st.st_mode)) continue;   // ., .., subfolders
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        rc = copy_file(a, b);
    }
    closedir(d);
    return rc;
}
