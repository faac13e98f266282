# Metrics exposition: tests/tools/monitor_expo_demo writes a registry with every metric type,
# labels needing escaping and the process metrics in both formats; promtool (Debian's
# `prometheus` package, installed by scripts/install-deps.sh) must accept the 0.0.4 text without a
# complaint, and the OpenMetrics text must end with "# EOF". promtool 2.42 lints only the 0.0.4
# format; test_monitor checks the OpenMetrics structure. Without promtool the test fails: a
# skipped check would look like a passed one.
find_program(PROMTOOL promtool)
if(NOT PROMTOOL)
  set(PROMTOOL promtool-not-installed)
endif()
add_test(NAME monitor_promtool
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/monitor/check_expo.sh
                 $<TARGET_FILE:monitor_expo_demo> ${PROMTOOL} ${CMAKE_BINARY_DIR}/tests/monitor)
set_tests_properties(monitor_promtool PROPERTIES TIMEOUT 60)
