#!/usr/bin/env bash
# README command (a): set up, build, and run the main job on the embedded
# default: the bundled stories260K model tells its greedy story.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
exec build/tandem generate --model models/stories260K --temperature 0 --steps 256 "$@"
