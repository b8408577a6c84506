#!/usr/bin/env bash
# `make bench-cluster`: `host bench` on a local Redis Cluster against one
# Redis server, in the same run. Starts a single redis-server and a cluster
# of 3 masters + 3 replicas (`redis-server --cluster-enabled yes`, joined by
# `redis-cli --cluster create`) on free loopback ports, all stopped by pid at
# exit; then, BENCH_ROUNDS times (default 3), interleaved: the no-op plugin
# on the single server (one stream, and 3 partitions), on a server with one
# replica (what replication alone costs), and on the cluster with 1, 3 and
# 6 partitions (each partition read by one consumer task).
# Prints a table: entries/s (median), the host's CPU per entry, and the
# Redis servers' CPU per entry (all nodes, replicas included: INFO cpu).
# BENCH_ENTRIES (default 200000) sizes the runs.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST="${CARGO_TARGET_DIR:-target}/release/host"
NOOP=plugins/dist/noop.wasm
N="${BENCH_ENTRIES:-200000}"
ROUNDS="${BENCH_ROUNDS:-3}"
OUT="${BENCH_OUT:-${CARGO_TARGET_DIR:-target}/bench-cluster.jsonl}"
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"
: > "$OUT"

# A free loopback port whose cluster bus port (+10000) is free too.
free_port() {
  python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    if port >= 50000: a.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 10000))
    except OSError:
        a.close(); continue
    a.close(); b.close(); print(port); break'
}

start_server() { # PORT EXTRA...
  local port=$1; shift
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" "$@" > "$DIR/$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && return; sleep 0.05; done
  echo "bench-cluster: redis-server on port $port did not start: $(tail -5 "$DIR/$port.log")" >&2
  exit 1
}

SINGLE=$(free_port)
start_server "$SINGLE"
# One server with a replica: what replication alone costs (the cluster's
# masters each have one).
PRIMARY=$(free_port)
start_server "$PRIMARY" --repl-diskless-sync-delay 0
REPLICA=$(free_port)
start_server "$REPLICA" --replicaof 127.0.0.1 "$PRIMARY"
for _ in $(seq 300); do
  redis-cli -p "$REPLICA" info replication | grep -q 'master_link_status:up' && break
  sleep 0.1
done
NODES=()
for _ in 1 2 3 4 5 6; do
  port=$(free_port)
  start_server "$port" --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 \
    --repl-diskless-sync-delay 0
  NODES+=("$port")
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${NODES[@]}") --cluster-replicas 1 --cluster-yes > "$DIR/create.log"
for _ in $(seq 300); do
  ok=1
  for port in "${NODES[@]}"; do
    redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0
    redis-cli -p "$port" info replication | grep -Eq 'role:master|master_link_status:up' || ok=0
  done
  [ "$ok" = 1 ] && break
  sleep 0.1
done
[ "$ok" = 1 ] || { echo "bench-cluster: the cluster did not become ready" >&2; exit 1; }
CLUSTER="redis+cluster://127.0.0.1:${NODES[0]}"
echo "bench-cluster: one server on $SINGLE; cluster of 3 masters + 3 replicas on ${NODES[*]}" >&2

# CPU seconds (user + system) of the Redis servers given by port.
redis_cpu() {
  local total=0
  for port in "$@"; do
    total=$(redis-cli -p "$port" info cpu | python3 -c '
import sys
d = dict(l.strip().split(":", 1) for l in sys.stdin if ":" in l)
print(float(d["used_cpu_user"]) + float(d["used_cpu_sys"]) + float(sys.argv[1]))' "$total")
  done
  echo "$total"
}

run() { # NAME URL PORTS ARGS...
  local name=$1 url=$2 ports=$3; shift 3
  echo "bench-cluster: $name: host bench --redis $url $*" >&2
  local before after
  before=$(redis_cpu $ports)
  RUST_LOG=warn "$HOST" bench --redis "$url" --plugin "$NOOP" --entries "$N" "$@" > "$DIR/line"
  after=$(redis_cpu $ports)
  python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); d["run"]=sys.argv[2]; d["redis_cpu_seconds"]=float(sys.argv[4])-float(sys.argv[3]); print(json.dumps(d))' \
    "$DIR/line" "$name" "$before" "$after" >> "$OUT"
}

for round in $(seq "$ROUNDS"); do
  echo "bench-cluster: round $round of $ROUNDS" >&2
  run single-1         "redis://127.0.0.1:$SINGLE" "$SINGLE"
  run single-3-parts   "redis://127.0.0.1:$SINGLE" "$SINGLE" --partitions 3
  run replicated-1     "redis://127.0.0.1:$PRIMARY" "$PRIMARY $REPLICA"
  run cluster-1-part   "$CLUSTER" "${NODES[*]}" --partitions 1
  run cluster-3-parts  "$CLUSTER" "${NODES[*]}" --partitions 3
  run cluster-6-parts  "$CLUSTER" "${NODES[*]}" --partitions 6
done

python3 - "$OUT" <<'PY'
import json, os, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["run"], []).append(r)
def med(name, f):
    return statistics.median(f(r) for r in runs[name])
base = med("single-1", lambda r: r["entries_per_s"])
print(f"{os.cpu_count()} cores; {len(runs['single-1'])} rounds; the no-op Rust plugin, backlog of {runs['single-1'][0]['entries']} entries")
print()
print("| run | partitions | entries/s (median) | min–max | vs one server | host CPU µs/entry | Redis CPU µs/entry (all nodes) |")
print("|---|---|---|---|---|---|---|")
for name in runs:
    eps = [r["entries_per_s"] for r in runs[name]]
    rate = statistics.median(eps)
    host = med(name, lambda r: r["cpu_seconds"] / r["entries"] * 1e6)
    redis = med(name, lambda r: r["redis_cpu_seconds"] / r["entries"] * 1e6)
    parts = runs[name][0]["partitions"] or "-"
    print(f"| {name} | {parts} | {rate:.0f} | {min(eps):.0f}–{max(eps):.0f} | {rate / base:.2f}x | {host:.2f} | {redis:.2f} |")
PY
