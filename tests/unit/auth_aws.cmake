# auth/: the AWS side (parsers, ~/.aws files and settings, HTTP on the loop, provider chain,
# Redshift APIs, the IAM credential cache). Loop tests run a scripted HTTP server in-process.
px_add_unit_test(auth_aws SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth_aws.c LIBS rs_auth)
px_add_unit_test(auth_awscfg SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth_awscfg.c LIBS rs_auth)
px_add_unit_test(auth_http SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth_http.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_auth_server.c LIBS rs_auth)
px_add_unit_test(auth_chain SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth_chain.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_auth_server.c LIBS rs_auth)
px_add_unit_test(auth_iam SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth_iam.c
                 ${CMAKE_CURRENT_LIST_DIR}/test_auth_server.c LIBS rs_auth rs_config)
