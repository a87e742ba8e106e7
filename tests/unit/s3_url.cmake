# S3 URLs, role ARNs and the [s3] tempdir validation hook (ctest unit.s3_url).
px_add_unit_test(s3_url SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_s3_url.c LIBS rs_s3 rs_config)
