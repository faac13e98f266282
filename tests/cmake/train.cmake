# `vigil train` end to end: tests/train/test_train.sh trains on data/iris.csv and on data sets it
# generates (needs /usr/bin/python3 with numpy, scikit-learn and onnx), into repositories under
# the build directory. vg_slow_fsync is an LD_PRELOAD shim that slows fsync() so the test can
# interrupt the repository write phase.
add_library(vg_slow_fsync MODULE ${CMAKE_SOURCE_DIR}/tests/train/slow_fsync.c)
target_compile_options(vg_slow_fsync PRIVATE ${VG_WARNINGS})
target_link_libraries(vg_slow_fsync PRIVATE ${CMAKE_DL_LIBS})
add_test(NAME train_cli
         COMMAND bash ${CMAKE_SOURCE_DIR}/tests/train/test_train.sh $<TARGET_FILE:vigil>
                 ${CMAKE_BINARY_DIR}/tests/train ${CMAKE_SOURCE_DIR}
                 $<TARGET_FILE:vg_slow_fsync>)
set_tests_properties(train_cli PROPERTIES TIMEOUT 600)
