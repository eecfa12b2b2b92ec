#!/usr/bin/env python3
"""Instructions per request, function by function, of the two binaries that
`KEEP=dir benches/instructions_per_request.sh` kept callgrind files of:
each function's own (exclusive) count in the long run less the short one,
over the requests between them, for both binaries and their difference.

The sum of the differences leaves out the clocks' one-off calibration
(quanta's, which runs for a fixed wall time and so for a varying number of
instructions under valgrind), which the whole-process totals carry as noise.

Usage: benches/per_function.py KEEP_DIR TEST SHORT LONG BINARY_A BINARY_B [ROWS]
e.g.   benches/per_function.py /tmp/keep set 20000 200000 ferrite ferrite-tenant
(BINARY_* are the kept files' name prefixes: the binaries' file names.)
"""
import collections
import glob
import re
import subprocess
import sys

NOISE = re.compile(r"quanta|clock_gettime|call_once_force|Calibration")


def own_counts(path):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", path],
        capture_output=True, text=True, check=True,
    ).stdout
    counts = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([0-9,]+)\s+(?:\(\s*[0-9.]+%\)\s+)?(.*)", line)
        if not m or "PROGRAM TOTALS" in line or not m.group(2):
            continue
        name = m.group(2).split(" [")[0]
        counts[name.split(":", 1)[-1]] += int(m.group(1).replace(",", ""))
    return counts


def per_request(keep, binary, test, short, long):
    def one(n):
        files = glob.glob(f"{keep}/{binary}-[0-9]*-{test}-{n}.out")
        if len(files) != 1:
            sys.exit(f"want one kept file for {binary} {test} {n}, found {files}")
        return own_counts(files[0])
    s, l = one(short), one(long)
    return {k: (l.get(k, 0) - s.get(k, 0)) / (int(long) - int(short)) for k in set(s) | set(l)}


def main():
    if len(sys.argv) < 7:
        sys.exit(__doc__)
    keep, test, short, long, a_bin, b_bin = sys.argv[1:7]
    rows = int(sys.argv[7]) if len(sys.argv) > 7 else 25
    a = per_request(keep, a_bin, test, short, long)
    b = per_request(keep, b_bin, test, short, long)
    names = sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0) - a.get(k, 0)))
    print(f"{'A':>9} {'B':>9} {'B - A':>9}  function")
    for k in names[:rows]:
        print(f"{a.get(k, 0):9.1f} {b.get(k, 0):9.1f} {b.get(k, 0) - a.get(k, 0):+9.1f}  {k[-110:]}")
    total_a = sum(a.values())
    own = sum(b.get(k, 0) - a.get(k, 0) for k in names if not NOISE.search(k))
    noise = sum(b.get(k, 0) - a.get(k, 0) for k in names if NOISE.search(k))
    print(f"B - A without clock calibration: {own:+.1f} per request ({100 * own / total_a:+.1f}% of A's "
          f"{total_a:.0f}); calibration {noise:+.1f}")


if __name__ == "__main__":
    main()
