#!/usr/bin/env bash
# Configures (once) and builds tandem. Usage: scripts/build.sh [BUILD_DIR] [CMAKE_ARGS...]
# BUILD_DIR defaults to build/. Extra arguments go to the first configure.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja "$@"
elif [ $# -gt 0 ]; then
  cmake "$dir" "$@" >/dev/null
fi
cmake --build "$dir" -j "$(nproc)"
