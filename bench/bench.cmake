# Benchmark programs with dependencies of their own (included from the top CMakeLists.txt).
#
# conv_backends (bench/engine/conv_backends.c): the engine's Conv / QLinearConv next to oneDNN's
# convolution primitive and a plain im2col + cblas_sgemm, layer by layer (bench/engine/README.md).
# oneDNN is Debian's libdnnl-dev (scripts/install-deps.sh --bench); without it the target is
# skipped, and nothing else depends on it.

find_package(dnnl CONFIG QUIET)
if(TARGET DNNL::dnnl)
  set(VG_DNNL_TARGET DNNL::dnnl)
else()
  # Some packagings ship the header and library without a usable CMake config.
  find_path(VG_DNNL_INCLUDE oneapi/dnnl/dnnl.h)
  find_library(VG_DNNL_LIBRARY dnnl)
  if(VG_DNNL_INCLUDE AND VG_DNNL_LIBRARY)
    add_library(vg_dnnl INTERFACE)
    target_include_directories(vg_dnnl INTERFACE ${VG_DNNL_INCLUDE})
    target_link_libraries(vg_dnnl INTERFACE ${VG_DNNL_LIBRARY})
    set(VG_DNNL_TARGET vg_dnnl)
  endif()
endif()

# oneDNN's Debian build threads with OpenMP: the program pins it to one thread with
# omp_set_num_threads(), so it links libgomp itself.
find_package(OpenMP COMPONENTS C QUIET)

if(VG_DNNL_TARGET AND OpenMP_C_FOUND)
  vg_add_tool(conv_backends ${CMAKE_SOURCE_DIR}/bench/engine/conv_backends.c)
  target_link_libraries(conv_backends PRIVATE ${VG_DNNL_TARGET} OpenMP::OpenMP_C)
else()
  message(STATUS "oneDNN (libdnnl-dev) or OpenMP not found: bench target conv_backends skipped")
endif()
