// A1111's prompt syntax: the emphasis parse (A1111's own documented examples), <lora:...> tags,
// and the weighted conditioning against the manual computation from the unweighted one.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "pipeline/prompt.h"
#include "pipeline/prompt_syntax.h"
#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

typedef struct { const char *text; double weight; } seg;

static void check_parse(const char *prompt, const seg *want, int n) {
    prompt_attention a;
    if (prompt_parse_attention(prompt, &a) != 0) { CHECK_MSG(0, "'%s': %s", prompt, sl_error_msg()); return; }
    CHECK_MSG(a.n == n, "'%s': %d segments, want %d", prompt, a.n, n);
    for (int i = 0; i < a.n && i < n; i++)
        CHECK_MSG(strcmp(a.seg[i].text, want[i].text) == 0 && fabs(a.seg[i].weight - want[i].weight) < 1e-12,
                  "'%s' segment %d: ['%s', %.17g], want ['%s', %.17g]", prompt, i, a.seg[i].text, a.seg[i].weight,
                  want[i].text, want[i].weight);
    prompt_attention_free(&a);
}

TEST(prompt_attention_parse_as_a1111) {
    // the examples in A1111's parse_prompt_attention docstring
    check_parse("normal text", (seg[]){{"normal text", 1.0}}, 1);
    check_parse("an (important) word", (seg[]){{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}}, 3);
    check_parse("(unbalanced", (seg[]){{"unbalanced", 1.1}}, 1);
    check_parse("\\(literal\\]", (seg[]){{"(literal]", 1.0}}, 1);
    check_parse("(unnecessary)(parens)", (seg[]){{"unnecessaryparens", 1.1}}, 1);
    check_parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
                (seg[]){{"a ", 1.0}, {"house", 1.5730000000000004}, {" ", 1.1}, {"on", 1.0}, {" a ", 1.1}, {"hill", 0.55},
                        {", sun, ", 1.1}, {"sky", 1.4641000000000006}, {".", 1.1}},
                9);
    // more of the grammar
    check_parse("[word]", (seg[]){{"word", 1 / 1.1}}, 1);
    check_parse("a (dog:1.5) x", (seg[]){{"a ", 1.0}, {"dog", 1.5}, {" x", 1.0}}, 3);
    check_parse("(a (b:2) c)", (seg[]){{"a ", 1.1}, {"b", 2.2}, {" c", 1.1}}, 3);
    check_parse("time: 12:30) x]", (seg[]){{"time: 12:30) x]", 1.0}}, 1);   // nothing open: literal
    check_parse("a \\\\ b", (seg[]){{"a \\ b", 1.0}}, 1);
    check_parse("", (seg[]){{"", 1.0}}, 1);
    check_parse("(x: -0.5 )", (seg[]){{"x", -0.5}}, 1);
    check_parse("cat BREAK dog", (seg[]){{"cat", 1.0}, {"BREAK", -1.0}, {"dog", 1.0}}, 3);
    check_parse("BREAKFAST BREAK", (seg[]){{"BREAKFAST", 1.0}, {"BREAK", -1.0}, {"", 1.0}}, 3);
    prompt_attention a;
    REQUIRE(prompt_parse_attention("cat BREAK dog", &a) == 0);
    CHECK(prompt_segment_is_break(&a.seg[1]) && !prompt_segment_is_break(&a.seg[0]));
    prompt_attention_free(&a);
    CHECK(prompt_parse_attention("a (b:1.2.3) c", &a) == -1 && strstr(sl_error_msg(), "1.2.3"));
}

TEST(prompt_lora_tags) {
    char *text;
    prompt_lora *t;
    int n;
    REQUIRE(prompt_take_loras("a <lora:dog_v2:0.8> photo, <lora:style> <hypernet:x:1> <lora:b:0.5:0.7>", &text, &t, &n) == 0);
    CHECK_MSG(strcmp(text, "a  photo,  <hypernet:x:1> ") == 0, "'%s'", text);
    REQUIRE(n == 3);
    CHECK(strcmp(t[0].name, "dog_v2") == 0 && t[0].weight == 0.8f);
    CHECK(strcmp(t[1].name, "style") == 0 && t[1].weight == 1.0f);
    CHECK(strcmp(t[2].name, "b") == 0 && t[2].weight == 0.7f);   // A1111's UNet weight
    free(text);
    prompt_loras_free(t, n);
    REQUIRE(prompt_take_loras("no tags <here>", &text, &t, &n) == 0);
    CHECK(strcmp(text, "no tags <here>") == 0 && n == 0 && t == NULL);
    free(text);
    CHECK(prompt_take_loras("x <lora:a:strong>", &text, &t, &n) == -1 && strstr(sl_error_msg(), "<lora:a:strong>"));
}

static sd_model *tiny_model(void) {
    sd_load_opts lo = {.path = shared_path("fixtures/sd1_tiny"), .tokenizer_dir = tiny_tokenizer()};
    sd_model *m = sd_model_load(&lo);
    if (!m) fprintf(stderr, "%s\n", sl_error_msg());
    return m;
}

