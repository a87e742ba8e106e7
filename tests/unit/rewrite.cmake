# COPY/UNLOAD rewriter: the table of cases in tests/data/rewrite/cases.txt plus lexer, lead,
# maybe/scan and buffer-contract tests (ctest unit.px_rewrite).
px_add_unit_test(px_rewrite SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_px_rewrite.c LIBS rs_proxy)
