# login-scorer: every command a user or CI needs.
#
#   make serve   install what is missing, build, serve the shipped bundle on 127.0.0.1:8080
#   make test    lint and every test (what CI runs)
#   make test-contract   the running server against openapi.yaml (schemathesis)
#   make test-reliability   100 reloads under load, 1,000 reloads' memory, 4x overload
#   make fuzz    each fuzz target (fuzz/) for FUZZ_SECONDS; installs cargo-fuzz if missing
#   make bench           criterion benchmarks of the scoring stages (bounded, not in make test)
#   make bench-load      load a running service (BENCH_URL) with events from BENCH_EVENTS
#   make bench-compare   login-scorer vs HTTP floor vs FastAPI peer, appended to BENCHMARKS.md
#
# Python lives in .venv (created on first use); the service loads ONNX Runtime
# from the onnxruntime wheel installed there, so nothing downloads at run time.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODEL_NAME ?= rba-autoencoder
MODEL_ROOT ?= artifacts/$(MODEL_NAME)
LISTEN ?= 127.0.0.1:8080
SEED ?= 42
ROWS ?= 2000000
TAKEOVERS ?= 400
DATA ?= data/generated/rba-$(ROWS).csv.gz
KIND ?= autoencoder
EPOCHS ?= 30
BATCH_SIZE ?= 256

