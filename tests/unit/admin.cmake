# The admin HTTP endpoint: the pure parts (request parser, Prometheus text, probe decisions)
# in unit.px_admin, the libuv server over loopback sockets in unit.px_admin_server.
px_add_unit_test(px_admin SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_admin.c LIBS rs_proxy)
px_add_unit_test(px_admin_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_admin_server.c
                 LIBS rs_proxy Threads::Threads TIMEOUT 180)
