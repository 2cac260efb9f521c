// The shipped CLIP vocabulary (clip/vocab/bpe_simple_vocab_16e6.txt.gz, MIT), compiled into the
// program so that it runs from any folder with no file beside it. The assembler embeds the
// bytes; the build runs from the repository root, which is where the path starts.
#include <stddef.h>

#include "clip/tokenizer.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        "clip_default_vocab_start:\n"
        ".incbin \"clip/vocab/bpe_simple_vocab_16e6.txt.gz\"\n"
        "clip_default_vocab_end:\n"
        ".balign 8\n"
        "clip_default_vocab_size:\n"
        ".quad clip_default_vocab_end - clip_default_vocab_start\n"
        ".previous\n");

extern const unsigned char clip_default_vocab_start[];
extern const size_t clip_default_vocab_size;

const unsigned char *clip_default_vocab_gz(size_t *len) {
    *len = clip_default_vocab_size;
    return clip_default_vocab_start;
}
