# s3/: XML parsers and builders (ctest unit.s3_xml), request helpers, lifecycle matching and
# staging prefixes (unit.s3_req), and the client on a real loop against a fake S3 run in-process
# on tests/unit/test_auth_server.c (unit.s3_client).
px_add_unit_test(s3_xml SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_s3_xml.c LIBS rs_s3)
px_add_unit_test(s3_req SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_s3_req.c LIBS rs_s3)
px_add_unit_test(s3_client SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_s3_client.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_auth_server.c LIBS rs_s3 rs_config
                 TIMEOUT 300)
