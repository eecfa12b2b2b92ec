#!/usr/bin/env bash
# Tenancy costs, measured on a release build:
#  1. memory per empty tenant: RSS growth for TENANTS (default 10000)
#     TENANT.CREATEs, divided by their number;
#  2. noisy neighbour: a quiet tenant's GET p99 latency alone, then while a
#     second tenant floods far past its OPS limit (and is refused), in
#     ROUNDS (default 5) alternating rounds, compared by their medians.
#     The control: the same flood aimed at a tenant of a second, separate
#     Ferrite process. On a 2-core machine the flood's clients and the
#     kernel's networking compete with everything; what the quiet tenant
#     loses to the flood *inside the same process* beyond what it loses to
#     the control is what tenant isolation failed to prevent.
#
# Usage: [ROUNDS=n] [PIN=1] benches/tenants.sh [tenants] (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
T=${1:-10000}
PORT=${PORT:-16381}
cargo build --release --quiet --bin ferrite
# PIN=1 runs the server on core 1 and every client (the quiet tenant's
# redis-benchmark and the flood) on core 0, so the flooding client's own CPU
# competes with the load generator rather than with the server under test.
PIN=${PIN:-0}
if [ "$PIN" = 1 ]; then SRV="taskset -c 1"; CLI="taskset -c 0"; else SRV=""; CLI=""; fi
OTHER=$((PORT + 1))
ports_free "$PORT" "$OTHER"
$SRV ./target/release/ferrite --port "$PORT" --appendonly no >/tmp/tenants-ferrite.log 2>&1 &
PID=$!
$SRV ./target/release/ferrite --port "$OTHER" --appendonly no >/tmp/tenants-other.log 2>&1 &
OPID=$!
trap 'kill $PID $OPID 2>/dev/null; pkill -f "redis-cli -p [0-9]* --user noisy" || true; wait 2>/dev/null' EXIT
wait_up "$PORT" "$OTHER"
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
for p in "$PORT" "$OTHER"; do
  redis-cli -p "$p" TENANT.CREATE noisy TIER free OPS 1000 CONNECTIONS 100 PASSWORD n >/dev/null
done
redis-cli -p "$PORT" --user quiet --pass q set key:000000000001 x >/dev/null 2>&1

p99() { # the quiet tenant's GET p99 (ms) at a fixed, modest load
  $CLI redis-benchmark -p "$PORT" --user quiet -a q -t get -c 10 -n 100000 -r 1 -q --csv 2>/dev/null |
    awk -F'","' 'index($1, "\"GET") == 1 {gsub(/"/, "", $7); print $7; exit}'
}
# redis-benchmark stops at the first error reply, so the flood is four
# `redis-cli --pipe` connections fed an endless stream of GETs: they keep
# going when refused, and cost little CPU of their own (a Python client
# did, and on two cores that showed up in the quiet tenant's latency).
flood() { # at the noisy tenant of the server on port $1
  for _ in 1 2 3 4; do
    (yes $'*2\r\n$3\r\nGET\r\n$1\r\nk\r' | $CLI redis-cli -p "$1" --user noisy --pass n --pipe >/dev/null 2>&1 &)
  done
  sleep 0.5
}
stop_flood() { pkill -f "redis-cli -p $1 --user noisy" || true; sleep 0.2; }
refused() { redis-cli -p "$PORT" TENANT.STATS noisy | awk 'prev == "rate_limited" {print; exit} {prev = $0}'; }
# Rounds alternate (alone, control, flooded) so that drift of the shared
# machine hits every column alike; the medians are compared.
ROUNDS=${ROUNDS:-5}
echo "round,quiet_p99_alone_ms,with_flood_at_other_process_ms,with_flood_at_same_process_ms,noisy_requests_refused"
for r in $(seq "$ROUNDS"); do
  alone=$(p99)
  flood "$OTHER"
  control=$(p99)
  stop_flood "$OTHER"
  before=$(refused)
  flood "$PORT"
  crowded=$(p99)
  stop_flood "$PORT"
  echo "$r,$alone,$control,$crowded,$(($(refused) - before))"
done | tee /tmp/tenants-rounds.csv
# (The file has no header: the header line above is printed before the tee.)
col() { cut -d, -f"$1" /tmp/tenants-rounds.csv | median; }
a=$(col 2) o=$(col 3) c=$(col 4)
echo "median_alone_ms,median_control_ms,median_flooded_ms,flooded/alone,control/alone,flooded/control"
awk -v a="$a" -v o="$o" -v c="$c" 'BEGIN { printf "%s,%s,%s,%.2f,%.2f,%.2f\n", a, o, c, c / a, o / a, c / o }'
