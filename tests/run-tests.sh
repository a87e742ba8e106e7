#!/usr/bin/env bash
# The README's test command: installs dependencies, builds with warnings as errors, runs every
# test (unit, fuzz corpus replay, integration with real clients), then rebuilds with
# ASan+UBSan and runs the unit and integration suites again under the sanitizers.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

"$top/tests/install-deps.sh"

echo "== build (warnings as errors)"
cmake -S . -B build -DRSPROXY_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)

echo "== build with ASan+UBSan"
cmake -S . -B build-asan -DRSPROXY_WERROR=ON -DRSPROXY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"

echo "== tests under ASan+UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900 -L 'unit|integration')

echo "== all tests passed"
