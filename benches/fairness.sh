#!/usr/bin/env bash
# Fairness: a quiet tenant's PING round trips (p50, p99, worst, in ms) while
# another tenant runs one long command after another, against the same with
# no long command. The long commands are issue 12's: LCS of two 11,580-byte
# strings (IDX: the whole table), KEYS over 1M keys (a pattern that matches
# none, so the reply is small and the walk is all), SUNIONSTORE of two
# 1M-member sets. Each phase runs DURATION seconds (default 10; not
# SECONDS, which bash keeps as its own clock).
#
# Usage: [DURATION=10] [FERRITE=path/to/ferrite] benches/fairness.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
PORT=${PORT:-16698}
start_ferrite "$PORT"
cli() { redis-cli -p "$PORT" "$@"; }
cli TENANT.CREATE noisy PASSWORD pw MEMORY 8gb KEYS 100000000 OPS 100000000 >/dev/null
cli TENANT.CREATE quiet PASSWORD pw OPS 100000000 >/dev/null
noisy() { redis-cli -p "$PORT" --user noisy --pass pw --no-auth-warning "$@"; }

# The data: strings for LCS, 1M keys, two 1M-member sets.
a=$(head -c 11580 /dev/urandom | base64 -w0 | head -c 11580)
b=$(head -c 11580 /dev/urandom | base64 -w0 | head -c 11580)
noisy SET lcs:a "$a" >/dev/null
noisy SET lcs:b "$b" >/dev/null
{ printf '*3\r\n$4\r\nAUTH\r\n$5\r\nnoisy\r\n$2\r\npw\r\n'; set_stream 1000000 'key:%d' v; } | redis-cli -p "$PORT" --pipe >/dev/null
for s in 1 2; do
  awk -v s="$s" 'BEGIN {
    printf "*3\r\n$4\r\nAUTH\r\n$5\r\nnoisy\r\n$2\r\npw\r\n"
    for (i = 0; i < 1000000; i += 1000) {
      printf "*%d\r\n$4\r\nSADD\r\n$4\r\nset%d\r\n", 1002, s
      for (j = i; j < i + 1000; j++) { m = sprintf("m%d", j + (s - 1) * 500000); printf "$%d\r\n%s\r\n", length(m), m }
    } }' | redis-cli -p "$PORT" --pipe >/dev/null
done

probe() { python3 benches/latency_probe.py "$PORT" quiet pw "$DURATION"; }
echo "load,pings,p50_ms,p99_ms,worst_ms,long_commands_done"
echo "none,$(probe),0"
for load in "LCS lcs:a lcs:b IDX" "KEYS nomatch:*" "SUNIONSTORE dest set1 set2"; do
  ( n=0; while :; do noisy $load >/dev/null; n=$((n + 1)); echo "$n" > /tmp/fairness.count; done ) &
  looper=$!
  result=$(probe)
  kill "$looper" 2>/dev/null || true
  wait "$looper" 2>/dev/null || true
  echo "${load%% *},$result,$(cat /tmp/fairness.count 2>/dev/null || echo 0)"
  rm -f /tmp/fairness.count
done
