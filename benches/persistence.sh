#!/usr/bin/env bash
# Persistence costs, side by side in one run:
# 1. Throughput of writes: Ferrite without persistence, Ferrite with the log
#    (appendfsync everysec) and redis-server with appendonly yes / everysec,
#    driven by redis-benchmark; rounds alternate the three; medians and ratios.
# 2. Restart time with 1M keys: both servers loaded with the same 1M SETs
#    (redis-cli --pipe), stopped with SHUTDOWN NOSAVE and started again,
#    from the log alone and after a compaction (BGREWRITEAOF): time from
#    exec to the first reply of DBSIZE showing every key; and stopped with
#    a plain SHUTDOWN (Ferrite then compacts on the way out), timed from
#    the SHUTDOWN.
# 3. What a client sees during a compaction of those 1M keys: PING round
#    trips (max and 99th percentile) while BGREWRITEAOF runs.
#
# Usage: benches/persistence.sh [requests-per-test] (default 200000)
#        TESTS=set,incr PIPES="1 16" ROUNDS=3 KEYS=1000000 benches/persistence.sh
#        RESTART=0 stops after the throughput part; THROUGHPUT=0 skips it;
#        FSYNC=always compares both servers under appendfsync always.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
N=${1:-200000}
TESTS=${TESTS:-set,incr,lpush,sadd,hset,zadd,mset}
PIPES=${PIPES:-1 16}
ROUNDS=${ROUNDS:-3}
KEYS=${KEYS:-1000000}
# Both servers' appendfsync (the column names say everysec, the default).
FSYNC=${FSYNC:-everysec}
RPORT=16379; NPORT=16380; FPORT=16381
D=$(mktemp -d /tmp/ferrite-persist-bench.XXXX)
mkdir -p "$D/redis" "$D/ferrite"

ports_free "$RPORT" "$NPORT" "$FPORT"
cargo build --release --quiet --bin ferrite
F=./target/release/ferrite
start_redis() { redis-server --port $RPORT --dir "$D/redis" --appendonly yes --appendfsync "$FSYNC" --save '' >>"$D/redis.log" 2>&1 & RPID=$!; }
start_ferrite() { $F --port $FPORT --dir "$D/ferrite" --appendfsync "$FSYNC" >>"$D/ferrite.log" 2>&1 & FPID=$!; }
start_redis; start_ferrite
$F --port $NPORT --appendonly no >"$D/none.log" 2>&1 & NPID=$!
# Restarted servers are started in a subshell ($(restart ...)), so their
# pids never reach this shell: they are asked to shut down by port.
trap 'for p in $RPORT $FPORT $NPORT; do redis-cli -p $p shutdown nosave >/dev/null 2>&1; done; kill $RPID $FPID $NPID 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
wait_up "$RPORT" "$NPORT" "$FPORT"

run() {
  redis-benchmark -p "$1" -t "$2" -P "$3" -c 50 -n "$N" -r 100000 -q --csv 2>/dev/null | rps_of "$2"
}

# Two estimates of each ratio: the ratio of the three medians, and the
# median of the ratios within each round (paired: the three runs of a round
# are back to back, so a slow spell of this shared machine hits all three).
# Each round starts with the next server in turn, so none always goes first.
[ "${THROUGHPUT:-1}" = 1 ] || PIPES=none
echo "test,pipeline,redis_aof_rps,ferrite_no_persistence_rps,ferrite_everysec_rps,everysec_vs_none,everysec_vs_redis_aof,paired_everysec_vs_none,paired_everysec_vs_redis_aof"
for pipe in $PIPES; do
  [ "$pipe" = none ] && break
  for t in ${TESTS//,/ }; do
    rr=(); nr=(); fr=(); pn=(); pr=()
    for i in $(seq "$ROUNDS"); do
      declare -A got=()
      for k in 0 1 2; do
        case $(((i + k) % 3)) in
          0) got[r]=$(run $RPORT "$t" "$pipe") ;;
          1) got[n]=$(run $NPORT "$t" "$pipe") ;;
          2) got[f]=$(run $FPORT "$t" "$pipe") ;;
        esac
      done
      rr+=("${got[r]}"); nr+=("${got[n]}"); fr+=("${got[f]}")
      pn+=("$(awk -v f="${got[f]}" -v n="${got[n]}" 'BEGIN { print f / n }')")
      pr+=("$(awk -v f="${got[f]}" -v r="${got[r]}" 'BEGIN { print f / r }')")
      unset got
    done
    r=$(printf '%s\n' "${rr[@]}" | median); n=$(printf '%s\n' "${nr[@]}" | median); f=$(printf '%s\n' "${fr[@]}" | median)
    a=$(printf '%s\n' "${pn[@]}" | median); b=$(printf '%s\n' "${pr[@]}" | median)
    awk -v t="$t" -v p="$pipe" -v r="$r" -v n="$n" -v f="$f" -v a="$a" -v b="$b" \
      'BEGIN { printf "%s,%s,%.0f,%.0f,%.0f,%.2f,%.2f,%.2f,%.2f\n", t, p, r, n, f, f / n, f / r, a, b }'
  done
