#!/usr/bin/env bash
# README command (a): set up, build, and run the main job: two local workers
# (configs/local.yaml) launched and supervised by `tandem launch`; rank 0
# prints the bundled stories260K model's greedy story.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
exec build/tandem launch configs/local.yaml "$@"
