#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what the tests need
# when it is missing (redis-server and redis-tools for the differential tests,
# Python's rq and redis and Node's bullmq for the client tests, Debian's
# prometheus for promtool, which checks the metrics endpoint and the alerting
# rules, Debian's etcd-server for the cluster tests' tenant directory and
# protobuf-compiler, whose protoc builds the etcd client's protocol, the
# wasm32 target for the policy modules), then runs every test and prints one
# closing total.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
command -v node >/dev/null && command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Client libraries the client tests run (tests/clients.rs), pinned.
if ! python3 -c 'import rq, redis' 2>/dev/null; then
  python3 -m pip install -q --root-user-action=ignore 'rq==3.0.0' 'redis==8.2.0' \
    || python3 -m pip install -q --break-system-packages 'rq==3.0.0' 'redis==8.2.0'
fi
# BullMQ at the version package-lock.json pins (install scripts are not run:
# msgpackr's optional native part is not needed).
if [ ! -d tests/clients/bullmq/node_modules/bullmq ]; then
  npm ci --prefix tests/clients/bullmq --no-audit --no-fund --ignore-scripts --loglevel=error
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

log=$(mktemp)
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
