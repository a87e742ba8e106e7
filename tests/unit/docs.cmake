# The README's configuration reference must equal what the key table generates.
add_executable(print_cfg_reference ${PROJECT_SOURCE_DIR}/tests/docs/print_cfg_reference.c)
target_link_libraries(print_cfg_reference PRIVATE rs_config)
rsproxy_target(print_cfg_reference)
add_test(NAME docs.readme COMMAND ${PROJECT_SOURCE_DIR}/tests/docs/check_readme.sh
         $<TARGET_FILE:print_cfg_reference>)
set_tests_properties(docs.readme PROPERTIES LABELS unit TIMEOUT 60)
