#!/usr/bin/env python3
"""Where Redis spends its time in the effects commit (host/src/streams/commit.lua).

Runs the commit script on a chunk of 500 entries of the analytics workload
(two hash counters and one emitted entry of four fields per entry), 20 times,
and variants of it with one part cut out, and prints Redis's own time per
entry for each (INFO commandstats, so neither the network nor this client
counts). The difference between the full script and a variant is what that
part costs. Uses Redis on $REDIS_HOST:$REDIS_PORT (default 127.0.0.1:6379)
and keys under `commit-cost:`, deleted afterwards.

usage: scripts/commit-cost.py
"""
import os
import re
import socket

ENTRIES, RUNS = 500, 20
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = open(os.path.join(HERE, "../host/src/streams/commit.lua")).read()

sock = socket.create_connection((os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "6379"))))
replies = sock.makefile("rb")


def read():
    line = replies.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b"+":
        return rest
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else replies.read(n + 2)[:-2]
    n = int(rest)
    return None if n < 0 else [read() for _ in range(n)]


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    sock.sendall(b"".join(out))
    return read()


def evalsha_usec():
    found = re.search(r"cmdstat_evalsha:calls=\d+,usec=(\d+)", cmd("INFO", "commandstats").decode())
    return int(found.group(1)) if found else 0


def cut(script, old, new):
    assert old in script, old
    return script.replace(old, new)


PASS1 = "  for _ = 1, count do\n    local op, key = ARGV[pos], KEYS[tonumber(ARGV[pos + 1])]\n"
PASS1_END = "  if owner ~= consumer then\n    err = nil"
SKIP_EFFECTS = ("  for _ = 1, count do\n    local op = ARGV[pos]\n    if op == 'x' then pos = pos + 4 + 2 * "
                "tonumber(ARGV[pos + 3]) elseif op == 'h' then pos = pos + 4 end\n  end\n")
VARIANTS = {
    "full script": SCRIPT,
    "without the XADDs": cut(SCRIPT, "redis.call('XADD', key, '*', unpack(ARGV, p + 4, last))", "local _ = last"),
    "without the checks of pass 1": SCRIPT[:SCRIPT.index(PASS1)] + SKIP_EFFECTS + SCRIPT[SCRIPT.index(PASS1_END):],
    "without the XPENDING": cut(SCRIPT, "if exists and ARGV[4] ~= '' then", "if false then").replace(
        "  if mine[id] then", "  if true then"),
    "taking the arguments only": "return {}",
    "without pass 2 (writes, XACK)": cut(SCRIPT, "for a = 1, na do", "for a = 1, 0 do"),
}

stream = "commit-cost:s"
keys = [stream, stream + ":totals", stream + ":paid"]
cmd("DEL", *keys)
ids = [cmd("XADD", stream, "*", "n", i).decode() for i in range(ENTRIES)]
cmd("XGROUP", "CREATE", stream, "g", "0")
args = ["g", "c", ENTRIES, ids[0], ids[-1]]
for i, id in enumerate(ids):
    args += [id, 3, "h", 2, "count:order.paid", 1, "h", 2, "revenue:order.paid", 1234,
             "x", 3, "", 4, "order_id", f"o-{i}", "customer", "c", "amount_cents", "1234", "source", id]


def measure(script):
    """Redis's time per entry of `script`, the median of RUNS runs."""
    sha = cmd("SCRIPT", "LOAD", script).decode()
    times = []
    for _ in range(RUNS):
        cmd("XGROUP", "SETID", stream, "g", "0")
        cmd("XREADGROUP", "GROUP", "g", "c", "COUNT", ENTRIES, "STREAMS", stream, ">")
        cmd("DEL", keys[2])
        before = evalsha_usec()
        cmd("EVALSHA", sha, 3, *keys, *args)
        times.append((evalsha_usec() - before) / ENTRIES)
    return sorted(times)[RUNS // 2]


print(f"Redis time per entry (median of {RUNS} runs), chunks of {ENTRIES} entries:")
for name, script in VARIANTS.items():
    measure(script)  # warm-up: compiling, the Lua heap
    print(f"  {name:32} {measure(script):5.2f} µs")
cmd("DEL", *keys)
