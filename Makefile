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

.PHONY: all deps build iris digits build-asan test test-fast run bench fuzz lint format clean stack stack-down

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	@$(MAKE) iris

# The built-in model, models/iris, trained from data/iris.csv by $(BUILD)/vigil unless it is there
# already. `make build` runs it; so does deploy/Dockerfile, after building the vigil target only.
iris:
	@test -f models/iris/1/model.onnx || $(BUILD)/vigil train --data data/iris.csv --target species \
	    --name iris --repo models --seed 42 --description "Iris species classifier (built-in)"

# Retrains the built-in image model models/digits (committed: builds and CI never run this; needs
# python3-torch). The same torch and scikit-learn give byte-identical files (docs/models-digits.md).
digits:
	/usr/bin/python3 scripts/train_digits.py models

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) $(CMAKE_FLAGS) -DVG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# Everything CI runs: the normal build's tests, then the same tests under ASan+UBSan.
test: build build-asan
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# Serves the built-in model repository (models/: the Iris classifier the build trains, the
# committed digits image classifier) on port 8000, iris as the model of POST /predict unless
# VIGIL_DEFAULT_MODEL says otherwise; Ctrl-C stops it. VIGIL_* variables configure it
# (`build/vigil serve --help`).
run: export VIGIL_DEFAULT_MODEL ?= iris
run: build
	@exec $(BUILD)/vigil serve

# The monitoring stack (deploy/docker-compose.yml: vigil, Prometheus, Alertmanager, Grafana) under
# the compose project name "vigil"; see docs/deploy.md. Needs a Docker engine and Docker Compose
# (the `docker compose` plugin, or the older `docker-compose`).
COMPOSE = $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
STACK = $(COMPOSE) -p vigil -f deploy/docker-compose.yml

stack:
	@compose="$(COMPOSE)"; \
	if [ -z "$$compose" ]; then \
	    echo "make stack: Docker Compose not found: neither 'docker compose' (the plugin) nor" \
	        "'docker-compose' works here; install one of them (docs/deploy.md)" >&2; exit 1; fi; \
	if command -v docker >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then \
	    echo "make stack: no Docker engine is reachable ('docker info' fails): start dockerd," \
	        "or point DOCKER_HOST at an engine" >&2; exit 1; fi
	$(STACK) up -d --build
	@echo "vigil         http://localhost:8000  (curl localhost:8000/v2/health/ready)"
	@echo "Prometheus    http://localhost:9090  (alerts: http://localhost:9090/alerts)"
	@echo "Alertmanager  http://localhost:9093"
	@echo "Grafana       http://localhost:3000  (admin / \$$GRAFANA_ADMIN_PASSWORD, default admin)"
	@echo "stop it with: make stack-down  (the data volumes stay; docs/deploy.md)"

stack-down:
	@[ -n "$(COMPOSE)" ] || { echo "make stack-down: Docker Compose not found" >&2; exit 1; }
	$(STACK) down

bench: build
	@scripts/install-deps.sh --bench
	@bench/engine/run.sh $(BUILD)
	@bench/train/run.sh $(BUILD)
	@bench/http/run.sh $(BUILD)
	@bench/load/run.sh $(BUILD)

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

# Static analysis of src/ with the build's compilation database: cppcheck, then clang-tidy with the
# checks in .clang-tidy (each exclusion there says why). Any finding fails. LINT_FILES narrows it.
# cppcheck does not read system headers, so it is given the compiler's byte-order macros and
# protobuf-c's header (the generated onnx.pb-c.h checks its version); the suppressions are noise:
# invalidPointerCast (kernels view byte buffers as typed arrays) and readdirCalled (readdir_r is
# deprecated; readdir on a private DIR is thread-safe in glibc).
LINT_FILES ?= $(shell find src -name '*.c' | sort)
CPPCHECK_FLAGS = --enable=warning,performance,portability --library=posix --inline-suppr \
	--error-exitcode=1 --quiet -j$(JOBS) --template='{file}:{line}: {severity}: {message} [{id}]' \
	-D__BYTE_ORDER__=1234 -D__ORDER_LITTLE_ENDIAN__=1234 \
	--include=$(shell pkg-config --variable=includedir libprotobuf-c)/protobuf-c/protobuf-c.h \
	--suppress=invalidPointerCast --suppress=readdirCalled

lint: deps
	@command -v cppcheck >/dev/null && command -v clang-tidy >/dev/null || \
	    { echo "lint needs cppcheck and clang-tidy (apt-get install cppcheck clang-tidy)"; exit 1; }
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	@cmake --build $(BUILD) --target vg_onnxproto >/dev/null
	@echo "cppcheck $$(cppcheck --version | cut -d' ' -f2): $(words $(LINT_FILES)) files"
	@cppcheck --project=$(BUILD)/compile_commands.json $(CPPCHECK_FLAGS) \
	    $(addprefix --file-filter=,$(LINT_FILES))
	@echo "clang-tidy $$(clang-tidy --version | sed -n 's/.*LLVM version \([0-9.]*\).*/\1/p'): $(words $(LINT_FILES)) files"
	@status=0; printf '%s\n' $(LINT_FILES) | xargs -P$(JOBS) -n1 clang-tidy -p $(BUILD) --quiet \
	    >$(BUILD)/clang-tidy.log 2>&1 || status=$$?; \
	    grep -v ' warnings\{0,1\} generated\.$$' $(BUILD)/clang-tidy.log; exit $$status
	@echo "lint: no findings"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
