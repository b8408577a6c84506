#!/usr/bin/env bash
# Measures, with the release host, how fast a plugin starts cold (empty
# compile cache) and cached, and how long a new version takes from the file
# being replaced (rename) to serving. Needs Redis on $REDIS_URL (default
# redis://127.0.0.1:6379), `make plugins` and `cargo build --release -p host`.
#   scripts/measure-load.sh orders python-orders js-orders c-orders zig-orders
set -euo pipefail
cd "$(dirname "$0")/.."
HOST="${CARGO_TARGET_DIR:-target}/release/host"
[ -x "$HOST" ] || { echo "build the release host first: cargo build --release -p host" >&2; exit 1; }
export NO_COLOR=1 REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
wait_for() { until grep -q "$1" "$2"; do sleep 0.005; done; }

for name in "${@:-orders}"; do
  work=$(mktemp -d)
  export HOST_CACHE_DIR="$work/cache"
  cp "plugins/dist/$name.wasm" "$work/$name.wasm"
  stream="measure:$name:$$"
  pid=
  for round in cold cached; do
    [ -z "$pid" ] || { kill "$pid"; wait "$pid" || true; }
    start=$(date +%s%N)
    "$HOST" run --plugin "$work/$name.wasm" --stream "$stream" --group g >"$work/$round.log" 2>&1 &
    pid=$!
    wait_for consuming "$work/$round.log"
    echo "$name $round start: $(ms_since "$start") ms to consuming ($(grep -o 'plugin [a-z ]* in [0-9]* ms' "$work/$round.log"))"
  done
  # A new version: the same component with a custom section appended.
  { cat "$work/$name.wasm"; printf '\000\013\003tagmeasure'; } >"$work/new.wasm"
  start=$(date +%s%N)
  mv "$work/new.wasm" "$work/$name.wasm"
  wait_for "replacing version" "$work/cached.log"
  echo "$name write -> new version serving: $(ms_since "$start") ms ($(grep -o 'plugin [a-z ]* in [0-9]* ms' "$work/cached.log" | tail -1))"
  kill "$pid"; wait "$pid" || true
  "$HOST" trim --stream "$stream" --maxlen 0 --exact >/dev/null 2>&1 || true
  rm -rf "$work"
done
