# Fuzz targets (included by the top-level Makefile).
#   make fuzz         builds every target with libFuzzer (clang) and AFL++
#   make fuzz-smoke   runs each target under each engine for FUZZ_SECONDS,
#                     seeded with the golden fixtures, the policies, the
#                     scenarios, the golden traces and fuzz/seeds/; fails on
#                     any crash
FUZZ_TARGETS := fuzz_decode fuzz_json fuzz_policy fuzz_scenario fuzz_trace fuzz_adapter fuzz_suite fuzz_set
FUZZ_SECONDS ?= 15
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LIBFUZZER_BIN := $(FUZZ_TARGETS:%=build-fuzz/%)
AFL_BIN := $(FUZZ_TARGETS:%=build-afl/%)

.PHONY: fuzz-lib-libfuzzer fuzz-lib-afl
fuzz-lib-libfuzzer: | $(DEPS_OK)
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" \
	  EXTRA_CFLAGS=-fsanitize=fuzzer-no-link build-fuzz/libcapsim.a
fuzz-lib-afl: | $(DEPS_OK)
	$(MAKE) BUILD=build-afl CC=afl-clang-fast OPT=-O1 SAN="$(FUZZ_SAN)" build-afl/libcapsim.a

build-fuzz/%: fuzz/%.c fuzz-lib-libfuzzer
	clang -std=c11 -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer -Ibuild-fuzz/gen -Iproto -Ireference -Isim -Iconformance \
	  $(PKG_CFLAGS) $< build-fuzz/libcapsim.a $(PKG_LIBS) -o $@
build-afl/%: fuzz/%.c fuzz-lib-afl
	AFL_QUIET=1 afl-clang-fast -std=c11 -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer -Ibuild-afl/gen -Iproto -Ireference -Isim -Iconformance \
	  $(PKG_CFLAGS) $< build-afl/libcapsim.a $(PKG_LIBS) -o $@

fuzz: $(LIBFUZZER_BIN) $(AFL_BIN)

fuzz-smoke: fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/smoke.sh $(FUZZ_TARGETS)
