# Int8 graphs checked against ONNX Runtime (onnxruntime-node from tests/quant/node_modules):
# generated into the build directory at test time by tests/quant/run_quant_tests.sh.
# See tests/quant/README.md. Skipped (exit 77) where Node.js or those npm packages are missing.
set(VG_ONNX_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with the onnx and numpy modules")

if(TARGET onnx_conformance)
  add_test(NAME quant_ort
           COMMAND sh ${CMAKE_SOURCE_DIR}/tests/quant/run_quant_tests.sh
                   $<TARGET_FILE:onnx_conformance> ${VG_ONNX_PYTHON} ${CMAKE_SOURCE_DIR}
                   ${CMAKE_BINARY_DIR}/quant-tests)
  set_tests_properties(quant_ort PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()
