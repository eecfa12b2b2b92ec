#!/usr/bin/env bash
# How far apart identical servers measure on this machine: three Ferrite
# processes, same binary, same flags, benchmarked in turn for ROUNDS rounds.
# Any difference between them is the machine (and each process's hash
# seeds and memory layout), not the code: it is the floor under every
# ratio the other scripts report.
#
# Prints, per process, the requests/s of each round and their median, and
# the median server CPU per request (user + system from /proc).
#
# Usage: [TEST=mset] [PIPE=16] [ROUNDS=5] benches/noise.sh [requests] (default 600000)
#        FERRITE_ARGS="--appendonly no" is the default; pass others to compare
#        identical servers in another configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-600000}
TEST=${TEST:-mset}
PIPE=${PIPE:-16}
ROUNDS=${ROUNDS:-5}
FERRITE_ARGS=${FERRITE_ARGS:---appendonly no}
PORTS="16611 16612 16613"
cargo build --release --quiet --bin ferrite
ports_free $PORTS
D=$(mktemp -d)
PIDS=()
for p in $PORTS; do
  # shellcheck disable=SC2086
  ./target/release/ferrite --port "$p" --dir "$D/$p" $FERRITE_ARGS >/dev/null 2>&1 &
  PIDS+=($!)
done
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
wait_up $PORTS
# Warm-up: every process reaches the test's steady key count first.
for p in $PORTS; do redis-benchmark -p "$p" -t "$TEST" -P "$PIPE" -c 50 -n 200000 -r 100000 -q >/dev/null 2>&1; done
declare -A RPS CPU
for _ in $(seq "$ROUNDS"); do
  i=0
  for p in $PORTS; do
    a=$(cpu_ticks "${PIDS[$i]}")
    r=$(redis-benchmark -p "$p" -t "$TEST" -P "$PIPE" -c 50 -n "$N" -r 100000 -q --csv 2>/dev/null | rps_of "$TEST")
    b=$(cpu_ticks "${PIDS[$i]}")
    RPS[$p]="${RPS[$p]:-} $r"
    CPU[$p]="${CPU[$p]:-} $(us_per_request $((b - a)) "$N")"
    i=$((i + 1))
  done
done
echo "process,rps_per_round,median_rps,median_cpu_us_per_request"
for p in $PORTS; do
  # shellcheck disable=SC2086
  m=$(printf '%s\n' ${RPS[$p]} | median)
  # shellcheck disable=SC2086
  c=$(printf '%s\n' ${CPU[$p]} | median)
  echo "$p,${RPS[$p]# },$m,$c"
done
