#!/usr/bin/env bash
# EVALSHA of a script doing three commands (INCR, GET, SET), side by side
# with redis-server in one run: rounds alternate between the two servers;
# server CPU per request (from /proc) and requests/s, medians, at -P 1
# and -P 16 (issue 14's target: CPU per request at most 1.1x Redis's).
#
# Usage: ROUNDS=5 PIPES="1 16" benches/scripting.sh [requests] (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-100000}
ROUNDS=${ROUNDS:-5}
PIPES=${PIPES:-1 16}
RPORT=${RPORT:-16579}
FPORT=${FPORT:-16580}
start_redis_and_ferrite scripting
SCRIPT="redis.call('incr', KEYS[1]) redis.call('get', KEYS[1]) return redis.call('set', KEYS[2], ARGV[1])"
for port in "$RPORT" "$FPORT"; do
  SHA=$(redis-cli -p "$port" SCRIPT LOAD "$SCRIPT")
done

run() { # port pid pipeline -> "rps cpu_us_per_request"
  local before after rps
  before=$(cpu_ticks "$2")
  rps=$(redis-benchmark -p "$1" -P "$3" -c 50 -n "$N" -r 100000 --csv EVALSHA "$SHA" 2 'k:__rand_int__' 'v:__rand_int__' x 2>/dev/null \
    | tail -1 | awk -F'","' '{gsub(/"/,"",$2); print $2}')
  after=$(cpu_ticks "$2")
  echo "$rps $(us_per_request $((after - before)) "$N")"
}

echo "pipeline,redis_rps,ferrite_rps,redis_cpu_us_per_req,ferrite_cpu_us_per_req,cpu_ratio"
for pipe in $PIPES; do
  r_rps=(); f_rps=(); r_cpu=(); f_cpu=()
  for _ in $(seq "$ROUNDS"); do
    read -r a b <<<"$(run "$RPORT" "$RPID" "$pipe")"; r_rps+=("$a"); r_cpu+=("$b")
    read -r a b <<<"$(run "$FPORT" "$FPID" "$pipe")"; f_rps+=("$a"); f_cpu+=("$b")
  done
  rc=$(printf '%s\n' "${r_cpu[@]}" | median); fc=$(printf '%s\n' "${f_cpu[@]}" | median)
  echo "$pipe,$(printf '%s\n' "${r_rps[@]}" | median),$(printf '%s\n' "${f_rps[@]}" | median),$rc,$fc,$(awk -v f="$fc" -v r="$rc" 'BEGIN { printf "%.2f", f / r }')"
done
