#!/usr/bin/env bash
# What the Prometheus endpoint costs (issue 17), on a release build:
#  0. the idle server's CPU per second with TENANTS tenants: the metering
#     tick, the quota alert sweep and the expiry cycle, which walk every
#     tenant, with no client and no scrape (an upper bound of the sweep);
#  1. one scrape of TENANTS (default 10000) tenants, each holding a few
#     keys: wall time and bytes per scrape (curl), and the server's CPU per
#     scrape (from /proc), medians of SCRAPES (default 20) scrapes;
#  2. clients' throughput (redis-benchmark SET and GET as a tenant, -P 16,
#     -c 50) with nobody scraping, and with a scrape every second, in ROUNDS
#     (default 5) alternating rounds, compared by their medians. Both run
#     against the same server and the same 10,000 tenants.
#
# Usage: [FERRITE=path/to/ferrite] [ROUNDS=5] [SCRAPES=20] [N=1000000]
#        benches/metrics.sh [tenants] (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
T=${1:-10000}
ROUNDS=${ROUNDS:-5}
SCRAPES=${SCRAPES:-20}
N=${N:-1000000}
PORT=${PORT:-16420}
MPORT=${MPORT:-16421}
BIN=$(ferrite_binary)
ports_free "$PORT"
CFG=$(mktemp --suffix .toml)
cat >"$CFG" <<EOF
[tenancy]
max_tenants = $((T + 10))
[metrics]
listen = "127.0.0.1:$MPORT"
max_tenants = $((T + 10))
EOF
"$BIN" --config "$CFG" --port "$PORT" --appendonly no >/tmp/metrics-ferrite.log 2>&1 &
PID=$!
SCRAPER=""
trap 'kill $PID ${SCRAPER:-} 2>/dev/null; wait 2>/dev/null; rm -f "$CFG"' EXIT
wait_up "$PORT"
URL="http://127.0.0.1:$MPORT/metrics"

# T tenants, tenant i holding i % 5 + 1 keys of 100 bytes (written by the
# operator through their internal names), and the benchmark's own tenant.
awk -v n="$T" 'BEGIN {
  v = sprintf("%100s", ""); gsub(/ /, "x", v)
  for (i = 0; i < n; i++) {
    id = sprintf("t%d", i)
    printf "*2\r\n$13\r\nTENANT.CREATE\r\n$%d\r\n%s\r\n", length(id), id
    for (k = 0; k <= i % 5; k++) { key = sprintf("__tenant:%s:k%d", id, k); printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, length(v), v }
  }
}' | redis-cli -p "$PORT" --pipe >/dev/null
redis-cli -p "$PORT" TENANT.CREATE bench TIER enterprise OPS 100000000 CONNECTIONS 1000 PASSWORD pw >/dev/null

# 0. Idle.
sleep 2
c0=$(cpu_ticks "$PID"); sleep 10
echo "tenants,idle_server_cpu_ms_per_s"
echo "$T,$(awk -v t=$(($(cpu_ticks "$PID") - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1000 / 10 }')"

# 1. One scrape.
curl -sf -o /dev/null "$URL" # warm-up
times=(); sizes=(); c0=$(cpu_ticks "$PID")
for _ in $(seq "$SCRAPES"); do
  read -r t s < <(curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "$URL")
  times+=("$t"); sizes+=("$s")
done
ticks=$(($(cpu_ticks "$PID") - c0))
series=$(curl -sf "$URL" | grep -vc '^#')
echo "tenants,series,scrape_median_s,scrape_max_s,bytes,server_cpu_ms_per_scrape"
printf '%s,%s,%s,%s,%s,%s\n' "$T" "$series" "$(printf '%s\n' "${times[@]}" | median)" \
  "$(printf '%s\n' "${times[@]}" | sort -n | tail -1)" "$(printf '%s\n' "${sizes[@]}" | median | xargs printf '%.0f')" \
  "$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$SCRAPES" 'BEGIN { printf "%.1f", t / hz * 1000 / n }')"

# 2. Throughput with and without a scrape every second.
bench() { # -> "set_rps get_rps"
  local csv
  csv=$(redis-benchmark -p "$PORT" --user bench -a pw -t set,get -n "$N" -P 16 -c 50 -r 100000 -q --csv 2>/dev/null)
  echo "$(echo "$csv" | rps_of set) $(echo "$csv" | rps_of get)"
}
quiet_set=(); quiet_get=(); scraped_set=(); scraped_get=(); scrapes_done=()
for _ in $(seq "$ROUNDS"); do
  read -r s g < <(bench)
  quiet_set+=("$s"); quiet_get+=("$g")
  before=$(curl -sf "$URL" | awk '/^ferrite_metrics_scrapes_total / {print $2}')
  (while :; do curl -sf -o /dev/null "$URL" || true; sleep 1; done) &
  SCRAPER=$!
  read -r s g < <(bench)
  kill "$SCRAPER"; wait "$SCRAPER" 2>/dev/null || true; SCRAPER=""
  after=$(curl -sf "$URL" | awk '/^ferrite_metrics_scrapes_total / {print $2}')
  scraped_set+=("$s"); scraped_get+=("$g"); scrapes_done+=($((after - before - 1)))
done
row() { # test, then the quiet rounds and the scraped rounds as one word each
  local qm sm
  qm=$(echo "$2" | tr ' ' '\n' | median); sm=$(echo "$3" | tr ' ' '\n' | median)
  local per_round="${scrapes_done[*]}"
  echo "$1,${2// /;},${3// /;},$qm,$sm,$(awk -v a="$sm" -v b="$qm" 'BEGIN { printf "%.3f", a / b }'),${per_round// /;}"
}
echo "test,quiet_rounds,scraped_rounds,quiet_median_rps,scraped_median_rps,scraped/quiet,scrapes_per_round"
row set "${quiet_set[*]}" "${scraped_set[*]}"
row get "${quiet_get[*]}" "${scraped_get[*]}"
