#!/usr/bin/env bash
# Stages what scripts/gpu_check.sh needs on a GPU machine that has the CUDA
# driver and toolkit libraries but no build tools of ours: the tandem,
# tandem_cuda_tests and (in a build with NCCL) tandem_nccl_tests binaries,
# the non-system shared libraries they link
# (fmt, yaml-cpp, UCX, ...; CUDA's own are found there), the bundled model and
# the check script. Usage: scripts/gpu_stage.sh BUILD_DIR DEST (e.g. a folder
# of a checkout that travels to the GPU machine, ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:?usage: gpu_stage.sh BUILD_DIR DEST}"
dest="${2:?usage: gpu_stage.sh BUILD_DIR DEST}"
mkdir -p "$dest/bin" "$dest/lib" "$dest/models"
cp "$build/tandem" "$build/tests/tandem_cuda_tests" "$dest/bin/"
# NCCL on the GPU: its one-rank tests and its exchanges on the backend's stream.
if [ -f "$build/tests/tandem_nccl_tests" ]; then cp "$build/tests/tandem_nccl_tests" "$dest/bin/"; fi
# Everything ldd resolves outside glibc, libstdc++/libgcc and CUDA's libraries.
ldd "$dest"/bin/* | awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/(libcuda|libcudart|libcublas|libcublasLt|libnccl)\.so' |
  while read -r lib; do cp -L "$lib" "$dest/lib/"; done
rm -rf "$dest/models/stories260K"
cp -r models/stories260K "$dest/models/"
cp scripts/gpu_check.sh "$dest/"
du -sh "$dest"
