#!/usr/bin/env bash
# Tenancy costs, measured on a release build:
#  1. memory per empty tenant: RSS growth for TENANTS (default 10000)
#     TENANT.CREATEs, divided by their number;
#  2. noisy neighbour: a quiet tenant's GET p99 latency alone, then while a
#     second tenant floods far past its OPS limit (and is refused).
#
# Usage: benches/tenants.sh [tenants] (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-10000}
PORT=${PORT:-16381}
cargo build --release --quiet --bin ferrite
./target/release/ferrite --port "$PORT" >/tmp/tenants-ferrite.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$PID/status"; }

before=$(rss)
awk -v n="$T" 'BEGIN { for (i = 0; i < n; i++) { id = sprintf("t%d", i); printf "*2\r\n$13\r\nTENANT.CREATE\r\n$%d\r\n%s\r\n", length(id), id } }' |
  redis-cli -p "$PORT" --pipe >/dev/null
after=$(rss)
echo "empty_tenants,rss_growth_bytes,bytes_per_tenant"
awk -v n="$T" -v g=$((after - before)) 'BEGIN { printf "%d,%d,%.0f\n", n, g, g / n }'

# Make room under max_tenants for the two tenants of the second part.
redis-cli -p "$PORT" TENANT.DELETE t0 >/dev/null
redis-cli -p "$PORT" TENANT.DELETE t1 >/dev/null
redis-cli -p "$PORT" TENANT.CREATE quiet TIER enterprise OPS 100000000 PASSWORD q >/dev/null
redis-cli -p "$PORT" TENANT.CREATE noisy TIER free OPS 1000 CONNECTIONS 100 PASSWORD n >/dev/null
redis-cli -p "$PORT" --user quiet --pass q set key:000000000001 x >/dev/null 2>&1

p99() { # the quiet tenant's GET p99 (ms) at a fixed, modest load
  redis-benchmark -p "$PORT" --user quiet -a q -t get -c 10 -n 100000 -r 1 -q --csv 2>/dev/null |
    awk -F'","' 'index($1, "\"GET") == 1 {gsub(/"/, "", $7); print $7; exit}'
}
alone=$(p99)
# redis-benchmark stops at the first error reply, so the flood is a small
# pipelining client that keeps going when refused (bounded: 8 seconds).
python3 - "$PORT" <<'PY' &
import socket, sys, threading, time
port = int(sys.argv[1])
def flood():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*3\r\n$4\r\nAUTH\r\n$5\r\nnoisy\r\n$1\r\nn\r\n")
    s.recv(64)
    batch = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 64
    end = time.time() + 8
    while time.time() < end:
        s.sendall(batch)
        got = 0
        while got < 64:
            # Every reply here (a null or an error) is one line.
            got += s.recv(65536).count(b"\r\n")
threads = [threading.Thread(target=flood) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
PY
FLOOD=$!
sleep 1
crowded=$(p99)
kill $FLOOD 2>/dev/null || true
refused=$(redis-cli -p "$PORT" TENANT.STATS noisy | awk 'prev == "rate_limited" {print; exit} {prev = $0}')
echo "quiet_p99_alone_ms,quiet_p99_with_noisy_flood_ms,ratio,noisy_requests_refused"
awk -v a="$alone" -v c="$crowded" -v r="$refused" 'BEGIN { printf "%s,%s,%.2f,%s\n", a, c, c / a, r }'
