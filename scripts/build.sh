#!/usr/bin/env bash
# Configures (once) and builds tandem. Usage: scripts/build.sh [BUILD_DIR] [CMAKE_ARGS...]
# BUILD_DIR defaults to build/. Extra arguments go to the first configure.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache: hash paths relative to the checkout (and not the build directory),
# so a fresh clone, such as CI's, reuses what any earlier build compiled.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
dir="${1:-build}"
shift || true
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja "$@"
elif [ $# -gt 0 ]; then
  cmake "$dir" "$@" >/dev/null
fi
cmake --build "$dir" -j "$(nproc)"
