#!/usr/bin/env bash
# `make install`, then the installed `host` used outside this checkout:
# `host --version` names the plugin contract, `host demo` finds the plugins
# built into it (written to ~/.local/share/redis-wasm-host/demo-plugins) and
# serves them, `host new` writes a project from its embedded templates.
# Exit 0 when all of that holds. `make test` runs it after the tests.
#
# By default it installs into a temporary folder, in the debug profile (to
# reuse the tests' build), with a temporary HOME: INSTALL_FLAGS overrides the
# flags given to `cargo install` (e.g. INSTALL_FLAGS= for ~/.cargo/bin, optimised).
# Uses $REDIS_URL, else the demo's own choice.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
pids=()
stream="install:demo:$$"
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379}" del "$stream" "$stream:dlq" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "install: FAILED: $*" >&2; exit 1; }
flags="${INSTALL_FLAGS---debug --root $work/root}"

(cd "$root" && make install INSTALL_FLAGS="$flags")
bin="$work/root/bin/host"
[[ "$flags" == *"--root $work/root"* ]] || bin="${CARGO_HOME:-$HOME/.cargo}/bin/host"
[ -x "$bin" ] || fail "no host binary at $bin (with INSTALL_FLAGS naming another --root, check it there)"

cd "$work"
export HOME="$work/home" XDG_DATA_HOME=""
mkdir -p "$HOME"
version=$("$bin" --version)
echo "install: $version"
[[ "$version" == *"redis-streams:plugin@"* ]] || fail "--version does not name the plugin contract: $version"

redis_flag=()
[ -n "${REDIS_URL:-}" ] && redis_flag=(--redis "$REDIS_URL")
# start_demo LOG ARGS…: starts the installed demo, waits for its address (in $url).
start_demo() {
  local log=$1; shift
  "$bin" demo --port 0 --stream-key "$stream" "${redis_flag[@]}" "$@" > "$log" 2>&1 &
  local demo=$!
  pids+=("$demo")
  # A cold compile cache (HOME is new): the Python plugin compiles first (~11 s in a debug build).
  for _ in $(seq 1200); do
    grep -q "demo: open http://" "$log" && break
    kill -0 "$demo" 2>/dev/null || break
    sleep 0.1
  done
  url=$(grep -o 'http://[^/ ]*/' "$log" | tail -1) || { cat "$log" >&2; fail "the demo did not start"; }
}
start_demo demo.log
for plugin in notifier python-analytics; do
  ls "$HOME"/.local/share/redis-wasm-host/demo-plugins/*/"$plugin.wasm" >/dev/null 2>&1 \
    || fail "$plugin.wasm was not written out"
done
loaded=$(python3 -c 'import json, sys, urllib.request
plugins = json.load(urllib.request.urlopen(sys.argv[1] + "api/plugins", timeout=5))
print(sum(1 for p in plugins if p["version"]))' "$url")
[ "$loaded" = 2 ] || fail "the demo serves $loaded of its 2 plugins"
echo "install: the installed demo serves both built-in plugins at $url"
kill -INT "${pids[@]}"; wait; pids=()
start_demo demo-dir.log --plugins-dir "$work/mine"
[ -f mine/notifier.wasm ] && [ -f mine/python-analytics.wasm ] || fail "--plugins-dir was not filled with the built-in plugins"
echo "install: an empty --plugins-dir is filled with the built-in plugins"

"$bin" new --lang c probe >/dev/null
[ -f probe/Makefile ] && [ -f probe/wit/plugin.wit ] || fail "host new wrote no project"
echo "install: host new works outside the checkout"
