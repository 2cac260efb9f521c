// CLIP tokenizer: ids for tricky prompts against the real vocabulary in
// ../shared/models/clip-tokenizer. The ids were derived by hand from vocab.json / merges.txt
// for the simple cases (comments show the lookups) and, for the rest, cross-checked with a
// Python transcription of OpenAI CLIP's SimpleTokenizer (without ftfy) during development.
#include <stdlib.h>
#include <string.h>

#include "clip/text_clean.h"
#include "clip/tokenizer.h"
#include "clip/unicode.h"
#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "tests/test.h"

#define BOS 49406
#define EOS 49407

static clip_tokenizer *load_hf(void) {
    clip_tokenizer *t = clip_tokenizer_load(shared_path("models/clip-tokenizer"));
    if (!t) fprintf(stderr, "    %s\n", sl_error_msg());
    return t;
}

static clip_tokenizer *load_gz(void) {
    clip_tokenizer *t = clip_tokenizer_load_gz(shared_path("models/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz"));
    if (!t) fprintf(stderr, "    %s\n", sl_error_msg());
    return t;
}

// Checks that `text` gives exactly the BPE ids `want` (n of them).
static void check_ids(const clip_tokenizer *t, const char *text, const int *want, int n, int line) {
    int got_n;
    int *got = clip_tokenize(t, text, &got_n);
    int same = got_n == n;
    for (int i = 0; same && i < n; i++) same = got[i] == want[i];
    if (!same) {
        char buf[2048];
        size_t o = 0;
        for (int i = 0; i < got_n && o < sizeof buf - 16; i++) o += (size_t)snprintf(buf + o, sizeof buf - o, "%d ", got[i]);
        buf[o] = 0;
        test_fail_at(__FILE__, line, "'%s': got %d ids [%s], want %d", text, got_n, buf, n);
    }
    free(got);
}
#define IDS(t, text, ...)                                                         \
    do {                                                                          \
        static const int want_[] = {__VA_ARGS__};                                 \
        check_ids(t, text, want_, (int)(sizeof want_ / sizeof want_[0]), __LINE__); \
    } while (0)
#define NO_IDS(t, text) check_ids(t, text, NULL, 0, __LINE__)

// Two texts tokenize identically.
static void check_same(const clip_tokenizer *t, const char *a, const char *b, int line) {
    int na, nb;
    int *ia = clip_tokenize(t, a, &na), *ib = clip_tokenize(t, b, &nb);
    int same = na == nb;
    for (int i = 0; same && i < na; i++) same = ia[i] == ib[i];
    if (!same) test_fail_at(__FILE__, line, "'%s' and '%s' should give the same ids (%d vs %d ids)", a, b, na, nb);
    free(ia);
    free(ib);
}
#define SAME(t, a, b) check_same(t, a, b, __LINE__)

TEST(tokenizer_hand_derived_prompt) {
    clip_tokenizer *t = load_hf();
    REQUIRE(t);
    CHECK_EQ_INT(clip_tokenizer_bos(t), BOS);   // "<|startoftext|>" in vocab.json
    CHECK_EQ_INT(clip_tokenizer_eos(t), EOS);   // "<|endoftext|>"
    CHECK_EQ_INT(clip_tokenizer_pad(t), EOS);   // pad_token "<|endoftext|>" (SD 1.x)
    CHECK_EQ_INT(clip_tokenizer_vocab_size(t), 49408);
    CHECK_EQ_INT(clip_tokenizer_max_length(t), 77);
    // "dog": d o g</w>; merges.txt line 129 "d o" (rank 127) beats line 8045 "o g</w>", giving
    // do g</w>; then line 1419 "do g</w>" (rank 1417) -> "dog</w>" = 512 + 1417 = 1929.
    IDS(t, "dog", 1929);
    CHECK_EQ_INT(clip_tokenizer_lookup(t, "do"), 512 + 127);
    // "a</w>" 320, "photo</w>" 1125, "of</w>" 539, "sks</w>" 48136, "dog</w>" 1929
    int32_t ids[77];
    int n = clip_encode(t, "a photo of sks dog", 77, ids, 1);
    CHECK_EQ_INT(n, 5);
    static const int32_t head[7] = {BOS, 320, 1125, 539, 48136, 1929, EOS};
    for (int i = 0; i < 7; i++) CHECK_EQ_INT(ids[i], head[i]);
    for (int i = 7; i < 77; i++) CHECK_EQ_INT(ids[i], EOS);
    clip_tokenizer_free(t);
}

