# Runs the conformance runner on generated cases and fails unless every case passed (the
# `torchvision` test of vision.cmake and `sklearn_differential` of differential.cmake):
#
#   cmake -DNAME=<test> -DRUNNER=<onnx_conformance> -DCASES=<dir> -DPREFIX=<test_xx_>
#         -DATOL=<tolerance> [-DRUNNER_ARGS=<more options>] -P run_cases.cmake
#
# A skipped case fails too: the runner skips a model whose operator is not registered, and that
# must not pass silently. So does a count of passed cases other than the DIR/PREFIX* folders.

# tests/tests.cmake includes every tests/cmake/*.cmake as a suite; this one only runs with -P.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  return()
endif()

file(GLOB expected_cases LIST_DIRECTORIES true "${CASES}/${PREFIX}*")
list(LENGTH expected_cases n_expected)
if(n_expected EQUAL 0)
  message(FATAL_ERROR "no ${PREFIX}* cases in ${CASES}: run the build first")
endif()
execute_process(COMMAND "${RUNNER}" "${CASES}" --rtol 0 --atol ${ATOL} ${RUNNER_ARGS}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
message("${out}${err}")
string(REGEX MATCH "([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped" summary "${out}${err}")
if(NOT summary)
  message(FATAL_ERROR "${NAME}: no summary line from the runner (exit ${rc})")
endif()
set(n_passed ${CMAKE_MATCH_1})
set(n_failed ${CMAKE_MATCH_2})
set(n_skipped ${CMAKE_MATCH_3})
if(NOT n_skipped EQUAL 0)
  message(FATAL_ERROR "${NAME}: ${n_skipped} case(s) skipped; an operator these models need is "
                      "not registered")
endif()
if(NOT n_failed EQUAL 0 OR NOT rc EQUAL 0)
  message(FATAL_ERROR "${NAME}: ${n_failed} case(s) failed (exit ${rc})")
endif()
if(NOT n_passed EQUAL n_expected)
  message(FATAL_ERROR "${NAME}: ${n_passed} passed, expected ${n_expected}")
endif()
