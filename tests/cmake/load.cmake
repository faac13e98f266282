# `vigil load` (docs/load-generator.md): tests/load/test_load.sh runs every scenario against the
# real `vigil serve` on a free port, compares the generator's counts with the server's metrics,
# checks the drawn bodies against the training reference, and runs the coordinated-omission test
# against tests/tools/http_stall_server.c. Arguments:
#   VIGIL STALL_SERVER WORK_DIR SOURCE_DIR SANITIZED
# (SANITIZED is VG_SANITIZE: an ASan/UBSan build runs the same checks at lower rates).
add_test(NAME load
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/load/test_load.sh $<TARGET_FILE:vigil>
                 $<TARGET_FILE:http_stall_server> ${CMAKE_BINARY_DIR}/tests/load
                 ${CMAKE_SOURCE_DIR} ${VG_SANITIZE})
set_tests_properties(load PROPERTIES TIMEOUT 600)

# The unit test tests/unit/test_load.c (registered with the other unit tests) links the
# generator's server-independent files directly.
target_sources(test_load PRIVATE ${CMAKE_SOURCE_DIR}/src/cli/load_hist.c
               ${CMAKE_SOURCE_DIR}/src/cli/load_http.c ${CMAKE_SOURCE_DIR}/src/cli/load_check.c
               ${CMAKE_SOURCE_DIR}/src/cli/load_bodies.c ${CMAKE_SOURCE_DIR}/src/cli/load_engine.c)