TEST(tokenizer_tricky_prompts) {
    clip_tokenizer *t = load_hf();
    REQUIRE(t);
    // apostrophes: contractions are their own words: "don</w>" 847 "'t</w>" 713, "it</w>" 585 "'s</w>" 568
    IDS(t, "don't", 847, 713);
    IDS(t, "it's", 585, 568);
    IDS(t, "rock'n'roll", 2172, 262, 333, 262, 3341);
    IDS(t, "''s 'S 'LL 'x", 8445, 338, 568, 1342, 262, 343);
    // digits are single words: "2</w>" 273, "0</w>" 271, "4</w>" 275
    IDS(t, "2024", 273, 271, 273, 275);
    IDS(t, "in 2024, 3.14 and 1,000,000 dogs", 530, 273, 271, 273, 275, 267, 274, 269, 272, 275, 537, 272, 267,
        271, 271, 271, 267, 271, 271, 271, 3255);
    // punctuation runs are words
    IDS(t, "(masterpiece:1.2), [bad]", 263, 12066, 281, 272, 269, 273, 2361, 314, 2103, 316);
    IDS(t, "A Photo Of SKS Dog!!!", 320, 1125, 539, 48136, 1929, 995);
    // accents and other scripts: bytes mapped to characters, then BPE ("cafÃ©</w>" = 15304)
    IDS(t, "café", 15304);
    IDS(t, "café crème brûlée naïve Ångström", 15304, 1075, 12138, 614, 711, 127, 119, 75, 13489, 1097, 35689,
        563, 23176, 10352, 807, 7255, 332);
    IDS(t, "ΣΟΦΙΑ", 139, 225, 138, 123, 139, 228, 138, 117, 138, 365);   // lower-cased first: σοφια
    IDS(t, "ПРИВЕТ", 26302, 16370, 29503, 110, 22176, 141, 480);
    IDS(t, "日本語", 39121, 44353, 34002, 508);
    IDS(t, "العربية ١٢٣", 12973, 18843, 10948, 16378, 12046, 20915, 149, 350, 149, 351, 149, 352);
    // emoji: "ðŁĲ¶</w>" (U+1F436 dog face) is one token; two emoji are one word (</w> on the last)
    IDS(t, "🐶", 10631);
    IDS(t, "emoji 🐶🐱 and 👍🏽", 16327, 14466, 22979, 537, 43722);
    // whitespace: runs of spaces, tabs, newlines, no-break and ideographic spaces are one separator
    SAME(t, "a   photo \t\n of  sks dog  ", "a photo of sks dog");
    SAME(t, "a\xc2\xa0" "b\xe2\x80\x83" "c\xe3\x80\x80" "d", "a b c d");
    NO_IDS(t, "");
    NO_IDS(t, "   \t\n ");
    // HTML entities, unescaped twice as CLIP does: "&amp;amp;" -> "&"
    IDS(t, "tom &amp; jerry", 2435, 261, 9164);
    SAME(t, "&#233;t&#xE9; &amp;amp; &lt;3 &quot;x&quot;", "été & <3 \"x\"");
    // the special tokens are recognised in text
    IDS(t, "<|startoftext|>hi<|endoftext|>", BOS, 1883, EOS);
    // numbers beyond ASCII digits are \p{N}: one word each
    IDS(t, "²³ ½ Ⅻ ① ٣", 41175, 126, 367, 33613, 158, 227, 375, 158, 239, 510, 149, 352);
    clip_tokenizer_free(t);
}

TEST(tokenizer_ftfy_fixes) {
    clip_tokenizer *t = load_hf();
    REQUIRE(t);
    SAME(t, "don\xe2\x80\x99t", "don't");                   // curly apostrophe
    SAME(t, "\xe2\x80\x9cquoted\xe2\x80\x9d", "\"quoted\"");  // curly quotes
    SAME(t, "\xef\xbd\x86\xef\xbd\x95\xef\xbd\x8c\xef\xbd\x8c", "full");   // full-width letters
    SAME(t, "\xef\xac\x81re", "fire");                       // the "fi" ligature
    SAME(t, "cafe\xcc\x81", "café");                         // e + combining acute -> é (NFC)
    SAME(t, "İSTANBUL", "i\xcc\x87stanbul");                 // Python's lower() of İ is i + U+0307
    clip_tokenizer_free(t);
}

