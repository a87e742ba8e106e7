# proxy/: startup packets, backend messages and SQL location, the streaming framer over random
# chunkings, and the client auth file (corpora in corpus/px_*).
px_add_fuzz_target(px_startup SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_px_startup.c LIBS rs_proxy)
px_add_fuzz_target(px_backend SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_px_backend.c LIBS rs_proxy)
px_add_fuzz_target(px_framer SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_px_framer.c LIBS rs_proxy)
px_add_fuzz_target(px_authfile SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_px_authfile.c LIBS rs_proxy)
# The ParameterStatus set a pooled session keeps (px_pool.c).
px_add_fuzz_target(px_pool_params SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_px_pool_params.c
                   LIBS rs_proxy)
