#!/usr/bin/env bash
# User-space instructions per request of Ferrite and of redis-server for any
# command, under callgrind: what each server does itself, which CPU time at
# -P 1 cannot separate (three quarters of it is the kernel's, the same for
# both). One client at -P 1, so each request is its own batch; for each
# server a short and a long redis-benchmark run, and (long - short) / (long
# - short requests) cancels start-up and shutdown. Each server gets a
# HyperLogLog at bench:hll first, for PFCOUNT.
#
# Usage: [FERRITE=path] benches/instructions_vs_redis.sh [short] [long] -- 'COMMAND ARGS' ['COMMAND ARGS' ...]
# e.g.   benches/instructions_vs_redis.sh 5000 25000 -- 'PFCOUNT bench:hll' 'XADD bench:s * f v'
# (redis-benchmark's __rand_int__ works in the arguments; a '*' is passed as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
SHORT=5000
LONG=25000
if [ "${1:-}" != "--" ]; then SHORT=${1:-$SHORT}; LONG=${2:-$LONG}; shift 2 || true; fi
[ "${1:-}" = "--" ] && shift
PORT=${PORT:-16698}
BIN=$(ferrite_binary)
ports_free "$PORT"
set -f

total() { # server requests command... -> instructions the whole run took
  local server=$1 n=$2 out pid
  shift 2
  out=$(mktemp)
  if [ "$server" = ferrite ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --port "$PORT" --appendonly no >/dev/null 2>&1 &
  else
    valgrind --tool=callgrind --callgrind-out-file="$out" redis-server --port "$PORT" --save '' --appendonly no >/dev/null 2>&1 &
  fi
  pid=$!
  wait_up "$PORT"
  redis-cli -p "$PORT" PFADD bench:hll a b c d e >/dev/null
  redis-benchmark -p "$PORT" -P 1 -c 1 -n "$n" -r 100000 -q "$@" >/dev/null 2>&1
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
  awk '/^totals:/ {print $2}' "$out"
  rm -f "$out"
}

per_request() { # server command... -> instructions per request
  local server=$1 a b
  shift
  a=$(total "$server" "$SHORT" "$@")
  b=$(total "$server" "$LONG" "$@")
  echo $(((b - a) / (LONG - SHORT)))
}

echo "command,redis_instructions,ferrite_instructions,ferrite_over_redis"
for c in "$@"; do
  # shellcheck disable=SC2086 # the command's words
  r=$(per_request redis $c)
  # shellcheck disable=SC2086
  f=$(per_request ferrite $c)
  echo "$c,$r,$f,$(awk -v f="$f" -v r="$r" 'BEGIN { printf "%.3f", f / r }')"
done
