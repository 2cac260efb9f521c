// safetensors: write -> read round trip, and a corpus of broken files that must each give one
// error line and exit code 1 from `singlora inspect`, never a crash.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "tests/test.h"

TEST(safetensors_round_trip) {
    float a[2 * 3] = {1, -2, 3.5f, 0, 1e-20f, -7};
    uint16_t h[4];
    float hv[4] = {0.5f, -1, 65504, 1e-7f};
    f32_to_f16_n(h, hv, 4);
    uint16_t bf[3] = {f32_to_bf16(1), f32_to_bf16(-3), f32_to_bf16(0.1f)};
    int64_t ids[2] = {49406, 49407};
    int32_t i32[1] = {-1};
    const char *path = tmp_path("rt.safetensors");
    st_writer *w = st_writer_new();
    st_writer_add(w, "w.weight", DT_F32, 2, (int64_t[]){2, 3}, a);
    st_writer_add(w, "half", DT_F16, 1, (int64_t[]){4}, h);
    st_writer_add(w, "brain", DT_BF16, 3, (int64_t[]){1, 3, 1}, bf);
    st_writer_add(w, "ids", DT_I64, 1, (int64_t[]){2}, ids);
    st_writer_add(w, "scalar", DT_I32, 0, NULL, i32);
    st_writer_add(w, "empty", DT_F32, 2, (int64_t[]){0, 5}, NULL);
    st_writer_meta(w, "singlora.method", "singlora");
    st_writer_meta(w, "quote", "a \"b\"\n\xc3\xa9");
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);

    // header length is a multiple of 8, so the data section is aligned
    FILE *fp = fopen(path, "rb");
    REQUIRE(fp);
    unsigned char len8[8];
    REQUIRE(fread(len8, 1, 8, fp) == 8);
    fclose(fp);
    CHECK(len8[0] % 8 == 0);

    st_file *f = st_open(path);
    REQUIRE(f);
    CHECK_EQ_INT(f->n_entries, 6);
    CHECK(strcmp(st_meta(f, "singlora.method"), "singlora") == 0);
    CHECK(strcmp(st_meta(f, "quote"), "a \"b\"\n\xc3\xa9") == 0);
    CHECK(st_meta(f, "nope") == NULL);
    const st_entry *e = st_find(f, "w.weight");
    REQUIRE(e);
    CHECK(e->dt == DT_F32 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3);
    CHECK(memcmp(e->data, a, sizeof a) == 0);
    tensor tv = st_tensor_view(e);
    CHECK(tv.dt == DT_F32 && tv.ndim == 2 && tv.shape[1] == 3 && tv.data == e->data && shape_numel(tv.ndim, tv.shape) == 6);
    float *half = st_load_f32(f, "half", 1, (int64_t[]){4});
    REQUIRE(half);
    CHECK(half[0] == 0.5f && half[1] == -1 && half[2] == 65504 && half[3] == f16_to_f32(f32_to_f16(1e-7f)));
    float *brain = st_load_f32(f, "brain", 3, (int64_t[]){1, -1, 1});
    REQUIRE(brain);
    CHECK(brain[0] == 1 && brain[1] == -3 && fabsf(brain[2] - 0.1f) < 1e-3f);
    CHECK(memcmp(st_find(f, "ids")->data, ids, sizeof ids) == 0);
    CHECK(st_find(f, "scalar")->ndim == 0);
    CHECK(st_find(f, "empty")->shape[0] == 0);
    CHECK(st_load_f32(f, "w.weight", 2, (int64_t[]){3, 2}) == NULL);
    CHECK(strstr(sl_error_msg(), "has shape [2, 3], expected [3, 2]") != NULL);
    CHECK(st_load_f32(f, "missing", -1, NULL) == NULL);
    CHECK(strstr(sl_error_msg(), "missing tensor 'missing'") != NULL);
    sl_free_aligned(half);
    sl_free_aligned(brain);
    st_close(f);
}

