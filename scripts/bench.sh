#!/usr/bin/env bash
# `make bench`: the standard set of `host bench` runs, one JSON line each
# (kept in $BENCH_OUT, default target/bench.jsonl), then a table with the
# ratios docs/performance.md reports. Uses $REDIS_URL, else a
# Redis on 127.0.0.1:6379, else a redis-server that `host bench` starts.
#
# The throughput set runs BENCH_ROUNDS times (default 5), interleaved, so
# whatever else the machine is doing (on a shared VM: CPU stolen by other
# guests, reported per run as steal_seconds) hits every mode alike; the table
# shows each mode's median run and the ratios are of medians. BENCH_ENTRIES
# (default 300000) sizes the throughput runs; BENCH_BIG=0 skips the 1 M / 10 M
# memory runs.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST="${CARGO_TARGET_DIR:-target}/release/host"
NOOP=plugins/dist/noop.wasm
NOOP_BATCH=plugins/dist/noop-batch.wasm
JS_NOOP=plugins/dist/js-noop.wasm
JS_NOOP_BATCH=plugins/dist/js-noop-batch.wasm
ANALYTICS=plugins/dist/analytics.wasm
N="${BENCH_ENTRIES:-300000}"
ROUNDS="${BENCH_ROUNDS:-5}"
OUT="${BENCH_OUT:-${CARGO_TARGET_DIR:-target}/bench.jsonl}"
mkdir -p "$(dirname "$OUT")"
: > "$OUT"

run() { # NAME ARGS...
  local name=$1; shift
  echo "bench: $name: host bench $*" >&2
  RUST_LOG=warn "$HOST" bench "$@" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["run"]=sys.argv[1]; print(json.dumps(d))' "$name" >> "$OUT"
}

for round in $(seq "$ROUNDS"); do
  echo "bench: round $round of $ROUNDS" >&2
  run loop-1          --handler loop --entries "$N" --count 100
  run native-1        --handler native --entries "$N"
  run noop-1          --plugin "$NOOP" --entries "$N"
  run native-2        --handler native --entries "$N" --consumers 2
  run noop-2          --plugin "$NOOP" --entries "$N" --consumers 2
  run noop-batch-1    --plugin "$NOOP_BATCH" --entries "$N"
  run noop-batch-2    --plugin "$NOOP_BATCH" --entries "$N" --consumers 2
  run noop-1-count100 --plugin "$NOOP" --entries "$N" --count 100
  run guide-shape     --plugin "$NOOP" --entries $(( N / 10 )) --guide-shape
  # Producing as fast as it can alongside: the maximum rate of producing and
  # consuming together, Redis serving both (what a paced load is a share of).
  run live-1          --plugin "$NOOP" --entries "$N" --alongside
  # A language where a call is dear: JavaScript, per entry and per batch.
  run js-noop-1       --plugin "$JS_NOOP" --entries $(( N / 10 ))
  run js-noop-batch-1 --plugin "$JS_NOOP_BATCH" --entries $(( N / 10 ))
  # Effects: two counters and one emitted entry per entry, committed with the
  # ack (fenced, checked first), against the same writes made by hand.
  run analytics-1     --plugin "$ANALYTICS" --entries "$N" --effects
  run analytics-2     --plugin "$ANALYTICS" --entries "$N" --effects --consumers 2
  run loop-effects-1  --handler loop --entries "$N" --count 500 --effects
