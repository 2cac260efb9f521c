# singlora — build, test, bench.  `make deps && make && make test`
CC      ?= cc
ARCH    ?= -march=native
OPT     ?= -O3
BLASDIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(ARCH) -fopenmp -Wall -Wextra -Werror -I. \
           -I/usr/include/x86_64-linux-gnu/openblas-openmp -MMD -MP
LDLIBS  += -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas -lcjson -lstb -lm
LDFLAGS += -fopenmp

# MPI=1: the Open MPI build (mpicc, build-mpi/, ./singlora-mpi); else the one-process stand-in
ifeq ($(MPI),1)
CC      := mpicc
BUILD   := build-mpi
BIN     := singlora-mpi
DIST_SRC := engine/dist/mpi.c
else ifeq ($(SAN),1)
BUILD   := build-san
CFLAGS  += -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
BIN     := $(BUILD)/singlora
else ifeq ($(FUZZ),1)
# FUZZ=1: clang with libFuzzer + ASan/UBSan instrumentation (build-fuzz/; make fuzz uses it)
CC      := clang
BUILD   := build-fuzz
# (-Wno-pass-failed: instrumented code keeps some `omp simd` loops from vectorizing)
CFLAGS  += -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
           -Wno-pass-failed -DIMAGE_MAX_PIXELS='(1u << 20)'
LDFLAGS += -fsanitize=address,undefined
BIN     := $(BUILD)/singlora
else ifneq ($(findstring clang,$(CC)),)
# make CC=clang: objects of their own, so a gcc build's are never linked with clang's
# (-Wno-pass-failed: with -march=native on AVX-512 CPUs clang declines a few `omp simd` loops,
# a missed optimization it reports as a warning)
CFLAGS  += -Wno-pass-failed
BUILD   := build-clang
BIN     := $(BUILD)/singlora
else
BUILD   := build
BIN     := singlora
endif
DIST_SRC ?= engine/dist/single.c
# the MPI build for the multi-process tests, when mpicc is installed (make deps installs it)
MPICC   := $(shell command -v mpicc 2>/dev/null)

# the library: every .c under these folders (engine/ has one subfolder per concept)
LIB_DIRS  := engine/core engine/io engine/kernels engine/blocks engine/diffusion engine/adapters engine/train \
             clip unet vae eval data data/world pipeline
