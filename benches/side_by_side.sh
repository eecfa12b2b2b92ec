#!/usr/bin/env bash
# Side-by-side throughput: redis-server (Debian's 7.0) and Ferrite (release),
# both on loopback, driven by redis-benchmark in one run, test by test, with
# the two servers alternating so that machine noise hits both alike.
#
# Usage: benches/side_by_side.sh [requests-per-test]   (default 200000)
# Prints one CSV line per test and pipeline depth: test,pipeline,redis_rps,ferrite_rps,ratio
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
TESTS=${TESTS:-set,get,incr,lpush,lpop,sadd,hset,zadd,lrange_100,mset}
RPORT=${RPORT:-16379}
FPORT=${FPORT:-16380}

cargo build --release --quiet --bin ferrite
redis-server --port "$RPORT" --save '' --appendonly no --daemonize no >/tmp/bench-redis.log 2>&1 &
RPID=$!
./target/release/ferrite --port "$FPORT" >/tmp/bench-ferrite.log 2>&1 &
FPID=$!
trap 'kill $RPID $FPID 2>/dev/null; wait 2>/dev/null' EXIT
for p in "$RPORT" "$FPORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

rps() { # port test pipeline: the requests/s of the named test's own line
  local name
  name=$(echo "$2" | tr '[:lower:]' '[:upper:]')
  redis-benchmark -p "$1" -t "$2" -P "$3" -c 50 -n "$N" -r 100000 -q --csv 2>/dev/null |
    awk -F'","' -v n="\"$name" 'index($1, n) == 1 && $1 !~ /needed/ {gsub(/"/,"",$2); print $2; exit}'
}

echo "test,pipeline,redis_rps,ferrite_rps,ratio"
for pipe in 1 16; do
  # Tests run in redis-benchmark's own order, so GET finds SET's keys and LPOP LPUSH's list.
  redis-cli -p "$RPORT" flushall >/dev/null; redis-cli -p "$FPORT" flushall >/dev/null
  for t in ${TESTS//,/ }; do
    r=$(rps "$RPORT" "$t" "$pipe")
    f=$(rps "$FPORT" "$t" "$pipe")
    awk -v t="$t" -v p="$pipe" -v r="$r" -v f="$f" 'BEGIN { printf "%s,%s,%.0f,%.0f,%.2f\n", t, p, r, f, f / r }'
  done
done
