// `singlora sample` as A1111 / ComfyUI / stable-diffusion.cpp users drive it: --from-png
// regenerates an image from its parameters chunk, `inspect IMAGE.png` prints them, the chunk
// round-trips through A1111's PNG Info format, sd.cpp's flags, and <lora:NAME:W> prompt tags.
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/png.h"
#include "engine/core/error.h"
#include "pipeline/a1111_params.h"
#include "pipeline/png_replay.h"
#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

// 1 when both images load with the same size and identical pixels
static int same_pixels(const char *a, const char *b) {
    int ha, wa, hb, wb;
    float *x = image_load(a, &ha, &wa), *y = image_load(b, &hb, &wb);
    int same = x && y && ha == hb && wa == wb && memcmp(x, y, sizeof(float) * 3 * (size_t)ha * wa) == 0;
    free(x);
    free(y);
    return same;
}

static char *params_of(const char *png) { return png_read_text(png, "parameters"); }

TEST(sample_from_png_regenerates_the_image) {
    const char *tok = tiny_tokenizer(), *model = shared_path("fixtures/sd1_tiny");
    REQUIRE(tok);
    char out[600], out2[600], out3[600], log[8192];
    snprintf(out, sizeof out, "%s", tmp_path("a"));
    snprintf(out2, sizeof out2, "%s", tmp_path("b"));
    snprintf(out3, sizeof out3, "%s", tmp_path("c"));
    int rc = run_cmd(log, sizeof log,
                     "%s sample --model %s --tokenizer %s --prompt 'a (dog:1.3), [photo]' --negative-prompt 'blurry, dark' "
                     "--steps 3 --sampler 'DPM++ 2M Karras' --timestep-spacing trailing --cfg 5 --seed 7 --width 96 "
                     "--height 64 --out %s",
                     singlora_bin(), model, tok, out);
    CHECK_MSG(rc == 0, "sample: %s", log);
    CHECK_MSG(strstr(log, "image 1/1 1/3 ") && strstr(log, "image 1/1 3/3 "), "progress lines: %s", log);
    char png[700], png2[700], png3[700];
    snprintf(png, sizeof png, "%s/00000-7.png", out);
    char *p = params_of(png);
    REQUIRE(p);
    printf("  parameters:\n%s\n", p);
    CHECK(strncmp(p, "a (dog:1.3), [photo]\nNegative prompt: blurry, dark\nSteps: 3, Sampler: DPM++ 2M, Schedule type: "
                     "Karras, CFG scale: 5, Seed: 7, Size: 96x64, Model hash: ", 151) == 0);
    CHECK(strstr(p, ", Timestep spacing: trailing, ") != NULL);
    free(p);
    // regenerate from the PNG alone: the same pixels
    rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --from-png %s --out %s", singlora_bin(), model, tok,
                 png, out2);
    CHECK_MSG(rc == 0, "from-png: %s", log);
    snprintf(png2, sizeof png2, "%s/00000-7.png", out2);
    CHECK_MSG(same_pixels(png, png2), "--from-png %s gave other pixels", png);
    char *a = params_of(png), *b = params_of(png2);
    CHECK(a && b && strcmp(a, b) == 0);
    free(a), free(b);
    // an option given as well overrides the PNG's
    rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --from-png %s --seed 8 --out %s", singlora_bin(), model,
                 tok, png, out3);
    CHECK_MSG(rc == 0, "from-png --seed: %s", log);
    snprintf(png3, sizeof png3, "%s/00000-8.png", out3);
    CHECK(!same_pixels(png, png3));
    p = params_of(png3);
    CHECK(p && strstr(p, "Seed: 8,") && strstr(p, "Sampler: DPM++ 2M, Schedule type: Karras"));
    free(p);
    // inspect prints the parsed parameters
    rc = run_cmd(log, sizeof log, "%s inspect %s", singlora_bin(), png);
    CHECK_MSG(rc == 0 && strstr(log, "  prompt: a (dog:1.3), [photo]\n") && strstr(log, "  negative prompt: blurry, dark\n") &&
                  strstr(log, "  Sampler: DPM++ 2M\n") && strstr(log, "  Size: 96x64\n") &&
                  strstr(log, "  Timestep spacing: trailing\n"),
              "inspect: %s", log);
    // a PNG without parameters, and img2img without its init image: one line each, exit 1
    char bare[700];
    snprintf(bare, sizeof bare, "%s", tmp_path("bare.png"));
    REQUIRE(png_write(bare, (const uint8_t[12]){0}, 2, 2, 3, NULL, NULL, 0) == 0);
    rc = run_cmd(log, sizeof log, "%s sample --model %s --from-png %s --out %s", singlora_bin(), model, bare, out3);
    CHECK_MSG(rc == 1 && strstr(log, "bare.png") && strstr(log, "parameters"), "%s", log);
    rc = run_cmd(log, sizeof log, "%s inspect %s", singlora_bin(), bare);
    CHECK_MSG(rc == 1 && strstr(log, "bare.png"), "%s", log);
}

