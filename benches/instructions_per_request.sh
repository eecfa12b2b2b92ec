#!/usr/bin/env bash
# Instructions per request of two builds under callgrind, which counts the
# same for the same binary and input whatever the machine is doing (unlike
# CPU time on this shared 2-core machine). One client (-c 1), so every
# batch the server reads is exactly PIPE requests: with 50 clients the batch
# sizes, and so the per-batch share of each request, vary from run to run.
# For each test and binary, the server runs under callgrind for a short and
# a long redis-benchmark run; (long total - short total) / (long - short
# requests) cancels start-up and shutdown.
#
# Usage: FERRITE_B=path/to/other/ferrite [TESTS=set,get] [PIPE=16]
#        [FERRITE_A=...] [SETUP=...] [SETUP_B=...] [TRACK=...] [TRACK_B=...]
#        [AUTH=...] [AUTH_B=...] [KEYS=0] [SCOPE=dispatch]
#        benches/instructions_per_request.sh [short] [long] (default 20000 60000)
# FERRITE_A, SETUP/SETUP_B (redis-cli arguments run first) and TRACK/TRACK_B
# (a CLIENT TRACKING client kept connected, "ON" for no options) as in
# cpu_per_request.sh: the same binary on both sides compares a setting.
# KEEP=dir keeps each run's callgrind output there, for callgrind_annotate.
# SCOPE=dispatch counts only the instructions under the command's dispatch
# (connection::execute_contained), which callgrind counts exactly alike
# from run to run; the default counts the whole process.
# AUTH/AUTH_B are redis-benchmark's login words for that side, e.g. a
# tenant's against the global context with the same binary:
#   FERRITE_B=target/release/ferrite FERRITE_A=target/release/ferrite \
#   SETUP_B='TENANT.CREATE bench OPS 1000000000 KEYS 1000000000 MEMORY 64gb PASSWORD pw' \
#   AUTH_B='--user bench -a pw' benches/instructions_per_request.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
SHORT=${1:-20000}
LONG=${2:-60000}
TESTS=${TESTS:-set,get}
PIPE=${PIPE:-16}
PORT=${PORT:-16699}
# KEYS=0: every request on one key (no new keys, no table growth: the
# same work in every run); otherwise redis-benchmark's -r over that many.
RANDOM_KEYS=$([ "${KEYS:-100000}" = 0 ] || echo "-r ${KEYS:-100000}")
: "${FERRITE_B:?set FERRITE_B to the binary to compare with}"
A=${FERRITE_A:-./target/release/ferrite}
[ -n "${FERRITE_A:-}" ] || cargo build --release --quiet --bin ferrite
ports_free "$PORT"
total() { # binary test requests [setup] [tracking options] [login] -> instructions the whole run took
  local out tracker=""
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --port "$PORT" --appendonly no >/dev/null 2>&1 &
  local pid=$!
  wait_up "$PORT"
  if [ -n "${4:-}" ]; then
    # shellcheck disable=SC2086 # the setup is a command's words
    redis-cli -p "$PORT" $4 >/dev/null
  fi
  if [ -n "${5:-}" ]; then
    tracker=$(tracking_client "$PORT" "${5#ON}")
    sleep 1
  fi
  # shellcheck disable=SC2086 # the login is redis-benchmark's words
  redis-benchmark -p "$PORT" ${6:-} -t "$2" -P "$PIPE" -c 1 -n "$3" $RANDOM_KEYS -q >/dev/null 2>&1
  [ -z "$tracker" ] || kill "$tracker" 2>/dev/null || true
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
  if [ "${SCOPE:-all}" = dispatch ]; then
    # Only what runs inside the command's dispatch (parsing, the runtime's
    # wake-ups and the kernel's share left out): the same for the same
    # commands whatever the timing, so small differences show.
    callgrind_annotate --inclusive=yes --auto=no "$out" 2>/dev/null |
      awk '/connection::execute_contained / { gsub(",", "", $1); print $1; exit }'
  else
    awk '/^totals:/ {print $2}' "$out"
  fi
  if [ -n "${KEEP:-}" ]; then
    # For a breakdown: callgrind_annotate --inclusive=yes KEEP/<binary>-<path sum>-<test>-<requests>.out
    mkdir -p "$KEEP"
    mv "$out" "$KEEP/$(basename "$1")-$(printf %s "$1" | cksum | cut -d' ' -f1)-$2-$3.out"
  fi
  rm -f "$out"
}
per_request() { # binary test [setup] [tracking] [login] -> instructions per request
  local a b
  a=$(total "$1" "$2" "$SHORT" "${3:-}" "${4:-}" "${5:-}")
  b=$(total "$1" "$2" "$LONG" "${3:-}" "${4:-}" "${5:-}")
  awk -v a="$a" -v b="$b" -v n=$((LONG - SHORT)) 'BEGIN { printf "%.0f", (b - a) / n }'
}
echo "test,pipeline,now_instructions,other_instructions,now_over_other"
for t in ${TESTS//,/ }; do
  now=$(per_request "$A" "$t" "${SETUP:-}" "${TRACK:-}" "${AUTH:-}")
  other=$(per_request "$FERRITE_B" "$t" "${SETUP_B:-}" "${TRACK_B:-}" "${AUTH_B:-}")
  echo "$t,$PIPE,$now,$other,$(awk -v a="$now" -v b="$other" 'BEGIN { printf "%.3f", a / b }')"
done
