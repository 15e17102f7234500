# Default CUDA architectures, decided before project() enables CUDA (CMake would otherwise pick nvcc's default).
# - CMAKE_CUDA_ARCHITECTURES given (command line, preset, environment CUDAARCHS): used as is.
# - A GPU visible through nvidia-smi: its compute capabilities, as SASS (e.g. "90-real").
# - Otherwise: CULSTM_FALLBACK_CUDA_ARCHITECTURES when set (the test preset sets "90-real" so that a CPU-only CI
#   compiles one architecture), else SASS for the data-centre and workstation generations CUDA 13 supports, plus
#   PTX of the newest so that future GPUs can JIT. Release builds thus ship SASS for every listed architecture.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
  set(_culstm_archs "")
  find_program(_culstm_nvidia_smi nvidia-smi)
  if(_culstm_nvidia_smi)
    execute_process(
      COMMAND ${_culstm_nvidia_smi} --query-gpu=compute_cap --format=csv,noheader
      OUTPUT_VARIABLE _culstm_caps RESULT_VARIABLE _culstm_rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_culstm_rc EQUAL 0 AND _culstm_caps)
      string(REPLACE "\n" ";" _culstm_caps "${_culstm_caps}")
      foreach(_cap IN LISTS _culstm_caps)
        string(STRIP "${_cap}" _cap)
        string(REPLACE "." "" _cap "${_cap}")
        if(_cap MATCHES "^[0-9]+$")
          list(APPEND _culstm_archs "${_cap}-real")
        endif()
      endforeach()
      list(REMOVE_DUPLICATES _culstm_archs)
    endif()
  endif()
  if(_culstm_archs)
    message(STATUS "culstm: CUDA architectures from the local GPU: ${_culstm_archs}")
  elseif(CULSTM_FALLBACK_CUDA_ARCHITECTURES)
    set(_culstm_archs "${CULSTM_FALLBACK_CUDA_ARCHITECTURES}")
    message(STATUS "culstm: no local GPU; CUDA architectures: ${_culstm_archs} (CULSTM_FALLBACK_CUDA_ARCHITECTURES)")
  else()
    set(_culstm_archs "80-real;86-real;89-real;90-real;100-real;120-real;120-virtual")
    message(STATUS "culstm: no local GPU; default CUDA architectures: ${_culstm_archs}")
  endif()
  set(CMAKE_CUDA_ARCHITECTURES "${_culstm_archs}" CACHE STRING "CUDA architectures to build for")
endif()
