#!/usr/bin/env bash
# Redis Cluster on the command line (README, "Redis Cluster"): a stream of
# orders in 4 partitions, keyed by customer, consumed by the Rust `orders`
# plugin with `host run --partitions`, then `host info`, `host pending` and
# `host dlq list` summing the partitions, and `host demo` on the cluster.
# Run it after `make plugins build`: examples/cluster-tour.sh. Uses the
# cluster $CLUSTER names (redis+cluster://HOST:PORT), else starts one of
# its own: 3 masters + 3 replicas on free loopback ports, stopped on exit.
# The demo runs for $DEMO_SECONDS seconds (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd):$PATH"
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# A free loopback port whose cluster bus port (+10000) is free too.
free_port() {
  python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    b = socket.socket()
    try:
        if port >= 50000: raise OSError
        b.bind(("127.0.0.1", port + 10000))
    except OSError:
        a.close(); b.close(); continue
    a.close(); b.close(); print(port); break'
}

if [ -z "${CLUSTER:-}" ]; then
  ports=()
  for _ in 1 2 3 4 5 6; do
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --loglevel warning \
      --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 > "$dir/$port.log" 2>&1 &
    pids+=($!)
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 --cluster-yes > "$dir/create.log"
  for _ in $(seq 300); do
    ok=1
    for port in "${ports[@]}"; do redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0; done
    [ "$ok" = 1 ] && break
    sleep 0.1
  done
  export CLUSTER="redis+cluster://127.0.0.1:${ports[0]}"
  echo "cluster-tour: started a Redis Cluster of 3 masters + 3 replicas on ports ${ports[*]} (stopped on exit)"
fi
echo "cluster-tour: cluster at $CLUSTER"

# Orders keyed by customer: each customer's orders go to one partition, in order.
customers=(alice bob carol dave erin)
for i in $(seq 1 20); do
  c=${customers[$(( i % 5 ))]}
  host produce --redis "$CLUSTER" --stream orders --partitions 4 --partition-key customer customer="$c" type=order.placed order_id="o-$i" amount="$i.50" >/dev/null
done
host produce --redis "$CLUSTER" --stream orders --partitions 4 --partition-key customer customer=alice type=order.placed
host produce --redis "$CLUSTER" --stream orders --partitions 4 --partition-key customer customer=bob type=order.paid order_id=o-bad amount=12.3.4 >/dev/null
echo "cluster-tour: produced 22 orders over 4 partitions (one malformed, one without order id and amount)"

host run --plugin plugins/dist/orders.wasm --redis "$CLUSTER" --stream orders --group g --partitions 4 --consumers 2 > "$dir/run.log" 2>&1 &
run=$!
pids+=("$run")
for _ in $(seq 300); do
  host info --redis "$CLUSTER" --stream orders --partitions 4 | grep -q 'group g: 0 pending, lag 0 in all' && break
  sleep 0.1
done
kill -INT "$run"
wait "$run" || true

host info --redis "$CLUSTER" --stream orders --partitions 4
host pending --redis "$CLUSTER" --stream orders --group g --partitions 4
host dlq list --redis "$CLUSTER" --stream orders --partitions 4
host dlq list --redis "$CLUSTER" --stream orders --partitions 4 | grep -q ' 2 in all' \
  || { echo "cluster-tour: expected the 2 bad orders as dead letters" >&2; exit 1; }

echo "cluster-tour: the demo on the cluster, partitioned, for ${DEMO_SECONDS:-20} s"
timeout -s INT "${DEMO_SECONDS:-20}" host demo --redis "$CLUSTER" --partitions 4 --port 0 > "$dir/demo.log" 2>&1 || [ $? -eq 124 ]
grep -q 'dashboard on http://' "$dir/demo.log" || { cat "$dir/demo.log" >&2; exit 1; }
echo "cluster-tour: done"
