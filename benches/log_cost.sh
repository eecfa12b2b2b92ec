#!/usr/bin/env bash
# What the log costs per request, by the server's own CPU time (user +
# system over the run, from /proc, steadier than throughput on a shared
# machine): Ferrite without persistence, with everysec, and with everysec
# but no automatic compaction, ROUNDS alternating rounds of one test at -P 16.
#
# Usage: [TESTS="zadd set"] [ROUNDS=6] benches/log_cost.sh [requests] (default 500000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-500000}
ROUNDS=${ROUNDS:-6}
P1=${P1:-16451}
P2=$((P1 + 1))
P3=$((P1 + 2))
cargo build --release --quiet --bin ferrite
D=$(mktemp -d)
printf '[persistence]\nauto-aof-rewrite-percentage = 0\n' >"$D/noauto.toml"
ports_free "$P1" "$P2" "$P3"
./target/release/ferrite --port "$P1" --appendonly no >/dev/null 2>&1 &
A=$!
./target/release/ferrite --port "$P2" --dir "$D/a" --appendfsync everysec >/dev/null 2>&1 &
B=$!
./target/release/ferrite --config "$D/noauto.toml" --port "$P3" --dir "$D/b" --appendfsync everysec >/dev/null 2>&1 &
C=$!
trap 'kill $A $B $C 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
wait_up "$P1" "$P2" "$P3"
# pid port test -> CPU microseconds per request
cpu_per_req() {
  local a b
  a=$(cpu_ticks "$1")
  redis-benchmark -p "$2" -t "$3" -P 16 -c 50 -n "$N" -r 100000 -q --csv >/dev/null 2>&1
  b=$(cpu_ticks "$1")
  us_per_request $((b - a)) "$N"
}
echo "test,none_us,everysec_us,everysec_no_compaction_us,everysec/none,no_compaction/none"
for t in ${TESTS:-zadd set}; do
  n=(); e=(); c=()
  for _ in $(seq "$ROUNDS"); do
    n+=("$(cpu_per_req $A "$P1" "$t")"); e+=("$(cpu_per_req $B "$P2" "$t")"); c+=("$(cpu_per_req $C "$P3" "$t")")
  done
  mn=$(printf '%s\n' "${n[@]}" | median); me=$(printf '%s\n' "${e[@]}" | median); mc=$(printf '%s\n' "${c[@]}" | median)
  awk -v t="$t" -v n="$mn" -v e="$me" -v c="$mc" 'BEGIN { printf "%s,%s,%s,%s,%.2f,%.2f\n", t, n, e, c, e / n, c / n }'
done
