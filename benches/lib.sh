# Shared by the bench scripts (source it): ports, readiness, redis-benchmark
# output, medians. A stale server on a bench port once corrupted a whole
# run's numbers, hence ports_free.

# The Ferrite binary to measure: $FERRITE when set (another build), else
# this tree's release build, built first.
ferrite_binary() {
  if [ -n "${FERRITE:-}" ]; then echo "$FERRITE"; return; fi
  cargo build --release --quiet --bin ferrite >&2
  echo ./target/release/ferrite
}

# Refuses to start when any of the ports already answers.
ports_free() {
  for p in "$@"; do
    if redis-cli -p "$p" ping >/dev/null 2>&1; then echo "port $p is in use: stop what runs there first" >&2; exit 1; fi
  done
}

# Waits until every port answers PING (up to 30 s each).
wait_up() {
  for p in "$@"; do
    for _ in $(seq 600); do redis-cli -p "$p" ping >/dev/null 2>&1 && continue 2; sleep 0.05; done
    echo "port $p did not come up" >&2
    exit 1
  done
}

# Requests/s of test $1 (set, lrange_100, ...) from `redis-benchmark --csv` on stdin.
rps_of() {
  local name
  name=$(echo "$1" | tr '[:lower:]' '[:upper:]')
  awk -F'","' -v n="\"$name" 'index($1, n) == 1 && $1 !~ /needed/ {gsub(/"/,"",$2); print $2; exit}'
}

# The median of the numbers on stdin (the mean of the middle two when even).
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# A process's CPU time so far (user + system), in clock ticks, from /proc.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The CPU time so far of every process given, together.
cpu_ticks_of() { local s=0 p; for p in "$@"; do s=$((s + $(cpu_ticks "$p"))); done; echo "$s"; }

# Unpipelined GETs as user $2 (password pw) at port $1: "us ms", the CPU per
# request of the processes $3... together over 200000 requests from 50
# clients, then the average latency of one client.
get_cost() {
  local port=$1 user=$2 c0 ticks csv
  shift 2
  c0=$(cpu_ticks_of "$@")
  redis-benchmark -p "$port" --user "$user" -a pw -t get -n 200000 -c 50 -P 1 -q >/dev/null 2>&1
  ticks=$(($(cpu_ticks_of "$@") - c0))
  csv=$(redis-benchmark -p "$port" --user "$user" -a pw -t get -n 20000 -c 1 -P 1 --csv 2>/dev/null | tail -1)
  echo "$(us_per_request "$ticks" 200000) $(echo "$csv" | awk -F'","' '{gsub(/"/, "", $3); print $3}')"
}

# Microseconds of CPU per request: $1 ticks spent over $2 requests.
us_per_request() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }'; }

# RESP for N SETs of key:<i> (or the printf format $2) to a 32-byte value
# (or $3), for redis-cli --pipe.
set_stream() {
  awk -v n="$1" -v f="${2:-key:%d}" -v v="${3:-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx}" 'BEGIN {
    for (i = 0; i < n; i++) { k = sprintf(f, i); printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }'
}

# Starts Ferrite ($FERRITE or this tree's release build) on port $1 without
# persistence (further flags after the port), and stops it on exit; sets
# FPID.
start_ferrite() {
  local port=$1 bin
  shift
  bin=$(ferrite_binary)
  ports_free "$port"
  "$bin" --port "$port" --appendonly no "$@" >/dev/null 2>&1 &
  FPID=$!
  trap 'kill $FPID 2>/dev/null; wait $FPID 2>/dev/null || true' EXIT
  wait_up "$port"
}

# Starts redis-server on $RPORT and Ferrite ($FERRITE or this tree's
# release build) on $FPORT, both without persistence, logs in
# /tmp/$1-{redis,ferrite}.log; sets RPID and FPID, stops both on exit.
start_redis_and_ferrite() {
  local bin
  bin=$(ferrite_binary)
  ports_free "$RPORT" "$FPORT"
  redis-server --port "$RPORT" --save '' --appendonly no --daemonize no >"/tmp/$1-redis.log" 2>&1 &
  RPID=$!
  "$bin" --port "$FPORT" --appendonly no >"/tmp/$1-ferrite.log" 2>&1 &
  FPID=$!
  trap 'kill $RPID $FPID 2>/dev/null; wait 2>/dev/null' EXIT
  wait_up "$RPORT" "$FPORT"
}

# Starts a RESP3 client on port $1 that turns CLIENT TRACKING on (with the
# options in $2, e.g. "BCAST PREFIX nomatch:"), reads one key no benchmark
# writes, then only listens; echoes its pid. For "tracking on, nobody told".
tracking_client() {
  python3 - "$1" $2 <<'PY' >/dev/null 2>&1 &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def cmd(*a):
    s.sendall(("*%d\r\n" % len(a) + "".join("$%d\r\n%s\r\n" % (len(x), x) for x in a)).encode())
cmd("HELLO", "3")
cmd("CLIENT", "TRACKING", "ON", *sys.argv[2:])
cmd("GET", "tracked:never-written")
while s.recv(65536):
    pass
PY
  echo $!
}
