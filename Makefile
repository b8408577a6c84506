# The two commands: `make demo` and `make test`. Everything else supports them.

# Guest plugins are built by Debian's rustc 1.96 with -Zbuild-std (rustup's
# toolchain cannot add the wasm32-wasip2 target here). plugins/README.md says
# how each guest language is built, with which tools, and why.
GUEST_CARGO      := /usr/bin/cargo
GUEST_ENV        := RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L /usr/lib/wasm32-wasi"
GUEST_BUILD_STD  := --target wasm32-wasip2 -Zbuild-std=std,panic_abort
# Debian's clippy of the same toolchain, called directly: `cargo clippy` would
# find rustup's cargo-clippy first on PATH.
GUEST_CLIPPY     := CARGO=$(GUEST_CARGO) /usr/bin/cargo-clippy clippy
GUEST_TARGET_DIR ?= $(CURDIR)/plugins/target
GUEST_OUT        := $(GUEST_TARGET_DIR)/wasm32-wasip2/release
PLUGINS          := orders chaos noop noop-batch chaos-batch analytics notifier
DIST             := plugins/dist

# Python plugins are built by componentize-py, pip-installed into a virtual
# environment outside the clone (a tool install, kept across clean checkouts).
TOOLS_DIR              ?= $(HOME)/.cache/redis-wasm-host/tools
COMPONENTIZE_PY_VERSION := 0.25.1
COMPONENTIZE_PY        := $(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)/bin/componentize-py
PY_PLUGINS             := python-orders python-analytics python-notifier

# JavaScript plugins are built by componentize-js, npm-installed the same way.
COMPONENTIZE_JS_VERSION := 0.23.0
COMPONENTIZE_JS        := $(TOOLS_DIR)/componentize-js-$(COMPONENTIZE_JS_VERSION)/node_modules/.bin/componentize-js
JS_PLUGINS             := js-orders js-noop js-noop-batch

# C plugins: Debian's clang for wasm32-wasi (preview1) and wasi-libc; the WIT
# bindings and the component wrapping come from plugin-build, a small Rust
# tool of this repository (tools/plugin-build), cargo-installed into the tools
# folder under a hash of its sources (`host new` scaffolds share that install).
C_PLUGINS              := c-orders
PLUGIN_BUILD_SOURCES   := tools/plugin-build/Cargo.toml tools/plugin-build/Cargo.lock tools/plugin-build/src/main.rs
PLUGIN_BUILD_HASH      := $(shell cat $(PLUGIN_BUILD_SOURCES) | sha256sum | cut -c1-12)
PLUGIN_BUILD           := $(TOOLS_DIR)/plugin-build-$(PLUGIN_BUILD_HASH)/bin/plugin-build
C_BINDINGS             := $(GUEST_TARGET_DIR)/c-bindings
CLANG                  := clang-19
WASI_CFLAGS            := --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -Os -s -Wall -Werror

# Zig plugins: Zig from PyPI's ziglang (a virtual environment like
# componentize-py's), importing the same C bindings through `zig translate-c`.
ZIG_VERSION            := 0.17.1
ZIG_PYTHON             := $(TOOLS_DIR)/ziglang-$(ZIG_VERSION)/bin/python
ZIG                    := $(ZIG_PYTHON) -m ziglang
ZIG_CACHE              := --cache-dir "$(GUEST_TARGET_DIR)/zig-cache"
ZIG_PLUGINS            := zig-orders

# The dashboard's real-browser test drives Debian's Chromium through
# playwright-core (npm; it downloads no browser of its own).
PLAYWRIGHT_VERSION     := 1.65.1
PLAYWRIGHT_MODULES     := $(TOOLS_DIR)/playwright-core-$(PLAYWRIGHT_VERSION)/node_modules
PLAYWRIGHT             := $(PLAYWRIGHT_MODULES)/playwright-core/package.json

.PHONY: demo test lint bench bench-cluster plugins rust-plugins demo-plugins deps demo-deps build install clean

