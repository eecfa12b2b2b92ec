#!/usr/bin/env bash
# A write-heavy workload into tenants held at their memory limit: one evicts
# by native LRU, one by the example WASM policy (protect-prefix), and, for
# context, redis-server with the same maxmemory and allkeys-lru. Every SET
# past the limit makes the server evict, so the eviction decision is on the
# path of nearly every request.
#
# Rounds alternate the three so machine noise hits all alike; medians and
# the ratio WASM/native are printed, then each tenant's eviction count and
# the policy's calls and fallbacks (to show the module really decided).
#
# Usage: benches/policy_eviction.sh [requests-per-round] (default 200000)
#        PIPES="1 16" ROUNDS=5 MEMORY=16mb benches/policy_eviction.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-200000}
PIPES=${PIPES:-1 16}
ROUNDS=${ROUNDS:-5}
MEMORY=${MEMORY:-16mb}
RPORT=${RPORT:-16379}
FPORT=${FPORT:-16380}

cargo build --release --quiet --bin ferrite
cargo build --profile policy --quiet --target wasm32-unknown-unknown -p protect-prefix
WASM=target/wasm32-unknown-unknown/policy/protect_prefix.wasm

ports_free "$RPORT" "$FPORT"
redis-server --port "$RPORT" --save '' --appendonly no --maxmemory "$MEMORY" --maxmemory-policy allkeys-lru >/tmp/bench-redis.log 2>&1 &
RPID=$!
./target/release/ferrite --port "$FPORT" --appendonly no >/tmp/bench-ferrite.log 2>&1 &
FPID=$!
trap 'kill $RPID $FPID 2>/dev/null; wait 2>/dev/null' EXIT
wait_up "$RPORT" "$FPORT"
F="redis-cli -p $FPORT"
for t in lru wasm; do
  $F TENANT.CREATE "$t" MEMORY "$MEMORY" EVICTION allkeys-lru OPS 1000000000 KEYS 1000000000 CONNECTIONS 10000 PASSWORD pw >/dev/null
done
$F -x TENANT.UPDATE wasm CONFIG "protect=session:" POLICY <"$WASM" >/dev/null

# port test pipeline [auth...] -> requests/s of SET
run() {
  # shellcheck disable=SC2086
  redis-benchmark -p "$1" ${4:-} -t set -d 100 -P "$3" -c 50 -n "$2" -r 10000000 -q --csv 2>/dev/null |
    rps_of set
}

# Fill all three to their limit first.
run "$RPORT" 300000 16 >/dev/null
for t in lru wasm; do run "$FPORT" 300000 16 "--user $t -a pw" >/dev/null; done

echo "pipeline,redis_lru_rps,ferrite_native_lru_rps,ferrite_wasm_policy_rps,wasm_vs_native,wasm_vs_redis"
for pipe in $PIPES; do
  rr=(); nr=(); wr=()
  for _ in $(seq "$ROUNDS"); do
    rr+=("$(run "$RPORT" "$N" "$pipe")")
    nr+=("$(run "$FPORT" "$N" "$pipe" "--user lru -a pw")")
    wr+=("$(run "$FPORT" "$N" "$pipe" "--user wasm -a pw")")
  done
  r=$(printf '%s\n' "${rr[@]}" | median)
  n=$(printf '%s\n' "${nr[@]}" | median)
  w=$(printf '%s\n' "${wr[@]}" | median)
  awk -v p="$pipe" -v r="$r" -v n="$n" -v w="$w" 'BEGIN { printf "%s,%.0f,%.0f,%.0f,%.2f,%.2f\n", p, r, n, w, w / n, w / r }'
done
for t in lru wasm; do
  echo "$t: evicted $($F TENANT.STATS "$t" | awk 'prev == "evicted" {print; exit} {prev = $0}'), memory $($F TENANT.INFO "$t" | awk 'prev == "memory_used" {print; exit} {prev = $0}') of $MEMORY"
done
$F TENANT.POLICY wasm | paste - - | grep -E "^(calls|fuel_used|fallbacks|state)\s"
