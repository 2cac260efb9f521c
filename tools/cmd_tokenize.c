// singlora tokenize --model PATH [--tokenizer DIR] [options] PROMPT: CLIP token ids as JSON.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/tokenizer.h"
#include "engine/core/error.h"
#include "tools/args.h"
#include "tools/commands.h"

static const char *HELP =
    "usage: singlora tokenize --model PATH [--tokenizer DIR] [--long-prompts | --raw] [--strings]\n"
    "                         [--max-length N] PROMPT\n\n"
    "Prints PROMPT's CLIP token ids as a JSON array: [BOS, tokens..., EOS, pad...], N = 77 ids\n"
    "(the tokenizer's model_max_length). Prompts longer than N-2 tokens are truncated with a warning.\n\n"
    "  --model PATH       a diffusers model folder (its tokenizer/ is used), a tokenizer folder\n"
    "                     (vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz), or the .gz;\n"
    "                     a single-file checkpoint carries no tokenizer: add --tokenizer DIR\n"
    "  --tokenizer DIR    the vocabulary to use (the model still decides the pad token: SD 2.x\n"
    "                     pads with id 0, SD 1.x with EOS)\n"
    "  --long-prompts     A1111-style chunks of N-2 tokens, each [BOS, chunk, EOS, pad...]:\n"
    "                     prints an array of arrays, one per chunk\n"
    "  --raw              only the BPE ids of the text (no BOS/EOS, no padding or truncation)\n"
    "  --strings          also print the vocabulary strings of the ids on a second line\n"
    "  --max-length N     ids per row (default: the tokenizer's model_max_length, 77)\n";

static void print_ids(const int32_t *ids, int n) {
    printf("[");
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("]");
}

static void print_strings(const clip_tokenizer *t, const int32_t *ids, int n) {
    printf("[");
    for (int i = 0; i < n; i++) {
        printf(i ? ", \"" : "\"");
        for (const char *p = clip_tokenizer_token(t, ids[i]); *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar(*p);
        }
        putchar('"');
    }
    printf("]\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tok_dir = NULL, *prompt = NULL, *v;
    int long_prompts = 0, raw = 0, strings = 0, max_len = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &model, NULL, NULL)) {}
        else if (arg_value(argc, argv, &i, "--tokenizer", &tok_dir)) {}
        else if (arg_value(argc, argv, &i, "--max-length", &v)) max_len = (int)arg_int_range("--max-length", v, CLIP_MIN_CONTEXT, CLIP_MAX_CONTEXT);
        else if (arg_flag(argv, i, "--long-prompts")) long_prompts = 1;
        else if (arg_flag(argv, i, "--raw")) raw = 1;
        else if (arg_flag(argv, i, "--strings")) strings = 1;
        else if (argv[i][0] == '-' && argv[i][1] == '-') arg_unknown("tokenize", argv[i]);
        else if (!prompt) prompt = argv[i];
        else sl_die(NULL, "tokenize: give one PROMPT (quote it): extra argument '%s'", argv[i]);
    }
    if (!model) sl_die(NULL, "tokenize: --model PATH is required (see singlora tokenize --help)");
    if (!prompt) sl_die(NULL, "tokenize: no PROMPT given");
    if (long_prompts && raw) sl_die(NULL, "tokenize: --long-prompts and --raw exclude each other");
    clip_tokenizer *t = clip_tokenizer_for_model(model, tok_dir);
    if (!t) sl_fail();
    if (!max_len) max_len = clip_tokenizer_max_length(t);
    if (raw) {
        int n;
        int *tok = clip_tokenize(t, prompt, &n);
        int32_t *ids = sl_malloc((size_t)(n + 1) * sizeof *ids);
        for (int i = 0; i < n; i++) ids[i] = tok[i];
        print_ids(ids, n);
        printf("\n");
        if (strings) print_strings(t, ids, n);
        free(tok);
        free(ids);
    } else if (long_prompts) {
        int nc;
        int32_t *ids = clip_encode_chunks(t, prompt, max_len, &nc);
        if (!ids) sl_fail();
        printf("[");
        for (int c = 0; c < nc; c++) {
            if (c) printf(",\n ");
            print_ids(ids + (size_t)c * max_len, max_len);
        }
        printf("]\n");
        if (strings) print_strings(t, ids, nc * max_len);
        free(ids);
    } else {
        int32_t *ids = sl_malloc((size_t)max_len * sizeof *ids);
        if (clip_encode(t, prompt, max_len, ids, 1) < 0) sl_fail();
        print_ids(ids, max_len);
        printf("\n");
        if (strings) print_strings(t, ids, max_len);
        free(ids);
    }
    clip_tokenizer_free(t);
    return 0;
}
