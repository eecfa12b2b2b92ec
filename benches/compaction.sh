#!/usr/bin/env bash
# A compaction of a data set with one big collection, as clients see it:
# a 2M-element list, a 100k-member set, hash and sorted set and 100k
# strings (what benches/persistence.sh leaves behind). ROUNDS times:
# BGREWRITEAOF, timed until INFO shows it done (polled every 10 ms), while
# two clients send back to back: one writes the big collections in turn
# (LPUSH, SADD, HSET, ZADD), one SETs another key; their worst round trips
# show what the copy-on-write of big collections costs clients. For scale, the worst round trip
# in a window as long just before each compaction (no compaction running),
# and how long each cut held the server's exclusive lock (from its log).
#
# Usage: [ROUNDS=6] benches/compaction.sh
#        FERRITE=path/to/ferrite benches/compaction.sh   (another build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-6}
PORT=${PORT:-16631}
F=$(ferrite_binary)
ports_free "$PORT"
D=$(mktemp -d)
printf '[persistence]\nauto-aof-rewrite-percentage = 0\n' >"$D/noauto.toml"
$F --config "$D/noauto.toml" --port "$PORT" --dir "$D/data" >"$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
wait_up "$PORT"
redis-benchmark -p "$PORT" -t lpush -P 64 -c 10 -n 2000000 -q >/dev/null 2>&1
for t in set sadd hset zadd; do
  redis-benchmark -p "$PORT" -t "$t" -P 64 -c 10 -n 400000 -r 100000 -q >/dev/null 2>&1
done
echo "llen mylist: $(redis-cli -p "$PORT" llen mylist), scard myset: $(redis-cli -p "$PORT" scard myset)," \
  "hlen myhash: $(redis-cli -p "$PORT" hlen myhash), zcard myzset: $(redis-cli -p "$PORT" zcard myzset), keys: $(redis-cli -p "$PORT" dbsize)"

python3 - "$PORT" "$ROUNDS" <<'PY'
import socket, subprocess, sys, threading, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
stop = False
def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
def client(cmds, out):
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    i = 0
    while not stop:
        i += 1
        t = time.perf_counter(); s.sendall(cmds[i % len(cmds)]); s.recv(64); out.append((time.perf_counter() - t, t))
def info(field):
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "persistence"], capture_output=True, text=True).stdout
    return next(l.split(":")[1].strip() for l in out.splitlines() if l.startswith(field + ":"))
big, other = [], []
writes = [resp(b"LPUSH", b"mylist", b"x"), resp(b"SADD", b"myset", b"new"), resp(b"HSET", b"myhash", b"new", b"x"),
          resp(b"ZADD", b"myzset", b"1", b"new")]
threads = [threading.Thread(target=client, args=(writes, big)),
           threading.Thread(target=client, args=([resp(b"SET", b"other", b"x")], other))]
for t in threads: t.start()
took, windows = [], []
for _ in range(rounds):
    time.sleep(0.5)
    t0 = time.perf_counter()
    subprocess.run(["redis-cli", "-p", str(port), "bgrewriteaof"], capture_output=True)
    while info("aof_rewrite_in_progress") != "0":
        time.sleep(0.01)
    t1 = time.perf_counter()
    took.append((t1 - t0) * 1e3)
    windows.append((t0, t1))
stop = True
for t in threads: t.join()
print("compaction ms per round: " + " ".join("%.0f" % t for t in took) + "; median %.0f" % sorted(took)[len(took) // 2])
def worst(lat, a, b):
    return max((d for d, t in lat if a <= t <= b), default=0) * 1e3
for name, lat in (("LPUSH/SADD/HSET/ZADD to big collections", big), ("SET to another key", other)):
    during = [worst(lat, a, b) for a, b in windows]
    before = [worst(lat, a - (b - a) - 0.05, a - 0.05) for a, b in windows]
    p99 = sorted(d for d, _ in lat)[int(len(lat) * 0.99)] * 1e3
    print("%s: %d round trips, p99 %.2f ms; worst per compaction (ms): %s; in as long before it: %s"
          % (name, len(lat), p99, " ".join("%.1f" % w for w in during), " ".join("%.1f" % w for w in before)))
PY
echo "cut held (us): $(grep -o 'cut_us=[0-9]*' "$D/log" | cut -d= -f2 | tr '\n' ' ')"
