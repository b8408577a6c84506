#!/usr/bin/env bash
# Stream ownership on the command line (README, "Stream ownership"): small
# session streams assigned through `sessions-input` in the seed library's
# format, owned by two workers, one killed with SIGKILL mid-way: its
# sessions are taken over once its leases expire, and finished in order.
# Run it after `make plugins build`: examples/ownership-tour.sh. Uses the
# Redis $REDIS_URL names, else starts one of its own on a free loopback
# port, stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd):$PATH"
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT

if [ -z "${REDIS_URL:-}" ]; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --loglevel warning > "$dir/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  export REDIS_URL="redis://127.0.0.1:$port"
  echo "ownership-tour: started redis-server on port $port (stopped on exit)"
fi

# Six sessions of 40 numbered events each (the chaos plugin checks the
# order: `seq` must follow the last one acked), a little slow to handle.
for s in 40 41 42 43 44 45; do
  for i in $(seq 1 40); do
    host produce --stream "session:$s" seq="$i" wasi_sleep_ms=100 >/dev/null
  done
  host produce --stream "session:$s" lbs-end=1 >/dev/null
done
echo "ownership-tour: 6 sessions of 40 events, each ended by an end marker"

# Assignments: `host assign`, or a plain XADD as the seed library's producers write it.
host assign --assignments sessions-input --stream session:42 --info '{"user":"ann"}'
for s in 40 41 43 44 45; do
  redis-cli -u "$REDIS_URL" xadd sessions-input '*' lbs-input "{\"DataStreamName\":\"session:$s\",\"Info\":{}}" >/dev/null
done

host run --plugin plugins/dist/chaos.wasm --assignments sessions-input --consumer worker-1 --grant-key '*:seq' \
  --lease-ttl-ms 2000 --heartbeat-ms 500 --parallel 3 > "$dir/worker-1.log" 2>&1 &
pids+=($!)
host run --plugin plugins/dist/chaos.wasm --assignments sessions-input --consumer worker-2 --grant-key '*:seq' \
  --lease-ttl-ms 2000 --heartbeat-ms 500 --parallel 3 > "$dir/worker-2.log" 2>&1 &
pids+=($!)
sleep 1.5
host owners --assignments sessions-input

echo "ownership-tour: kill -9 worker-1"
kill -9 "${pids[-2]}"
wait "${pids[-2]}" 2>/dev/null || true
for _ in $(seq 600); do
  host owners --assignments sessions-input | grep -q '^0 assignments in progress' && break
  sleep 0.1
done
host owners --assignments sessions-input
{ grep -c "took over the stream" "$dir/worker-2.log" || true; } | sed 's/^/ownership-tour: streams worker-2 took over: /'
for s in 40 41 42 43 44 45; do
  last=$(redis-cli -u "$REDIS_URL" get "session:$s:seq")
  [ "$last" = 40 ] || { echo "ownership-tour: session:$s ended at seq $last, not 40" >&2; cat "$dir"/worker-*.log >&2; exit 1; }
done
[ "$(redis-cli -u "$REDIS_URL" xlen sessions-input:dlq)" = 0 ] || { echo "ownership-tour: dead letters" >&2; exit 1; }
[ -z "$(redis-cli -u "$REDIS_URL" keys '*:owner')" ] || { echo "ownership-tour: leases left" >&2; exit 1; }
echo "ownership-tour: every session finished in order, no dead letter, no lease left"
