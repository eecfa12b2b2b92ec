#!/usr/bin/env bash
# Is redis-benchmark the limit? For each round and server (redis-server and
# Ferrite, both without persistence unless FERRITE_ARGS / REDIS_ARGS say
# otherwise), the requests/s, redis-benchmark's own CPU per request (user +
# system, from `perf stat -e task-clock`) and their product: a product near
# 1.0 means the load generator was busy the whole run, so the rate is what it
# could ask for, whichever server answered. Also the server's voluntary
# context switches per request (all its threads, from /proc): how often it
# went to sleep and had to be woken by the client's next send.
#
# Usage: [TEST=set] [PIPE=1] [ROUNDS=3] benches/client_bound.sh [requests] (default 300000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-300000}
TEST=${TEST:-set}
PIPE=${PIPE:-1}
ROUNDS=${ROUNDS:-3}
FERRITE_ARGS=${FERRITE_ARGS:---appendonly no}
REDIS_ARGS=${REDIS_ARGS:---appendonly no}
RPORT=16621
FPORT=16622
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
cargo build --release --quiet --bin ferrite
ports_free $RPORT $FPORT
D=$(mktemp -d)
# shellcheck disable=SC2086
redis-server --port $RPORT --dir "$D" --save '' $REDIS_ARGS >/dev/null 2>&1 &
RPID=$!
# shellcheck disable=SC2086
./target/release/ferrite --port $FPORT --dir "$D/ferrite" $FERRITE_ARGS >/dev/null 2>&1 &
FPID=$!
trap 'kill $RPID $FPID 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
wait_up $RPORT $FPORT
# pid -> voluntary context switches of all its threads so far
sleeps() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }'; }
echo "round,server,rps,client_cpu_us_per_request,rps_x_client_cpu,server_sleeps_per_request"
for i in $(seq "$ROUNDS"); do
  for s in "redis $RPORT $RPID" "ferrite $FPORT $FPID"; do
    set -- $s
    z0=$(sleeps "$3")
    t0=$(date +%s%N)
    perf stat -x, -e task-clock -o "$D/stat" \
      redis-benchmark -p "$2" -t "$TEST" -P "$PIPE" -c 50 -n "$N" -r 100000 -q >/dev/null 2>&1
    t1=$(date +%s%N)
    z1=$(sleeps "$3")
    # task-clock is in milliseconds.
    awk -F, -v i="$i" -v s="$1" -v n="$N" -v ns=$((t1 - t0)) -v z=$((z1 - z0)) '$3 == "task-clock" {
      rps = n / (ns / 1e9); us = $1 * 1000 / n
      printf "%s,%s,%.0f,%.2f,%.2f,%.3f\n", i, s, rps, us, rps * us / 1e6, z / n }' "$D/stat"
  done
done