static int n_tokens(const sd_model *m, const char *text) {
    int n;
    free(clip_tokenize(m->tok, text, &n));
    return n;
}

TEST(prompt_emphasis_conditioning) {
    sd_model *m = tiny_model();
    REQUIRE(m);
    sd_conditioning w, u;
    REQUIRE(sd_encode_prompts(m, "a (dog:1.5) [x]", NULL, 0, SD_PROMPT_EMPHASIS, &w) == 0);
    REQUIRE(sd_encode_prompts(m, "a dog x", NULL, 0, 0, &u) == 0);
    REQUIRE(w.L == u.L && w.D == u.D);
    const int L = u.L, D = u.D;
    // the manual computation: BOS, "a " 1, "dog" 1.5, " x" 1/1.1, EOS and padding 1
    int na = n_tokens(m, "a "), nd = n_tokens(m, "dog"), nx = n_tokens(m, " x");
    REQUIRE(na >= 1 && nd >= 1 && nx >= 1);
    double *want = malloc(sizeof(double) * (size_t)L * D), before = 0, after = 0;
    for (int t = 0; t < L; t++) {
        double wt = t > na && t <= na + nd ? 1.5 : t > na + nd && t <= na + nd + nx ? 1 / 1.1 : 1.0;
        for (int d = 0; d < D; d++) {
            double z = u.cond[(size_t)t * D + d];
            before += z;
            want[(size_t)t * D + d] = z * wt;
            after += z * wt;
        }
    }
    double worst = 0, moved = 0;
    for (size_t q = 0; q < (size_t)L * D; q++) {
        double e = want[q] * (before / after);
        worst = fmax(worst, fabs(w.cond[q] - e) / (1 + fabs(e)));
        moved = fmax(moved, fabs(w.cond[q] - u.cond[q]));
    }
    printf("  weighted vs manual: max rel %.3g (the weighting moved values by up to %.3g)\n", worst, moved);
    CHECK(worst < 1e-5);
    CHECK(moved > 1e-3);
    // the mean is restored
    double mean_w = 0;
    for (size_t q = 0; q < (size_t)L * D; q++) mean_w += w.cond[q];
    CHECK_NEAR(mean_w / ((double)L * D), before / ((double)L * D), 1e-6);
    sd_conditioning_free(&w);
    // without emphasis the brackets are text: another conditioning than the weighted one
    REQUIRE(sd_encode_prompts(m, "(dog)", NULL, 0, 0, &w) == 0);
    sd_conditioning e;
    REQUIRE(sd_encode_prompts(m, "(dog)", NULL, 0, SD_PROMPT_EMPHASIS, &e) == 0);
    CHECK(memcmp(w.cond, e.cond, sizeof(float) * (size_t)L * D) != 0);
    sd_conditioning_free(&w);
    sd_conditioning_free(&e);
    // emphasis on a prompt without syntax changes nothing, bit for bit; the negative is parsed too
    sd_conditioning_free(&u);
    REQUIRE(sd_encode_prompts(m, "a dog x", "blurry", 1, 0, &u) == 0);
    REQUIRE(sd_encode_prompts(m, "a dog x", "blurry", 1, SD_PROMPT_EMPHASIS, &e) == 0);
    CHECK(memcmp(e.cond, u.cond, sizeof(float) * (size_t)L * D) == 0);
    CHECK(memcmp(e.uncond, u.uncond, sizeof(float) * (size_t)L * D) == 0);
    REQUIRE(sd_encode_prompts(m, "a dog x", "(blurry:1.3)", 1, SD_PROMPT_EMPHASIS, &w) == 0);
    CHECK(memcmp(w.cond, u.cond, sizeof(float) * (size_t)L * D) == 0);
    CHECK(compare_f32(w.uncond, e.uncond, (size_t)L * D).max_abs > 1e-3);
    sd_conditioning_free(&w);
    sd_conditioning_free(&e);
    // BREAK with long prompts: two chunks, each the encoding of its own part
    REQUIRE(sd_encode_prompts(m, "a dog BREAK x", NULL, 0, SD_PROMPT_EMPHASIS | SD_PROMPT_LONG, &w) == 0);
    CHECK_EQ_INT(w.L, 2 * L);
    sd_conditioning p1, p2;
    REQUIRE(sd_encode_prompts(m, "a dog", NULL, 0, 0, &p1) == 0 && sd_encode_prompts(m, "x", NULL, 0, 0, &p2) == 0);
    if (w.L == 2 * L) {   // one batch of two rows against two of one: equal up to the GEMM's blocking
        check_close("BREAK chunk 1 = 'a dog'", w.cond, p1.cond, (size_t)L * D, 1e-5);
        check_close("BREAK chunk 2 = 'x'", w.cond + (size_t)L * D, p2.cond, (size_t)L * D, 1e-5);
    }
    sd_conditioning_free(&w);
    sd_conditioning_free(&p1);
    sd_conditioning_free(&p2);
    sd_conditioning_free(&u);
    free(want);
    sd_model_free(m);
}
