#!/bin/sh
# pgbench -S through rsproxy with the COPY/UNLOAD rewriter configured ([s3] aws_iam_role and
# tempdir) against the same proxy without it, interleaved, plus the rewriter's own throughput
# (tests/bench/rewrite/run.sh): a wrapper that finds the rsproxy binary and runs
# bench_rewrite_pgbench.py with Debian's Python (the one that sees python3-psycopg).
#
#   tests/bench/bench_rewrite_pgbench.sh [BUILD_DIR] [--quick] [--seconds S] [--reps N] ...
#
# BUILD_DIR defaults to $RSPROXY_BUILD_DIR, then build/ at the top of the tree. Nothing is timed
# against a threshold: the script prints medians, ratios and the run-to-run spread.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${RSPROXY_BUILD_DIR:-$top/build}
if [ $# -gt 0 ] && [ -d "$1" ]; then
    build=$1
    shift
fi
bin=${RSPROXY_BIN:-$build/proxy/rsproxy}
if [ ! -x "$bin" ]; then
    echo "bench_rewrite_pgbench.sh: $bin is not built (cmake --build $build --target rsproxy)" >&2
    exit 2
fi
exec /usr/bin/python3 "$here/bench_rewrite_pgbench.py" --rsproxy "$bin" "$@"
