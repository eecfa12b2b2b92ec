#!/usr/bin/env bash
# What a FLUSHALL of N keys costs the connection that sends it (and so the
# worker thread every other tenant on it shares): Ferrite idle and while a
# compaction runs, against redis-server's FLUSHALL SYNC and ASYNC. Keys are
# loaded with redis-cli --pipe; times include redis-cli's own start.
#
# Usage: benches/flush.sh [keys] (default 1000000)
#        FERRITE=path/to/ferrite benches/flush.sh   (another build, e.g. an older commit's)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
RPORT=${RPORT:-16379}
FPORT=${FPORT:-16380}
F=$(ferrite_binary)
D=$(mktemp -d)
ports_free "$RPORT" "$FPORT"
redis-server --port "$RPORT" --save '' --appendonly no >"$D/redis.log" 2>&1 &
RPID=$!
$F --port "$FPORT" --dir "$D/ferrite" --appendfsync everysec >"$D/ferrite.log" 2>&1 &
FPID=$!
trap 'kill $RPID $FPID 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
wait_up "$RPORT" "$FPORT"
set_stream "$N" >"$D/load.resp"
load() { redis-cli -p "$1" --pipe <"$D/load.resp" >/dev/null; }
idle() { while redis-cli -p "$1" info persistence | grep -q "aof_rewrite_in_progress:1"; do sleep 0.05; done; }
# port args... -> milliseconds for `redis-cli -p port args...`
timed() {
  local t0 t1 p=$1
  shift
  t0=$(date +%s%N)
  redis-cli -p "$p" "$@" >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}
echo "server,case,keys,flushall_ms"
load "$FPORT"; sleep 1; idle "$FPORT"
echo "ferrite,idle,$N,$(timed "$FPORT" flushall)"
load "$FPORT"; sleep 1; idle "$FPORT"
redis-cli -p "$FPORT" bgrewriteaof >/dev/null
echo "ferrite,during compaction,$N,$(timed "$FPORT" flushall)"
load "$RPORT"
echo "redis,flushall sync,$N,$(timed "$RPORT" flushall sync)"
load "$RPORT"
echo "redis,flushall async,$N,$(timed "$RPORT" flushall async)"
