px_add_unit_test(base SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_base.c LIBS px_base)
