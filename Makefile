# vigil's front door: a thin layer over CMake. `make run` and `make test` work on a fresh Debian
# machine: both install what is missing first (scripts/install-deps.sh).
MAKEFLAGS += --no-print-directory
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= model tensor csv
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DVG_WERROR=ON

.PHONY: all deps build build-asan test test-fast run bench fuzz format clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	@test -f models/iris/1/model.onnx || $(BUILD)/vigil train --data data/iris.csv --target species \
	    --name iris --repo models --seed 42 --description "Iris species classifier (built-in)"

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) $(CMAKE_FLAGS) -DVG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# Everything CI runs: the normal build's tests, then the same tests under ASan+UBSan.
test: build build-asan
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# Until the server lands, `make run` trains a demo Iris classifier with scikit-learn, exports it
# with the test exporter, and runs it through the engine.
run: build
	@scripts/demo.sh $(BUILD)

bench: build
	@scripts/install-deps.sh --bench
	@bench/engine/run.sh $(BUILD)
	@bench/train/run.sh $(BUILD)

# libFuzzer on each target in turn for FUZZ_SECONDS (docs/fuzzing.md). Each runs on a scratch copy
# of its seed corpus, so new inputs stay out of the repository; findings land in
# $(FUZZ_BUILD)/findings/<target>/. Stops at the first target that found something.
fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DVG_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
	    rm -rf $(FUZZ_BUILD)/corpus/$$t; mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/findings/$$t; \
	    cp -r fuzz/corpus/$$t $(FUZZ_BUILD)/corpus/$$t; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	    $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_BUILD)/corpus/$$t -max_total_time=$(FUZZ_SECONDS) \
	        -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
	        -artifact_prefix=$(FUZZ_BUILD)/findings/$$t/ 2>$(FUZZ_BUILD)/fuzz_$$t.log \
	        || { tail -n 40 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
	    tail -n 1 $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
