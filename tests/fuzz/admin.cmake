# The admin endpoint's HTTP request parser under arbitrary splits (corpus in corpus/px_admin).
# ctest fuzz.px_admin replays the corpus; with -DRSPROXY_FUZZ=ON (clang) fuzz_px_admin is the
# libFuzzer binary:
#   fuzz_px_admin -max_len=20000 NEWDIR tests/fuzz/corpus/px_admin
px_add_fuzz_target(px_admin SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_px_admin.c LIBS rs_proxy)
