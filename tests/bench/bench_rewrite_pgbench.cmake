# bench.rewrite_smoke: tests/bench/bench_rewrite_pgbench.py in --quick mode (pgbench -S through
# rsproxy with and without the COPY/UNLOAD rewriter configured, and the rewriter's throughput
# from this tree's bench_rewrite). It only checks that the run completes, that the configured
# proxy really rewrites and the other does not, and prints its table; it never judges the
# numbers. Label bench, so `ctest -L unit` skips it.
add_test(NAME bench.rewrite_smoke
         COMMAND ${RSPROXY_PYTHON} ${PROJECT_SOURCE_DIR}/tests/bench/bench_rewrite_pgbench.py
                 --quick --rsproxy $<TARGET_FILE:rsproxy>
                 --bench-rewrite $<TARGET_FILE:bench_rewrite>)
set_tests_properties(bench.rewrite_smoke PROPERTIES LABELS bench TIMEOUT 600
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