TEST(a1111_parameters_round_trip) {
    // values with ',', ':' and quotes are JSON-quoted as A1111's quote() does, and read back
    const char *keys[] = {"Steps", "Sampler", "Adapter", "Lora", "Note"};
    const char *vals[] = {"20", "Euler a", "dog.safetensors:0.8", "a b", "say \"hi\", then\nleave"};
    char *text = a1111_params_format("line one\nline two (x:1.2)", "bad, ugly", keys, vals, 5);
    printf("  %s\n", text);
    CHECK(strstr(text, "Adapter: \"dog.safetensors:0.8\"") && strstr(text, "Note: \"say \\\"hi\\\", then\\nleave\""));
    a1111_params p;
    a1111_params_parse(text, &p);
    CHECK(strcmp(p.prompt, "line one\nline two (x:1.2)") == 0);
    CHECK(p.negative && strcmp(p.negative, "bad, ugly") == 0);
    REQUIRE(p.n == 5);
    for (int i = 0; i < 5; i++)
        CHECK_MSG(strcmp(p.keys[i], keys[i]) == 0 && strcmp(p.values[i], vals[i]) == 0, "pair %d: '%s': '%s'", i, p.keys[i],
                  p.values[i]);
    a1111_params_free(&p);
    free(text);
    // A1111's own infotext (1.9 style, and an older one with the schedule in the sampler name)
    const char *a1111 =
        "masterpiece, (cat:1.2)\nNegative prompt: lowres\nSteps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, "
        "Seed: 1234567890, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: \"dog: "
        "0123456789ab\", Version: v1.9.4";
    a1111_params_parse(a1111, &p);
    CHECK(strcmp(p.prompt, "masterpiece, (cat:1.2)") == 0 && strcmp(p.negative, "lowres") == 0);
    CHECK(a1111_params_get(&p, "Size") && strcmp(a1111_params_get(&p, "Size"), "512x768") == 0);
    CHECK(a1111_params_get(&p, "Lora hashes") && strcmp(a1111_params_get(&p, "Lora hashes"), "dog: 0123456789ab") == 0);
    CHECK(a1111_params_get(&p, "Version") && strcmp(a1111_params_get(&p, "Version"), "v1.9.4") == 0);
    a1111_params_free(&p);
    // no parameters line: all prompt; no negative line: NULL
    a1111_params_parse("just a prompt\n", &p);
    CHECK(strcmp(p.prompt, "just a prompt") == 0 && !p.negative && p.n == 0);
    a1111_params_free(&p);
    // replay settings from an older A1111 file
    const char *png = tmp_path("old.png");
    const char *k[] = {"parameters"};
    const char *v[] = {"a cat\nSteps: 12, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 99, Size: 64x96, Clip skip: 2"};
    REQUIRE(png_write(png, (const uint8_t[12]){0}, 2, 2, 3, k, v, 1) == 0);
    sd_png_replay r = {.seed = -1, .clip_skip = 1};
    REQUIRE(sd_png_replay_load(png, &r) == 0);
    CHECK(strcmp(r.gen.prompt, "a cat") == 0 && r.gen.negative == NULL);
    CHECK(r.gen.denoise.sampler.kind == SL_SAMPLER_DPMPP_2M && r.gen.denoise.sampler.sigmas == SL_SIGMAS_KARRAS);
    CHECK(r.gen.denoise.sampler.steps == 12 && r.gen.denoise.cfg == 7.0f && r.seed == 99 && r.clip_skip == 2);
    CHECK(r.gen.width == 64 && r.gen.height == 96 && !r.img2img);
    sd_png_replay_free(&r);
    const char *v2[] = {"a cat\nSteps: 12, Sampler: LMS, CFG scale: 7, Seed: 99, Size: 64x96"};
    REQUIRE(png_write(png, (const uint8_t[12]){0}, 2, 2, 3, k, v2, 1) == 0);
    sd_png_replay r2 = {0};
    CHECK(sd_png_replay_load(png, &r2) == -1 && strstr(sl_error_msg(), "LMS") && strstr(sl_error_msg(), "old.png"));
    sd_png_replay_free(&r2);
}