TEST(tokenizer_truncation_and_padding) {
    clip_tokenizer *t = load_hf();
    REQUIRE(t);
    // 300 x's: BPE gives 74 "xxxx" (32035) and one "xxxx</w>" (22819); 75 tokens fit exactly
    char text[400];
    memset(text, 'x', 300);
    text[300] = 0;
    int32_t ids[77];
    CHECK_EQ_INT(clip_encode(t, text, 77, ids, 0), 75);
    CHECK_EQ_INT(ids[0], BOS);
    CHECK_EQ_INT(ids[1], 32035);
    CHECK_EQ_INT(ids[75], 22819);
    CHECK_EQ_INT(ids[76], EOS);
    // 80 words: truncated to BOS + 75 + EOS
    char long_text[1024] = "";
    for (int i = 0; i < 80; i++) strcat(long_text, "dog ");
    CHECK_EQ_INT(clip_encode(t, long_text, 77, ids, 0), 80);
    for (int i = 1; i < 76; i++) CHECK_EQ_INT(ids[i], 1929);
    CHECK_EQ_INT(ids[76], EOS);
    // empty prompt: [BOS, EOS, pad...]; SD 2.x pads with id 0 ("!")
    CHECK_EQ_INT(clip_encode(t, "", 77, ids, 0), 0);
    CHECK_EQ_INT(ids[0], BOS);
    CHECK_EQ_INT(ids[1], EOS);
    CHECK_EQ_INT(ids[2], EOS);
    clip_tokenizer_set_pad(t, 0);
    clip_encode(t, "", 77, ids, 0);
    CHECK_EQ_INT(ids[1], EOS);
    for (int i = 2; i < 77; i++) CHECK_EQ_INT(ids[i], 0);
    clip_tokenizer_free(t);
}

TEST(tokenizer_long_prompt_chunks) {
    clip_tokenizer *t = load_hf();
    REQUIRE(t);
    // 12 × "a photo of a big red car" joined by ", ": 95 tokens. The first chunk fills at token
    // 75 ("of"), 4 tokens after a comma: A1111 breaks after the comma, so chunk 1 has 72 tokens
    // and chunk 2 starts with "a photo of" (320, 1125, 539) and holds the other 23.
    char text[1024] = "";
    for (int i = 0; i < 12; i++) strcat(text, i ? ", a photo of a big red car" : "a photo of a big red car");
    int nc;
    int32_t *ids = clip_encode_chunks(t, text, 77, &nc);
    REQUIRE(nc == 2);
    CHECK_EQ_INT(ids[0], BOS);
    CHECK_EQ_INT(ids[72], 267);   // ",</w>"
    CHECK_EQ_INT(ids[73], EOS);
    CHECK_EQ_INT(ids[74], EOS);
    const int32_t *c2 = ids + 77;
    CHECK_EQ_INT(c2[0], BOS);
    CHECK_EQ_INT(c2[1], 320);
    CHECK_EQ_INT(c2[2], 1125);
    CHECK_EQ_INT(c2[3], 539);
    CHECK_EQ_INT(c2[23], 1615);   // the last "car"
    CHECK_EQ_INT(c2[24], EOS);
    free(ids);
    // no comma near the boundary: plain 75-token chunks; the empty prompt is one chunk
    char dogs[1024] = "";
    for (int i = 0; i < 160; i++) strcat(dogs, "dog ");
    ids = clip_encode_chunks(t, dogs, 77, &nc);
    CHECK_EQ_INT(nc, 3);
    CHECK_EQ_INT(ids[76], EOS);
    CHECK_EQ_INT(ids[77 + 75], 1929);
    CHECK_EQ_INT(ids[2 * 77 + 10], 1929);
    CHECK_EQ_INT(ids[2 * 77 + 11], EOS);
    free(ids);
    ids = clip_encode_chunks(t, "", 77, &nc);
    CHECK_EQ_INT(nc, 1);
    CHECK_EQ_INT(ids[1], EOS);
    free(ids);
    clip_tokenizer_free(t);
}

TEST(tokenizer_gz_matches_vocab_json) {
    clip_tokenizer *a = load_hf(), *b = load_gz();
    REQUIRE(a && b);
    CHECK_EQ_INT(clip_tokenizer_vocab_size(a), clip_tokenizer_vocab_size(b));
    int diff = 0;
    for (int i = 0; i < clip_tokenizer_vocab_size(a); i++)
        diff += strcmp(clip_tokenizer_token(a, i), clip_tokenizer_token(b, i)) != 0;
    CHECK_EQ_INT(diff, 0);
    static const char *prompts[] = {"a photo of sks dog", "café crème", "🐶🐱", "don't stop, 2024!", "ΣΟΦΙΑ 日本語", ""};
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        int32_t x[77], y[77];
        clip_encode(a, prompts[p], 77, x, 0);
        clip_encode(b, prompts[p], 77, y, 0);
        CHECK_MSG(!memcmp(x, y, sizeof x), "'%s' differs between vocab.json and the .gz", prompts[p]);
    }
    clip_tokenizer_free(a);
    clip_tokenizer_free(b);
}

