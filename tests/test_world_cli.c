// `singlora world ...` on the command line: outputs, and one error line with exit 1 for bad input.
#include <string.h>

#include "tests/test.h"

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

TEST(world_cli_render_from_captions_scores_perfectly) {
    char out[8192];
    const char *caps = tmp_path("caps.txt"), *dir = tmp_path("out");
    FILE *f = fopen(caps, "w");
    REQUIRE(f);
    fprintf(f, "a red star and a blue circle on a green background\n\nan orange ring on a white background\n"
               "A black triangle and a pink square on a cyan background.\n");
    fclose(f);
    REQUIRE(run_cmd(out, sizeof out, "%s world render --captions %s --seed 4 --size 96 --out %s", singlora_bin(), caps, dir) == 0);
    CHECK(strstr(out, "wrote 3 images (96x96)"));
    REQUIRE(run_cmd(out, sizeof out, "cat %s/00002.txt", dir) == 0);
    CHECK(!strcmp(out, "a black triangle and a pink square on a cyan background\n"));
    REQUIRE(run_cmd(out, sizeof out, "%s world score --images %s", singlora_bin(), dir) == 0);
    CHECK_MSG(strstr(out, "images 3: background right 100.0 %, object colour right 100.0 % (of 5), shape right 100.0 % (of 5)"), "%s", out);
    // the same command twice writes the same bytes
    REQUIRE(run_cmd(out, sizeof out, "%s world render --captions %s --seed 4 --size 96 --out %s2 >/dev/null && cmp %s/00001.png %s2/00001.png",
                    singlora_bin(), caps, dir, dir, dir) == 0);
}

TEST(world_cli_subject_photos_and_list) {
    char out[8192];
    const char *dir = tmp_path("photos");
    REQUIRE(run_cmd(out, sizeof out, "%s world subject --spec star:magenta:stripes-white:outline-orange --n 3 --token zwx --out %s",
                    singlora_bin(), dir) == 0);
    REQUIRE(run_cmd(out, sizeof out, "ls %s && cat %s/00000.txt", dir, dir) == 0);
    CHECK(strstr(out, "00002.png") && !strstr(out, "00003.png") && strstr(out, "a photo of zwx star on a"));
    REQUIRE(run_cmd(out, sizeof out, "%s world score --images %s --subject star:magenta:stripes-white:outline-orange --token zwx",
                    singlora_bin(), dir) == 0);
    CHECK_MSG(strstr(out, "shape right 100.0 % (of 3), subject fidelity 0.9"), "%s", out);
    REQUIRE(run_cmd(out, sizeof out, "%s world subjects", singlora_bin()) == 0);
    CHECK(strstr(out, "zebra-star") && strstr(out, "star:magenta:stripes-white:outline-orange") && lines(out) >= 3);
    REQUIRE(run_cmd(out, sizeof out, "%s world --help", singlora_bin()) == 0);
    CHECK(strstr(out, "render") && strstr(out, "subjects") && strstr(out, "score"));
}

TEST(world_cli_bad_input_is_one_line_and_exit_1) {
    char out[8192];
    const char *caps = tmp_path("bad.txt");
    FILE *f = fopen(caps, "w");
    REQUIRE(f);
    fprintf(f, "a red star on a green background\na purple hexagon on a white background\n");
    fclose(f);
    static const char *const CASES[][2] = {
        {"world subject --spec star:magenta:stripes-white --out X", "option --spec: subject 'star:magenta:stripes-white'"},
        {"world subject --spec star:teal:stripes-white:outline-orange --out X", "unknown body colour 'teal'"},
        {"world score --images X --subject nope", "option --subject: subject 'nope'"},
        {"world render --n 3", "--out and one of --n or --captions are required"},
        {"world render --n 3 --captions C --out X", "--out and one of --n or --captions are required"},
        {"world render --n 0 --out X", "option --n: '0' is not an integer in 1..99999"},
        {"world render --n 2 --size 8 --out X", "option --size: '8' is not an integer in 16..1024"},
        {"world render --captions C --out X", ":2: caption 'a purple hexagon on a white background': unknown word 'hexagon'"},
        {"world render --captions /nonexistent/caps --out X", "/nonexistent/caps: cannot open"},
        {"world score --images /nonexistent/dir", "/nonexistent/dir: cannot open folder"},
        {"world frobnicate", "unknown target 'frobnicate'"},
        {"world render --n 2 --out X --bogus", "unknown option or extra argument '--bogus'"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        // the word C -> the caption file, X -> a temp folder
        char full[2048];
        size_t k = 0;
        for (const char *p = CASES[i][0]; *p && k < sizeof full - 600; p++) {
            int word = p > CASES[i][0] && p[-1] == ' ' && (p[1] == ' ' || !p[1]);
            const char *sub = word && *p == 'C' ? caps : word && *p == 'X' ? tmp_path("x") : NULL;
            if (sub) k += (size_t)snprintf(full + k, sizeof full - k, "%s", sub);
            else full[k++] = *p;
        }
        full[k] = 0;
        int rc = run_cmd(out, sizeof out, "%s %s", singlora_bin(), full);
        CHECK_MSG(rc == 1, "%s: exit %d", full, rc);
        CHECK_MSG(lines(out) == 1 && !strncmp(out, "singlora: ", 10) && strstr(out, CASES[i][1]), "%s: %s", full, out);
    }
}
