# Differential tests against scikit-learn (docs/differential-tests.md).
#
# This file has two roles:
# - included from tests/tests.cmake: it generates the cases into ${CMAKE_BINARY_DIR}/sklearn-cases
#   at build time (regenerated when the generator or the exporter changes) and registers the
#   ctest test `sklearn_differential`;
# - run as `cmake -DRUNNER=... -DCASES=... -P differential.cmake` (what the test does): it runs the
#   conformance runner on the cases and fails unless every case passed. A skipped case fails the
#   test too: the runner skips a model whose operator is not registered, and that must not pass
#   silently here.

if(CMAKE_SCRIPT_MODE_FILE)
  file(GLOB expected_cases LIST_DIRECTORIES true "${CASES}/test_skl_*")
  list(LENGTH expected_cases n_expected)
  if(n_expected EQUAL 0)
    message(FATAL_ERROR "no test_skl_* cases in ${CASES}: run the build first")
  endif()
  execute_process(COMMAND "${RUNNER}" "${CASES}" --rtol 0 --atol 1e-5 ${RUNNER_ARGS}
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  message("${out}${err}")
  string(REGEX MATCH "([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped" summary "${out}${err}")
  if(NOT summary)
    message(FATAL_ERROR "sklearn_differential: no summary line from the runner (exit ${rc})")
  endif()
  set(n_passed ${CMAKE_MATCH_1})
  set(n_failed ${CMAKE_MATCH_2})
  set(n_skipped ${CMAKE_MATCH_3})
  if(NOT n_skipped EQUAL 0)
    message(FATAL_ERROR "sklearn_differential: ${n_skipped} case(s) skipped; an operator these "
                        "models need is not registered")
  endif()
  if(NOT n_failed EQUAL 0 OR NOT rc EQUAL 0)
    message(FATAL_ERROR "sklearn_differential: ${n_failed} case(s) failed (exit ${rc})")
  endif()
  if(NOT n_passed EQUAL n_expected)
    message(FATAL_ERROR "sklearn_differential: ${n_passed} passed, expected ${n_expected}")
  endif()
  return()
endif()

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
           COMMAND ${CMAKE_COMMAND} -DRUNNER=$<TARGET_FILE:onnx_conformance>
                   -DCASES=${vg_skl_dir} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(sklearn_differential PROPERTIES TIMEOUT 300)
endif()
