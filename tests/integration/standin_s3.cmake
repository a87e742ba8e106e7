# The S3 stand-in's own tests (test_standin_s3.py). integration.cmake registers every
# test_*.py already; this fragment registers it only if that ever changes, and gives it its budget.
if(NOT TEST integration.standin_s3)
    add_test(NAME integration.standin_s3
             COMMAND ${RSPROXY_PYTHON} -m pytest -q ${CMAKE_CURRENT_LIST_DIR}/test_standin_s3.py
             WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
    set_tests_properties(integration.standin_s3 PROPERTIES LABELS integration
        ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
set_tests_properties(integration.standin_s3 PROPERTIES TIMEOUT 600)
