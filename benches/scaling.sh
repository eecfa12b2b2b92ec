#!/usr/bin/env bash
# Issue 12's scaling check, for a machine with many cores (16 or more): SET
# and GET at -P 16 from `redis-benchmark --threads 8`, against
#   - redis-server single-threaded,
#   - redis-server with io-threads 8 (io-threads-do-reads yes),
#   - Ferrite with 8 worker threads (a config file's `threads = 8`), from
#     the global context and through a tenant's connections (issue 12's
#     "tenant within 5% of global", on a machine quieter than ours).
# Servers run on the first half of the cores, redis-benchmark on the other
# half (taskset), so the load generator does not take a server's cores.
# Rounds alternate between the three servers; medians of requests/s and of
# server CPU per request (user + system from /proc) are printed as CSV,
# with each Ferrite line's ratio to both redis-server lines.
#
# Usage: [ROUNDS=3] [CLIENTS=200] [THREADS=8] [TESTS="set get"]
#        benches/scaling.sh [requests] (default 5000000)
# Binaries: $FERRITE (else this tree's release build), and redis-server,
# redis-benchmark and redis-cli from PATH. benches/device_bundle.sh gathers
# all four into .bench-bin/ for a machine that has none of them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-5000000}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-200}
THREADS=${THREADS:-8}
TESTS=${TESTS:-set get}
PORT_R1=${PORT_R1:-16801}
PORT_R8=${PORT_R8:-16802}
PORT_F=${PORT_F:-16803}
bin=$(ferrite_binary)
cores=$(nproc)
half=$((cores / 2))
if [ "$cores" -ge 4 ]; then
  servers_on=(taskset -c "0-$((half - 1))")
  clients_on=(taskset -c "$half-$((cores - 1))")
else
  servers_on=()
  clients_on=()
fi
ports_free "$PORT_R1" "$PORT_R8" "$PORT_F"
work=$(mktemp -d)
printf '[server]\nthreads = %d\n' "$THREADS" >"$work/ferrite.toml"

"${servers_on[@]}" redis-server --port "$PORT_R1" --save '' --appendonly no >"$work/r1.log" 2>&1 &
P_R1=$!
"${servers_on[@]}" redis-server --port "$PORT_R8" --save '' --appendonly no \
  --io-threads "$THREADS" --io-threads-do-reads yes >"$work/r8.log" 2>&1 &
P_R8=$!
"${servers_on[@]}" "$bin" --config "$work/ferrite.toml" --port "$PORT_F" --appendonly no --dir "$work" >"$work/f.log" 2>&1 &
P_F=$!
trap 'kill $P_R1 $P_R8 $P_F 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
wait_up "$PORT_R1" "$PORT_R8" "$PORT_F"
redis-cli -p "$PORT_F" TENANT.CREATE bench TIER enterprise OPS 1000000000 KEYS 1000000000 MEMORY 64gb \
  CONNECTIONS 100000 PASSWORD benchpw >/dev/null

# port pid test [login words] -> "rps cpu_us_per_request"
run() {
  local before after rps
  before=$(cpu_ticks "$2")
  # shellcheck disable=SC2086 # the login is redis-benchmark's words
  rps=$("${clients_on[@]}" redis-benchmark -p "$1" ${4:-} -t "$3" -P 16 -c "$CLIENTS" --threads "$THREADS" \
    -n "$N" -r 1000000 --csv 2>/dev/null | rps_of "$3")
  after=$(cpu_ticks "$2")
  echo "$rps $(us_per_request $((after - before)) "$N")"
}

echo "# $(date -u +%FT%TZ) cores=$cores servers on ${servers_on[*]:-all} clients on ${clients_on[*]:-all}"
echo "# $(redis-server --version | head -1); $("$bin" --version)"
declare -A m_rps m_cpu
echo "test,server,rps,cpu_us_per_req"
for t in $TESTS; do
  declare -A rps=() cpu=()
  for _ in $(seq "$ROUNDS"); do
    for s in r1 r8 f ft; do
      case $s in
        r1) read -r a b <<<"$(run "$PORT_R1" "$P_R1" "$t")" ;;
        r8) read -r a b <<<"$(run "$PORT_R8" "$P_R8" "$t")" ;;
        f) read -r a b <<<"$(run "$PORT_F" "$P_F" "$t")" ;;
        ft) read -r a b <<<"$(run "$PORT_F" "$P_F" "$t" "--user bench -a benchpw")" ;;
      esac
      rps[$s]+="$a "
      cpu[$s]+="$b "
    done
  done
  for s in r1 r8 f ft; do
    m_rps[$s]=$(printf '%s\n' ${rps[$s]} | median)
    m_cpu[$s]=$(printf '%s\n' ${cpu[$s]} | median)
    echo "$t,$s,${m_rps[$s]},${m_cpu[$s]}"
  done
  awk -v t="$t" -v f="${m_rps[f]}" -v a="${m_rps[r1]}" -v b="${m_rps[r8]}" \
    'BEGIN { printf "%s: ferrite / redis single-threaded %.2f (target >= 3), ferrite / redis io-threads %.2f (target > 1)\n", t, f / a, f / b }'
  awk -v t="$t" -v f="${m_rps[f]}" -v ft="${m_rps[ft]}" -v c="${m_cpu[f]}" -v ct="${m_cpu[ft]}" \
    'BEGIN { printf "%s: tenant / global requests/s %.2f, CPU per request %.2f (target <= 1.05)\n", t, ft / f, ct / c }'
  unset rps cpu
done
