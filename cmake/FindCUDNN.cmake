# FindCUDNN: cuDNN 9 headers and library.
# Searched, in order: CUDNN_ROOT (CMake or environment variable), CUDNN_PATH, the CUDA toolkit's own directories,
# the `nvidia/cudnn` folder of Python's site-packages (the wheel PyTorch ships with), then the system paths, so a
# machine whose only cuDNN comes with PyTorch works without flags. The library is taken from the header's root
# when it has one, so that header and library always come from the same install.
# Result: CUDNN_FOUND, CUDNN_VERSION, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY and the imported target CUDNN::cudnn.
include(FindPackageHandleStandardArgs)

set(_cudnn_hints "")
foreach(_root IN ITEMS "${CUDNN_ROOT}" "$ENV{CUDNN_ROOT}" "${CUDNN_PATH}" "$ENV{CUDNN_PATH}")
  if(_root)
    list(APPEND _cudnn_hints "${_root}")
  endif()
endforeach()
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _cudnn_hints "${CUDAToolkit_LIBRARY_ROOT}")
endif()
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(_dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    get_filename_component(_parent "${_dir}" DIRECTORY)
    list(APPEND _cudnn_hints "${_parent}")
  endforeach()
endif()

# Python wheels: <site-packages>/nvidia/cudnn/{include,lib}.
find_program(_cudnn_python NAMES python3 python)
if(_cudnn_python)
  execute_process(
    COMMAND "${_cudnn_python}" -c
            "import site,sys,os; ps=site.getsitepackages()+[site.getusersitepackages()]; print(';'.join(os.path.join(p,'nvidia','cudnn') for p in ps if os.path.isdir(os.path.join(p,'nvidia','cudnn'))))"
    OUTPUT_VARIABLE _cudnn_wheel_roots OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _cudnn_rc)
  if(_cudnn_rc EQUAL 0 AND _cudnn_wheel_roots)
    list(APPEND _cudnn_hints ${_cudnn_wheel_roots})
  endif()
endif()

find_path(CUDNN_INCLUDE_DIR NAMES cudnn_version.h HINTS ${_cudnn_hints} PATH_SUFFIXES include targets/x86_64-linux/include)
# Wheels ship only libcudnn.so.9, no unversioned link name.
# The library from the same root as the header first (a wheel has only libcudnn.so.9, and a plain NAMES search
# would take an unversioned libcudnn.so of another install anywhere before it), then each hint directory in order.
if(CUDNN_INCLUDE_DIR AND NOT CUDNN_LIBRARY)
  get_filename_component(_cudnn_root "${CUDNN_INCLUDE_DIR}" DIRECTORY)
  find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 NAMES_PER_DIR HINTS "${_cudnn_root}"
               PATH_SUFFIXES lib lib64 lib/x64 targets/x86_64-linux/lib NO_DEFAULT_PATH)
endif()
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 NAMES_PER_DIR HINTS ${_cudnn_hints}
             PATH_SUFFIXES lib lib64 lib/x64 targets/x86_64-linux/lib)

if(CUDNN_INCLUDE_DIR AND EXISTS "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _cudnn_lines REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
  foreach(_line IN LISTS _cudnn_lines)
    if(_line MATCHES "^#define CUDNN_MAJOR ([0-9]+)")
      set(CUDNN_MAJOR "${CMAKE_MATCH_1}")
    elseif(_line MATCHES "^#define CUDNN_MINOR ([0-9]+)")
      set(CUDNN_MINOR "${CMAKE_MATCH_1}")
    elseif(_line MATCHES "^#define CUDNN_PATCHLEVEL ([0-9]+)")
      set(CUDNN_PATCHLEVEL "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  set(CUDNN_VERSION "${CUDNN_MAJOR}.${CUDNN_MINOR}.${CUDNN_PATCHLEVEL}")
endif()

find_package_handle_standard_args(CUDNN REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND AND CUDNN_MAJOR AND CUDNN_MAJOR LESS 9)
  message(STATUS "culstm: cuDNN ${CUDNN_VERSION} found at ${CUDNN_LIBRARY}, but cuDNN 9 is required; ignoring it")
  set(CUDNN_FOUND FALSE)
endif()

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES IMPORTED_LOCATION "${CUDNN_LIBRARY}"
                                                INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
