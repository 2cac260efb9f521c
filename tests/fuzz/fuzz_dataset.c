// libFuzzer: the training-data folder scanner and caption reader. The input is a folder: records
// of [name byte][length: 2 bytes, little-endian][content], the name byte picking from a set of
// names that exercise the sidecar pairing (image + caption, caption alone, odd extensions, a
// subfolder, a hidden file); the folder is scanned with ".txt" captions, then with none.
#include <stdio.h>
#include <string.h>

#include "engine/io/folders.h"
#include "engine/train/dataset.h"
#include "tests/fuzz/input.h"

static const char *const names[] = {
    "a.png", "a.txt", "b.jpg", "b.txt", "c.bmp", "c.TXT", "d", "d.txt", ".hidden.png", "e.png.txt",
    "f.tga", "g.gif", "h.jpeg", "h.jpeg.txt", "sub", "i.txt",
};
#define N_NAMES (int)(sizeof names / sizeof names[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    char dir[600];
    snprintf(dir, sizeof dir, "%s/folder", fuzz_dir());
    remove_tree(dir);
    if (mkdir_p(dir) != 0) return 0;
    size_t at = 0;
    while (at + 3 <= size) {
        const char *name = names[data[at] % N_NAMES];
        size_t len = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
        at += 3;
        if (len > size - at) len = size - at;
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (!strcmp(name, "sub")) mkdir_p(path);   // a folder named like a file: skipped
        else {
            FILE *f = fopen(path, "wb");
            if (f) {
                fwrite(data + at, 1, len, f);
                fclose(f);
            }
        }
        at += len;
    }
    image_folder f;
    if (image_folder_scan(&f, dir, ".txt", 1) == 0) image_folder_free(&f);
    if (image_folder_scan(&f, dir, NULL, 0) == 0) image_folder_free(&f);
    return 0;
}
