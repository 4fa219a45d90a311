# capsim build. `make` builds build/capsim and build/libcapsim.a; see README.md.
# Every target first makes sure the Debian packages are there
# (tools/install-deps.sh), so a fresh machine needs nothing but make.

BUILD   ?= build
ifeq ($(origin CC),default)
CC := gcc
endif
# gcc-ar indexes link-time-optimisation objects too (the release build).
ifeq ($(origin AR),default)
AR := gcc-ar
endif
OPT     ?= -O2
SAN     ?=
EXTRA_CFLAGS ?=
GEN     := $(BUILD)/gen

PKGS      := libprotobuf-c libcjson libcrypto yaml-0.1 libuv libnats
TEST_PKGS := cmocka
# Evaluated when a recipe runs, i.e. after the dependency check has run.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lm
TEST_LIBS  = $(shell pkg-config --libs $(TEST_PKGS))

WARN   := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
CFLAGS_ALL = -std=c11 -D_POSIX_C_SOURCE=200809L -g $(OPT) $(SAN) $(WARN) \
             -I$(GEN) -Iproto -Ireference -Isim -Iconformance -Itools $(PKG_CFLAGS) $(EXTRA_CFLAGS) -MMD -MP
LDFLAGS_ALL = $(SAN) $(EXTRA_LDFLAGS)

PROTOS   := $(sort $(wildcard proto/cordum/agent/v1/*.proto))
GEN_C    := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS)) $(GEN)/google/protobuf/timestamp.pb-c.c
GEN_STAMP := $(GEN)/.stamp
LIB_SRC  := $(sort $(wildcard proto/*.c reference/*.c sim/*.c conformance/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(GEN_C:$(GEN)/%.c=$(BUILD)/obj/gen/%.o)
LIB      := $(BUILD)/libcapsim.a
TOOL_SRC := $(sort $(wildcard tools/*.c))
TOOL_OBJ := $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
CAPSIM   := $(BUILD)/capsim
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
DEPS_OK  := $(BUILD)/.deps-ok

.PHONY: all deps test test-run run bench release release-check asan coverage fuzz fuzz-smoke clean
all: $(CAPSIM) $(LIB)

deps: $(DEPS_OK)
$(DEPS_OK): tools/install-deps.sh
	@tools/install-deps.sh
	@mkdir -p $(@D) && touch $@

$(GEN_STAMP): $(PROTOS) | $(DEPS_OK)
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --proto_path=/usr/include --c_out=$(GEN) \
	  $(PROTOS:proto/%=%) google/protobuf/timestamp.proto
	@touch $@
$(GEN_C): $(GEN_STAMP)

$(BUILD)/obj/gen/%.o: $(GEN)/%.c $(GEN_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Wno-unused-parameter -c $< -o $@

$(BUILD)/obj/%.o: %.c $(GEN_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(CAPSIM): $(TOOL_OBJ) $(LIB)
	$(CC) $(LDFLAGS_ALL) $(TOOL_OBJ) $(LIB) $(PKG_LIBS) -o $@

# The command modules but main, for the unit tests of tools/ (sim_seeds, ...).
TOOLS_LIB := $(BUILD)/libcapsim-tools.a
$(TOOLS_LIB): $(filter-out $(BUILD)/obj/tools/capsim.o,$(TOOL_OBJ))
	$(AR) rcs $@ $^

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(TOOLS_LIB) $(LIB) $(GEN_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests $< $(TOOLS_LIB) $(LIB) $(PKG_LIBS) $(TEST_LIBS) $(LDFLAGS_ALL) -o $@

# Unit tests (one process each, with a time limit) and the end-to-end CLI tests.
test: all $(TEST_BIN)
	@CAPSIM=$(CAPSIM) TEST_BIN_DIR=$(BUILD)/tests tests/run.sh $(TEST_BIN)
test-run: test

# The main job: check every golden fixture against the spec values, lint
# every shipped policy (a warning fails), check the golden-trace cases, then
# run the upstream TCK suites and the golden cases against the reference
# and write reports/ (index.html, report-v1 JSON, JUnit).
TCK_DIR ?= ../shared/tck
run: all
	$(CAPSIM) fixtures --check --dir conformance/fixtures
	@for p in reference/policies/*.yaml; do $(CAPSIM) policy lint --werror $$p || exit 1; done
	$(CAPSIM) golden --check --dir conformance/cases
	$(CAPSIM) report --out-dir reports --tck $(TCK_DIR) --cases conformance/cases

$(BUILD)/bench/%: bench/%.c $(LIB) $(GEN_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $< $(LIB) $(PKG_LIBS) $(LDFLAGS_ALL) -o $@

# The release build (docs/simulator.md "Release build"): link-time and
# profile-guided optimisation, trained on the benchmark's workload and the
# ready scenarios by tools/release-build.sh. It behaves exactly as
# build/capsim (same outputs, same trace hashes; release-check), only
# faster; make bench measures it. Rebuilt only when the tree changes.
RELEASE_DIR ?= build-release
RELEASE_BENCH_BIN := $(BENCH_BIN:$(BUILD)/%=$(RELEASE_DIR)/%)
release: | $(DEPS_OK)
	@MAKE="$(MAKE)" tools/release-build.sh $(RELEASE_DIR) $(RELEASE_DIR)/capsim $(RELEASE_BENCH_BIN)

# The release build gives the same output as the regular one, run for run.
release-check: all release
	tools/release-check.sh $(CAPSIM) $(RELEASE_DIR)/capsim

# Each benchmark prints its figures beside a baseline measured in the same run.
# bench_sim runs bench/sim-large.yaml for BENCH_SIM_SECONDS of simulated load
# (default: the scenario's full hour), checks on and off in alternation,
# BENCH_SIM_ROUNDS times each (default 3; a mode's figure is its fastest round),
# then the two memory runs, the wire's share and the backlog run
# (bench/sim-backlog.yaml): about 4 minutes of wall time in all.
# BENCH_SIM_SECONDS=600 BENCH_SIM_ROUNDS=1 gives a shorter look.
BENCH_SIM_SECONDS ?= 3600
BENCH_SIM_ROUNDS ?= 3
bench: release
	$(RELEASE_DIR)/bench/bench_wire conformance/fixtures/buspacket_job_request.bin
	@for b in $(filter-out %/bench_wire %/bench_sim,$(RELEASE_BENCH_BIN)); do echo "== $$b"; $$b || exit 1; done
	@echo "== $(RELEASE_DIR)/bench/bench_sim"; BENCH_SIM_SECONDS=$(BENCH_SIM_SECONDS) BENCH_SIM_ROUNDS=$(BENCH_SIM_ROUNDS) $(RELEASE_DIR)/bench/bench_sim bench/sim-large.yaml

# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: | $(DEPS_OK)
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

# Line coverage of the test suite (gcovr): reports/coverage/index.html and summary.txt.
coverage: | $(DEPS_OK)
	$(MAKE) BUILD=build-cov OPT=-O0 SAN=--coverage test
	@mkdir -p reports/coverage
	gcovr --root . --object-directory build-cov --filter 'proto/' --filter 'reference/' --filter 'sim/' --filter 'conformance/' \
	  --filter 'tools/' --html-details reports/coverage/index.html \
	  --txt reports/coverage/summary.txt --print-summary
	gcovr --root . --object-directory build-cov --filter 'proto/' --fail-under-line 90 \
	  --txt reports/coverage/proto.txt
	@tail -n 3 reports/coverage/proto.txt

include fuzz/fuzz.mk

clean:
	rm -rf build build-asan build-cov build-fuzz build-afl $(RELEASE_DIR)

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)
