#!/usr/bin/env bash
# A tenant's move under load (issue 15): two Ferrite nodes with the log on,
# a tenant of KEYS keys of VALUE bytes on the first, redis-benchmark
# writing and reading through the first as the tenant, and TENANT.MIGRATE to
# the second in the middle of it. Reports the move (time, MB/s, the write
# pause the server measured), what the clients saw (errors, worst latency),
# and the forwarding hop: CPU per request of both nodes and latency through
# the old node against the new one directly, unpipelined.
#
# Usage: [FERRITE=path] [KEYS=1000000] [VALUE=100] benches/migration.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
KEYS=${KEYS:-1000000}
VALUE=${VALUE:-100}
P1=${P1:-16811}
P2=${P2:-16812}
BIN=$(ferrite_binary)
ports_free "$P1" "$P2"
D1=$(mktemp -d) D2=$(mktemp -d) OUT=$(mktemp -d)
"$BIN" --port "$P1" --appendonly yes --dir "$D1" >"$OUT/n1.log" 2>&1 &
N1=$!
"$BIN" --port "$P2" --appendonly yes --dir "$D2" >"$OUT/n2.log" 2>&1 &
N2=$!
trap 'kill $N1 $N2 2>/dev/null; wait $N1 $N2 2>/dev/null; rm -rf "$D1" "$D2" "$OUT"' EXIT
wait_up "$P1" "$P2"
redis-cli -p "$P1" TENANT.CREATE acme PASSWORD pw MEMORY 4gb KEYS 100000000 OPS 100000000 CONNECTIONS 10000 >/dev/null
value=$(head -c "$VALUE" /dev/zero | tr '\0' 'v')
{ printf '*3\r\n$4\r\nAUTH\r\n$4\r\nacme\r\n$2\r\npw\r\n'; set_stream "$KEYS" 'key:%d' "$value"; } | redis-cli -p "$P1" --pipe >/dev/null
echo "loaded $KEYS keys of $VALUE bytes: $(redis-cli -p "$P1" --user acme --pass pw --no-auth-warning DBSIZE) keys"

# The load: SET and GET of the tenant's keys through the first node, all along.
redis-benchmark -p "$P1" --user acme -a pw -t set,get -n 2000000 -r "$KEYS" -d "$VALUE" -c 50 --csv >"$OUT/load.csv" 2>"$OUT/load.err" &
LOAD=$!
sleep 2
data=$(redis-cli -p "$P1" TENANT.INFO acme | awk 'prev == "memory_used" {print; exit} {prev = $0}')
start=$(date +%s%N)
redis-cli -p "$P1" TENANT.MIGRATE acme "127.0.0.1:$P2" >"$OUT/move.txt"
end=$(date +%s%N)
wait "$LOAD" || true
echo "move reply: $(tr '\n' ' ' <"$OUT/move.txt")"
bytes=$(awk 'prev == "bytes" {print; exit} {prev = $0}' "$OUT/move.txt")
ms=$(awk 'prev == "duration_ms" {print; exit} {prev = $0}' "$OUT/move.txt")
pause=$(awk 'prev == "write_pause_ms" {print; exit} {prev = $0}' "$OUT/move.txt")
echo "move: $(((end - start) / 1000000)) ms seen by the operator, $ms ms in the server; the tenant's $data bytes at $(awk -v b="$data" -v m="$ms" 'BEGIN { printf "%.1f", b / 1048576 / (m / 1000) }') MB/s ($bytes bytes on the wire, entries LZ4-compressed); write pause $pause ms"
echo "clients: $(grep -ci 'error' "$OUT/load.err" "$OUT/load.csv" | awk -F: '{s += $2} END {print s}') error lines; worst latency (ms) per test:"
awk -F'","' 'NR > 1 {gsub(/"/, "", $1); gsub(/"/, "", $NF); print "  " $1 ": max " $NF}' "$OUT/load.csv"
grep -hE "move phase|imported|durable" "$OUT/n1.log" "$OUT/n2.log" | sed 's/^/  log: /' | cut -c1-200 || true
echo "keys on the new node: $(redis-cli -p "$P2" --user acme --pass pw --no-auth-warning DBSIZE)"

# The forwarding hop, unpipelined GETs: CPU of both nodes per request with
# 50 clients, latency with one. "handed over": the tenant moved to the
# second node's loopback address, so the first hands each client's socket
# to it (no hop left); "relayed": a second tenant moved to the same node by
# host name, as between machines, so the first relays every request and
# reply; "direct": the tenant's clients connected to the second node.
redis-cli -p "$P1" TENANT.CREATE relay PASSWORD pw MEMORY 1gb KEYS 100000000 OPS 100000000 CONNECTIONS 10000 >/dev/null
# redis-benchmark's GET without -r reads the key named "key:__rand_int__".
redis-cli -p "$P1" --user relay --pass pw --no-auth-warning SET key:__rand_int__ "$value" >/dev/null
redis-cli -p "$P2" --user acme --pass pw --no-auth-warning SET key:__rand_int__ "$value" >/dev/null
redis-cli -p "$P1" TENANT.MIGRATE relay "localhost:$P2" >/dev/null
hop() { get_cost "$1" "$2" "$N1" "$N2"; }
: >"$OUT/hops"
for round in $(seq "${ROUNDS:-5}"); do
  read -r h_cpu h_lat < <(hop "$P1" acme)
  read -r r_cpu r_lat < <(hop "$P1" relay)
  read -r d_cpu d_lat < <(hop "$P2" acme)
  echo "$h_cpu $h_lat $r_cpu $r_lat $d_cpu $d_lat" >>"$OUT/hops"
  echo "hop round $round: handed over ${h_cpu} us CPU/req, ${h_lat} ms (one client); relayed ${r_cpu} us, ${r_lat} ms; direct ${d_cpu} us, ${d_lat} ms"
done
col() { awk -v c="$1" '{print $c}' "$OUT/hops" | median; }
echo "medians: handed over $(col 1) us, $(col 2) ms; relayed $(col 3) us, $(col 4) ms; direct $(col 5) us, $(col 6) ms"
