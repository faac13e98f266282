# Server integration tests (docs/testing-server.md): the real `vigil serve` on a free port with a
# temporary model repository, exercised over HTTP with curl and jq.
#   server     tests/server/test_server.sh: every endpoint, exact metrics, promtool on a live
#              scrape, the bad-input table, 1,000 slow clients, graceful shutdown under load, the
#              configuration layers
#   server_v2  tests/server/test_v2.sh: the Open Inference Protocol in depth
#   server_drift  tests/server/test_drift.sh: drift monitoring (exact counts, PSI of training-like
#              and shifted traffic, --drift off, a 2 s window emptying, the options)
# Both scripts get the same arguments:
#   VIGIL SLOW_CLIENTS HAMMER PROMTOOL WORK_DIR SOURCE_DIR
# (the load tools are tests/tools/http_slow_clients.c and http_hammer.c; SOURCE_DIR holds
# models/iris and data/iris.csv) and source tests/server/common.sh. Without promtool the tests
# fail rather than skip: a skipped check would look like a passed one.
find_program(VG_SERVER_PROMTOOL promtool)
if(NOT VG_SERVER_PROMTOOL)
  set(VG_SERVER_PROMTOOL promtool-not-installed)
endif()

set(vg_server_tools $<TARGET_FILE:http_slow_clients> $<TARGET_FILE:http_hammer>
                    ${VG_SERVER_PROMTOOL})
add_test(NAME server
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/server/test_server.sh $<TARGET_FILE:vigil>
                 ${vg_server_tools} ${CMAKE_BINARY_DIR}/tests/server ${CMAKE_SOURCE_DIR})
add_test(NAME server_v2
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/server/test_v2.sh $<TARGET_FILE:vigil>
                 ${vg_server_tools} ${CMAKE_BINARY_DIR}/tests/server_v2 ${CMAKE_SOURCE_DIR})
add_test(NAME server_drift
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/server/test_drift.sh $<TARGET_FILE:vigil>
                 ${vg_server_tools} ${CMAKE_BINARY_DIR}/tests/server_drift ${CMAKE_SOURCE_DIR})
set_tests_properties(server server_v2 PROPERTIES TIMEOUT 600)
set_tests_properties(server_drift PROPERTIES TIMEOUT 300)
# Ground-truth feedback (tests/server/test_feedback.sh): POST /feedback and its /v2 form, the
# prediction store's eviction, the feedback metrics, --feedback off; same arguments.
add_test(NAME server_feedback
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/server/test_feedback.sh $<TARGET_FILE:vigil>
                 ${vg_server_tools} ${CMAKE_BINARY_DIR}/tests/server_feedback ${CMAKE_SOURCE_DIR})
set_tests_properties(server_feedback PROPERTIES TIMEOUT 600)
