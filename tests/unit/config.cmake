# config/: key table, INI parsing, environment overrides, validation, snapshots, generated docs.
px_add_unit_test(config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_config.c LIBS rs_config)
