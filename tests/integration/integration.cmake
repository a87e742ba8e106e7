# Integration tests: one ctest per tests/integration/test_*.py, named integration.<name>, so
# `ctest -j2` runs files in parallel. Each pytest process makes its own PostgreSQL cluster,
# certificates and ports (fixtures_core.py), so parallel files never collide.
# A missing client, package or PostgreSQL fails the test (conftest.py turns skips into failures).
file(GLOB PX_INTEGRATION_FILES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.py)
list(SORT PX_INTEGRATION_FILES)

if(RSPROXY_SANITIZE)
    set(PX_IT_SANITIZED 1)
else()
    set(PX_IT_SANITIZED 0)
endif()

# Files known to take longer get a larger budget; the default covers the rest.
set(PX_IT_TIMEOUT_DEFAULT 600)
set(PX_IT_TIMEOUT_large 900)
set(PX_IT_TIMEOUT_malformed 900)

foreach(file ${PX_INTEGRATION_FILES})
    get_filename_component(stem ${file} NAME_WE)
    string(REGEX REPLACE "^test_" "" name ${stem})
    add_test(NAME integration.${name}
             COMMAND ${RSPROXY_PYTHON} -m pytest -q ${file}
             WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
    if(DEFINED PX_IT_TIMEOUT_${name})
        set(timeout ${PX_IT_TIMEOUT_${name}})
    else()
        set(timeout ${PX_IT_TIMEOUT_DEFAULT})
    endif()
    set_tests_properties(integration.${name} PROPERTIES
        LABELS integration
        TIMEOUT ${timeout}
        ENVIRONMENT "RSPROXY_BIN=$<TARGET_FILE:rsproxy>;RSPROXY_SANITIZED=${PX_IT_SANITIZED};RSPROXY_BUILD_DIR=${CMAKE_BINARY_DIR};PYTHONDONTWRITEBYTECODE=1")
endforeach()
