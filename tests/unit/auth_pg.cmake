# PostgreSQL/Redshift password exchanges (auth/auth_pg_*.c) and px_b64: MD5, digest (code 13),
# SCRAM-SHA-256 client and server, SASLprep, with RFC 7677 and PostgreSQL-made vectors.
px_add_unit_test(auth_pg SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth_pg.c LIBS rs_auth)
