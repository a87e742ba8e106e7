# integration.s3_client (tests/integration/test_s3_client.py, registered by integration.cmake's
# glob like every test_*.py): rsproxy's s3/ module against the S3 stand-in through this small
# driver, which runs one S3 operation the way the proxy does and prints the outcome (never a
# secret). The test finds it in ${RSPROXY_BUILD_DIR}/tests/s3_driver, or through
# RSPROXY_S3_DRIVER.
add_executable(s3_driver ${CMAKE_CURRENT_LIST_DIR}/s3_driver/s3_driver.c)
target_link_libraries(s3_driver PRIVATE rs_s3 rs_auth rs_config px_base)
set_target_properties(s3_driver PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
rsproxy_target(s3_driver)
