# docker.build: the container image's build steps (docker/build.sh) run natively, as the
# Dockerfile's build stage runs them, because no Docker engine runs on the test machines.
# It builds rsproxy in Release into the build tree, runs it, and checks the runtime stage's
# package list against the libraries it links. Label docker: not repeated under ASan.
add_test(NAME docker.build
         COMMAND ${PROJECT_SOURCE_DIR}/docker/build.sh
                 --prefix ${CMAKE_BINARY_DIR}/docker-out
                 --build-dir ${CMAKE_BINARY_DIR}/docker-build)
set_tests_properties(docker.build PROPERTIES LABELS docker TIMEOUT 900)
