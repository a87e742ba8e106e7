# integration.iam_providers (tests/integration/test_iam_providers.py, registered by
# integration.cmake's glob like every test_*.py): the provider chain, SigV4 and the Redshift
# APIs against the AWS stand-in, through this small driver, which fetches credentials once the
# way rsproxy does and prints the DbUser (never a password). The test finds it in
# ${RSPROXY_BUILD_DIR}/tests/iam_driver, or through RSPROXY_IAM_DRIVER.
add_executable(iam_driver ${CMAKE_CURRENT_LIST_DIR}/iam_driver/iam_driver.c)
target_link_libraries(iam_driver PRIVATE rs_auth rs_config px_base)
set_target_properties(iam_driver PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
rsproxy_target(iam_driver)
