# Command-line tests: tests/cli/test_cli.sh runs `vigil inspect` and `vigil run` on models that
# tests/cli/make_cli_model.py generates (needs /usr/bin/python3 with onnx, numpy, scikit-learn).
add_test(NAME cli
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/test_cli.sh $<TARGET_FILE:vigil>
                 ${CMAKE_BINARY_DIR}/tests/cli)
set_tests_properties(cli PROPERTIES TIMEOUT 300)
