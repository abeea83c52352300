# Quick start:  make demo   — train a small lineage on CPU and measure vector transfer
#               make test   — build and run every test (normal + ASan/UBSan build)
# Both install missing Debian packages (scripts/install-deps.sh); make test also
# installs the test-only ones (scripts/install-test-deps.sh: python3-torch) and
# the npm test oracles (scripts/install-oracles.sh).

JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps test-deps oracles build build-asan test test-fast test-asan demo bench fuzz format clean

all: build

deps:
	@scripts/install-deps.sh

oracles: deps
	@scripts/install-oracles.sh

# Test-only packages (python3-torch, the training oracle).
test-deps: deps
	@scripts/install-test-deps.sh

# Release (-O3, no debug info) keeps CI's compile and link time down; a
# developer build configured by hand defaults to RelWithDebInfo.
$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/build.ninja: | deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DRV_SANITIZE=ON -DRV_BENCH=OFF

build-asan: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The optimised build runs everything, oracle comparisons included; the
# sanitizer build runs the same suites (slow oracle sweeps are trimmed there
# via RV_SANITIZER_RUN) and a bounded libFuzzer session.
# Only what ctest runs is built here (no benchmarks, no fuzz replay drivers).
test: oracles test-deps $(BUILD)/build.ninja $(ASAN_BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target rv_test_programs
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target rv_test_programs
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && RV_SANITIZER_RUN=1 ctest --output-on-failure -j $(JOBS)
	@scripts/run-fuzz.sh 60

test-fast: oracles test-deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target rv_test_programs
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The demo is the training lab's quick preset: it generates its own task and
# trains its own tokenizer, so it needs nothing but the CLI (no npm, no data).
demo: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target reasonvec
	$(BUILD)/src/cli/reasonvec demo

# ENGINE_BENCH_ARGS replaces the engine-vs-llama.cpp defaults, e.g.
#   make bench ENGINE_BENCH_ARGS="--shapes 0.5b,1.5b,7b"
bench: build
	RV_BENCH_ENGINE_ARGS="$(ENGINE_BENCH_ARGS)" bench/run-all.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