TEST(tokenizer_unicode_tables) {
    CHECK(uni_is_letter('a') && uni_is_letter(0xE9) && uni_is_letter(0x3A3) && uni_is_letter(0x416));
    CHECK(uni_is_letter(0x65E5) && uni_is_letter(0x5D0) && uni_is_letter(0x627) && uni_is_letter(0xD55C));
    CHECK(!uni_is_letter('1') && !uni_is_letter(' ') && !uni_is_letter(0x1F436) && !uni_is_letter(0x301));
    CHECK(uni_is_number('7') && uni_is_number(0xB2) && uni_is_number(0x663) && uni_is_number(0x216B));
    CHECK(!uni_is_number('x') && !uni_is_number(0x2C));
    CHECK(uni_is_space(0xA0) && uni_is_space(0x3000) && uni_is_space(0x1F) && !uni_is_space(0x200B));
    CHECK_EQ_INT(uni_lower('Q'), 'q');
    CHECK_EQ_INT(uni_lower(0xC9), 0xE9);     // É
    CHECK_EQ_INT(uni_lower(0x178), 0xFF);    // Ÿ
    CHECK_EQ_INT(uni_lower(0x3A3), 0x3C3);   // Σ
    CHECK_EQ_INT(uni_lower(0x42F), 0x44F);   // Я
    CHECK_EQ_INT(uni_lower(0x1E9E), 0xDF);   // ẞ
    CHECK_EQ_INT(uni_lower(0x3C3), 0x3C3);
    CHECK_EQ_INT(uni_lower(0x4E2D), 0x4E2D);
    CHECK_EQ_INT(uni_compose('e', 0x301), 0xE9);
    CHECK_EQ_INT(uni_compose(0x1100, 0x1161), 0xAC00);   // Hangul L + V
    CHECK_EQ_INT(uni_compose('q', 0x301), 0);
    char *s = clip_clean_text("  Hello\t&amp;amp;  W\xc3\x96RLD &eacute &#x1F436; &bogus; ");
    CHECK_MSG(!strcmp(s, "hello & w\xc3\xb6rld \xc3\xa9 \xf0\x9f\x90\xb6 &bogus;"), "clean: '%s'", s);
    free(s);
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(data, 1, n, f);
    return fclose(f);
}

TEST(tokenizer_bad_inputs) {
    CHECK(!clip_tokenizer_load(tmp_path("nothing-here")));
    CHECK(strstr(sl_error_msg(), "no such file"));
    // a folder without tokenizer files
    CHECK(!clip_tokenizer_load(shared_path("fixtures/sd1_tiny")));
    CHECK(strstr(sl_error_msg(), "no tokenizer"));
    // corrupt .gz: the real header and a damaged deflate stream
    size_t n;
    FILE *f = fopen(shared_path("models/clip-tokenizer/bpe_simple_vocab_16e6.txt.gz"), "rb");
    REQUIRE(f);
    char *buf = malloc(1 << 16);
    n = fread(buf, 1, 1 << 16, f);
    fclose(f);
    CHECK(write_file(tmp_path("cut.gz"), buf, n) == 0);   // truncated: the stream ends early
    CHECK(!clip_tokenizer_load(tmp_path("cut.gz")));
    CHECK_MSG(strstr(sl_error_msg(), "cut.gz"), "%s", sl_error_msg());
    CHECK(write_file(tmp_path("notgz.gz"), "hello world, not gzip", 21) == 0);
    CHECK(!clip_tokenizer_load(tmp_path("notgz.gz")));
    CHECK(strstr(sl_error_msg(), "not a gzip"));
    free(buf);
    // a broken vocab.json and a merge whose result is not in the vocabulary
    CHECK(write_file(tmp_path("vocab.json"), "{\"a\": 0, ", 9) == 0);
    CHECK(write_file(tmp_path("merges.txt"), "#version: 0.2\na b\n", 18) == 0);
    CHECK(!clip_tokenizer_load_hf(tmp_path("vocab.json"), tmp_path("merges.txt")));
    CHECK(strstr(sl_error_msg(), "vocab.json"));
    CHECK(write_file(tmp_path("vocab.json"), "{\"a\": 0, \"b\": 1}", 16) == 0);
    CHECK(!clip_tokenizer_load_hf(tmp_path("vocab.json"), tmp_path("merges.txt")));
    CHECK_MSG(strstr(sl_error_msg(), "not in the vocabulary") || strstr(sl_error_msg(), "byte token"), "%s",
              sl_error_msg());
}

