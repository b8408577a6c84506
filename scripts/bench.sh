#!/usr/bin/env bash
# `make bench`: the standard set of `host bench` runs, one JSON line each
# (kept in $BENCH_OUT, default target/bench.jsonl), then a table with the
# ratios the README's "Performance" section reports. Uses $REDIS_URL, else a
# Redis on 127.0.0.1:6379, else a redis-server that `host bench` starts.
# BENCH_ENTRIES (default 300000) sizes the throughput runs; BENCH_BIG=0 skips
# the 1 M / 10 M memory runs.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST="${CARGO_TARGET_DIR:-target}/release/host"
NOOP=plugins/dist/noop.wasm
N="${BENCH_ENTRIES:-300000}"
OUT="${BENCH_OUT:-${CARGO_TARGET_DIR:-target}/bench.jsonl}"
mkdir -p "$(dirname "$OUT")"
: > "$OUT"

run() { # NAME ARGS...
  local name=$1; shift
  echo "bench: $name: host bench $*" >&2
  RUST_LOG=warn "$HOST" bench "$@" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["run"]=sys.argv[1]; print(json.dumps(d))' "$name" >> "$OUT"
}

run loop-1          --handler loop --entries "$N" --count 100
run native-1        --handler native --entries "$N"
run noop-1          --plugin "$NOOP" --entries "$N"
run native-2        --handler native --entries "$N" --consumers 2
run noop-2          --plugin "$NOOP" --entries "$N" --consumers 2
run noop-1-count100 --plugin "$NOOP" --entries "$N" --count 100
run guide-shape     --plugin "$NOOP" --entries $(( N / 10 )) --guide-shape
# Latency at a fixed load: half the backlog rate of noop-1, for ~5 s.
rate=$(python3 -c 'import json,sys; print(int([json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["run"]=="noop-1"][0]["entries_per_s"] / 2))' "$OUT")
run "paced-50%"     --plugin "$NOOP" --entries $(( rate * 5 )) --rate "$rate"
if [ "${BENCH_BIG:-1}" != 0 ]; then
  run rss-1M        --plugin "$NOOP" --entries 1000000
  run rss-10M       --plugin "$NOOP" --entries 10000000
fi

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {r["run"]: r for r in rows}
print("| run | handler | consumers | COUNT | ack | rate | entries | entries/s | p50 ms | p99 ms | p999 ms | CPU s | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    l = r["latency_ms"]
    print(f'| {r["run"]} | {r["handler"]} | {r["consumers"]} | {r["count"]} | {r["ack"]} | {r["rate"] or "backlog"} | {r["entries"]} '
          f'| {r["entries_per_s"]:.0f} | {l["p50"]} | {l["p99"]} | {l["p999"]} | {r["cpu_seconds"]} | {r["peak_rss_mb"]} |')
def ratio(a, b):
    return by[a]["entries_per_s"] / by[b]["entries_per_s"] if a in by and b in by else float("nan")
print()
print(f'- Rust no-op plugin vs native handler, 1 consumer: {ratio("noop-1", "native-1"):.2f}x (2 consumers: {ratio("noop-2", "native-2"):.2f}x)')
print(f'- Rust no-op plugin vs the minimal hand-written loop (COUNT 100, XACK pipelined): {ratio("noop-1", "loop-1"):.2f}x (2 consumers: {ratio("noop-2", "loop-1"):.2f}x)')
print(f'- default settings vs --guide-shape: {ratio("noop-1", "guide-shape"):.1f}x')
if "paced-50%" in by:
    print(f'- paced at {by["paced-50%"]["rate"]}/s (50 % of noop-1): p99 produce-to-ack {by["paced-50%"]["latency_ms"]["p99"]} ms')
if "rss-1M" in by and "rss-10M" in by:
    print(f'- peak RSS 10 M vs 1 M entries: {by["rss-10M"]["peak_rss_mb"]} / {by["rss-1M"]["peak_rss_mb"]} MB = {by["rss-10M"]["peak_rss_mb"] / by["rss-1M"]["peak_rss_mb"]:.2f}x')
PY
