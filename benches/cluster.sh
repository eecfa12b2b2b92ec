#!/usr/bin/env bash
# Three Ferrite nodes sharing a tenant directory in etcd (issue 16).
#
# Routing: unpipelined GETs of a tenant through a node that does not own
# it, against the same GETs straight to its owner: CPU per request of all
# three nodes together (50 clients) and latency (one client). "relayed": the
# owner (n2) advertises a host name, as a node on another machine would, so
# n1 relays every request and reply; "handed over": the owner (n3)
# advertises a loopback address, so n1 hands each client's socket to it
# after AUTH and drops out.
#
# Propagation: how long a change to the directory (a TENANT.CREATE on n1)
# takes to be seen by the two other nodes (TENANT.LOCATE polled every
# millisecond), over CHANGES changes.
#
# Usage: [FERRITE=path] [ROUNDS=5] [CHANGES=50] benches/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
P1=${P1:-16821} P2=${P2:-16822} P3=${P3:-16823} EC=${EC:-16824} EP=${EP:-16825}
BIN=$(ferrite_binary)
ports_free "$P1" "$P2" "$P3"
command -v etcd >/dev/null || { echo "etcd is missing (scripts/test.sh installs etcd-server)" >&2; exit 1; }
OUT=$(mktemp -d)
etcd --name b --data-dir "$OUT/etcd" --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
  --listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
  --initial-cluster "b=http://127.0.0.1:$EP" >"$OUT/etcd.log" 2>&1 &
ETCD=$!
trap 'kill $ETCD ${N1:-} ${N2:-} ${N3:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT"' EXIT
for _ in $(seq 200); do curl -s "http://127.0.0.1:$EC/health" 2>/dev/null | grep -q true && break; sleep 0.1; done
node() { # id port advertise -> pid
  printf '[cluster]\nnode_id = "%s"\nadvertise = "%s"\netcd = ["http://127.0.0.1:%s"]\nsecret = "bench"\n' "$1" "$3" "$EC" >"$OUT/$1.toml"
  "$BIN" --port "$2" --appendonly no --config "$OUT/$1.toml" >"$OUT/$1.log" 2>&1 &
  echo $!
}
N1=$(node n1 "$P1" "127.0.0.1:$P1")
N2=$(node n2 "$P2" "localhost:$P2")
N3=$(node n3 "$P3" "127.0.0.1:$P3")
wait_up "$P1" "$P2" "$P3"
for _ in $(seq 100); do [ "$(redis-cli -p "$P1" TENANT.NODES | grep -c '^n[123]$')" = 3 ] && break; sleep 0.1; done
limits=(MEMORY 1gb KEYS 100000000 OPS 100000000 CONNECTIONS 10000)
redis-cli -p "$P1" TENANT.CREATE relayed PASSWORD pw NODE n2 "${limits[@]}" >/dev/null
redis-cli -p "$P1" TENANT.CREATE handed PASSWORD pw NODE n3 "${limits[@]}" >/dev/null
value=$(head -c 100 /dev/zero | tr '\0' 'v')
# redis-benchmark's GET without -r reads the key named "key:__rand_int__".
redis-cli -p "$P2" --user relayed --pass pw --no-auth-warning SET key:__rand_int__ "$value" >/dev/null
redis-cli -p "$P3" --user handed --pass pw --no-auth-warning SET key:__rand_int__ "$value" >/dev/null

hop() { get_cost "$1" "$2" "$N1" "$N2" "$N3"; }
: >"$OUT/hops"
for round in $(seq "${ROUNDS:-5}"); do
  read -r r_cpu r_lat < <(hop "$P1" relayed)
  read -r rd_cpu rd_lat < <(hop "$P2" relayed)
  read -r h_cpu h_lat < <(hop "$P1" handed)
  read -r hd_cpu hd_lat < <(hop "$P3" handed)
  echo "$r_cpu $r_lat $rd_cpu $rd_lat $h_cpu $h_lat $hd_cpu $hd_lat" >>"$OUT/hops"
  echo "round $round: relayed via n1 ${r_cpu} us CPU/req, ${r_lat} ms; direct to n2 ${rd_cpu} us, ${rd_lat} ms;" \
    "handed over via n1 ${h_cpu} us, ${h_lat} ms; direct to n3 ${hd_cpu} us, ${hd_lat} ms"
done
col() { awk -v c="$1" '{print $c}' "$OUT/hops" | median; }
echo "medians (us CPU/req of all nodes, ms one client): relayed $(col 1), $(col 2); direct $(col 3), $(col 4);" \
  "handed over $(col 5), $(col 6); direct $(col 7), $(col 8)"

python3 - "$P1" "$P2" "$P3" "${CHANGES:-50}" <<'PY'
import socket, statistics, sys, time
p1, p2, p3, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def conn(port):
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
def call(s, *args):
    s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
    data = b""
    while True:
        data += s.recv(65536)
        # LOCATE: "*2..." or "-ERR ..."; CREATE: "+OK" (single replies, complete at their last CRLF)
        if data.startswith(b"*2") and data.count(b"\r\n") >= 5 or not data.startswith(b"*") and data.endswith(b"\r\n"):
            return data
c1, others = conn(p1), [conn(p2), conn(p3)]
took, acked = [], []
for i in range(n):
    tenant = "prop%d" % i
    start = time.perf_counter()
    assert call(c1, "TENANT.CREATE", tenant, "NODE", "n1").startswith(b"+OK")
    acked.append((time.perf_counter() - start) * 1000)
    waiting = list(others)
    while waiting:
        waiting = [s for s in waiting if not call(s, "TENANT.LOCATE", tenant).startswith(b"*2")]
        if waiting:
            time.sleep(0.001)
    took.append((time.perf_counter() - start) * 1000)
took.sort()
acked.sort()
print("TENANT.CREATE (record committed in etcd): median %.1f ms; from its request until both other nodes "
      "locate the tenant: median %.1f ms, p90 %.1f ms, max %.1f ms over %d creates"
      % (statistics.median(acked), statistics.median(took), took[int(len(took) * 0.9) - 1], took[-1], n))
PY
