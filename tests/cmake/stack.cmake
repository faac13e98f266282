# The monitoring stack (docs/monitoring.md, "How it is verified"):
#   stack_dashboards  tests/stack/dashboards.py check: the Grafana dashboards are what
#                     scripts/gen-dashboards.py writes, every panel uses the provisioned datasource
#                     uid, and compose mounts them where the provider reads
#   stack             tests/stack/test_stack.sh: vigil, Prometheus (the project's config and rules),
#                     Alertmanager and a webhook on loopback, driven by `vigil load`; every
#                     dashboard query, the error-budget, load-failure and down alerts
# Missing tools fail the test rather than skip it (scripts/install-deps.sh installs them).
find_program(VG_STACK_PROMETHEUS prometheus)
if(NOT VG_STACK_PROMETHEUS)
  set(VG_STACK_PROMETHEUS prometheus-not-installed)
endif()
find_program(VG_STACK_ALERTMANAGER NAMES prometheus-alertmanager alertmanager)
if(NOT VG_STACK_ALERTMANAGER)
  set(VG_STACK_ALERTMANAGER alertmanager-not-installed)
endif()

add_test(NAME stack_dashboards
         COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/stack/dashboards.py check
                 ${CMAKE_SOURCE_DIR})
add_test(NAME stack
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/stack/test_stack.sh $<TARGET_FILE:vigil>
                 ${VG_STACK_PROMETHEUS} ${VG_STACK_ALERTMANAGER} ${CMAKE_BINARY_DIR}/tests/stack
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(stack PROPERTIES TIMEOUT 900)
