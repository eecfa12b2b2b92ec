#!/usr/bin/env bash
# An idle server's CPU with N tenants (created, then left alone): CPU time
# per second over 10 s, after a 2 s settle. What the background cycles
# (active expiry ten times a second, the metering tick) cost per tenant.
#
# Usage: [FERRITE=path] benches/idle.sh [tenants] (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-10000}
PORT=${PORT:-16931}
start_ferrite "$PORT"
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) { id = sprintf("t%d", i)
  printf "*4\r\n$13\r\nTENANT.CREATE\r\n$%d\r\n%s\r\n$8\r\nPASSWORD\r\n$2\r\npw\r\n", length(id), id } }' |
  redis-cli -p "$PORT" --pipe >/dev/null
sleep 2
c0=$(cpu_ticks "$FPID")
sleep 10
c1=$(cpu_ticks "$FPID")
echo "$(redis-cli -p "$PORT" TENANT.LIST | wc -l) tenants, idle: $(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 100 }') ms of CPU per second"
