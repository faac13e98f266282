# Deployment files (docs/deploy.md, "How it is validated"):
#   deploy_promtool    tests/deploy/test_promtool.sh: promtool check config / check rules / test
#                      rules on deploy/prometheus, amtool check-config and route tests on
#                      deploy/alertmanager, and its inhibition in a real Alertmanager on loopback
#   deploy_manifests   tests/deploy/validate.mjs: compose, Kubernetes, KServe and the Dockerfile
#                      against their schemas and linters (npm packages of tests/deploy, installed by
#                      scripts/install-deps.sh), and the cross-checks between them and the code
# Missing tools fail the tests rather than skip them: a skipped check would look like a passed one.
find_program(VG_DEPLOY_PROMTOOL promtool)
if(NOT VG_DEPLOY_PROMTOOL)
  set(VG_DEPLOY_PROMTOOL promtool-not-installed)
endif()
find_program(VG_DEPLOY_AMTOOL amtool)
if(NOT VG_DEPLOY_AMTOOL)
  set(VG_DEPLOY_AMTOOL amtool-not-installed)
endif()
find_program(VG_DEPLOY_ALERTMANAGER NAMES prometheus-alertmanager alertmanager)
if(NOT VG_DEPLOY_ALERTMANAGER)
  set(VG_DEPLOY_ALERTMANAGER alertmanager-not-installed)
endif()
find_program(VG_DEPLOY_NODE node)
if(NOT VG_DEPLOY_NODE)
  set(VG_DEPLOY_NODE node-not-installed)
endif()

add_test(NAME deploy_promtool
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/deploy/test_promtool.sh ${VG_DEPLOY_PROMTOOL}
                 ${VG_DEPLOY_AMTOOL} ${VG_DEPLOY_ALERTMANAGER}
                 ${CMAKE_BINARY_DIR}/tests/deploy_promtool ${CMAKE_SOURCE_DIR})
# The built vigil is passed so that the Dockerfile's runtime packages are checked against the
# libraries it links.
add_test(NAME deploy_manifests
         COMMAND ${VG_DEPLOY_NODE} ${CMAKE_SOURCE_DIR}/tests/deploy/validate.mjs ${CMAKE_SOURCE_DIR}
                 $<TARGET_FILE:vigil>)
set_tests_properties(deploy_promtool deploy_manifests PROPERTIES TIMEOUT 120)
