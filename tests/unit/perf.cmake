# proxy/px_tls.c's ciphertext I/O (its own BIO): in-place output, split records, trimming, the
# buffer ceiling and allocation failures.
px_add_unit_test(px_tls_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_tls_io.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_px_certs.c LIBS rs_proxy)
