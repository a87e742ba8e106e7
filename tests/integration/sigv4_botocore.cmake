# integration.sigv4_botocore: hundreds of generated requests signed by auth_sigv4 (through the
# small sigv4_xcheck program) and by botocore's SigV4Auth/S3SigV4Auth; any difference fails.
# Needs Debian's python3-botocore (tests/install-deps.sh); a missing botocore is a failure.
add_executable(sigv4_xcheck ${CMAKE_CURRENT_LIST_DIR}/sigv4/sigv4_xcheck.c)
target_link_libraries(sigv4_xcheck PRIVATE rs_auth PkgConfig::JANSSON)
rsproxy_target(sigv4_xcheck)
add_test(NAME integration.sigv4_botocore
         COMMAND ${RSPROXY_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/sigv4/check_botocore.py
                 --signer $<TARGET_FILE:sigv4_xcheck> --count 800)
set_tests_properties(integration.sigv4_botocore PROPERTIES LABELS integration TIMEOUT 300)
