#!/usr/bin/env bash
# Gathers what benches/scaling.sh needs into .bench-bin/ (ignored by git) for
# a lent machine that has no redis-server and cannot install one: this
# tree's release build (stripped, to fit the 64 MiB a device call carries),
# redis-server, redis-benchmark, redis-cli and the shared libraries they link
# beyond the C library. Run there as:
#   PATH=$PWD/.bench-bin:$PATH LD_LIBRARY_PATH=$PWD/.bench-bin/lib \
#     FERRITE=.bench-bin/ferrite benches/scaling.sh 3000000
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.bench-bin
grep -qx '/.bench-bin/' .git/info/exclude 2>/dev/null || echo '/.bench-bin/' >>.git/info/exclude
rm -rf "$dest"
mkdir -p "$dest/lib"
cargo build --release --quiet --bin ferrite
strip -o "$dest/ferrite" target/release/ferrite
for b in redis-server redis-benchmark redis-cli; do
  cp "$(command -v "$b")" "$dest/"
  ldd "$(command -v "$b")" | awk '$3 ~ /^\// {print $3}' |
    grep -v -E '/(libc|libm|libpthread|libdl|ld-linux[^/]*)\.so' | xargs -r cp -n -t "$dest/lib"
done
du -sh "$dest"
