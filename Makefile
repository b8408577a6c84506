# The two commands: `make demo` and `make test`. Everything else supports them.

# Guest plugins are built by Debian's rustc 1.96 with -Zbuild-std (rustup's
# toolchain cannot add the wasm32-wasip2 target here; ../shared/TOOLCHAINS.md).
GUEST_CARGO      := /usr/bin/cargo
GUEST_ENV        := RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L /usr/lib/wasm32-wasi"
GUEST_TARGET_DIR ?= $(CURDIR)/plugins/target
GUEST_OUT        := $(GUEST_TARGET_DIR)/wasm32-wasip2/release
PLUGINS          := orders chaos
DIST             := plugins/dist

# Python plugins are built by componentize-py, pip-installed into a virtual
# environment outside the clone (a tool install, kept across clean checkouts).
TOOLS_DIR              ?= $(HOME)/.cache/redis-wasm-host/tools
COMPONENTIZE_PY_VERSION := 0.25.1
COMPONENTIZE_PY        := $(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)/bin/componentize-py
PY_PLUGINS             := python-orders

.PHONY: demo test plugins rust-plugins deps build clean

## demo: install what is missing, build, start Redis if needed, produce orders, run the host
demo: deps plugins build
	examples/demo.sh

## test: fmt check, clippy (warnings denied), then every test against a real redis-server
test: deps plugins
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## plugins: build every guest into plugins/dist/NAME.wasm (rebuilding only what changed)
plugins: rust-plugins $(PY_PLUGINS:%=$(DIST)/%.wasm)
	@ls -l $(DIST)/*.wasm

rust-plugins: deps
	cd plugins && $(GUEST_ENV) $(GUEST_CARGO) build --release --target wasm32-wasip2 \
		-Zbuild-std=std,panic_abort --target-dir "$(GUEST_TARGET_DIR)"
	@mkdir -p $(DIST)
	@for p in $(PLUGINS); do install -C -m 644 "$(GUEST_OUT)/$$p.wasm" "$(DIST)/$$p.wasm"; done

# A Python plugin is plugins/python-NAME/app.py (class WitWorld), one file; written to a
# temporary file first so a failed build never leaves half a plugin in dist/.
$(DIST)/python-%.wasm: plugins/python-%/app.py wit/plugin.wit | $(COMPONENTIZE_PY)
	@mkdir -p $(DIST)
	cd plugins/python-$* && $(COMPONENTIZE_PY) -d ../../wit -w consumer componentize app -o "$(CURDIR)/$@.tmp"
	mv "$@.tmp" "$@"

$(COMPONENTIZE_PY):
	scripts/install-deps.sh python
	rm -rf "$(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)"
	python3 -m venv "$(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)"
	"$(TOOLS_DIR)/componentize-py-$(COMPONENTIZE_PY_VERSION)/bin/pip" install -q "componentize-py==$(COMPONENTIZE_PY_VERSION)"

## deps: redis-server, the guest toolchain and python3 from Debian's packages (skips what is present)
deps:
	scripts/install-deps.sh redis guest python

build:
	cargo build -p host

clean:
	cargo clean
	rm -rf plugins/target $(DIST)
