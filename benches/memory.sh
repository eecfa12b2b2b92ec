#!/usr/bin/env bash
# Bytes per key for N keys with 32-byte values: redis-server's used_memory
# and RSS against Ferrite's own accounting (INFO used_memory) and its RSS.
# Both are filled by the same pipelined SET stream (redis-cli --pipe), and
# measured as the growth over the empty server.
#
# Usage: benches/memory.sh [keys] (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
RPORT=${RPORT:-16379}
FPORT=${FPORT:-16380}
cargo build --release --quiet --bin ferrite
ports_free "$RPORT" "$FPORT"
redis-server --port "$RPORT" --save '' --appendonly no >/tmp/mem-redis.log 2>&1 &
RPID=$!
./target/release/ferrite --port "$FPORT" --appendonly no >/tmp/mem-ferrite.log 2>&1 &
FPID=$!
trap 'kill $RPID $FPID 2>/dev/null; wait 2>/dev/null' EXIT
wait_up "$RPORT" "$FPORT"

DATA=$(mktemp)
VALUE=$(printf 'v%.0s' $(seq 32))
set_stream "$N" "key:%012d" "$VALUE" >"$DATA"

used() { redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ {gsub(/\r/,"",$2); print $2}'; }
rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }

r_used0=$(used "$RPORT"); r_rss0=$(rss "$RPID")
f_used0=$(used "$FPORT"); f_rss0=$(rss "$FPID")
redis-cli -p "$RPORT" --pipe <"$DATA" >/dev/null
redis-cli -p "$FPORT" --pipe <"$DATA" >/dev/null
rm -f "$DATA"
r_keys=$(redis-cli -p "$RPORT" dbsize); f_keys=$(redis-cli -p "$FPORT" dbsize)
r_used=$(used "$RPORT"); r_rss=$(rss "$RPID")
f_used=$(used "$FPORT"); f_rss=$(rss "$FPID")

echo "keys,redis_used_per_key,redis_rss_per_key,ferrite_accounted_per_key,ferrite_rss_per_key"
awk -v n="$N" -v rk="$r_keys" -v fk="$f_keys" -v ru=$((r_used - r_used0)) -v rr=$((r_rss - r_rss0)) -v fu=$((f_used - f_used0)) -v fr=$((f_rss - f_rss0)) \
  'BEGIN { if (rk != n || fk != n) { print "key count mismatch: " rk " " fk > "/dev/stderr"; exit 1 }
           printf "%d,%.1f,%.1f,%.1f,%.1f\n", n, ru / n, rr / n, fu / n, fr / n }'
