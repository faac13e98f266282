# `vigil reference` end to end: tests/train/test_reference.sh computes references for a model
# `vigil train` made (equal to training's for the same rows) and for scikit-learn models exported
# by tests/train/make_reference_models.py (needs /usr/bin/python3 with numpy, scikit-learn and
# onnx), checks errors leave config.json unchanged, and serves the result. Arguments:
#   VIGIL WORK_DIR SOURCE_DIR
add_test(NAME reference
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/train/test_reference.sh $<TARGET_FILE:vigil>
                 ${CMAKE_BINARY_DIR}/tests/reference ${CMAKE_SOURCE_DIR})
set_tests_properties(reference PROPERTIES TIMEOUT 300)
