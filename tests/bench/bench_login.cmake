# bench.login_smoke: tests/bench/bench_login.py in --quick mode (IAM login through rsproxy with
# the AWS stand-in, against a direct TLS login). It only checks that the run completes and
# prints its table; it never judges the numbers. Label bench, so `ctest -L unit` skips it.
# Included from tests/CMakeLists.txt (needs tests/bench/*.cmake in its fragment glob).
add_test(NAME bench.login_smoke
         COMMAND ${RSPROXY_PYTHON} ${PROJECT_SOURCE_DIR}/tests/bench/bench_login.py --quick
                 --rsproxy $<TARGET_FILE:rsproxy>)
set_tests_properties(bench.login_smoke PROPERTIES LABELS bench TIMEOUT 600
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