TEST(sample_sdcpp_flags_and_output_file) {
    const char *tok = tiny_tokenizer(), *model = shared_path("fixtures/sd1_tiny");
    REQUIRE(tok);
    char dir[600], log[8192], f1[700], f2[700], j1[700];
    snprintf(dir, sizeof dir, "%s", tmp_path("sdcpp"));
    int rc = run_cmd(log, sizeof log,
                     "%s sample -m %s --tokenizer %s -p dog -n blurry -s 5 -W 64 -H 64 --steps 2 --cfg-scale 3 "
                     "--sampling-method euler -b 2 -t 1 -o %s/img.png",
                     singlora_bin(), model, tok, dir);
    CHECK_MSG(rc == 0, "%s", log);
    snprintf(f1, sizeof f1, "%s/img.png", dir);
    snprintf(f2, sizeof f2, "%s/img_2.png", dir);
    snprintf(j1, sizeof j1, "%s/img.json", dir);
    char *p = params_of(f1), *q = params_of(f2);
    CHECK_MSG(p && strncmp(p, "dog\nNegative prompt: blurry\nSteps: 2, Sampler: Euler, Schedule type: Automatic, CFG scale: 3, "
                              "Seed: 5, Size: 64x64", 114) == 0, "%s", p ? p : "(none)");
    CHECK(q && strstr(q, "Seed: 6,"));
    free(p), free(q);
    FILE *f = fopen(j1, "rb");
    CHECK(f != NULL);
    if (f) fclose(f);
    // the same with singlora's spellings: the same image
    char out[600], mine[700];
    snprintf(out, sizeof out, "%s", tmp_path("mine"));
    rc = run_cmd(log, sizeof log,
                 "%s sample --model %s --tokenizer %s --prompt dog --negative-prompt blurry --seed 5 --width 64 --height 64 "
                 "--steps 2 --cfg 3 --sampler euler --threads 1 --out %s",
                 singlora_bin(), model, tok, out);
    CHECK_MSG(rc == 0, "%s", log);
    snprintf(mine, sizeof mine, "%s/00000-5.png", out);
    CHECK(same_pixels(f1, mine));
}

TEST(sample_prompt_lora_tags) {
    const char *tok = tiny_tokenizer(), *model = shared_path("fixtures/sd1_tiny");
    REQUIRE(tok);
    char dir[600], ad[700], lora[700], log[8192];
    snprintf(dir, sizeof dir, "%s", tmp_path("loras"));
    snprintf(ad, sizeof ad, "%s", tmp_path("ad.safetensors"));
    snprintf(lora, sizeof lora, "%s/my_style.safetensors", dir);
    REQUIRE(run_cmd(log, sizeof log, "mkdir -p %s && %s adapter init --model %s --method singlora --rank 4 --alpha 4 "
                    "--ramp-steps 0 --seed 3 --out %s && %s export --adapter %s --format kohya --out %s",
                    dir, singlora_bin(), model, ad, singlora_bin(), ad, lora) == 0);
    const char *outs[3] = {tmp_path("tag"), tmp_path("flag"), tmp_path("none")};
    const char *extra[3] = {"--prompt 'dog <lora:my_style:0.7>' --lora-dir", "--prompt dog --lora", "--prompt dog"};
    char args[3][1200];
    snprintf(args[0], sizeof args[0], "%s %s", extra[0], dir);
    snprintf(args[1], sizeof args[1], "%s %s:0.7", extra[1], lora);
    snprintf(args[2], sizeof args[2], "%s", extra[2]);
    char png[3][700];
    for (int k = 0; k < 3; k++) {
        int rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s %s --steps 2 --seed 1 --width 64 --height 64 --out %s",
                         singlora_bin(), model, tok, args[k], outs[k]);
        CHECK_MSG(rc == 0, "%s: %s", args[k], log);
        snprintf(png[k], sizeof png[k], "%s/00000-1.png", outs[k]);
    }
    CHECK_MSG(same_pixels(png[0], png[1]), "<lora:my_style:0.7> differs from --lora FILE:0.7");
    CHECK(!same_pixels(png[0], png[2]));
    // the tag stays in the recorded prompt (as A1111 records it)
    char *p = params_of(png[0]);
    CHECK(p && strncmp(p, "dog <lora:my_style:0.7>\n", 24) == 0);
    free(p);
    // a tag without --lora-dir, or without its file: one line naming the tag, exit 1
    int rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --prompt 'dog <lora:my_style>' --steps 1 --out %s",
                     singlora_bin(), model, tok, outs[2]);
    CHECK_MSG(rc == 1 && strstr(log, "--lora-dir") && strstr(log, "my_style"), "%s", log);
    rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --prompt 'dog <lora:nope:1>' --lora-dir %s --steps 1 --out %s",
                 singlora_bin(), model, tok, dir, outs[2]);
    CHECK_MSG(rc == 1 && strstr(log, "nope.safetensors"), "%s", log);
}
