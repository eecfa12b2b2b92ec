#!/usr/bin/env bash
# RSS growth of a Ferrite process filled with one big collection, per type:
# a 2M-element list (LPUSH) and a 100k-member set, hash and sorted set
# (SADD, HSET, ZADD with -r 100000), each into a fresh server, for this
# build and optionally another (FERRITE_B), side by side.
#
# Usage: benches/collection_memory.sh
#        FERRITE_B=path/to/other/ferrite benches/collection_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
PORT=${PORT:-16694}
cargo build --release --quiet --bin ferrite
BINS=(./target/release/ferrite)
[ -n "${FERRITE_B:-}" ] && BINS+=("$FERRITE_B")
ports_free "$PORT"
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "type,binary,rss_growth_mb,used_memory_mb"
for t in lpush sadd hset zadd; do
  for b in "${BINS[@]}"; do
    "$b" --port "$PORT" --appendonly no >/dev/null 2>&1 &
    pid=$!
    wait_up "$PORT"
    r0=$(rss_kb "$pid")
    if [ "$t" = lpush ]; then n=2000000; r=(); else n=400000; r=(-r 100000); fi
    redis-benchmark -p "$PORT" -t "$t" -P 64 -c 10 -n "$n" "${r[@]}" -q >/dev/null 2>&1
    used=$(redis-cli -p "$PORT" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
    awk -v t="$t" -v b="$b" -v g="$(($(rss_kb "$pid") - r0))" -v u="$used" \
      'BEGIN { printf "%s,%s,%.0f,%.0f\n", t, b, g / 1024, u / 1048576 }'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done
