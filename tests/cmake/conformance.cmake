# ONNX conformance: ONNX's backend node tests (generated at test time with Debian's python3-onnx)
# plus the hand-made cases of tests/fixtures/gen_*_cases.py, run by tests/tools/onnx_conformance.c.
# See docs/conformance.md.
set(VG_ONNX_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with the onnx and numpy modules")

if(TARGET onnx_conformance)
  add_test(NAME onnx_conformance
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/run_conformance.sh
                   $<TARGET_FILE:onnx_conformance> ${VG_ONNX_PYTHON} ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/onnx-node-tests
                   ${CMAKE_SOURCE_DIR}/tests/conformance/exclusions.txt)
  set_tests_properties(onnx_conformance PROPERTIES TIMEOUT 1200)
endif()
