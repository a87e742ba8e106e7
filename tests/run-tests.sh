#!/usr/bin/env bash
# The README's test command (and CI's, through .ci/run): installs the dependencies, builds
# with warnings as errors, runs every test (unit, fuzz corpus replay, integration with real
# clients, the benchmark's smoke run), then rebuilds with ASan+UBSan and runs the unit and
# integration suites again under the sanitizers. Every phase runs even after a failed one
# (except after a failed build), so one run shows everything that is broken; the exit status
# is non-zero if anything failed.
#
# Environment: RSPROXY_BUILD_DIR (default build), RSPROXY_ASAN_BUILD_DIR (default build-asan),
# RSPROXY_SKIP_INSTALL=1 to skip tests/install-deps.sh, RSPROXY_SKIP_ASAN=1 to stop after the
# first pass (a quicker local loop; CI never sets it), CTEST_ARGS for extra ctest arguments.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
build=${RSPROXY_BUILD_DIR:-build}
asan_build=${RSPROXY_ASAN_BUILD_DIR:-build-asan}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/rsproxy-run-tests.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

t0=$SECONDS
phase_start=$SECONDS
phase() {
    printf '\n== %s (at %dm%02ds)\n' "$1" $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60))
    phase_start=$SECONDS
}
phase_done() {
    printf '== %s took %ds\n' "$1" $((SECONDS - phase_start))
}

failed_phases=()
total_passed=0
total_failed=0

# Runs ctest with the given arguments, keeps going on failure, and adds its counts to the
# totals from its closing line ("NN% tests passed, F tests failed out of T").
run_ctest() {
    local name=$1 dir=$2
    shift 2
    local log="$logdir/$name.log" rc=0
    # shellcheck disable=SC2086
    (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 900 "$@" ${CTEST_ARGS:-}) 2>&1 |
        tee "$log" || rc=$?
    local line
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
    if [ -n "$line" ]; then
        local failed total
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        total_passed=$((total_passed + total - failed))
        total_failed=$((total_failed + failed))
    else
        # No closing line (ctest itself failed, or found no tests): count it as a failure.
        total_failed=$((total_failed + 1))
        rc=1
    fi
    if [ "$rc" -ne 0 ]; then
        failed_phases+=("$name")
    fi
}

if [ -z "${RSPROXY_SKIP_INSTALL:-}" ]; then
    phase "install dependencies"
    "$top/tests/install-deps.sh"
    phase_done "install"
fi

phase "build (warnings as errors) in $build"
cmake -S . -B "$build" -DRSPROXY_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs"
phase_done "build"

phase "tests: unit, fuzz corpus replay, integration, bench smoke"
run_ctest tests "$build"
phase_done "tests"

if [ -z "${RSPROXY_SKIP_ASAN:-}" ]; then
    phase "build with ASan+UBSan in $asan_build"
    cmake -S . -B "$asan_build" -DRSPROXY_WERROR=ON -DRSPROXY_SANITIZE=ON \
        -DCMAKE_BUILD_TYPE=Debug >/dev/null
    cmake --build "$asan_build" -j"$jobs"
    phase_done "ASan build"

    phase "tests under ASan+UBSan: unit, integration"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    run_ctest asan-tests "$asan_build" -L 'unit|integration'
    phase_done "ASan tests"
fi

printf '\n== run-tests finished in %dm%02ds\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60))
if [ ${#failed_phases[@]} -gt 0 ]; then
    echo "== FAILED: ${failed_phases[*]}"
    echo "run-tests: $total_passed passed, $total_failed failed"
    exit 1
fi
echo "== all tests passed"
echo "run-tests: $total_passed passed, $total_failed failed"
