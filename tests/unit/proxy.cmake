# proxy/: the wire codec, the TLS engine in memory, the client auth file, and the daemon over
# loopback sockets with a scripted upstream.
px_add_unit_test(px_msg SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_msg.c LIBS rs_proxy)
px_add_unit_test(px_tls SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_tls.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_px_certs.c LIBS rs_proxy)
px_add_unit_test(px_conn SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_conn.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_px_certs.c LIBS rs_proxy Threads::Threads
                 TIMEOUT 300)
px_add_unit_test(px_authfile SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_authfile.c LIBS rs_proxy)