done

[ "${RESTART:-1}" = 1 ] || exit 0
# --- restart with KEYS keys -------------------------------------------------
for p in $RPORT $FPORT; do redis-cli -p $p flushall >/dev/null; done
set_stream "$KEYS" >"$D/load.resp"
for p in $RPORT $FPORT; do redis-cli -p $p --pipe <"$D/load.resp" >/dev/null; done
sleep 2

# port start-function pid [clean] -> seconds until DBSIZE shows every key.
# By default the server stops with SHUTDOWN NOSAVE and the clock starts at
# exec: what start-up does with the files. With "clean" it stops with a
# plain SHUTDOWN and the clock starts before it, so whatever a server does
# on the way out (Ferrite compacts its log) counts too.
restart() {
  local t0 t1
  t0=$(date +%s.%N)
  if [ "${4:-}" = clean ]; then
    redis-cli -p "$1" shutdown >/dev/null 2>&1 || true
  else
    redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true
  fi
  wait "$3" 2>/dev/null || true
  while redis-cli -p "$1" ping >/dev/null 2>&1; do sleep 0.01; done
  [ "${4:-}" = clean ] || t0=$(date +%s.%N)
  $2
  for _ in $(seq 6000); do
    [ "$(redis-cli -p "$1" dbsize 2>/dev/null)" = "$KEYS" ] && break
    sleep 0.01
  done
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
echo
echo "restart with $KEYS keys (seconds until DBSIZE = $KEYS):"
echo "from,redis,ferrite"
r=$(restart $RPORT start_redis $RPID); f=$(restart $FPORT start_ferrite $FPID)
echo "log,$r,$f"
du -sh "$D/redis" "$D/ferrite" | sed 's/^/  size /'
r=$(restart $RPORT start_redis $RPID clean); f=$(restart $FPORT start_ferrite $FPID clean)
echo "SHUTDOWN then start (the clock runs from SHUTDOWN),$r,$f"
du -sh "$D/redis" "$D/ferrite" | sed 's/^/  size /'

# --- a compaction as clients see it ------------------------------------------
pinger() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []; end = time.time() + secs
while time.time() < end:
    t = time.perf_counter(); s.sendall(b"PING\r\n"); s.recv(64); lat.append(time.perf_counter() - t)
lat.sort()
print("pings %d, p99 %.2f ms, max %.2f ms" % (len(lat), lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3))
PY
}
for p in $RPORT $FPORT; do
  pinger $p 4 >"$D/ping.$p" &
  PP=$!
  sleep 0.5
  t0=$(date +%s.%N)
  redis-cli -p $p bgrewriteaof >/dev/null
  for _ in $(seq 3000); do
    redis-cli -p $p info persistence | grep -q "aof_rewrite_in_progress:0" && break
    sleep 0.01
  done
  t1=$(date +%s.%N)
  wait $PP
  echo "compaction on $p: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s; during it: $(cat "$D/ping.$p")"
done
sleep 1
r=$(restart $RPORT start_redis $RPID); f=$(restart $FPORT start_ferrite $FPID)
echo "from,redis,ferrite"
echo "compacted,$r,$f"
du -sh "$D/redis" "$D/ferrite" | sed 's/^/  size /'
