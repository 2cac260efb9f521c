// The generation pipeline end to end on the tiny SD 1.x model: `forward txt2img` against
// diffusers' StableDiffusionPipeline (DDIM leading, 4 steps, CFG 7.5): latents after each step
// and the decoded image.
#include <stdlib.h>
#include <string.h>

#include "engine/io/safetensors.h"
#include "tests/test.h"

TEST(txt2img_ddim4_matches_diffusers) {
    const char *out = tmp_path("t2i.safetensors");
    char log[4096];
    int rc = run_cmd(log, sizeof log, "%s forward txt2img --model %s --in %s --out %s --sampler ddim --steps 4 --cfg 7.5",
                     singlora_bin(), shared_path("fixtures/sd1_tiny"),
                     shared_path("fixtures/io/sd1_pipeline_ddim4.safetensors"), out);
    CHECK_MSG(rc == 0, "forward txt2img failed: %s", log);
    st_file *ref = st_open(shared_path("fixtures/io/sd1_pipeline_ddim4.safetensors")), *got = st_open(out);
    REQUIRE(ref && got);
    const st_entry *rl = st_find(ref, "latents"), *gl = st_find(got, "latents");
    const st_entry *ri = st_find(ref, "image"), *gi = st_find(got, "image");
    REQUIRE(rl && gl && ri && gi);
    REQUIRE(shape_numel(rl->ndim, rl->shape) == shape_numel(gl->ndim, gl->shape));
    int64_t per = shape_numel(rl->ndim - 1, rl->shape + 1);
    for (int s = 0; s < rl->shape[0]; s++) {
        char label[64];
        snprintf(label, sizeof label, "latents after step %d", s + 1);
        check_close(label, (const float *)gl->data + s * per, (const float *)rl->data + s * per, (size_t)per, 1e-4);
    }
    REQUIRE(shape_numel(ri->ndim, ri->shape) == shape_numel(gi->ndim, gi->shape));
    check_close("decoded image", gi->data, ri->data, (size_t)shape_numel(ri->ndim, ri->shape), 1e-4);
    st_close(ref);
    st_close(got);
}
