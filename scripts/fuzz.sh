#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cc) with clang in
# build-fuzz/ and runs each for SECONDS (default 30), failing on any crash,
# sanitizer report, leak, timeout or out-of-memory. Usage: scripts/fuzz.sh [SECONDS]
#   Seeds: tests/fuzz/corpus/<name>/ (committed) and what <name>_seeds writes.
#   The corpus each run grows is kept in build-fuzz/corpus/<name>/; a crashing
#   input is saved as build-fuzz/artifacts/<name>-crash-* (rerun it with
#   build-fuzz/tests/fuzz/<name>_fuzz FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
case "$seconds" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;; esac
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTANDEM_CUDA=OFF -DTANDEM_FUZZ=ON -DTANDEM_BUILD_TESTS=OFF
fi
cmake --build "$dir" -j "$(nproc)" --target tandem_fuzz_all

status=0
for target in "$dir"/tests/fuzz/*_fuzz; do
  name="$(basename "$target" _fuzz)"
  corpus="$dir/corpus/$name"
  seeds="$dir/seeds/$name"
  mkdir -p "$corpus" "$seeds" "$dir/artifacts"
  if [ -x "$dir/tests/fuzz/${name}_seeds" ]; then "$dir/tests/fuzz/${name}_seeds" "$seeds"; fi
  committed=()
  if [ -d "tests/fuzz/corpus/$name" ]; then committed=("tests/fuzz/corpus/$name"); fi
  echo "== fuzzing $name for ${seconds}s"
  # -max_len bounds an input (the seeds are a few KiB). -malloc_limit_mb makes
  # any single allocation over 64 MiB, a thousand times the largest input, a
  # failure: how an allocation sized from a hostile header shows up.
  if ! "$target" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=64 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" \
      "$corpus" "$seeds" "${committed[@]}"; then
    echo "fuzz: $name failed; the input is in $dir/artifacts/" >&2
    status=1
  fi
done
exit "$status"
