# Test suites beyond the unit tests: each suite registers itself in tests/cmake/<suite>.cmake.
file(GLOB VG_TEST_SUITES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cmake/*.cmake)
foreach(suite ${VG_TEST_SUITES})
  include(${suite})
endforeach()
