# Rewriter benchmark (tests/bench/rewrite): a program, not a test. It lives in this globbed
# directory only so that tests/CMakeLists.txt picks the fragment up. Run it through
# tests/bench/rewrite/run.sh, which builds it in a Release tree of its own.
add_executable(bench_rewrite ${PROJECT_SOURCE_DIR}/tests/bench/rewrite/bench_rewrite.c)
target_link_libraries(bench_rewrite PRIVATE rs_proxy)
rsproxy_target(bench_rewrite)
