# Vision tests (docs/models-digits.md: the digits model and the torchvision tests).
#
# Included from tests/tests.cmake, it registers
#   torchvision     torchvision architectures (tests/vision/gen_torchvision.py, generated into
#                   ${CMAKE_BINARY_DIR}/torchvision-cases at build time and regenerated only when
#                   the generator changes) run by the conformance runner against torch's outputs
#                   within atol 1e-4 (run_cases.cmake: every case must pass, none be skipped);
#   digits_engine   models/digits through `vigil run` against torch's recorded holdout logits;
#   digits_server   models/digits served: held-out PNGs posted to /models/digits/predict.
#
# The torchvision cases need /usr/bin/python3 with torch and torchvision (Debian python3-torch,
# python3-torchvision); the digits tests need numpy, scikit-learn and PIL but not torch (the model
# is committed). Without them the tests are not registered, with a STATUS message saying so.

set(VG_VISION_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with torch, torchvision, onnx, numpy, scikit-learn and PIL (Debian packages)")

execute_process(COMMAND ${VG_VISION_PYTHON} -c "import torch, torchvision, onnx, numpy"
                RESULT_VARIABLE vg_torch_missing OUTPUT_QUIET ERROR_QUIET)
if(vg_torch_missing)
  message(STATUS "torchvision: ${VG_VISION_PYTHON} lacks torch/torchvision/onnx/numpy; "
                 "test not registered")
elseif(NOT TARGET onnx_conformance)
  message(STATUS "torchvision: no onnx_conformance runner; test not registered")
else()
  set(vg_tv_dir ${CMAKE_BINARY_DIR}/torchvision-cases)
  set(vg_tv_gen ${CMAKE_SOURCE_DIR}/tests/vision/gen_torchvision.py)
  add_custom_command(
    OUTPUT ${vg_tv_dir}/.stamp
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${vg_tv_dir}
    COMMAND ${VG_VISION_PYTHON} ${vg_tv_gen} ${vg_tv_dir}
    COMMAND ${CMAKE_COMMAND} -E touch ${vg_tv_dir}/.stamp
    DEPENDS ${vg_tv_gen}
    COMMENT "Exporting torchvision architectures to ONNX (tests/vision/gen_torchvision.py)"
    VERBATIM)
  add_custom_target(torchvision_cases ALL DEPENDS ${vg_tv_dir}/.stamp)
  add_test(NAME torchvision
           COMMAND ${CMAKE_COMMAND} -DNAME=torchvision -DRUNNER=$<TARGET_FILE:onnx_conformance>
                   -DCASES=${vg_tv_dir} -DPREFIX=test_tv_ -DATOL=1e-4 -DRUNNER_ARGS=-v
                   -P ${CMAKE_CURRENT_LIST_DIR}/run_cases.cmake)
  set_tests_properties(torchvision PROPERTIES TIMEOUT 900)
endif()

execute_process(COMMAND ${VG_VISION_PYTHON} -c "import numpy, sklearn, PIL"
                RESULT_VARIABLE vg_digits_missing OUTPUT_QUIET ERROR_QUIET)
if(vg_digits_missing)
  message(STATUS "digits: ${VG_VISION_PYTHON} lacks numpy/sklearn/PIL; tests not registered")
else()
  foreach(mode engine server)
    add_test(NAME digits_${mode}
             COMMAND ${VG_VISION_PYTHON} ${CMAKE_SOURCE_DIR}/tests/vision/test_digits.py ${mode}
                     $<TARGET_FILE:vigil> ${CMAKE_SOURCE_DIR}
                     ${CMAKE_BINARY_DIR}/tests/digits_${mode})
    set_tests_properties(digits_${mode} PROPERTIES TIMEOUT 300)
  endforeach()
endif()
