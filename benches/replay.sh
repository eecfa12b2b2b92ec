#!/usr/bin/env bash
# Restart from the log alone: KEYS SETs of 32-byte values are logged (with
# automatic compaction off, so no snapshot), the server stops with SHUTDOWN
# NOSAVE, and each round starts a copy of that data directory and times
# exec to the first DBSIZE showing every key. With FERRITE_B, two builds
# alternate on the same log (e.g. an older commit's against this one).
#
# Usage: [KEYS=1000000] [ROUNDS=6] benches/replay.sh
#        FERRITE_B=path/to/other/ferrite benches/replay.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-6}
PORT=${PORT:-16641}
cargo build --release --quiet --bin ferrite
A=./target/release/ferrite
B=${FERRITE_B:-}
ports_free "$PORT"
D=$(mktemp -d)
trap 'redis-cli -p $PORT shutdown nosave >/dev/null 2>&1; rm -rf "$D"' EXIT
printf '[persistence]\nauto-aof-rewrite-percentage = 0\n' >"$D/noauto.toml"
set_stream "$KEYS" >"$D/load.resp"
$A --config "$D/noauto.toml" --port "$PORT" --dir "$D/data" >/dev/null 2>&1 &
wait_up "$PORT"
redis-cli -p "$PORT" --pipe <"$D/load.resp" >/dev/null
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
wait
echo "log: $(du -sh "$D/data" | cut -f1)"

# binary -> seconds from exec until DBSIZE shows every key
start_once() {
  rm -rf "$D/run"
  cp -r "$D/data" "$D/run"
  local t0 t1
  t0=$(date +%s.%N)
  "$1" --config "$D/noauto.toml" --port "$PORT" --dir "$D/run" >/dev/null 2>&1 &
  for _ in $(seq 6000); do
    [ "$(redis-cli -p "$PORT" dbsize 2>/dev/null)" = "$KEYS" ] && break
    sleep 0.01
  done
  t1=$(date +%s.%N)
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  wait
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
a=(); b=()
for _ in $(seq "$ROUNDS"); do
  a+=("$(start_once "$A")")
  [ -z "$B" ] || b+=("$(start_once "$B")")
done
echo "this build: ${a[*]}; median $(printf '%s\n' "${a[@]}" | median) s"
[ -z "$B" ] || echo "$B: ${b[*]}; median $(printf '%s\n' "${b[@]}" | median) s"
