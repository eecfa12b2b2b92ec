#!/usr/bin/env bash
# Server CPU per request (user + system, from /proc), this build against
# another, one server at a time: no second server shares the machine during
# a run (as it does in before_after.sh). For each round, each binary gets a
# fresh server (global context, no persistence), a warm-up of WARM requests
# of the same test (which also fills the collection: -r 100000), then N
# measured requests at -P PIPE. Prints every round's figure and the medians.
#
# Usage: FERRITE_B=path/to/other/ferrite [TESTS=zadd,hset,sadd] [ROUNDS=5]
#        [PIPE=16] [WARM=200000] [SETUP=...] [SETUP_B=...] [FERRITE_A=...]
#        benches/cpu_per_request.sh [requests] (default 1000000)
# FERRITE_A measures that binary instead of this tree's release build.
# SETUP (this build) and SETUP_B (the other) are redis-cli arguments run on
# each fresh server before its warm-up, e.g.
# SETUP="config set notify-keyspace-events KEA" with FERRITE_B a copy of
# this build compares notifications on (nobody subscribed) with off.
# TRACK (this build) and TRACK_B (the other), when set, keep a CLIENT
# TRACKING client connected during the run, with those options ("ON" for
# none): tracking on, but no benchmark key is anyone's to invalidate.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
TESTS=${TESTS:-zadd,hset,sadd}
ROUNDS=${ROUNDS:-5}
PIPE=${PIPE:-16}
WARM=${WARM:-200000}
PORT=${PORT:-16697}
: "${FERRITE_B:?set FERRITE_B to the binary to compare with}"
A=${FERRITE_A:-./target/release/ferrite}
[ -n "${FERRITE_A:-}" ] || cargo build --release --quiet --bin ferrite
ports_free "$PORT"
measure() { # binary test [setup] [tracking options] -> us per request
  "$1" --port "$PORT" --appendonly no >/dev/null 2>&1 &
  local pid=$! c0 tracker=""
  wait_up "$PORT"
  if [ -n "${3:-}" ]; then
    # shellcheck disable=SC2086 # the setup is a command's words
    redis-cli -p "$PORT" $3 >/dev/null
  fi
  if [ -n "${4:-}" ]; then
    tracker=$(tracking_client "$PORT" "${4#ON}")
    sleep 0.2
  fi
  redis-benchmark -p "$PORT" -t "$2" -P "$PIPE" -c 50 -n "$WARM" -r 100000 -q >/dev/null 2>&1
  c0=$(cpu_ticks "$pid")
  redis-benchmark -p "$PORT" -t "$2" -P "$PIPE" -c 50 -n "$N" -r 100000 -q >/dev/null 2>&1
  us_per_request $(($(cpu_ticks "$pid") - c0)) "$N"
  [ -z "$tracker" ] || kill "$tracker" 2>/dev/null || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
echo "test,now_rounds,other_rounds,now_median_us,other_median_us"
for t in ${TESTS//,/ }; do
  now=(); other=()
  for _ in $(seq "$ROUNDS"); do
    other+=("$(measure "$FERRITE_B" "$t" "${SETUP_B:-}" "${TRACK_B:-}")")
    now+=("$(measure "$A" "$t" "${SETUP:-}" "${TRACK:-}")")
  done
  echo "$t,${now[*]},${other[*]},$(printf '%s\n' "${now[@]}" | median),$(printf '%s\n' "${other[@]}" | median)"
done
