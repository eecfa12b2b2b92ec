#!/usr/bin/env bash
# Ferrite now against Ferrite at an earlier commit, in one run: both release
# binaries on loopback, driven by redis-benchmark through a tenant's
# connections (a tenant without a policy, the case a later feature must not
# slow down). Rounds alternate the two; medians and the ratio now/before.
#
# Usage: REV=<commit> benches/before_after.sh [requests-per-test] (default 200000)
#        REV defaults to 2bacaca, the last commit before the WASM policy layer.
#        TESTS=set,get PIPES="1 16" ROUNDS=3 benches/before_after.sh
#        BEFORE_BIN=path/to/ferrite benches/before_after.sh   (a binary built
#        since persistence exists: both then run with --appendonly no)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
ROOT=$(pwd)
N=${1:-200000}
REV=${REV:-2bacaca}
TESTS=${TESTS:-set,get,incr,lpush,lpop,sadd,hset,zadd,lrange_100,mset}
PIPES=${PIPES:-1 16}
ROUNDS=${ROUNDS:-3}
BPORT=${BPORT:-16381}
APORT=${APORT:-16380}

if [ -n "${BEFORE_BIN:-}" ]; then
  BEFORE=("$BEFORE_BIN" --appendonly no)
else
  WT=/tmp/ferrite-before-$REV
  [ -d "$WT" ] || git worktree add --detach "$WT" "$REV" >/dev/null
  (cd "$WT" && CARGO_TARGET_DIR="$ROOT/target/before" cargo build --release --quiet --bin ferrite)
  BEFORE=(./target/before/release/ferrite)
fi
cargo build --release --quiet --bin ferrite

ports_free "$BPORT" "$APORT"
"${BEFORE[@]}" --port "$BPORT" >/tmp/bench-before.log 2>&1 &
BPID=$!
./target/release/ferrite --port "$APORT" --appendonly no >/tmp/bench-after.log 2>&1 &
APID=$!
trap 'kill $BPID $APID 2>/dev/null; wait 2>/dev/null' EXIT
wait_up "$BPORT" "$APORT"
for p in "$BPORT" "$APORT"; do
  redis-cli -p "$p" TENANT.CREATE bench TIER enterprise OPS 1000000000 KEYS 1000000000 MEMORY 64gb CONNECTIONS 10000 PASSWORD benchpw >/dev/null
done

# "requests/s CPU-us-per-request" of one run against the server on port $1 (pid $4).
run() {
  local c0 rps
  c0=$(cpu_ticks "$4")
  rps=$(redis-benchmark -p "$1" --user bench -a benchpw -t "$2" -P "$3" -c 50 -n "$N" -r 100000 -q --csv 2>/dev/null | rps_of "$2")
  echo "$rps $(us_per_request $(($(cpu_ticks "$4") - c0)) "$N")"
}

# Server CPU per request is steadier than throughput on a shared machine.
echo "test,pipeline,before_rps,now_rps,now_vs_before,before_cpu_us,now_cpu_us"
for pipe in $PIPES; do
  for p in "$BPORT" "$APORT"; do redis-cli -p "$p" --user bench --pass benchpw flushall >/dev/null 2>&1; done
  for t in ${TESTS//,/ }; do
    br=(); ar=()
    for _ in $(seq "$ROUNDS"); do
      br+=("$(run "$BPORT" "$t" "$pipe" "$BPID")")
      ar+=("$(run "$APORT" "$t" "$pipe" "$APID")")
    done
    b=$(printf '%s\n' "${br[@]}" | cut -d' ' -f1 | median)
    a=$(printf '%s\n' "${ar[@]}" | cut -d' ' -f1 | median)
    bc=$(printf '%s\n' "${br[@]}" | cut -d' ' -f2 | median)
    ac=$(printf '%s\n' "${ar[@]}" | cut -d' ' -f2 | median)
    awk -v t="$t" -v p="$pipe" -v b="$b" -v a="$a" -v bc="$bc" -v ac="$ac" \
      'BEGIN { printf "%s,%s,%.0f,%.0f,%.2f,%.3f,%.3f\n", t, p, b, a, a / b, bc, ac }'
  done
done
