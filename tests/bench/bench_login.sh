#!/bin/sh
# Login latency through rsproxy (IAM mode, cached credentials) against a direct TLS login, and
# AWS API calls per 1,000 logins: a wrapper that finds the rsproxy binary and runs
# bench_login.py with Debian's Python (the one that sees python3-psycopg and botocore).
#
#   tests/bench/bench_login.sh [BUILD_DIR] [--quick] [--rounds N] [--logins N] ...
#
# BUILD_DIR defaults to $RSPROXY_BUILD_DIR, then build/ at the top of the tree. Nothing is timed
# against a threshold: the script prints a table of medians and ratios.
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
    echo "bench_login.sh: $bin is not built (cmake --build $build --target rsproxy)" >&2
    exit 2
fi
exec /usr/bin/python3 "$here/bench_login.py" --rsproxy "$bin" "$@"
