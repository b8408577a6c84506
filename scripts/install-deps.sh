#!/usr/bin/env bash
# Installs what the project needs from Debian's packages, skipping what is
# already there. Usage: scripts/install-deps.sh [COMPONENT...]
#   redis  - redis-server (tests and the demo start their own instances)
#   guest  - the guest toolchain: Debian's rustc 1.96 with std sources, wasi-libc,
#            lld (rust-web-llvm brings wasm-component-ld), used to build plugins
#            for wasm32-wasip2 (see plugins/README.md)
#   guest-lint - Debian's clippy of that toolchain, to lint the Rust plugins
#   python - a python3 that can make virtual environments (componentize-py is
#            pip-installed into one by `make plugins`)
#   node   - node and npm (componentize-js is npm-installed by `make plugins`)
#   c      - clang 19 with its wasm32 runtime and wasi-libc, for C plugins
#   tls    - openssl (the tests' HTTPS webhook gets its certificates from a
#            test CA it makes) and ca-certificates (the system's roots, which
#            plugins' outbound HTTPS trusts)
#   browser - Chromium, for the dashboard's real-browser test (driven by
#            playwright-core, which `make test` npm-installs)
set -euo pipefail

need=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || need+=("$1"); }

for what in "${@:-redis guest python node c}"; do
  for w in $what; do
    case "$w" in
      redis) want redis-server ;;
      make) want make ;;
      guest) for p in rustc-web cargo-web rust-web-src rust-web-llvm wasi-libc lld-22; do want "$p"; done ;;
      guest-lint) want rust-web-clippy ;;
      python) python3 -c 'import ensurepip, venv' 2>/dev/null || { want python3; want python3-venv; } ;;
      node) command -v npm >/dev/null || { want nodejs; want npm; } ;;
      c) for p in clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc; do want "$p"; done ;;
      tls) want openssl; want ca-certificates ;;
      browser) want chromium ;;
      *) echo "install-deps: unknown component '$w' (expected redis, guest, guest-lint, python, node, c, tls, browser or make)" >&2; exit 2 ;;
    esac
  done
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
printf '\n==> installing Debian packages (first time: ~1 min): %s\n' "${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${need[@]}"
