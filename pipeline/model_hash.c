#include "pipeline/model_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/core/sha256.h"

static void cache_path(char *buf, size_t len) {
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && *x) snprintf(buf, len, "%s/singlora/hashes.tsv", x);
    else if (home && *home) snprintf(buf, len, "%s/.cache/singlora/hashes.tsv", home);
    else buf[0] = 0;
}

// Finds "hex size mtime path" for this file in the cache.
static int cache_lookup(const char *cache, const char *file, long long size, long long mtime, char hex[65]) {
    FILE *f = fopen(cache, "r");
    if (!f) return -1;
    char line[8192];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        char h[65], p[4096];
        long long s, m;
        line[strcspn(line, "\n")] = 0;
        if (sscanf(line, "%64s %lld %lld %4095[^\n]", h, &s, &m, p) == 4 && s == size && m == mtime && !strcmp(p, file) &&
            strlen(h) == 64) {
            memcpy(hex, h, 65);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

static void cache_store(const char *cache, const char *file, long long size, long long mtime, const char *hex) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cache);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = 0;
    char *parent = strrchr(dir, '/');
    if (parent) {   // ~/.cache may not exist yet either
        *parent = 0;
        mkdir(dir, 0755);
        *parent = '/';
    }
    mkdir(dir, 0755);
    FILE *f = fopen(cache, "a");   // one short line per append: concurrent runs do not tear it
    if (!f) return;
    fprintf(f, "%s %lld %lld %s\n", hex, size, mtime, file);
    fclose(f);
}

int model_sha256(const char *model_path, char hex[65]) {
    char *comp = NULL;
    const char *file = model_path;
    if (path_is_dir(model_path)) {
        file = comp = diffusers_component_file(model_path, "unet", NULL);
        if (!file) return -1;
    }
    char *abs = realpath(file, NULL);
    struct stat st;
    int rc = -1;
    if (!abs || stat(abs, &st) != 0) {
        sl_error(file, "cannot open");
    } else {
        char cache[4096];
        cache_path(cache, sizeof cache);
        long long size = (long long)st.st_size, mtime = (long long)st.st_mtime;
        if (cache[0] && cache_lookup(cache, abs, size, mtime, hex) == 0) {
            rc = 0;
        } else {
            rc = sha256_file_hex(abs, hex);
            if (rc == 0 && cache[0]) cache_store(cache, abs, size, mtime, hex);
        }
    }
    free(abs);
    free(comp);
    return rc;
}
