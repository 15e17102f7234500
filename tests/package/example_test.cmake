# The installed package, used the way an inference server's build uses it: install the build tree into a fresh
# prefix, check the files, check the version file's compatibility rule, configure and build examples/server against
# the prefix with find_package(culstm CONFIG REQUIRED) (shared and static), create a model with the installed
# `culstm` program, and run the example on the reference backend.
#
# cmake -DBUILD_DIR=... -DSOURCE_DIR=<examples/server> -DWORK_DIR=... -DGENERATOR=... -DCXX=... -DCUDA_ROOT=...
#       -DWITH_CUDNN=ON|OFF -DWITH_CLI=ON|OFF -P example_test.cmake
cmake_minimum_required(VERSION 3.24)

foreach(var BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR CXX CUDA_ROOT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "example_test.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# 1. Install.
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
file(GLOB config_file ${prefix}/lib*/cmake/culstm/culstmConfig.cmake)
if(NOT config_file)
  message(FATAL_ERROR "no lib*/cmake/culstm/culstmConfig.cmake under ${prefix}")
endif()
get_filename_component(config_dir ${config_file} DIRECTORY)
get_filename_component(libdir ${config_dir}/../.. ABSOLUTE)
set(expected
  include/culstm/culstm.h include/culstm/culstm.hpp include/culstm/export.h include/culstm/model_file.h
  include/culstm/version.h include/culstm/status.h include/culstm/types.h include/culstm/spec.h
  include/culstm/weights.h include/culstm/activation.h)
foreach(f IN LISTS expected)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
foreach(f libculstm.so libculstm.a cmake/culstm/culstmConfigVersion.cmake cmake/culstm/culstmTargets.cmake)
  if(NOT EXISTS ${libdir}/${f})
    message(FATAL_ERROR "not installed: ${libdir}/${f}")
  endif()
endforeach()
if(WITH_CUDNN AND NOT EXISTS ${config_dir}/FindCUDNN.cmake)
  message(FATAL_ERROR "built with cuDNN but FindCUDNN.cmake is not installed next to culstmConfig.cmake")
endif()
file(GLOB internal_headers ${prefix}/include/culstm/*.in ${prefix}/include/io ${prefix}/include/culstm/detail*)
if(internal_headers)
  message(FATAL_ERROR "internal files installed: ${internal_headers}")
endif()

# 2. The version rule (semantic versioning): from 1.0 on SameMajorVersion; before 1.0 a minor release may break
#    the ABI, so SameMinorVersion. A requested version newer than the installed one is never compatible.
include(${config_dir}/culstmConfigVersion.cmake)
set(installed_version ${PACKAGE_VERSION})
string(REPLACE "." ";" installed_parts "${installed_version}")
list(GET installed_parts 0 major)
list(GET installed_parts 1 minor)
math(EXPR next_major "${major} + 1")
math(EXPR next_minor "${minor} + 1")
set(cases "${major}.${minor};TRUE" "${installed_version};TRUE" "${next_major}.0;FALSE" "${installed_version}.1;FALSE"
          "${major}.${next_minor};FALSE")
if(major EQUAL 0 AND minor GREATER 0)
  math(EXPR previous_minor "${minor} - 1")
  list(APPEND cases "0.${previous_minor};FALSE")  # 0.x: another minor is another ABI
elseif(NOT major EQUAL 0)
  list(APPEND cases "${major}.0;TRUE")
endif()
set(index 0)
list(LENGTH cases count)
while(index LESS count)
  list(GET cases ${index} PACKAGE_FIND_VERSION)
  math(EXPR want_index "${index} + 1")
  list(GET cases ${want_index} want)
  math(EXPR index "${index} + 2")
  string(REPLACE "." ";" parts "${PACKAGE_FIND_VERSION}")
  list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
  list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
  unset(PACKAGE_VERSION_COMPATIBLE)
  unset(PACKAGE_VERSION_EXACT)
  include(${config_dir}/culstmConfigVersion.cmake)
  if(NOT "${PACKAGE_VERSION_COMPATIBLE}" STREQUAL "${want}")
    message(FATAL_ERROR "find_package(culstm ${PACKAGE_FIND_VERSION}) against ${installed_version}: compatible="
                        "'${PACKAGE_VERSION_COMPATIBLE}', expected ${want}")
  endif()
endwhile()

# 3. Configure and build the example against the prefix only (no path into the source or build tree).
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${prefix} -DCUDAToolkit_ROOT=${CUDA_ROOT}
    -DCULSTM_EXAMPLE_STATIC=ON)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)

# 4. A model: from the installed `culstm` program when the build has it, else written by the example.
set(model ${WORK_DIR}/model.safetensors)
if(WITH_CLI)
  run(${prefix}/bin/culstm make-example --config input=24,hidden=48,proj=32,layers=2,dir=forward,batch=2,steps=5
      --weights ${model} --input ${WORK_DIR}/x.npy)
  set(model_args ${model})
else()
  set(model_args --make-model ${model})
endif()

# 5. Serve on the reference backend: several threads, batches of mixed lengths, checked against single runs.
foreach(exe culstm_server_example culstm_server_example_static)
  run(${WORK_DIR}/build/${exe} ${model_args} --backend reference --threads 4 --requests 48 --max-batch 6
      --max-steps 40)
  message(STATUS "${exe}:\n${run_output}")
  if(NOT run_output MATCHES "all 48 requests match their single-request run \\(bit for bit")
    message(FATAL_ERROR "${exe}: unexpected output:\n${run_output}")
  endif()
endforeach()
# The shared build really uses the installed shared library.
run(ldd ${WORK_DIR}/build/culstm_server_example)
string(FIND "${run_output}" "=> ${libdir}/libculstm.so" found)
if(found EQUAL -1)
  message(FATAL_ERROR "culstm_server_example does not load ${libdir}/libculstm.so:\n${run_output}")
endif()
message(STATUS "installed package: ok (culstm ${installed_version})")
