# SigV4 signing (auth/auth_sigv4.c): official suite vectors under tests/data/sigv4/suite and the
# reference document's S3, Redshift and Serverless vectors.
px_add_unit_test(auth_sigv4 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth_sigv4.c LIBS rs_auth)