# One line before each long step, saying what it does and how long it takes the
# first time on this project's machines (2 cores); later runs reuse the builds.
PHASE = @printf '\n==> [%s] %s\n' "$$(date +%T)"

HOST_BIN := $${CARGO_TARGET_DIR:-target}/debug/host

## demo: install what is missing, build what the demo runs, then `host demo` (dashboard on http://127.0.0.1:8788/)
demo: demo-deps demo-plugins build
	$(PHASE) "starting the demo (Ctrl-C stops it; the first start compiles the Python plugin: ~10 s)"
	$(HOST_BIN) demo $(DEMO_FLAGS)

## test: fmt check, clippy (warnings denied), then every test against a real redis-server
test: deps plugins $(PLAYWRIGHT) lint
	scripts/install-deps.sh browser
	$(PHASE) "building and running the tests (first time: ~3 min to build; the run takes ~3 min)"
	PLAYWRIGHT_MODULES="$(PLAYWRIGHT_MODULES)" cargo test --workspace
	$(PHASE) "installing host into a temporary folder and using it outside the checkout (first time: ~1 min)"
	examples/install.sh

## lint: fmt check and clippy (warnings denied) of the host, tools/plugin-build and the Rust guests
# The guests are linted as they are built: Debian's clippy, for wasm32-wasip2;
# in the release profile, so it reuses the std and proc-macros `make plugins` built.
lint: deps
	scripts/install-deps.sh guest-lint
	$(PHASE) "lint: rustfmt and clippy (first time: ~3 min; clippy checks what the build did not)"
	cargo fmt --all --check
	cargo fmt --all --check --manifest-path tools/plugin-build/Cargo.toml
	cargo fmt --all --check --manifest-path plugins/Cargo.toml
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --manifest-path tools/plugin-build/Cargo.toml --locked --all-targets -- -D warnings
	cd plugins && $(GUEST_ENV) $(GUEST_CLIPPY) --release $(GUEST_BUILD_STD) --target-dir "$(GUEST_TARGET_DIR)" \
		--workspace --all-targets -- -D warnings

## bench: release build, then the standard `host bench` set and its table (docs/performance.md)
bench: deps rust-plugins $(DIST)/js-noop.wasm $(DIST)/js-noop-batch.wasm
	$(PHASE) "building the host with optimisations (first time: ~7 min on 2 cores)"
	cargo build --release -p host
	$(PHASE) "benchmarking (~6-8 min)"
	scripts/bench.sh

## bench-cluster: release build, then `host bench` on a local Redis Cluster (3 masters + 3 replicas,
## 1, 3 and 6 partitions) against one server in the same run (docs/performance.md)
bench-cluster: deps rust-plugins
	$(PHASE) "building the host with optimisations (first time: ~7 min on 2 cores)"
	cargo build --release -p host
	$(PHASE) "benchmarking on a local cluster (~3 min)"
	scripts/bench-cluster.sh

## install: `host` into ~/.cargo/bin with the demo's plugins built in (works outside this folder);
## INSTALL_FLAGS adds flags of `cargo install` (e.g. "--root DIR")
install: demo-deps demo-plugins
	$(PHASE) "installing host with the demo plugins built in (first time: ~6 min, an optimised build)"
	cargo install --locked --path host --features embed-demo-plugins $(INSTALL_FLAGS)

