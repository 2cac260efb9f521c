// libFuzzer: the CLIP tokenizer on arbitrary bytes (text cleaning, UTF-8, BPE, A1111 chunking)
// and the prompt syntax around it ((emphasis:1.2), BREAK, <lora:...> tags).
#include <stdlib.h>
#include <string.h>

#include "clip/tokenizer.h"
#include "pipeline/prompt_syntax.h"
#include "tests/fuzz/input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static clip_tokenizer *tok;
    fuzz_quiet();
    if (!tok && !(tok = clip_tokenizer_load_default())) abort();
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    int32_t ids[77];
    (void)clip_encode(tok, text, 77, ids, 0);
    int n_chunks = 0;
    free(clip_encode_chunks(tok, text, 77, &n_chunks));
    prompt_attention a;
    if (prompt_parse_attention(text, &a) == 0) prompt_attention_free(&a);
    char *rest = NULL;
    prompt_lora *tags = NULL;
    int n = 0;
    if (prompt_take_loras(text, &rest, &tags, &n) == 0) {
        prompt_loras_free(tags, n);
        free(rest);
    }
    free(text);
    return 0;
}