done
# Latency at a fixed load, ~5 s a run: half the median rate of live-1 (the
# maximum with the producer's load on the same Redis and cores), with one
# consumer, two, the native handler (what of the latency is the plugin call)
# and the minimal hand-written loop (the reference consumer under the same
# load, no host at all); half the median backlog drain rate of noop-1, a
# heavier load (the drain rate leaves out the producer's share of Redis and
# the cores); and a light load, the floor. A paced run's entries/s below its
# rate means the consumer fell behind the producer (its p99 is then a
# growing backlog).
half() { python3 -c '
import json, statistics, sys
rates = [json.loads(l)["entries_per_s"] for l in open(sys.argv[1]) if json.loads(l)["run"] == sys.argv[2]]
print(int(statistics.median(rates) / 2))' "$OUT" "$1"; }
rate=$(half live-1)
drain_rate=$(half noop-1)
for round in $(seq "$ROUNDS"); do
  run "paced-50%"        --plugin "$NOOP" --entries $(( rate * 5 )) --rate "$rate"
  run "paced-50%-2"      --plugin "$NOOP" --entries $(( rate * 5 )) --rate "$rate" --consumers 2
  run "paced-50%-native" --handler native --entries $(( rate * 5 )) --rate "$rate"
  run "paced-50%-loop"   --handler loop --entries $(( rate * 5 )) --rate "$rate" --count 100
  run "paced-50%-drain"  --plugin "$NOOP" --entries $(( drain_rate * 5 )) --rate "$drain_rate"
  # The floor: a light load (5000/s, ~2 % of the maximum), where p99 is the
  # machine's wake-ups and round trips rather than queueing, host or no host.
  run "paced-light"      --plugin "$NOOP" --entries 25000 --rate 5000
  run "paced-light-loop" --handler loop --entries 25000 --rate 5000 --count 100
done
if [ "${BENCH_BIG:-1}" != 0 ]; then
  run rss-1M        --plugin "$NOOP" --entries 1000000
  run rss-10M       --plugin "$NOOP" --entries 10000000
fi

# How late this machine wakes a sleeping thread (1 ms sleeps, 3000 of
# them): every hop of an entry (producer, Redis, consumer, plugin thread,
# ack) waits for such a wake-up, so its tail bounds any p99 measured here.
wakeups=$(python3 -c '
import time
late = []
for _ in range(3000):
    t = time.perf_counter(); time.sleep(0.001); late.append((time.perf_counter() - t - 0.001) * 1e3)
late.sort()
print(" ".join(f"{late[int(len(late) * q)]:.3f}" for q in (0.5, 0.99, 0.999)))')

python3 - "$OUT" "$wakeups" <<'PY'
import json, os, platform, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
runs = {}
for r in rows:
    runs.setdefault(r["run"], []).append(r)
def pick(name):
    # The median run: by p99 for paced runs, else by entries/s (the lower
    # middle one for an even count).
    paced = isinstance(runs[name][0]["rate"], int)
    key = (lambda r: r["latency_ms"]["p99"]) if paced else (lambda r: r["entries_per_s"])
    ordered = sorted(runs[name], key=key)
    return ordered[(len(ordered) - 1) // 2]
by = {name: pick(name) for name in runs}
def cpu_per_entry(name):
    # The host's CPU time per entry, median over the rounds: unlike entries/s
    # it does not count time the hypervisor gave to other guests.
    return statistics.median(x["cpu_seconds"] / x["entries"] * 1e6 for x in runs[name])
print("| run | handler | consumers | COUNT | ack | rate | entries | entries/s (median) | min–max | p50 ms | p99 ms | p999 ms | CPU s | CPU µs/entry | peak RSS MB | steal s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, r in by.items():
    l = r["latency_ms"]
    eps = [x["entries_per_s"] for x in runs[name]]
    spread = f"{min(eps):.0f}–{max(eps):.0f}" if len(eps) > 1 else ""
    print(f'| {name} | {r["handler"]} | {r["consumers"]} | {r["count"]} | {r["ack"]} | {r["rate"] or "backlog"} | {r["entries"]} '
          f'| {r["entries_per_s"]:.0f} | {spread} | {l["p50"]} | {l["p99"]} | {l["p999"]} | {r["cpu_seconds"]} | {cpu_per_entry(name):.2f} | {r["peak_rss_mb"]} | {r.get("steal_seconds")} |')
def median(name):
    return statistics.median(x["entries_per_s"] for x in runs[name]) if name in runs else float("nan")
def ratio(a, b):
    return median(a) / median(b)
def rounds(a, b):
    # The same ratio within each round (runs of a round ran back to back).
    return ", ".join(f'{x["entries_per_s"] / y["entries_per_s"]:.2f}' for x, y in zip(runs.get(a, []), runs.get(b, [])))
print()
print(f'Ratios of medians ({len(runs["noop-1"])} rounds; per round in brackets):')
print(f'- Rust no-op plugin vs native handler, 1 consumer: {ratio("noop-1", "native-1"):.2f}x [{rounds("noop-1", "native-1")}]; '
      f'2 consumers: {ratio("noop-2", "native-2"):.2f}x [{rounds("noop-2", "native-2")}]')
print(f'- Rust no-op batch plugin (handle-batch) vs native handler, 1 consumer: {ratio("noop-batch-1", "native-1"):.2f}x [{rounds("noop-batch-1", "native-1")}]; '
      f'2 consumers: {ratio("noop-batch-2", "native-2"):.2f}x [{rounds("noop-batch-2", "native-2")}]')
print(f'- JavaScript no-op, one call per batch vs per entry: {ratio("js-noop-batch-1", "js-noop-1"):.2f}x [{rounds("js-noop-batch-1", "js-noop-1")}]')
print(f'- Rust no-op plugin vs the minimal hand-written loop (COUNT 100, XACK pipelined): {ratio("noop-1", "loop-1"):.2f}x [{rounds("noop-1", "loop-1")}]; '
      f'2 consumers: {ratio("noop-2", "loop-1"):.2f}x [{rounds("noop-2", "loop-1")}]')
print(f'- effects (analytics plugin: 2 counters + 1 emit per entry, fenced commit) vs the no-op plugin: '
      f'{ratio("analytics-1", "noop-1"):.2f}x [{rounds("analytics-1", "noop-1")}]; vs the same writes by hand '
      f'(minimal loop, COUNT 500, writes and XACK pipelined): {ratio("analytics-1", "loop-effects-1"):.2f}x '
      f'[{rounds("analytics-1", "loop-effects-1")}]; 2 consumers vs by hand: {ratio("analytics-2", "loop-effects-1"):.2f}x '
      f'[{rounds("analytics-2", "loop-effects-1")}]')
print(f'- default settings vs --guide-shape: {ratio("noop-1", "guide-shape"):.1f}x [{rounds("noop-1", "guide-shape")}]')
print(f'- producing and consuming together (noop, 1 consumer, producer unpaced alongside): {median("live-1"):.0f}/s, '
      f'{ratio("live-1", "noop-1"):.2f}x the backlog drain')
for name, what, of in (("paced-50%", "noop, 1 consumer", "live-1"), ("paced-50%-2", "noop, 2 consumers", "live-1"),
                       ("paced-50%-native", "native, 1 consumer", "live-1"),
                       ("paced-50%-loop", "the minimal hand-written loop (no host)", "live-1"),
                       ("paced-50%-drain", "noop, 1 consumer", "noop-1"),
                       ("paced-light", "noop, 1 consumer", None), ("paced-light-loop", "the minimal hand-written loop (no host)", None)):
    if name in runs:
        p99s = ", ".join(str(x["latency_ms"]["p99"]) for x in runs[name])
        share = f"50 % of the median {of}" if of else "a light load"
        kept = statistics.median(x["entries_per_s"] for x in runs[name]) / by[name]["rate"]
        behind = "" if kept > 0.99 else f", falling behind (it consumed {kept:.0%} of the rate)"
        print(f'- paced at {by[name]["rate"]}/s ({share}), {what}: p99 produce-to-ack {by[name]["latency_ms"]["p99"]} ms median [{p99s}]{behind}')
if "rss-1M" in by and "rss-10M" in by:
    print(f'- peak RSS 10 M vs 1 M entries: {by["rss-10M"]["peak_rss_mb"]} / {by["rss-1M"]["peak_rss_mb"]} MB = {by["rss-10M"]["peak_rss_mb"] / by["rss-1M"]["peak_rss_mb"]:.2f}x')
print(f'- host CPU per entry (µs, median; not affected by stolen time): native {cpu_per_entry("native-1"):.2f}, '
      f'noop {cpu_per_entry("noop-1"):.2f}, noop-batch {cpu_per_entry("noop-batch-1"):.2f}, '
      f'js-noop {cpu_per_entry("js-noop-1"):.1f}, js-noop-batch {cpu_per_entry("js-noop-batch-1"):.1f}')
late = sys.argv[2].split()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print(f'- machine: {os.cpu_count()} CPUs ({model}), Linux {platform.release()}')
print(f'- this machine wakes a thread sleeping 1 ms late by {late[0]} ms (p50), {late[1]} ms (p99), {late[2]} ms (p999)')
stolen = [x["steal_seconds"] for x in rows if x.get("steal_seconds") is not None]
if stolen:
    print(f'- CPU stolen by the hypervisor during the runs: {sum(stolen):.1f} s in all (max {max(stolen):.2f} s in one run)')
PY
