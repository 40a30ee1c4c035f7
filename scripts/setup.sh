#!/usr/bin/env bash
# Installs what tandem builds and tests with, from Debian packages only.
# Idempotent: installs just the packages that are missing, so a second run
# costs a second. The CUDA toolkit and NCCL are not Debian packages here: the
# build finds them under /usr/local/cuda when present and builds without them.
#   --arm64  also what the aarch64 cross build (cmake/aarch64-linux-gnu.cmake)
#            and its tests under qemu-user need: the cross compiler, qemu, and
#            the arm64 -dev packages through Debian multiarch.
set -euo pipefail

arm64=0
for arg in "$@"; do
  case "$arg" in
    --arm64) arm64=1 ;;
    *) echo "usage: scripts/setup.sh [--arm64]" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config git ca-certificates
  # control plane, transports, networking, config, CLI, logging, JSON
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libucx-dev ucx-utils libboost-dev libboost-system-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  # the launcher's loss-curve PNG (deflate, crc32)
  zlib1g-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev python3
  # control-plane tests: a throwaway TLS CA; the Python stubs and orchestrate.py
  openssl python3-grpcio python3-protobuf
  # the pre-tokenizer tests' reference: Python's `regex` (\p classes)
  python3-regex
  # two-node tests: network namespaces and a real sshd
  iproute2 openssh-server openssh-client procps
  # fuzzing (scripts/fuzz.sh): clang with libFuzzer and its sanitizer runtimes
  clang libclang-rt-14-dev
)
if [ "$arm64" -eq 1 ]; then
  PACKAGES+=(
    # cross compiler (its libstdc++ and libc live in /usr/aarch64-linux-gnu)
    # and qemu-aarch64 to run the tests
    g++-aarch64-linux-gnu qemu-user
    # the libraries the runtime, launcher and unit tests link, for arm64;
    # header-only and arch-independent ones (CLI11) come from the host list
    libucx-dev:arm64 libboost-dev:arm64 libfmt-dev:arm64 libspdlog-dev:arm64
    libgtest-dev:arm64 libgmock-dev:arm64 libyaml-cpp0.7:arm64
    zlib1g-dev:arm64
  )
fi

# libyaml-cpp-dev is not Multi-Arch: installing its arm64 build removes the
# host's. So its arm64 files (and the library they point at) are unpacked into
# a prefix of their own, which cmake/aarch64-linux-gnu.cmake searches; at run
# time the multiarch libyaml-cpp0.7:arm64 above is loaded.
ARM64_PREFIX=/opt/tandem-arm64
unpack_arm64_yaml_cpp() {
  [ -f "$ARM64_PREFIX/usr/lib/aarch64-linux-gnu/cmake/yaml-cpp/yaml-cpp-config.cmake" ] && return 0
  local version tmp
  version="$(dpkg-query -W -f='${Version}' libyaml-cpp0.7:arm64)"
  tmp="$(mktemp -d)"
  chmod 755 "$tmp"  # apt downloads as the _apt user
  (cd "$tmp" && chown _apt "$tmp" 2>/dev/null; \
    apt-get download -qq "libyaml-cpp-dev:arm64=$version" "libyaml-cpp0.7:arm64=$version")
  $SUDO mkdir -p "$ARM64_PREFIX"
  for deb in "$tmp"/*.deb; do $SUDO dpkg-deb -x "$deb" "$ARM64_PREFIX"; done
  rm -rf "$tmp"
  echo "setup: unpacked libyaml-cpp-dev:arm64 $version into $ARM64_PREFIX"
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
need_root() {
  [ -z "$SUDO" ] || command -v sudo >/dev/null || {
    echo "setup: need root (or sudo) to $1" >&2; exit 1; }
}

# Without the foreign architecture apt cannot even name the :arm64 packages.
added_arch=0
if [ "$arm64" -eq 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  need_root "add the arm64 architecture"
  $SUDO dpkg --add-architecture arm64
  added_arch=1
fi

# A package named without an architecture is the host's: an arm64 copy of it
# (multiarch) must not count, or the host build finds no headers for it.
native="$(dpkg --print-architecture)"
installed() {
  if [[ $1 == *:* ]]; then
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -qx "install ok installed"
  else
    dpkg-query -W -f='${Status} ${Architecture}\n' "$1" 2>/dev/null |
      grep -qE "^install ok installed ($native|all)$"
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  need_root "install: ${missing[*]}"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  [ "$added_arch" -eq 1 ] && echo "setup: added the arm64 architecture"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ "$arm64" -eq 1 ]; then unpack_arm64_yaml_cpp; fi
