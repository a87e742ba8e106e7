# auth/: parsers of AWS responses (XML, JSON) and of the ~/.aws files with the settings rules.
px_add_fuzz_target(aws_xml SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_aws_xml.c LIBS rs_auth)
px_add_fuzz_target(aws_json SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_aws_json.c LIBS rs_auth)
px_add_fuzz_target(aws_ini SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_aws_ini.c LIBS rs_auth)
