#!/usr/bin/env bash
# The data types of issue 13 side by side with redis-server, in one run:
# redis-benchmark's arbitrary-command mode against each server in turn
# (alternating rounds), server CPU per request from /proc and requests/s,
# at -P 1 and -P 16; then memory per stream entry and per HyperLogLog
# (INFO used_memory before and after).
#
# Usage: ROUNDS=3 PIPES="1 16" [ONLY=XADD|XRANGE] [MEMORY=0] [PIN=1] benches/types.sh [requests] (default 200000)
# PIN=1 runs both servers on core 1 and redis-benchmark on core 0 (as in
# side_by_side.sh), so the scheduler moving them about adds no noise.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-200000}
ROUNDS=${ROUNDS:-3}
PIPES=${PIPES:-1 16}
ONLY=${ONLY:-}
MEMORY=${MEMORY:-1}
RPORT=${RPORT:-16479}
FPORT=${FPORT:-16480}
start_redis_and_ferrite types
CLI=()
if [ "${PIN:-0}" = 1 ]; then
  taskset -a -p -c 1 "$RPID" >/dev/null
  taskset -a -p -c 1 "$FPID" >/dev/null
  CLI=(taskset -c 0)
fi

# 100,000 points spread over about 1.5 degrees around Palermo, for GEOSEARCH.
geo_points() {
  awk 'BEGIN { srand(7); for (i = 0; i < 100000; i++) {
    lon = 12.6 + rand() * 1.5; lat = 37.4 + rand() * 1.5; m = "p:" i
    printf "*5\r\n$6\r\nGEOADD\r\n$4\r\ngeop\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(lon ""), lon, length(lat ""), lat, length(m), m } }'
}
for port in "$RPORT" "$FPORT"; do
  geo_points | redis-cli -p "$port" --pipe >/dev/null
  redis-cli -p "$port" XADD bench:s '*' f v >/dev/null
done

# name|command (redis-benchmark replaces __rand_int__ with 0..99999)
CASES=(
  "XADD|XADD bench:s * field value"
  "XRANGE COUNT 10|XRANGE bench:s - + COUNT 10"
  "SETBIT|SETBIT bench:bm 100000 1"
  "BITCOUNT|BITCOUNT bench:bm"
  "PFADD|PFADD bench:hll __rand_int__"
  "PFCOUNT|PFCOUNT bench:hll"
  "GEOADD|GEOADD bench:geo 13.361389 38.115556 m:__rand_int__"
  "GEOSEARCH|GEOSEARCH geop FROMLONLAT 13.36 38.11 BYRADIUS 2 km COUNT 10 ASC"
)

# port pid pipeline command... -> "rps cpu_us_per_request"
run() {
  local port=$1 pid=$2 pipe=$3 before after rps
  shift 3
  before=$(cpu_ticks "$pid")
  rps=$("${CLI[@]}" redis-benchmark -p "$port" -P "$pipe" -c 50 -n "$N" -r 100000 --csv "$@" 2>/dev/null | tail -1 | awk -F'","' '{gsub(/"/,"",$2); print $2}')
  after=$(cpu_ticks "$pid")
  echo "$rps $(us_per_request $((after - before)) "$N")"
}

echo "command,pipeline,redis_rps,ferrite_rps,redis_cpu_us_per_req,ferrite_cpu_us_per_req,cpu_ratio"
for pipe in $PIPES; do
  for c in "${CASES[@]}"; do
    name=${c%%|*}
    if [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]]; then continue; fi
    read -r -a cmd <<<"${c#*|}"
    r_rps=(); f_rps=(); r_cpu=(); f_cpu=()
    for _ in $(seq "$ROUNDS"); do
      read -r a b <<<"$(run "$RPORT" "$RPID" "$pipe" "${cmd[@]}")"; r_rps+=("$a"); r_cpu+=("$b")
      read -r a b <<<"$(run "$FPORT" "$FPID" "$pipe" "${cmd[@]}")"; f_rps+=("$a"); f_cpu+=("$b")
    done
    rr=$(printf '%s\n' "${r_rps[@]}" | median); fr=$(printf '%s\n' "${f_rps[@]}" | median)
    rc=$(printf '%s\n' "${r_cpu[@]}" | median); fc=$(printf '%s\n' "${f_cpu[@]}" | median)
    echo "$name,$pipe,$rr,$fr,$rc,$fc,$(awk -v f="$fc" -v r="$rc" 'BEGIN { printf "%.2f", f / r }')"
  done
done

# Memory: 1,000,000 stream entries (XADD s * f v), and 10,000 HyperLogLogs
# of 100 elements (sparse) and 200 of 20,000 (dense).
[ "$MEMORY" = 1 ] || exit 0
used() { redis-cli -p "$1" INFO memory | awk -F: '/^used_memory:/ {print $2 + 0}'; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (b - a) / n }'; }
echo
echo "memory,redis_bytes_each,ferrite_bytes_each"
for what in stream sparse_hll dense_hll; do
  line="$what"
  for port in "$RPORT" "$FPORT"; do
    redis-cli -p "$port" FLUSHALL >/dev/null
    before=$(used "$port")
    case $what in
      stream) redis-benchmark -p "$port" -P 64 -c 20 -n 1000000 -q XADD mem:s '*' f v >/dev/null 2>&1; n=1000000 ;;
      sparse_hll) awk 'BEGIN { for (k = 0; k < 10000; k++) { printf "PFADD mem:h%d", k; for (i = 0; i < 100; i++) printf " e%d", i; printf "\n" } }' \
          | redis-cli -p "$port" >/dev/null; n=10000 ;;
      dense_hll) for k in $(seq 200); do redis-benchmark -p "$port" -P 64 -c 4 -n 20000 -r 1000000 -q PFADD "mem:d$k" __rand_int__ >/dev/null 2>&1; done; n=200 ;;
    esac
    line="$line,$(per "$before" "$(used "$port")" "$n")"
  done
  echo "$line"
done
