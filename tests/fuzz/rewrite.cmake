# Fuzz targets for the COPY/UNLOAD rewriter and S3 URLs. ctest fuzz.rewrite and fuzz.s3_url
# replay tests/fuzz/corpus/{rewrite,s3_url}; with -DRSPROXY_FUZZ=ON (clang) fuzz_rewrite and
# fuzz_s3_url are libFuzzer binaries:
#   fuzz_rewrite -max_len=4096 -dict=tests/data/rewrite/fuzz.dict NEWDIR tests/fuzz/corpus/rewrite
# (tests/data/rewrite/make_corpus.py regenerates the seeds from the case table).
px_add_fuzz_target(rewrite SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_rewrite.c LIBS rs_proxy)
px_add_fuzz_target(s3_url SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_s3_url.c LIBS rs_s3 rs_config)
