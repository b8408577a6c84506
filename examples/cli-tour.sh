#!/usr/bin/env bash
# The demo's story on the command line (no dashboard): order events of the
# redis.io streaming guide handled by the Rust `orders` plugin through
# `host run`, then `host pending` and `host dlq list`. Run it after
# `make plugins build`: examples/cli-tour.sh. Uses $REDIS_URL, else a Redis on 127.0.0.1:6379, else
# starts a throw-away redis-server on a spare port (stopped on exit).
# Runs until Ctrl-C, or for $DEMO_SECONDS seconds when set.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST="${CARGO_TARGET_DIR:-target}/debug/host"
PLUGIN=plugins/dist/orders.wasm
STREAM=demo:events:orders
GROUP=notifications
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -z "${REDIS_URL:-}" ]; then
  if redis-cli -p 6379 ping 2>/dev/null | grep -q PONG; then
    export REDIS_URL=redis://127.0.0.1:6379
  else
    port=$(( 20000 + RANDOM % 20000 ))
    while port_busy "$port"; do port=$(( port + 1 )); done
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning &
    pids+=($!)
    for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
    export REDIS_URL="redis://127.0.0.1:$port"
    echo "demo: started redis-server on port $port (no persistence; stopped on exit)"
  fi
fi
echo "demo: Redis at $REDIS_URL, stream $STREAM, group $GROUP"
redis-cli -u "$REDIS_URL" del "$STREAM" "$STREAM:dlq" >/dev/null
echo "demo: reset: deleted $STREAM (with its groups) and $STREAM:dlq to start clean"

produce() { "$HOST" produce --stream "$STREAM" --maxlen 2000 "$@" >/dev/null; }
order() { # order N TYPE [AMOUNT]
  local customers=(alice bob carol dave erin)
  produce type="order.$2" order_id="o-$1" customer="${customers[$(( $1 % 5 ))]}" amount="${3:-$(( $1 * 7 % 300 )).$(( $1 % 100 ))}"
}

for i in $(seq 1 12); do order "$i" placed; done
order 13 paid "12.3.4"      # a malformed amount: the plugin rejects it (dead letter)
for i in $(seq 1 6); do order "$i" paid; done
echo "demo: produced 19 sample orders (one malformed); one more every second from now on"

( i=100; while true; do sleep 1; i=$(( i + 1 )); order "$i" placed; done ) &
pids+=($!)

export RUST_LOG="${RUST_LOG:-info,host::consumer=debug}"
run=("$HOST" run --plugin "$PLUGIN" --stream "$STREAM" --group "$GROUP" --consumers 2)
if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout -s INT "$DEMO_SECONDS" "${run[@]}" || [ $? -eq 124 ]
else
  echo "demo: press Ctrl-C to stop"
  "${run[@]}" || true
fi

echo
"$HOST" pending --stream "$STREAM" --group "$GROUP"
echo
echo "demo: the malformed order went to the dead-letter stream:"
"$HOST" dlq list --stream "$STREAM"
