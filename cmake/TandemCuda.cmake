# TANDEM_CUDA=AUTO builds the CUDA backend when a toolkit is found (under
# /usr/local/cuda by default), ON requires it, OFF skips it. Sets TANDEM_HAVE_CUDA.
set(TANDEM_HAVE_CUDA OFF)
if(NOT TANDEM_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES ${TANDEM_CUDA_ARCHS})
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    # CMake 3.25 (Debian 12) cannot ask nvcc for C++20, so .cu files are
    # C++17: the headers they include (runtime/status.h, cuda/*.h) stay C++17-clean.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(TANDEM_HAVE_CUDA ON)
  elseif(TANDEM_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TANDEM_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or CUDAToolkit_ROOT)")
  endif()
endif()
