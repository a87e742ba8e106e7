# s3/: libFuzzer targets for every parser of S3's answers (ctest fuzz.s3_error, fuzz.s3_list,
# fuzz.s3_lifecycle and fuzz.s3_results replay tests/fuzz/corpus/<name>; with
# -DRSPROXY_FUZZ=ON, clang builds fuzz_<name> binaries to run for real).
px_add_fuzz_target(s3_error SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_s3_error.c LIBS rs_s3)
px_add_fuzz_target(s3_list SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_s3_list.c LIBS rs_s3)
px_add_fuzz_target(s3_lifecycle SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_s3_lifecycle.c LIBS rs_s3)
px_add_fuzz_target(s3_results SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_s3_results.c LIBS rs_s3)