TEST(safetensors_write_is_atomic) {
    // a failed save leaves the earlier file under the final name untouched and no temp file
    const char *path = tmp_path("keep.safetensors");
    float a[2] = {1, 2};
    st_writer *w = st_writer_new();
    st_writer_add(w, "a", DT_F32, 1, (int64_t[]){2}, a);
    REQUIRE(st_writer_save(w, path) == 0);
    st_writer_free(w);
    w = st_writer_new();
    st_writer_add(w, "a", DT_F32, 1, (int64_t[]){2}, a);
    st_writer_add(w, "a", DT_F32, 1, (int64_t[]){2}, a);   // duplicate name: refused
    CHECK(st_writer_save(w, path) != 0);
    st_writer_free(w);
    st_file *f = st_open(path);
    REQUIRE(f);
    CHECK_EQ_INT(f->n_entries, 1);
    st_close(f);
    char out[512];
    run_cmd(out, sizeof out, "ls %s | grep -c tmp", tmp_path(""));
    CHECK(atoi(out) == 0);
    // a directory that does not exist: clear error, nothing created
    w = st_writer_new();
    st_writer_add(w, "a", DT_F32, 1, (int64_t[]){2}, a);
    CHECK(st_writer_save(w, tmp_path("no/such/dir.safetensors")) != 0);
    CHECK(strstr(sl_error_msg(), "cannot create") != NULL);
    st_writer_free(w);
}

// Writes an 8-byte length (declared, or the real one when declared == -1), a header, and data.
static void write_raw(const char *path, long long declared, const char *header, size_t data_len) {
    FILE *fp = fopen(path, "wb");
    size_t hl = strlen(header);
    unsigned long long n = declared < 0 ? hl : (unsigned long long)declared;
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), fp);
    fwrite(header, 1, hl, fp);
    for (size_t i = 0; i < data_len; i++) fputc(0, fp);
    fclose(fp);
}

// Runs `singlora inspect` on path: must exit 1 with exactly one line that names the file and
// contains `expect`.
static void expect_inspect_error(const char *path, const char *expect) {
    char out[4096];
    int rc = run_cmd(out, sizeof out, "%s inspect '%s'", singlora_bin(), path);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    CHECK_MSG(rc == 1, "%s: exit code %d (want 1), output: %s", path, rc, out);
    CHECK_MSG(lines == 1, "%s: %d output lines (want 1): %s", path, lines, out);
    CHECK_MSG(strncmp(out, "singlora: ", 10) == 0 && strstr(out, path), "%s: message does not name the file: %s", path, out);
    CHECK_MSG(strstr(out, expect) != NULL, "%s: want '%s' in: %s", path, expect, out);
}

#define GOOD_ENTRY "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

