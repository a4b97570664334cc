# cetus: one Makefile. `make` builds build/cetus and the library; `make test` builds and runs
# the whole suite; `make san` runs the suite under address+undefined sanitizers; `make tsan`
# runs the tests of the I/O and progress threads under ThreadSanitizer.
# gcc unless CC is given (`make CC=clang`): make's built-in CC is cc, which `?=` would keep
ifeq ($(origin CC),default)
CC      = gcc
endif
BUILD   ?= build
OPT     ?= -O3 -march=native
SANFLAGS ?=
BLAS_DIR = /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_INC = /usr/include/x86_64-linux-gnu/openblas-openmp
# Open MPI, through its wrapper's flags (the compiler stays $(CC))
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
# libpng (image files), through pkg-config where it is there
PNG_CFLAGS := $(shell pkg-config --cflags libpng 2>/dev/null)
PNG_LIBS   := $(shell pkg-config --libs libpng 2>/dev/null || echo -lpng)

CFLAGS  = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -g $(OPT) -fopenmp \
          -fno-fast-math -fno-math-errno -Iinclude -Isrc -I$(BLAS_INC) $(MPI_CFLAGS) $(PNG_CFLAGS) $(SANFLAGS) -MMD -MP
LDLIBS  = -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -ldnnl -lcjson -lxxhash -lpcre2-8 -lz $(PNG_LIBS) $(MPI_LIBS) -lm -fopenmp $(SANFLAGS)

LIB_SRC  = $(wildcard src/core/*.c src/ops/*.c src/spec/*.c src/model/*.c src/train/*.c src/data/*.c src/parallel/*.c src/offload/*.c src/plan/*.c)
CLI_SRC  = $(wildcard src/cli/*.c)
TEST_SRC = $(wildcard tests/unit/test_*.c)
TOOL_SRC = $(wildcard tests/tools/tool_*.c)
BENCH_SRC = $(wildcard bench/*.c)
EXAMPLE_SRC = $(wildcard examples/*.c)
# the C that `make format` rewrites and `make format-check` checks (style in .clang-format)
FORMAT_SRC = $(sort $(shell find src include tests bench examples fuzz -name '*.[ch]'))

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    = $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOLS    = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)
BENCHES  = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
EXAMPLES = $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

.PHONY: all test san tsan clean bench compile_commands.json format format-check fuzz fuzz-build
.SECONDARY:
all: $(BUILD)/cetus $(TESTS) $(TOOLS) $(BENCHES) $(EXAMPLES)

$(BUILD)/libcetus.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(BUILD)/cetus: $(CLI_OBJ) $(BUILD)/libcetus.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libcetus.a
	$(CC) -o $@ $^ -lcriterion $(LDLIBS)

$(BUILD)/tests/tool_%: $(BUILD)/tests/tools/tool_%.o $(BUILD)/libcetus.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libcetus.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(BUILD)/libcetus.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

test: all
	BUILD=$(BUILD) bash tests/run.sh

san:
	$(MAKE) --no-print-directory BUILD=build-san OPT="-O1" SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

# ThreadSanitizer on the tests that run cetus's own threads: the offload store's I/O thread
# (t_offload; Criterion's binaries cannot start under ThreadSanitizer, whose shadow takes
# the address range their test arena maps) and the progress thread of gradient reductions (t_mpi_comm's
# progress engine check, t_mpi_dp with parallel.overlap=thread and ZeRO 2, t_mpi_zero3 with
# ZeRO 3's gathers on the main thread beside the progress thread). One compute
# thread (OMP_NUM_THREADS=1; the scripts also set runtime.threads=1 where they train), as
# libgomp is not instrumented; tests/tsan.supp names what is left outside cetus. Every
# process's reports go to build-tsan/tsan-logs/, also those whose output a script swallows,
# and any report fails the target.
TSAN_TESTS = t_offload t_mpi_comm t_mpi_dp t_mpi_zero3
tsan:
	$(MAKE) --no-print-directory BUILD=build-tsan OPT="-O1" SANFLAGS="-fsanitize=thread" \
	    build-tsan/cetus build-tsan/tests/tool_comm_check
	rm -rf build-tsan/tsan-logs && mkdir -p build-tsan/tsan-logs
	OMP_NUM_THREADS=1 CETUS_TSAN=1 TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp log_path=$(CURDIR)/build-tsan/tsan-logs/tsan second_deadlock_stack=1" \
	    BUILD=build-tsan bash tests/run.sh $(TSAN_TESTS)
	@if ls build-tsan/tsan-logs/tsan.* >/dev/null 2>&1; then \
	    echo "tsan: ThreadSanitizer reports in build-tsan/tsan-logs:"; ls build-tsan/tsan-logs; exit 1; fi

# libFuzzer harnesses (fuzz/fuzz_<reader>.c, see fuzz/README.md), built with clang into
# build-fuzz/ whatever BUILD is, so the suite's second pass (BUILD=build-san) reuses them.
# Objects take -fsanitize=fuzzer-no-link,address,undefined (coverage and sanitizers, no
# main), the harnesses link with -fsanitize=fuzzer. The library keeps -fopenmp: clang's
# OpenMP runtime is libomp (Debian's libomp-14-dev, which scripts/setup.sh installs with
# clang), so runtime.c and the OpenMP loops compile as in the normal build rather than with
# their pragmas ignored; the readers themselves start no threads. -Wno-pass-failed: the
# sanitizers' checks keep clang from vectorizing `omp simd` loops, a missed optimization
# that is no fault of the code. `make fuzz` runs each harness FUZZ_SECONDS from
# fuzz/corpus/<reader>, new inputs going to build-fuzz/run/scratch/ (fuzz/run.sh).
FUZZ_CC      ?= clang
FUZZ_BUILD    = build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Wno-pass-failed -g -O1 -fopenmp \
                -fno-fast-math -fno-math-errno -Iinclude -Isrc -I$(BLAS_INC) $(MPI_CFLAGS) $(PNG_CFLAGS) \
                -fsanitize=fuzzer-no-link $(FUZZ_SAN) -MMD -MP
FUZZ_SRC      = $(wildcard fuzz/fuzz_*.c)
FUZZERS       = $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ  = $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)

fuzz-build: $(FUZZERS)

fuzz: fuzz-build
	bash fuzz/run.sh $(FUZZ_SECONDS)

$(FUZZ_BUILD)/libcetus.a: $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_BUILD)/libcetus.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(LDLIBS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

bench: all
	bash bench/run.sh

# clang-format (scripts/setup.sh installs it) with the tree's .clang-format
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	@bad=$$(for f in $(FORMAT_SRC); do clang-format "$$f" | cmp -s - "$$f" || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "format-check: these differ from .clang-format (make format):"; \
	    echo "$$bad"; exit 1; fi

# compile_commands.json at the root, for clangd and clang-tidy: every compile command of a
# full rebuild of $(BUILD), as bear (scripts/setup.sh installs it) records them
compile_commands.json:
	bear --output $(CURDIR)/$@ -- $(MAKE) --no-print-directory -B all >/dev/null

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
