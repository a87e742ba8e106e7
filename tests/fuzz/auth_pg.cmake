# Fuzz targets for the password exchanges (auth/auth_pg_*.c): the SCRAM server and client steps,
# and the digest/SASL-list/base64 parsers. Corpora under corpus/<name> are replayed by ctest
# (fuzz.<name>); with -DRSPROXY_FUZZ=ON the libFuzzer binaries fuzz_<name> are built as well.
px_add_fuzz_target(scram_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_scram_server.c LIBS rs_auth)
px_add_fuzz_target(scram_client SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_scram_client.c LIBS rs_auth)
px_add_fuzz_target(digest SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_digest.c LIBS rs_auth)
# server-first through the parsing step alone: any iteration count (no PBKDF2 is run).
px_add_fuzz_target(scram_prepare SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_scram_prepare.c LIBS rs_auth)