## plugins: build every guest into plugins/dist/NAME.wasm (rebuilding only what changed)
PLUGIN_FILES := $(PY_PLUGINS) $(JS_PLUGINS) $(C_PLUGINS) $(ZIG_PLUGINS)
plugins: rust-plugins $(PLUGIN_FILES:%=$(DIST)/%.wasm)
	@ls -l $(DIST)/*.wasm

rust-plugins: demo-deps
	$(call rust_guests,$(PLUGINS))

# The plugins `host demo` runs: the Rust `notifier` and the Python `analytics`.
demo-plugins: demo-deps $(DIST)/python-analytics.wasm
	$(call rust_guests,notifier)

# Builds the Rust guests $(1) into plugins/dist.
define rust_guests
	$(PHASE) "building Rust plugins: $(1) (first time: ~1 min, it builds the Wasm std)"
	cd plugins && $(GUEST_ENV) $(GUEST_CARGO) build --release $(GUEST_BUILD_STD) --target-dir "$(GUEST_TARGET_DIR)" \
		$(foreach p,$(1),-p $(p))
	@mkdir -p $(DIST)
	@for p in $(1); do install -C -m 644 "$(GUEST_OUT)/$$(echo $$p | tr - _).wasm" "$(DIST)/$$p.wasm"; done
endef

# A Python plugin is plugins/python-NAME/app.py (class WitWorld), one file; written to a
# temporary file first so a failed build never leaves half a plugin in dist/.
$(DIST)/python-%.wasm: plugins/python-%/app.py wit/plugin.wit | $(COMPONENTIZE_PY)
	$(PHASE) "building the Python plugin python-$* (first time: ~10 s)"
	@mkdir -p $(DIST)
	cd plugins/python-$* && $(COMPONENTIZE_PY) -d ../../wit -w consumer componentize app -o "$(CURDIR)/$@.tmp"
	mv "$@.tmp" "$@"

# The Python notifier's world adds wasi:http to the contract's: its wit/ folder
# (the world and the WASI packages) plus wit/plugin.wit as a dependency.
PY_NOTIFIER_WIT := $(GUEST_TARGET_DIR)/python-notifier-wit
$(DIST)/python-notifier.wasm: plugins/python-notifier/app.py $(wildcard plugins/python-notifier/wit/*.wit) wit/plugin.wit | $(COMPONENTIZE_PY)
	$(PHASE) "building the Python plugin python-notifier (first time: ~15 s)"
	@mkdir -p $(DIST) "$(PY_NOTIFIER_WIT)/deps/plugin"
	cp -r plugins/python-notifier/wit/. "$(PY_NOTIFIER_WIT)/"
	cp wit/plugin.wit "$(PY_NOTIFIER_WIT)/deps/plugin/"
	cd plugins/python-notifier && $(COMPONENTIZE_PY) -d "$(PY_NOTIFIER_WIT)" -w notifier componentize app -o "$(CURDIR)/$@.tmp"
	mv "$@.tmp" "$@"

# A JavaScript plugin is plugins/js-NAME/handler.js (an ES module exporting
# `handle`, or `handleBatch` when NAME ends in -batch: world batch-consumer);
# `-d http -d fetch-event` keeps wasi:http out of its imports.
$(DIST)/js-%.wasm: plugins/js-%/handler.js wit/plugin.wit | $(COMPONENTIZE_JS)
	$(PHASE) "building the JavaScript plugin js-$* (~10 s)"
	@mkdir -p $(DIST)
	$(COMPONENTIZE_JS) plugins/js-$*/handler.js --wit wit --world-name $(if $(filter %-batch,$*),batch-consumer,consumer) \
		-d http -d fetch-event -o "$@.tmp"
	mv "$@.tmp" "$@"

# A C plugin is plugins/c-NAME/plugin.c, implementing exports_consumer_handle.
$(DIST)/c-%.wasm: plugins/c-%/plugin.c $(C_BINDINGS)/consumer.h
	$(PHASE) "building the C plugin c-$*"
	scripts/install-deps.sh c
	@mkdir -p $(DIST)
	$(CLANG) $(WASI_CFLAGS) -I "$(C_BINDINGS)" -o "$(GUEST_TARGET_DIR)/c-$*.core.wasm" \
		plugins/c-$*/plugin.c "$(C_BINDINGS)/consumer.c" "$(C_BINDINGS)/consumer_component_type.o"
	$(PLUGIN_BUILD) component "$(GUEST_TARGET_DIR)/c-$*.core.wasm" "$@.tmp"
	mv "$@.tmp" "$@"

