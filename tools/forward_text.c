// singlora forward text: the CLIP text encoder on input_ids read from a safetensors file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/text_encoder.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/io/safetensors.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"

static const char *HELP =
    "usage: singlora forward text --model PATH [--config DIR] [--variant fp16] [--clip-skip N]\n"
    "                             --in IN.safetensors [--in-name NAME] --out OUT.safetensors [--threads N]\n\n"
    "Runs the CLIP text encoder on the token ids in IN and writes OUT.\n"
    "  IN:  input_ids (N, L) I32 or I64, L <= max_position_embeddings (77)\n"
    "  OUT: last_hidden_state (N, L, D): final LayerNorm of the last held layer\n"
    "       conditioning (N, L, D): what the UNet cross-attends to (differs only with --clip-skip)\n"
    "       pooler_output (N, D): last_hidden_state at each row's EOS token\n"
    "       hidden_states.i (N, L, D): the embeddings (i = 0) and each layer's output before the\n"
    "       final LayerNorm, as transformers' output_hidden_states gives them\n"
    "PATH is a diffusers folder (text_encoder/), a text_encoder folder or file, or an original\n"
    "single-file checkpoint (cond_stage_model.*: OpenAI CLIP for SD 1.x, OpenCLIP for SD 2.x, whose\n"
    "last layer is skipped: SD 2.x conditions on the penultimate layer, as diffusers' converted\n"
    "text_encoder, which drops that layer, does too).\n"
    "  --config DIR     read the sizes from DIR/text_encoder/config.json (or DIR/config.json, or a\n"
    "                   config.json path) instead of detecting them from the original's shapes\n"
    "  --variant V      a diffusers folder's model.V.safetensors (e.g. fp16; widened to f32)\n"
    "  --clip-skip N    A1111's clip skip for SD 1.x: condition on layer L-N+1 (2 = penultimate)\n"
    "  --in-name NAME   the ids tensor in IN (default input_ids)\n"
    "  --threads N      OpenMP/OpenBLAS threads\n"
    "  --precision P    fp32 (default) or bf16 GEMMs\n"
    "  --profile        time and GFLOP/s per op kind (stderr, at the end)\n";

int forward_text_main(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *variant = NULL, *in = NULL, *outp = NULL, *in_name = "input_ids", *v;
    int threads = 0, clip_skip = 1;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &model, &config, &variant)) {}
        else if (arg_value(argc, argv, &i, "--in", &in)) {}
        else if (arg_value(argc, argv, &i, "--in-name", &in_name)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_value(argc, argv, &i, "--clip-skip", &v)) clip_skip = (int)arg_int_range("--clip-skip", v, 1, 64);
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = arg_threads("--threads", v);
        else arg_unknown("forward text", argv[i]);
    }
    if (!model || !in || !outp) sl_die(NULL, "forward text: --model, --in and --out are required (see --help)");
    if (clip_skip < 1) sl_die(NULL, "--clip-skip must be at least 1 (1 = the last layer)");
    set_threads(threads);

    st_file *f = st_open(in);
    if (!f) sl_fail();
    const st_entry *e = input_tensor(f, in_name, 2, "(N, L) token ids, I32 or I64");
    int N = (int)e->shape[0], L = (int)e->shape[1];
    int32_t *ids = input_token_ids(f, e);

    clip_text_model *m = clip_text_load(model, config, variant);
    if (!m) sl_fail();
    int D = m->cfg.hidden, nl = m->cfg.layers;
    if (L > m->cfg.max_pos) sl_die(in, "%s has %d positions; the text encoder takes at most %d", in_name, L, m->cfg.max_pos);
    for (int64_t i = 0; i < (int64_t)N * L; i++)
        if (ids[i] >= m->cfg.vocab)
            sl_die(in, "%s[%lld, %lld] = %d is outside the vocabulary (0..%d)", in_name, (long long)(i / L),
                   (long long)(i % L), ids[i], m->cfg.vocab - 1);
    int64_t nd = (int64_t)N * L * D;
    float *last = sl_alloc_f32(nd), *cond = sl_alloc_f32(nd), *pooled = sl_alloc_f32((int64_t)N * D);
    float **hs = sl_calloc((size_t)nl + 1, sizeof *hs);
    for (int i = 0; i <= nl; i++) hs[i] = sl_alloc_f32(nd);
    double t0 = now_seconds();
    if (clip_text_forward(m, ids, N, L, nl, last, hs) != 0) sl_fail();
    int cl = clip_text_cond_layers(m, clip_skip);
    if (cl < 0) sl_fail();
    if (cl == nl) memcpy(cond, last, sizeof(float) * (size_t)nd);
    else if (clip_text_forward(m, ids, N, L, cl, cond, NULL) != 0) sl_fail();
    clip_text_pool(m, ids, N, L, last, pooled);
    fprintf(stderr, "text encoder (%s, %d layers, width %d): %d x %d tokens in %.3f s\n", clip_layout_name(m->layout), nl, D,
            N, L, now_seconds() - t0);

    st_writer *w = st_writer_new();
    int64_t shp[3] = {N, L, D};
    st_writer_add(w, "last_hidden_state", DT_F32, 3, shp, last);
    st_writer_add(w, "conditioning", DT_F32, 3, shp, cond);
    st_writer_add(w, "pooler_output", DT_F32, 2, (int64_t[]){N, D}, pooled);
    char names[64][32];
    for (int i = 0; i <= nl && i < 64; i++) {
        snprintf(names[i], sizeof names[i], "hidden_states.%d", i);
        st_writer_add(w, names[i], DT_F32, 3, shp, hs[i]);
    }
    char meta[64];
    snprintf(meta, sizeof meta, "%d", cl);
    st_writer_meta(w, "conditioning_layers", meta);
    if (st_writer_save(w, outp) != 0) sl_fail();
    st_writer_free(w);
    for (int i = 0; i <= nl; i++) sl_free_aligned(hs[i]);
    free(hs);
    sl_free_aligned(last);
    sl_free_aligned(cond);
    sl_free_aligned(pooled);
    free(ids);
    clip_text_free(m);
    st_close(f);
    return 0;
}
