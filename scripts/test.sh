#!/usr/bin/env bash
# README command (b): set up, build and run every test.
#   1. the release build with -Werror (the CUDA sources too, when a toolkit is
#      found), all tests through ctest;
#   2. a separate AddressSanitizer + UndefinedBehaviorSanitizer build (host
#      code) running the same tests.
# --quick skips step 2.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
jobs="$(nproc)"

echo "== release build, -Werror"
scripts/build.sh build -DTANDEM_WERROR=ON
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 600

if [ "$quick" -eq 0 ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON \
    -DTANDEM_CUDA=OFF -DTANDEM_SANITIZE=address,undefined
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" --timeout 900
fi