# A Zig plugin is plugins/zig-NAME/plugin.zig, exporting exports_consumer_handle;
# it imports the C bindings as the module `consumer`.
$(DIST)/zig-%.wasm: plugins/zig-%/plugin.zig $(C_BINDINGS)/consumer.zig
	$(PHASE) "building the Zig plugin zig-$* (first time: ~20 s)"
	@mkdir -p $(DIST)
	$(ZIG) build-exe $(ZIG_CACHE) -fno-entry -rdynamic -lc -mexec-model=reactor \
		-femit-bin="$(GUEST_TARGET_DIR)/zig-$*.core.wasm" -target wasm32-wasi -O ReleaseSmall \
		-I "$(C_BINDINGS)" "$(C_BINDINGS)/consumer.c" "$(C_BINDINGS)/consumer_component_type.o" \
		--dep consumer -Mroot=plugins/zig-$*/plugin.zig -target wasm32-wasi -O ReleaseSmall -Mconsumer="$(C_BINDINGS)/consumer.zig"
	$(PLUGIN_BUILD) component "$(GUEST_TARGET_DIR)/zig-$*.core.wasm" "$@.tmp"
	mv "$@.tmp" "$@"

# The world's C bindings (for C and Zig plugins), and their Zig translation.
$(C_BINDINGS)/consumer.h: wit/plugin.wit $(PLUGIN_BUILD)
	$(PLUGIN_BUILD) c-bindings wit consumer "$(C_BINDINGS)"
	@touch "$@"

$(C_BINDINGS)/consumer.zig: $(C_BINDINGS)/consumer.h | $(ZIG_PYTHON)
	$(PHASE) "translating the C bindings for Zig (first time: ~1 min)"
	$(ZIG) translate-c $(ZIG_CACHE) "$<" -target wasm32-wasi -lc > "$@.tmp"
	mv "$@.tmp" "$@"

$(ZIG_PYTHON):
	$(PHASE) "installing Zig from PyPI (~10 s)"
	scripts/install-deps.sh python
	rm -rf "$(TOOLS_DIR)/ziglang-$(ZIG_VERSION)"
	python3 -m venv "$(TOOLS_DIR)/ziglang-$(ZIG_VERSION)"
	"$(TOOLS_DIR)/ziglang-$(ZIG_VERSION)/bin/pip" install -q "ziglang==$(ZIG_VERSION)"

$(PLUGIN_BUILD):
	$(PHASE) "building plugin-build, the build tool of C and Zig plugins (first time: ~40 s)"
	cargo install --locked --quiet --root "$(TOOLS_DIR)/plugin-build-$(PLUGIN_BUILD_HASH)" --path tools/plugin-build

$(COMPONENTIZE_PY):
	$(PHASE) "installing componentize-py from PyPI (~10 s)"
	scripts/install-deps.sh python
	rm -rf "$(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)"
	python3 -m venv "$(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)"
	"$(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)/bin/pip" install -q "componentize-py==$(COMPONENTIZE_PY_VERSION)"

# npm-installs package $(2) into the folder $(1) of its own (started afresh).
define npm_tool
	scripts/install-deps.sh node
	rm -rf "$(1)"
	mkdir -p "$(1)"
	npm install --silent --no-audit --no-fund --prefix "$(1)" "$(2)"
endef

$(COMPONENTIZE_JS):
	$(PHASE) "installing componentize-js from npm (~15 s)"
	$(call npm_tool,$(TOOLS_DIR)/componentize-js-$(COMPONENTIZE_JS_VERSION),@bytecodealliance/componentize-js@$(COMPONENTIZE_JS_VERSION))

$(PLAYWRIGHT):
	$(call npm_tool,$(TOOLS_DIR)/playwright-core-$(PLAYWRIGHT_VERSION),playwright-core@$(PLAYWRIGHT_VERSION))

## deps: redis-server and the guest toolchains (Rust, python3, node, clang) from Debian's packages (skips what is present)
deps:
	scripts/install-deps.sh redis guest python node c tls

# What the demo needs: redis-server, the Rust guest toolchain, python3 with venv.
demo-deps:
	scripts/install-deps.sh redis guest python

## build: the host (debug profile: shared by `make demo` and `make test`)
build:
	$(PHASE) "building the host (first time: ~3.5 min on 2 cores)"
	cargo build -p host

clean:
	cargo clean
	rm -rf plugins/target $(DIST)
