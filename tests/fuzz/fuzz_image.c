// libFuzzer: image decoding through the project's loader (header plausibility and the pixel
// limit before stb_image decodes; PNG/JPEG/BMP/TGA/GIF/...; EXIF orientation; alpha on white).
#include <stdlib.h>

#include "data/image.h"
#include "engine/core/tensor.h"
#include "engine/train/dataset.h"
#include "tests/fuzz/input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    const char *path = fuzz_write_input("in.img", data, size);
    int H, W;
    free(image_decode_rgb(path, &H, &W));
    sl_free_aligned(image_load(path, &H, &W));
    return 0;
}
