# The installed Python module finds the libraries it was linked against (python/CMakeLists.txt): installs the
# `python` component of BUILD_DIR into PREFIX, as `pip install .` does, and checks that the module's RUNPATH names
# every folder of EXPECTED (the CUDA toolkit's libraries, and cuDNN's when the module links it from a folder the
# loader does not search by itself, e.g. a wheel's site-packages/nvidia/cudnn/lib).
# cmake -DBUILD_DIR=... -DPREFIX=... -DREADELF=... -DEXPECTED="dir;dir" -P python_runpath.cmake
cmake_minimum_required(VERSION 3.24)
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --component python --prefix "${PREFIX}"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install --component python failed (${rc})")
endif()
file(GLOB module "${PREFIX}/culstm/_culstm*.so")
list(LENGTH module count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "expected one installed module ${PREFIX}/culstm/_culstm*.so, found: '${module}'")
endif()
execute_process(COMMAND "${READELF}" -d "${module}" OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} -d ${module} failed (${rc})")
endif()
set(runpath "")
if(dynamic MATCHES "Library (runpath|rpath): \\[([^]\n]*)\\]")
  string(REPLACE ":" ";" runpath "${CMAKE_MATCH_2}")
endif()
foreach(dir IN LISTS EXPECTED)
  if(NOT dir IN_LIST runpath)
    message(FATAL_ERROR "the installed ${module} has RUNPATH '${runpath}', which lacks ${dir}: importing it fails "
                        "where the loader does not search that folder")
  endif()
endforeach()
message(STATUS "installed module's RUNPATH: ${runpath}")