# Resolved when a recipe runs, after the runtime wheel is installed.
ORT_DYLIB_PATH ?= $(firstword $(wildcard \
	$(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1))
export ORT_DYLIB_PATH

RUNTIME_STAMP := $(VENV)/.runtime-installed
TRAINING_STAMP := $(VENV)/.training-installed
CHECKS_STAMP := $(VENV)/.checks-installed

.PHONY: help setup setup-training build serve data train test lint lint-deploy fmt \
	test-python test-rust test-contract test-reliability fuzz clean

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

# The service only needs ONNX Runtime; training needs the whole stack.
$(RUNTIME_STAMP): training/requirements-runtime.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r training/requirements-runtime.txt
	touch $@

$(TRAINING_STAMP): training/requirements.txt training/pyproject.toml $(RUNTIME_STAMP)
	$(VENV)/bin/pip install --quiet -r training/requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e training
	touch $@

$(CHECKS_STAMP): .ci/requirements-checks.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r .ci/requirements-checks.txt
	touch $@

setup: $(RUNTIME_STAMP)

setup-training: $(TRAINING_STAMP)

build:
	cargo build --release --locked

serve: setup build
	$${CARGO_TARGET_DIR:-target}/release/login-scorer serve --listen $(LISTEN) \
		--model-root $(MODEL_ROOT)

data: setup-training
	$(PY) -m login_scorer_training generate --rows $(ROWS) --takeovers $(TAKEOVERS) \
		--seed $(SEED) --output $(DATA)

train: setup-training
	@if [ ! -f "$(DATA)" ]; then $(MAKE) --no-print-directory data; fi
	$(PY) -m login_scorer_training train --data $(DATA) --model-root $(MODEL_ROOT) \
		--kind $(KIND) --epochs $(EPOCHS) --batch-size $(BATCH_SIZE) --seed $(SEED)

lint: setup-training
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	$(VENV)/bin/ruff check training
	$(VENV)/bin/ruff format --check training
	$(VENV)/bin/ruff check benches
	$(VENV)/bin/ruff format --check benches

# The image cannot be built here (no Docker engine), so lint it and check
# that every path it copies from the build context exists.
lint-deploy: $(CHECKS_STAMP)
	$(VENV)/bin/hadolint Dockerfile
	awk '/^COPY/ && !/--from=/ { for (i = 2; i < NF; i++) if ($$i !~ /^--/) print $$i }' \
		Dockerfile | while read -r path; do \
		test -e "$$path" || { echo "Dockerfile copies missing path: $$path"; exit 1; }; done
	$(VENV)/bin/kubernetes-validate --strict --quiet \
		$$(ls deploy/kubernetes/*.yaml | grep -v kustomization)

fmt: setup-training
	cargo fmt
	$(VENV)/bin/ruff format training
	$(VENV)/bin/ruff check --fix training

test-python: setup-training
	$(PY) -m pytest training/tests -q

test-rust: setup
	cargo nextest run --locked --no-fail-fast

# A debug build: nextest has just built it, so this costs no compile.
test-contract: setup $(CHECKS_STAMP)
	cargo build --locked --bin login-scorer
	BINARY=$${CARGO_TARGET_DIR:-target}/debug/login-scorer \
		SCHEMATHESIS=$(VENV)/bin/schemathesis bash .ci/contract-test.sh

# cargo-fuzz with AddressSanitizer on stable Rust: the toolchain ships the ASan runtime,
# and RUSTC_BOOTSTRAP=1 lets this one command pass the -Z flags cargo-fuzz needs (there
# is no nightly here). FUZZ_SANITIZER=none fuzzes without it, faster. Not part
# of make test: the first build takes about 3 minutes. New inputs go to
# fuzz/target/corpus, a crash to fuzz/artifacts/<target>/ (then make it a regression test).
FUZZ_SECONDS ?= 60
FUZZ_SANITIZER ?= address
FUZZ_TARGETS := event_json csv_row bundle_files
fuzz:
	cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/corpus/$$target; \
		RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $(FUZZ_SANITIZER) $$target \
			fuzz/target/corpus/$$target fuzz/corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=65536 || exit 1; \
	done

# The long-running reliability tests (#[ignore]d in test-rust), one at a time so they
# do not load the 2 cores together. Release builds, as served: their latency figures
# mean nothing in a debug build. `timeout` bounds the run once built.
RELIABILITY_TIMEOUT_SECS ?= 300
test-reliability: setup
	cargo nextest run --release --locked --test reliability --no-run
	timeout $(RELIABILITY_TIMEOUT_SECS) cargo nextest run --release --locked --no-fail-fast \
		--test reliability --run-ignored only --test-threads 1 --no-capture

test: lint lint-deploy test-python test-rust test-contract test-reliability

clean:
	cargo clean
	rm -rf $(VENV) data/generated

# Benchmarks (benches/). bench-load loads a service that is already running;
# bench-compare starts each server in turn on a free 127.0.0.1 port, loads it
# with the same generator, events and connections, and appends to BENCHMARKS.md.
BENCH_URL ?= http://$(LISTEN)/v1/score
BENCH_EVENTS ?= $(DATA)
CONNECTIONS ?= 64
DURATION_SECS ?= 15
PEERS_STAMP := $(VENV)/.bench-peers-installed

.PHONY: bench bench-load bench-compare

# Criterion: about 4 s per benchmark (1 s warm-up, 3 s measured), under a minute in all.
bench: setup
	cargo bench --locked --bench scoring -- --warm-up-time 1 --measurement-time 3

$(PEERS_STAMP): benches/peers/requirements.txt training/requirements-runtime.txt \
		$(RUNTIME_STAMP)
	$(VENV)/bin/pip install --quiet -r benches/peers/requirements.txt
	touch $@

bench-load:
	@test -f "$(BENCH_EVENTS)" || { echo "no events file $(BENCH_EVENTS): run \
	make data, or set BENCH_EVENTS to an RBA CSV (plain or .gz)" >&2; exit 1; }
	cargo bench --locked --bench load -- --url $(BENCH_URL) --events $(BENCH_EVENTS) \
		--connections $(CONNECTIONS) --duration-secs $(DURATION_SECS) $(LOAD_ARGS)

bench-compare: setup $(PEERS_STAMP)
	@if [ ! -f "$(BENCH_EVENTS)" ]; then $(MAKE) --no-print-directory data; fi
	MODEL_ROOT=$(MODEL_ROOT) EVENTS=$(BENCH_EVENTS) CONNECTIONS=$(CONNECTIONS) \
		DURATION_SECS=$(DURATION_SECS) PY=$(PY) bash benches/compare.sh
