# Differential tests against scikit-learn (docs/differential-tests.md).
#
# Included from tests/tests.cmake, it generates the cases into ${CMAKE_BINARY_DIR}/sklearn-cases at
# build time (regenerated when the generator or the exporter changes) and registers the ctest test
# `sklearn_differential`, which runs the conformance runner on them through run_cases.cmake: every
# case must pass; a skipped case (an operator not registered) fails the test too.

set(VG_SKLEARN_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with scikit-learn, onnx and numpy (Debian python3-sklearn, python3-onnx)")
execute_process(COMMAND ${VG_SKLEARN_PYTHON} -c "import sklearn, onnx, numpy"
                RESULT_VARIABLE vg_sklearn_missing OUTPUT_QUIET ERROR_QUIET)
if(vg_sklearn_missing)
  message(STATUS "sklearn_differential: ${VG_SKLEARN_PYTHON} lacks sklearn/onnx/numpy; "
                 "test not registered")
elseif(NOT TARGET onnx_conformance)
  message(STATUS "sklearn_differential: no onnx_conformance runner; test not registered")
else()
  set(vg_skl_dir ${CMAKE_BINARY_DIR}/sklearn-cases)
  set(vg_skl_gen ${CMAKE_SOURCE_DIR}/tests/fixtures/gen_sklearn_cases.py)
  add_custom_command(
    OUTPUT ${vg_skl_dir}/.stamp
    COMMAND ${VG_SKLEARN_PYTHON} ${vg_skl_gen} ${vg_skl_dir}
    COMMAND ${CMAKE_COMMAND} -E touch ${vg_skl_dir}/.stamp
    DEPENDS ${vg_skl_gen} ${CMAKE_SOURCE_DIR}/tests/fixtures/sklearn_export.py
    COMMENT "Generating scikit-learn differential cases"
    VERBATIM)
  add_custom_target(sklearn_cases ALL DEPENDS ${vg_skl_dir}/.stamp)
  add_test(NAME sklearn_differential
           COMMAND ${CMAKE_COMMAND} -DNAME=sklearn_differential
                   -DRUNNER=$<TARGET_FILE:onnx_conformance> -DCASES=${vg_skl_dir}
                   -DPREFIX=test_skl_ -DATOL=1e-5 -P ${CMAKE_CURRENT_LIST_DIR}/run_cases.cmake)
  set_tests_properties(sklearn_differential PROPERTIES TIMEOUT 300)
endif()