TEST(safetensors_broken_corpus) {
    const char *p;
    p = tmp_path("empty.safetensors");
    write_raw(p, 0, "", 0);
    // zero-length header cannot hold an object
    expect_inspect_error(p, "cannot hold a JSON object");
    p = tmp_path("short.safetensors");
    FILE *fp = fopen(p, "wb");
    fputs("abc", fp);
    fclose(fp);
    expect_inspect_error(p, "truncated");
    p = tmp_path("past_eof.safetensors");
    write_raw(p, 4096, "{" GOOD_ENTRY "}", 8);
    expect_inspect_error(p, "runs past the end of the file");
    p = tmp_path("huge.safetensors");
    write_raw(p, 1ll << 40, "{}", 0);
    expect_inspect_error(p, "100 MB limit");
    p = tmp_path("badjson.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",", 8);
    expect_inspect_error(p, "not valid JSON");
    p = tmp_path("array.safetensors");
    write_raw(p, -1, "[1,2,3]", 0);
    expect_inspect_error(p, "not a JSON object");
    p = tmp_path("trailing.safetensors");
    write_raw(p, -1, "{}xyz", 0);
    expect_inspect_error(p, "trailing bytes");
    p = tmp_path("dtype.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_inspect_error(p, "unknown dtype 'F17'");
    p = tmp_path("shape.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_inspect_error(p, "need 12 bytes but data_offsets give 8");
    p = tmp_path("negshape.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
    expect_inspect_error(p, "not a non-negative integer");
    p = tmp_path("overflow.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8);
    expect_inspect_error(p, "too large");
    p = tmp_path("overlap.safetensors");
    write_raw(p, -1, "{" GOOD_ENTRY ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_inspect_error(p, "overlap");
    // the layout rules: a zero-length tensor that sorts between two overlapping ones does not hide
    // the overlap; the data section is covered exactly (no gap, nothing after the last tensor);
    // the header is UTF-8 (a stray Latin-1 byte, an overlong '/', a surrogate are not)
    static const struct { const char *file, *header; size_t data_len; const char *expect; } layout[] = {
        {"overlap_hidden", "{" GOOD_ENTRY ",\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "tensors 'a' and 'b' overlap"},
        {"gap", "{" GOOD_ENTRY ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20,
         "bytes 8-12 of the data section belong to no tensor"},
        {"gap_first", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
         "bytes 0-4 of the data section belong to no tensor"},
        {"trailing_data", "{" GOOD_ENTRY "}", 11, "3 trailing bytes after the last tensor"},
        {"trailing_nothing", "{}", 5, "5 trailing bytes"},
        {"latin1", "{\"caf\xe9\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "not valid UTF-8 (byte 13)"},
        {"overlong", "{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0, "not valid UTF-8"},
        {"surrogate", "{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}", 0, "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.safetensors", layout[i].file);
        p = tmp_path(name);
        write_raw(p, -1, layout[i].header, layout[i].data_len);
        expect_inspect_error(p, layout[i].expect);
    }
    p = tmp_path("offsets_past.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8);
    expect_inspect_error(p, "run past the end of the data");
    p = tmp_path("reversed.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8);
    expect_inspect_error(p, "end before they begin");
    p = tmp_path("noshape.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8);
    expect_inspect_error(p, "shape");
    p = tmp_path("meta.safetensors");
    write_raw(p, -1, "{\"__metadata__\":{\"k\":5}," GOOD_ENTRY "}", 8);
    expect_inspect_error(p, "__metadata__ value for 'k' is not a string");
    p = tmp_path("dup.safetensors");
    write_raw(p, -1, "{" GOOD_ENTRY "," GOOD_ENTRY "}", 8);
    expect_inspect_error(p, "appears twice");
    p = tmp_path("floatoff.safetensors");
    write_raw(p, -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8]}}", 8);
    expect_inspect_error(p, "data_offsets must be non-negative integers");
    p = tmp_path("missing.safetensors");
    expect_inspect_error(p, "cannot open");
    // a valid file truncated in its data section
    p = tmp_path("cut.safetensors");
    write_raw(p, -1, "{" GOOD_ENTRY "}", 4);
    expect_inspect_error(p, "run past the end of the data");
}

TEST(pickle_checkpoint_refused) {
    const char *p = tmp_path("model.ckpt");
    FILE *fp = fopen(p, "wb");
    fputs("\x80\x02}q\x00(X\x0a\x00\x00\x00state_dict", fp);
    fclose(fp);
    expect_inspect_error(p, "can run arbitrary code");
    char out[2048];
    run_cmd(out, sizeof out, "%s inspect '%s'", singlora_bin(), p);
    CHECK(strstr(out, "convert") != NULL);
    // a zip-format torch checkpoint renamed to .safetensors is refused the same way
    p = tmp_path("renamed.safetensors");
    fp = fopen(p, "wb");
    fputs("PK\x03\x04zipzipzipzip", fp);
    fclose(fp);
    expect_inspect_error(p, "pickle");
}

// What the strict layout rules must still accept: tensors stored in another order than the
// header lists them, zero-length tensors at any offset, UTF-8 names and metadata.
TEST(safetensors_strict_layout_accepts_valid_files) {
    const char *p = tmp_path("valid_layout.safetensors");
    write_raw(p, -1,
              "{\"__metadata__\":{\"note\":\"caf\xc3\xa9 \xe2\x98\x85 \xf0\x9f\x90\xb6\"},"
              "\"b\\u00e9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
              "\"empty\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[12,12]},"
              "\"\xce\xb1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ",
              12);
    st_file *f = st_open(p);
    CHECK_MSG(f != NULL, "%s", sl_error_msg());
    if (!f) return;
    CHECK(f->n_entries == 3);
    CHECK(st_find(f, "\xce\xb1") && st_find(f, "\xce\xb1")->begin == 0);
    CHECK(st_find(f, "b\xc3\xa9") && st_find(f, "b\xc3\xa9")->end == 12);
    CHECK(st_meta(f, "note") && strcmp(st_meta(f, "note"), "caf\xc3\xa9 \xe2\x98\x85 \xf0\x9f\x90\xb6") == 0);
    st_close(f);
}
