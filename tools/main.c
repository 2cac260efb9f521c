// singlora: personalize Stable Diffusion with SingLoRA adapters, in C.
#include <stdio.h>
#include <string.h>

#include "engine/core/version.h"
#include "tools/commands.h"

static void usage(FILE *out) {
    fprintf(out,
            "singlora %s - SingLoRA personalization for Stable Diffusion, in C\n\n"
            "usage: singlora <command> [options]     (singlora <command> --help for each)\n\n"
            "commands:\n",
            SINGLORA_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "this list");
    fprintf(out, "\noptions: --version, --help\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 1; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (!strcmp(cmd, "help") && argc > 2) {
            for (int i = 0; i < N_COMMANDS; i++)
                if (!strcmp(COMMANDS[i].name, argv[2])) {
                    char *hargv[] = {argv[2], "--help", NULL};
                    return COMMANDS[i].run(2, hargv);
                }
        }
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("singlora %s\n", SINGLORA_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(COMMANDS[i].name, cmd)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "singlora: unknown command '%s' (singlora help lists them)\n", cmd);
    return 1;
}
