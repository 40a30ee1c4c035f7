# Cross build for AArch64 (the DGX Spark's Grace CPU) with Debian's
# g++-aarch64-linux-gnu and the arm64 multiarch -dev packages
# (scripts/setup.sh --arm64 installs both). Tests run under qemu-user:
#   cmake -S . -B build-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DTANDEM_CUDA=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Multiarch keeps the arm64 libraries beside the host's, under /usr, not in a
# sysroot: libraries and package configs in /usr/lib/aarch64-linux-gnu,
# arch-specific headers in /usr/include/aarch64-linux-gnu. Naming the library
# architecture makes find_library/find_package look in lib/aarch64-linux-gnu
# (never in the host's lib/x86_64-linux-gnu); /usr/aarch64-linux-gnu holds the
# cross compiler's own libc and libstdc++; /opt/tandem-arm64 the -dev packages
# that cannot be installed beside the host's (setup.sh says which and why).
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu / /opt/tandem-arm64)
# Programs run on the build machine: host protoc and grpc_cpp_plugin, ccache.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config (UCX) must read the arm64 .pc files only; the host's would hand
# the cross linker x86-64 libraries.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# ctest and gtest_discover_tests (which runs the test binary at build time)
# run target binaries through this. No -L /usr/aarch64-linux-gnu: that loader
# (libc6-arm64-cross) would find libc.so.6 of the multiarch libc6:arm64 through
# /etc/ld.so.cache, and the mixed glibc builds hang on the first condition
# variable. The arm64 -dev packages bring libc6:arm64, whose
# /lib/ld-linux-aarch64.so.1 then loads a consistent set.
find_program(TANDEM_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR "${TANDEM_QEMU_AARCH64}")
