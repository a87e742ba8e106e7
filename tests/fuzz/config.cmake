# config/: arbitrary bytes as INI text through cfg_load (corpus in corpus/cfg).
px_add_fuzz_target(cfg SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_cfg.c LIBS rs_config)
