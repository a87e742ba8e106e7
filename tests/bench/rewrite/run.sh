#!/bin/sh
# Builds bench_rewrite in a Release tree and prints the rewriter figures: statements per second
# for COPY/UNLOAD bodies, and ns per px_rewrite_lead/px_rewrite_maybe call on ordinary SELECTs
# (the per-message cost the proxy pays when rewriting is configured).
#   tests/bench/rewrite/run.sh [BUILD_DIR] [-- bench options: --seconds S --repeat N]
# BUILD_DIR defaults to build-bench-rewrite next to the sources; it is configured with
# CMAKE_BUILD_TYPE=Release (no sanitizers) when it does not exist yet.
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=${1:-$SRC/build-bench-rewrite}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" --target bench_rewrite -j2 >/dev/null
echo "rsproxy rewriter benchmark ($(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
echo "options: aws_iam_role, tempdir, allowed_iam_roles (1 role), allow_client_credentials=false"
echo "each figure: median of the runs; calls/s for rewrite rows is statements rewritten per second"
echo
"$BUILD/tests/bench_rewrite" "$@"
