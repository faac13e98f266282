# Fuzz targets (fuzz/, docs/fuzzing.md).
#
# Always: fuzz_<target>_replay, each target's LLVMFuzzerTestOneInput driven by fuzz/replay.c, built
# like every other tool (any compiler, our warnings), and a ctest test fuzz_replay_<target> that
# replays the seed corpus fuzz/corpus/<target>/, so the normal and the sanitizer test runs both
# exercise the targets.
# With -DVG_FUZZ=ON and clang: fuzz_<target>, real libFuzzer binaries. The libraries are then
# instrumented for coverage and built with ASan+UBSan (every executable of the build links the
# sanitizer runtimes); `make fuzz` configures such a build and runs each target.
option(VG_FUZZ "Build libFuzzer targets fuzz_<target> (needs clang)" OFF)

set(VG_FUZZ_TARGETS model tensor csv)
set(VG_FUZZ_DIR ${CMAKE_SOURCE_DIR}/fuzz)

foreach(target ${VG_FUZZ_TARGETS})
  add_executable(fuzz_${target}_replay ${VG_FUZZ_DIR}/fuzz_${target}.c ${VG_FUZZ_DIR}/fuzz_util.c
                                       ${VG_FUZZ_DIR}/replay.c)
  target_compile_options(fuzz_${target}_replay PRIVATE ${VG_WARNINGS})
  target_link_libraries(fuzz_${target}_replay PRIVATE vg_train vg_engine)
  add_test(NAME fuzz_replay_${target}
           COMMAND fuzz_${target}_replay ${VG_FUZZ_DIR}/corpus/${target})
  set_tests_properties(fuzz_replay_${target} PROPERTIES TIMEOUT 300)
endforeach()

if(VG_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(WARNING "VG_FUZZ=ON needs clang (CC=clang); libFuzzer targets not built")
  else()
    set(vg_fuzz_sanitizers -fsanitize=address,undefined -fno-sanitize-recover=undefined
                           -fno-omit-frame-pointer)
    foreach(lib vg_onnxproto vg_engine vg_train)
      target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link ${vg_fuzz_sanitizers})
      target_link_options(${lib} INTERFACE -fsanitize=address,undefined)
    endforeach()
    foreach(target ${VG_FUZZ_TARGETS})
      add_executable(fuzz_${target} ${VG_FUZZ_DIR}/fuzz_${target}.c ${VG_FUZZ_DIR}/fuzz_util.c)
      target_compile_options(fuzz_${target} PRIVATE ${VG_WARNINGS} -fsanitize=fuzzer
                                                    ${vg_fuzz_sanitizers})
      target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
      target_link_libraries(fuzz_${target} PRIVATE vg_train vg_engine)
    endforeach()
  endif()
endif()
