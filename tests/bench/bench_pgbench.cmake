# bench.smoke: tests/bench/bench_pgbench.py in --quick mode. It only checks that
# the script runs end to end (PostgreSQL, pgbouncer, rsproxy, pgbench, the idle-client RSS) and
# prints its table; it never judges the numbers. Label bench, so `ctest -L unit` skips it.
add_test(NAME bench.smoke
         COMMAND ${RSPROXY_PYTHON} ${PROJECT_SOURCE_DIR}/tests/bench/bench_pgbench.py --quick
                 --rsproxy $<TARGET_FILE:rsproxy>)
set_tests_properties(bench.smoke PROPERTIES LABELS bench TIMEOUT 600
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
