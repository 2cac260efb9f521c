// Hardening: the tokenizer with too few positions (it wrote past its buffers when a text encoder
// had <= 2 positions), the text-encoder config check that keeps such models out, and the text
// cleaning of tabs and curly quotes as OpenAI CLIP (ftfy + whitespace_clean) does it.
#include <stdlib.h>
#include <string.h>

#include "clip/text_encoder.h"
#include "clip/tokenizer.h"
#include "engine/core/error.h"
#include "tests/test.h"

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(data, 1, n, f);
    return fclose(f);
}

static clip_tokenizer *load(void) {
    clip_tokenizer *t = clip_tokenizer_load(shared_path("models/clip-tokenizer"));
    if (!t) fprintf(stderr, "    %s\n", sl_error_msg());
    return t;
}

TEST(hardening_tokenizer_short_context) {
    clip_tokenizer *t = load();
    REQUIRE(t);
    // a canary after a 2-wide row: nothing may be written past ids[ctx-1]
    int32_t ids[8];
    for (int ctx = -1; ctx < CLIP_MIN_CONTEXT; ctx++) {
        for (int i = 0; i < 8; i++) ids[i] = -7;
        CHECK_EQ_INT(clip_encode(t, "a photo of a dog", ctx, ids, 1), -1);
        CHECK_MSG(strstr(sl_error_msg(), "positions"), "%s", sl_error_msg());
        for (int i = 0; i < 8; i++) CHECK_EQ_INT(ids[i], -7);
        int nc = -5;
        CHECK(!clip_encode_chunks(t, "a photo of a dog, on the beach", ctx, &nc));
        CHECK_EQ_INT(nc, -5);
    }
    CHECK_EQ_INT(clip_encode(t, "dog", CLIP_MAX_CONTEXT + 1, ids, 0), -1);
    // the smallest context works: one token per chunk
    int nc;
    int32_t *rows = clip_encode_chunks(t, "dog dog dog", 3, &nc);
    REQUIRE(rows);
    CHECK_EQ_INT(nc, 3);
    for (int c = 0; c < nc; c++) {
        CHECK_EQ_INT(rows[3 * c], 49406);
        CHECK_EQ_INT(rows[3 * c + 1], 1929);
        CHECK_EQ_INT(rows[3 * c + 2], 49407);
    }
    free(rows);
    // truncation to one token still warns with the dropped text, reading no tokens before the first
    CHECK_EQ_INT(clip_encode(t, "dog cat", 3, ids, 1), 2);
    CHECK_EQ_INT(ids[1], 1929);
    clip_tokenizer_free(t);
}

static const char *CONFIG_FMT =
    "{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
    "\"max_position_embeddings\": %d, \"vocab_size\": 100}";

TEST(hardening_text_config_positions) {
    char json[512];
    clip_text_config c;
    for (int pos = 0; pos <= 3; pos++) {
        snprintf(json, sizeof json, CONFIG_FMT, pos);
        REQUIRE(write_file(tmp_path("config.json"), json, strlen(json)) == 0);
        int rc = clip_text_config_load(&c, tmp_path("config.json"));
        if (pos < CLIP_MIN_CONTEXT) {
            CHECK_EQ_INT(rc, -1);
            CHECK_MSG(strstr(sl_error_msg(), "config.json") && strstr(sl_error_msg(), "positions"), "%s",
                      sl_error_msg());
        } else {
            CHECK_EQ_INT(rc, 0);
            CHECK_EQ_INT(c.max_pos, 3);
        }
    }
    snprintf(json, sizeof json, CONFIG_FMT, 1 << 20);
    REQUIRE(write_file(tmp_path("config.json"), json, strlen(json)) == 0);
    CHECK_EQ_INT(clip_text_config_load(&c, tmp_path("config.json")), -1);
}

// OpenAI CLIP: ftfy.fix_text (uncurl_quotes, remove_control_chars keeps \t \n \f \r), then
// html.unescape twice, whitespace_clean (re.sub(r'\s+', ' ') and strip), lower().
TEST(hardening_tokenizer_tabs_and_quotes) {
    clip_tokenizer *t = load();
    REQUIRE(t);
    const char *pairs[][2] = {
        {"a\tphoto\t\tof\t", "a photo of"},
        {"\t\n\r\f a photo", "a photo"},
        {"a&#9;photo", "a photo"},                              // a tab from an HTML reference
        {"it\xe2\x80\x98s \xe2\x80\x9chot\xe2\x80\x9d", "it's \"hot\""},   // ‘ “ ”
        {"don&rsquo;t &ldquo;x&rdquo;", "don't \"x\""},         // curly quotes from entities
        {"\xe2\x80\x9a\xe2\x80\x9b\xe2\x80\x9e\xe2\x80\x9f", "''\"\""},    // ‚ ‛ „ ‟
        {"a\xe2\x80\x83" "b\xc2\xa0" "c\xe3\x80\x80" "d", "a b c d"},   // em space, nbsp, ideographic space
        {"a\x0b" "b", "ab"},                                    // VT is a control character ftfy removes
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        int na, nb;
        int *a = clip_tokenize(t, pairs[k][0], &na);
        int *b = clip_tokenize(t, pairs[k][1], &nb);
        int same = na == nb;
        for (int i = 0; same && i < na; i++) same = a[i] == b[i];
        CHECK_MSG(same, "case %zu: '%s' and '%s' tokenize differently", k, pairs[k][0], pairs[k][1]);
        free(a);
        free(b);
    }
    clip_tokenizer_free(t);
}
