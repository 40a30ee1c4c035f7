# Warnings and sanitizers for every tandem target, through one interface target.
add_library(tandem_options INTERFACE)
target_compile_options(tandem_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>)
if(TANDEM_WERROR)
  target_compile_options(tandem_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
target_include_directories(tandem_options INTERFACE ${PROJECT_SOURCE_DIR})

if(TANDEM_SANITIZE)
  set(_san -fsanitize=${TANDEM_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_compile_options(tandem_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_san}>)
  target_link_options(tandem_options INTERFACE ${_san})
  # For the few tests whose setting the sanitizers' runtimes cannot live in.
  target_compile_definitions(tandem_options INTERFACE TANDEM_SANITIZED=1)
  if(TANDEM_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 flags Asio's atomic_thread_fence under TSan (-Wtsan); TSan still
    # sees the fences' atomics, so the warning is noise that -Werror would fail.
    target_compile_options(tandem_options INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-tsan>)
  endif()
endif()

# The x86 SIMD kernels are compiled with their own flags and chosen at run time,
# so the binary still runs on a CPU without them. The NEON kernels need no
# flags: Advanced SIMD is part of AArch64. Each file is compiled only for its
# architecture, so no intrinsic header reaches the other's build.
set(TANDEM_X86 OFF)
set(TANDEM_AARCH64 OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(TANDEM_X86 ON)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(TANDEM_AARCH64 ON)
endif()