# engine/dist/: the shared part plus one back end (mpi.c or single.c)
LIB_SRC   := $(wildcard $(addsuffix /*.c,$(LIB_DIRS))) engine/dist/timeout.c $(DIST_SRC)
TOOL_SRC  := $(wildcard tools/*.c)
TEST_SRC  := $(wildcard tests/*.c)
BENCH_SRC := $(wildcard tools/bench/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ  := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)
# tools/bench/<name>.c -> build/bench_<name>, a standalone program on libsinglora.a
BENCH_BIN := $(BENCH_SRC:tools/bench/%.c=$(BUILD)/bench_%)
# tests/fuzz/fuzz_<parser>.c -> build-fuzz/fuzz_<parser>, a libFuzzer target (input.c: their shared part)
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/%)

.PHONY: all deps deps-fuzz test test-long bench clean mpi-bin pretrain fuzz fuzz-bin
all: $(BIN)

deps:
	@sh tools/install-deps.sh

deps-fuzz:
	@sh tools/install-deps.sh fuzz

$(BUILD)/libsinglora.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(TOOL_OBJ) $(BUILD)/libsinglora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libsinglora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# ./singlora-mpi and build-mpi/dist_check for the multi-process tests (a sub-make in build-mpi/);
# without mpicc those tests skip, saying so
ifneq ($(MPICC),)
ifneq ($(MPI),1)
MPI_DEPS := mpi-bin
endif
endif
mpi-bin:
	$(MAKE) MPI=1 singlora-mpi build-mpi/dist_check

$(BUILD)/dist_check: $(BUILD)/tests/mpi/dist_check.o $(BUILD)/libsinglora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make test [T=pattern] [SAN=1]; with SAN=1 a leak fails the test (LeakSanitizer, in every
# singlora a test runs and after each test)
ifeq ($(SAN),1)
TEST_ENV := ASAN_OPTIONS=detect_leaks=1 SINGLORA_SAN=1
endif
test: $(BIN) $(BUILD)/run_tests $(MPI_DEPS)
	SINGLORA_BIN=./$(BIN) $(TEST_ENV) ./$(BUILD)/run_tests $(T)

test-long: $(BIN) $(BUILD)/run_tests $(MPI_DEPS)
	SINGLORA_BIN=./$(BIN) SINGLORA_LONG=1 $(TEST_ENV) ./$(BUILD)/run_tests $(T)

$(BUILD)/bench_%: $(BUILD)/tools/bench/%.o $(BUILD)/tools/args.o $(BUILD)/libsinglora.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make fuzz [FUZZ_SECONDS=60]: every libFuzzer target under ASan/UBSan for FUZZ_SECONDS each,
# from the seed corpora the tests write (fuzz_seed_corpora) plus what earlier runs found
# (build-fuzz/corpus/<target>); a crash stops it and leaves the input as build-fuzz/crash-*;
# FUZZ_TARGETS="fuzz_config fuzz_tokenizer" runs some
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(notdir $(FUZZ_BIN))
fuzz: $(BUILD)/run_tests
	$(MAKE) FUZZ=1 fuzz-bin
	rm -rf build-fuzz/seeds
	SINGLORA_FUZZ_SEEDS=build-fuzz/seeds ./$(BUILD)/run_tests fuzz_seed_corpora
	sh tools/fuzz.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-bin: $(FUZZ_BIN)

$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/input.o $(BUILD)/libsinglora.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
# fuzz_image decodes with stb_image compiled from Debian's header under ASan/UBSan (linked ahead
# of -lstb, so its definitions win): a bug inside stb is reported where it happens, not later
$(BUILD)/fuzz_image: $(BUILD)/tests/fuzz/fuzz_image.o $(BUILD)/tests/fuzz/stb_image_instrumented.o \
                     $(BUILD)/tests/fuzz/input.o $(BUILD)/libsinglora.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

.SECONDARY: $(BENCH_OBJ) $(FUZZ_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/fuzz/input.o $(BUILD)/tests/fuzz/stb_image_instrumented.o
bench: $(BIN) $(BENCH_BIN) $(MPI_DEPS)
	sh tools/bench.sh

# the shipped toy-world base model, from seed 0, in five runs: 6000 steps at constant lr, 6000
# more from its EMA weights on a cosine decay, then twice 3000 at lr 6e-4 on a cosine decay with
# new noise draws (seeds 1, 2), then the VAE trained on with photos of random subjects in its data
# (so it keeps their stripes, dots and outlines) and 1500 UNet steps on the re-encoded latents;
# each resumes from its build/pretrain-ckpt* folder when interrupted (remove those for a fresh run)
pretrain: $(BIN)
	./$(BIN) pretrain --out build/toyworld-6000 --ckpt build/pretrain-ckpt --seed 0 --threads 2 --resume
	./$(BIN) pretrain --init-from build/toyworld-6000 --out build/toyworld-stage2 --ckpt build/pretrain-ckpt2 \
		--steps 6000 --lr-schedule cosine --seed 0 --threads 2 --resume
	./$(BIN) pretrain --init-from build/toyworld-stage2 --out build/toyworld-stage3 --ckpt build/pretrain-ckpt3 \
		--steps 3000 --lr 6e-4 --lr-schedule cosine --seed 1 --threads 2 --resume
	./$(BIN) pretrain --init-from build/toyworld-stage3 --out build/toyworld-stage4 --ckpt build/pretrain-ckpt4 \
		--steps 3000 --lr 6e-4 --lr-schedule cosine --seed 2 --threads 2 --resume
	./$(BIN) pretrain --init-from build/toyworld-stage4 --out models/toyworld --ckpt build/pretrain-ckpt5 \
		--vae-continue --vae-subjects --vae-steps 1200 --vae-lr 3e-4 \
		--steps 1500 --lr 3e-4 --lr-schedule cosine --seed 5 --threads 2 --resume
	cp clip/vocab/LICENSE models/toyworld/tokenizer/LICENSE

clean:
	rm -rf build build-san build-clang build-mpi build-fuzz singlora singlora-mpi

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(FUZZ_SRC:%.c=$(BUILD)/%.d)

# the shipped CLIP vocabulary is assembled into default_vocab.o
$(BUILD)/clip/default_vocab.o: clip/vocab/bpe_simple_vocab_16e6.txt.gz
