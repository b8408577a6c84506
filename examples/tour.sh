#!/usr/bin/env bash
# The README's five-minute tour, unattended: `make demo`, a new Rust plugin
# made with `host new` and built with `make`, `host check`, `host run` on the
# demo's stream, a new version dropped in while it runs (hot reload), and the
# same file given to the demo (its plugins panel shows the new version).
# Each step checks what the README says the user sees; exit 0 when all hold.
#
# Run it from anywhere: examples/tour.sh. Uses $REDIS_URL, else the demo's
# own choice (a Redis on 127.0.0.1:6379, else a redis-server it starts, whose
# URL it prints for the other commands, as the README says).
# The tour works in a folder of its own ($TOUR_DIR, else a temporary one,
# removed at the end) holding a copy of the demo's plugins, so plugins/dist
# is left as it is; the demo listens on a free port. $TARGET (the plugin's
# cargo target folder, see its Makefile) lets runs share one Wasm std build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
host_dir="$(cd "$root" && realpath -m "${CARGO_TARGET_DIR:-target}")/debug"
if [ -n "${TOUR_DIR:-}" ]; then work="$TOUR_DIR"; keep=1; else work="$(mktemp -d)"; keep=0; fi
mkdir -p "$work"
cd "$work"
rm -rf my-plugin
pids=()
# Each background job is stopped by pid (the demo with its whole group: make and the host).
cleanup() {
  for p in "${pids[@]}"; do kill -INT -- "-$p" 2>/dev/null || kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\ntour: %s\n' "$*"; }
fail() { echo "tour: FAILED: $*" >&2; exit 1; }
# wait_for FILE TEXT SECONDS [PID]: until FILE has a line containing TEXT
# (failing at once if PID, the process writing FILE, has exited).
wait_for() {
  for _ in $(seq $(( $3 * 10 ))); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "--- $1:" >&2; tail -20 "$1" >&2; fail "no \"$2\" in $1 (within $3 s, or its writer exited)"
}
# The version the dashboard shows for the notifications group's plugin.
version() {
  python3 -c 'import json, sys, urllib.request
plugins = json.load(urllib.request.urlopen(sys.argv[1] + "api/plugins", timeout=5))
print(next(p["version"] for p in plugins if p["group"] == "notifications") or "")' "$url"
}

step "1. the demo (make demo), with a copy of its plugins in $work/plugins/dist"
mkdir -p plugins/dist
make -s -C "$root" demo-plugins >/dev/null
cp "$root/plugins/dist/notifier.wasm" "$root/plugins/dist/python-analytics.wasm" plugins/dist/
setsid make -C "$root" demo DEMO_FLAGS="--port 0 --plugins-dir $work/plugins/dist" > demo.log 2>&1 &
pids+=($!)
wait_for demo.log "demo: open http://" 600 "$!"
url=$(grep -o 'http://[^/ ]*/' demo.log | tail -1)
echo "tour: the dashboard is at $url"
# When the demo started a redis-server of its own, it says how other commands find it.
if [ -z "${REDIS_URL:-}" ] && grep -q "^demo: for other commands: export REDIS_URL=" demo.log; then
  export REDIS_URL="$(sed -n 's/^demo: for other commands: export REDIS_URL=//p' demo.log | tail -1)"
fi
before=$(version)
[ -n "$before" ] || fail "the dashboard does not list the notifications plugin"

step "2. write a plugin"
export PATH="$PWD/target/debug:$PATH"   # the host `make demo` built (or `make install`, below)
export PATH="$host_dir:$PATH"           # the same, wherever this checkout builds it
command -v host >/dev/null && [ "$(command -v host)" = "$host_dir/host" ] || fail "no host binary in $host_dir"
host new --lang rust my-plugin          # or python, js, c, zig
make -C my-plugin
host check my-plugin/my-plugin.wasm

step "3. run it on the demo's stream, in a group of its own"
host run --plugin my-plugin/my-plugin.wasm --stream demo:events:orders --group tour > run.log 2>&1 &
pids+=($!)
wait_for run.log "my-plugin handled" 60 "$!"
echo "tour: $(grep -c "my-plugin handled" run.log) orders handled by my-plugin so far"

step "4. drop a new version while it runs"
sed -i 's/my-plugin handled/my-plugin took/' my-plugin/src/lib.rs
grep -q "my-plugin took" my-plugin/src/lib.rs || fail "could not edit my-plugin/src/lib.rs"
make -C my-plugin
wait_for run.log "reloaded" 60
host produce --stream demo:events:orders type=order.placed order_id=o-tour customer=tour amount=1.00 >/dev/null
wait_for run.log "my-plugin took" 60

step "5. give the demo's notifications group the new plugin"
cp my-plugin/my-plugin.wasm plugins/dist/notifier.wasm
for _ in $(seq 300); do [ "$(version)" != "$before" ] && break; sleep 0.1; done
after=$(version)
[ "$after" != "$before" ] || fail "the dashboard still shows version $before"
echo "tour: the dashboard shows the notifications plugin at version $after (was $before)"
step "done: every step of the tour held"
