#include "tests/fuzz/input.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/core/error.h"
#include "engine/io/folders.h"

const char *fuzz_dir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/singlora-fuzz-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
        remove_tree(dir);
        if (mkdir_p(dir) != 0) { fprintf(stderr, "%s\n", sl_error_msg()); abort(); }
    }
    return dir;
}

const char *fuzz_write_input(const char *name, const uint8_t *data, size_t size) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) { perror(path); abort(); }
    return path;
}

void fuzz_quiet(void) { sl_set_warnings(0); }
