#!/usr/bin/env bash
# Side-by-side throughput: redis-server (Debian's 7.0) and Ferrite (release),
# both on loopback, driven by redis-benchmark in one run. Ferrite is measured
# twice: from the global context, and through a tenant's connections
# (redis-benchmark --user bench -a benchpw), so the cost of tenancy shows.
#
# Each test runs ROUNDS times, alternating redis and Ferrite so that machine
# noise hits both alike; the median requests/s of each is reported, and the
# ratio Ferrite/Redis. Server CPU time per request (from /proc, user+system)
# is printed too: it is steadier than throughput on a shared machine.
#
# Usage: benches/side_by_side.sh [requests-per-test] (default 200000)
#        TESTS=set,get PIPES="1 16" ROUNDS=3 benches/side_by_side.sh
# ROUNDS_TO_STDERR=1 prints every round's "rps cpu" of each side as it goes.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-200000}
TESTS=${TESTS:-set,get,incr,lpush,lpop,sadd,hset,zadd,lrange_100,mset}
PIPES=${PIPES:-1 16}
ROUNDS=${ROUNDS:-3}
RPORT=${RPORT:-16379}
FPORT=${FPORT:-16380}
# Like redis-server here, without persistence unless asked (benches/persistence.sh measures it).
FERRITE_ARGS=${FERRITE_ARGS:---appendonly no}
# PIN=1 runs both servers on core 1 and redis-benchmark on core 0, so the
# load generator and the server under test never fight over a core.
PIN=${PIN:-0}
if [ "$PIN" = 1 ]; then SRV="taskset -c 1"; CLI="taskset -c 0"; else SRV=""; CLI=""; fi

cargo build --release --quiet --bin ferrite
ports_free "$RPORT" "$FPORT"
$SRV redis-server --port "$RPORT" --save '' --appendonly no --daemonize no >/tmp/bench-redis.log 2>&1 &
RPID=$!
# shellcheck disable=SC2086
$SRV ./target/release/ferrite --port "$FPORT" $FERRITE_ARGS >/tmp/bench-ferrite.log 2>&1 &
FPID=$!
trap 'kill $RPID $FPID 2>/dev/null; wait 2>/dev/null' EXIT
wait_up "$RPORT" "$FPORT"
# A tenant with limits high enough not to throttle the benchmark itself.
redis-cli -p "$FPORT" TENANT.CREATE bench TIER enterprise OPS 1000000000 KEYS 1000000000 MEMORY 64gb CONNECTIONS 10000 PASSWORD benchpw >/dev/null

# port pid test pipeline [auth...] -> "rps cpu_us_per_request" of the named test's own line
run() {
  local before after rps
  before=$(cpu_ticks "$2")
  # shellcheck disable=SC2086
  rps=$($CLI redis-benchmark -p "$1" ${5:-} -t "$3" -P "$4" -c 50 -n "$N" -r 100000 -q --csv 2>/dev/null | rps_of "$3")
  after=$(cpu_ticks "$2")
  echo "$rps $(us_per_request $((after - before)) "$N")"
}


TENANT_AUTH="--user bench -a benchpw"
echo "test,pipeline,redis_rps,ferrite_rps,ratio,redis_cpu_us_per_req,ferrite_cpu_us_per_req,tenant_rps,tenant_vs_global,tenant_vs_redis,tenant_cpu_us_per_req,tenant_cpu_vs_global"
for pipe in $PIPES; do
  # Tests run in redis-benchmark's own order, so GET finds SET's keys and LPOP LPUSH's list.
  redis-cli -p "$RPORT" flushall >/dev/null; redis-cli -p "$FPORT" flushall >/dev/null
  redis-cli -p "$FPORT" --user bench --pass benchpw flushall >/dev/null 2>&1
  for t in ${TESTS//,/ }; do
    rr=(); fr=(); tr=()
    for _ in $(seq "$ROUNDS"); do
      rr+=("$(run "$RPORT" "$RPID" "$t" "$pipe")")
      fr+=("$(run "$FPORT" "$FPID" "$t" "$pipe")")
      tr+=("$(run "$FPORT" "$FPID" "$t" "$pipe" "$TENANT_AUTH")")
      [ "${ROUNDS_TO_STDERR:-0}" = 0 ] || echo "$t -P $pipe round: redis ${rr[-1]}, global ${fr[-1]}, tenant ${tr[-1]}" >&2
    done
    r=$(printf '%s\n' "${rr[@]}" | awk '{print $1}' | median)
    f=$(printf '%s\n' "${fr[@]}" | awk '{print $1}' | median)
    tn=$(printf '%s\n' "${tr[@]}" | awk '{print $1}' | median)
    rc=$(printf '%s\n' "${rr[@]}" | awk '{print $2}' | median)
    fc=$(printf '%s\n' "${fr[@]}" | awk '{print $2}' | median)
    tc=$(printf '%s\n' "${tr[@]}" | awk '{print $2}' | median)
    awk -v t="$t" -v p="$pipe" -v r="$r" -v f="$f" -v rc="$rc" -v fc="$fc" -v tn="$tn" -v tc="$tc" \
      'BEGIN { printf "%s,%s,%.0f,%.0f,%.2f,%s,%s,%.0f,%.2f,%.2f,%s,%.2f\n", t, p, r, f, f / r, rc, fc, tn, tn / f, tn / r, tc, tc / fc }'
  done
done