// A model without a tokenizer (a single-file checkpoint, a folder without tokenizer/) gets the
// built-in vocabulary, which tokenizes exactly as the reference vocab.json + merges.txt do.
TEST(tokenizer_builtin_vocabulary) {
    clip_tokenizer *ref = clip_tokenizer_load(shared_path("models/clip-tokenizer"));
    REQUIRE(ref);
    const char *models[] = {"fixtures/sd1_tiny.original.safetensors", "fixtures/sd1_tiny"};
    const char *text = "A photo of sks dog, on the beach at sunset; café, naïve 1234 it's <3 \u00e9t\u00e9 🐕";
    for (int k = 0; k < 2; k++) {
        clip_tokenizer *t = clip_tokenizer_for_model(shared_path(models[k]), NULL);
        REQUIRE(t);
        CHECK_EQ_INT(clip_tokenizer_vocab_size(t), clip_tokenizer_vocab_size(ref));
        CHECK_EQ_INT(clip_tokenizer_pad(t), clip_tokenizer_eos(t));   // SD 1.x pads with EOS
        int n1, n2;
        int *a = clip_tokenize(t, text, &n1), *b = clip_tokenize(ref, text, &n2);
        CHECK_EQ_INT(n1, n2);
        CHECK(n1 > 10 && n1 == n2 && !memcmp(a, b, sizeof(int) * (size_t)n1));
        for (int id = 0; id < clip_tokenizer_vocab_size(t); id += 997)
            CHECK(!strcmp(clip_tokenizer_token(t, id), clip_tokenizer_token(ref, id)));
        free(a), free(b);
        clip_tokenizer_free(t);
    }
    clip_tokenizer_free(ref);
}

TEST(tokenizer_model_resolution_and_pad) {
    // a single-file SD 2.x (OpenCLIP) model pads with 0, SD 1.x with EOS
    clip_tokenizer *t = clip_tokenizer_for_model(shared_path("fixtures/sd2_tiny.original.safetensors"),
                                                 shared_path("models/clip-tokenizer"));
    REQUIRE(t);
    CHECK_EQ_INT(clip_tokenizer_pad(t), 0);
    clip_tokenizer_free(t);
    t = clip_tokenizer_for_model(shared_path("fixtures/sd1_tiny.original.safetensors"),
                                 shared_path("models/clip-tokenizer"));
    REQUIRE(t);
    CHECK_EQ_INT(clip_tokenizer_pad(t), EOS);
    clip_tokenizer_free(t);
    // SD 2.1's tokenizer/ has only configs: pad_token "!" from special_tokens_map.json
    t = clip_tokenizer_for_model(shared_path("models/sd21"), shared_path("models/clip-tokenizer"));
    REQUIRE(t);
    CHECK_EQ_INT(clip_tokenizer_pad(t), 0);
    clip_tokenizer_free(t);
}

TEST(tokenizer_cli) {
    char out[8192];
    int rc = run_cmd(out, sizeof out, "%s tokenize --model %s \"a photo of sks dog\"", singlora_bin(),
                     shared_path("models/clip-tokenizer"));
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(!strncmp(out, "[49406, 320, 1125, 539, 48136, 1929, 49407, 49407,", 50), "%s", out);
    rc = run_cmd(out, sizeof out, "%s tokenize --model %s --tokenizer %s --raw \"it's\"", singlora_bin(),
                 shared_path("fixtures/sd2_tiny.original.safetensors"), shared_path("models/clip-tokenizer"));
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(!strcmp(out, "[585, 568]\n"), "%s", out);
    // a single-file checkpoint without --tokenizer: the built-in vocabulary
    rc = run_cmd(out, sizeof out, "%s tokenize --model %s \"a photo of sks dog\"", singlora_bin(),
                 shared_path("fixtures/sd1_tiny.original.safetensors"));
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(!strncmp(out, "[49406, 320, 1125, 539, 48136, 1929, 49407, 49407,", 50), "%s", out);
    // a long prompt warns on stderr and still prints 77 ids
    char cmd[2048];
    int o = snprintf(cmd, sizeof cmd, "%s tokenize --model %s \"", singlora_bin(), shared_path("models/clip-tokenizer"));
    for (int i = 0; i < 90; i++) o += snprintf(cmd + o, sizeof cmd - (size_t)o, "dog ");
    snprintf(cmd + o, sizeof cmd - (size_t)o, "\"");
    rc = run_cmd(out, sizeof out, "%s", cmd);
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(strstr(out, "warning") && strstr(out, "90 tokens"), "%s", out);
}
