# The two commands: `make demo` and `make test`. Everything else supports them.

# Guest plugins are built by Debian's rustc 1.96 with -Zbuild-std (rustup's
# toolchain cannot add the wasm32-wasip2 target here; ../shared/TOOLCHAINS.md).
GUEST_CARGO      := /usr/bin/cargo
GUEST_ENV        := RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L /usr/lib/wasm32-wasi"
GUEST_TARGET_DIR ?= $(CURDIR)/plugins/target
GUEST_OUT        := $(GUEST_TARGET_DIR)/wasm32-wasip2/release
PLUGINS          := orders chaos
DIST             := plugins/dist

.PHONY: demo test plugins deps build clean

## demo: install what is missing, build, start Redis if needed, produce orders, run the host
demo: deps plugins build
	examples/demo.sh

## test: fmt check, clippy (warnings denied), then every test against a real redis-server
test: deps plugins
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## plugins: build every guest into plugins/dist/NAME.wasm (cargo rebuilds only what changed)
plugins: deps
	cd plugins && $(GUEST_ENV) $(GUEST_CARGO) build --release --target wasm32-wasip2 \
		-Zbuild-std=std,panic_abort --target-dir "$(GUEST_TARGET_DIR)"
	@mkdir -p $(DIST)
	@for p in $(PLUGINS); do install -C -m 644 "$(GUEST_OUT)/$$p.wasm" "$(DIST)/$$p.wasm"; done
	@ls -l $(DIST)/*.wasm

## deps: redis-server and the guest toolchain from Debian's packages (skips what is present)
deps:
	scripts/install-deps.sh redis guest

build:
	cargo build -p host

clean:
	cargo clean
	rm -rf plugins/target $(DIST)
