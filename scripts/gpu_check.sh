#!/usr/bin/env bash
# The GPU checks of the CUDA backend, run on a GPU machine from a folder made
# by scripts/gpu_stage.sh: the CUDA tests (and the one-rank NCCL tests),
# compute-sanitizer (memcheck) over
# the kernel tests, and the bench figures of docs/benchmarks.md.
# Usage: bash STAGE/gpu_check.sh [parts...]   parts: tests sanitizer sweep bench breakdown
# (default: tests sanitizer bench; sweep: every shape of the fused single-token
# kernel on an 8B step's products; breakdown: ncu's per-kernel time and DRAM
# bytes over a few decode steps, summed by kernel name).
# The log goes to $OUT/gpu_check.log (OUT defaults to STAGE/out).
set -uo pipefail
stage="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$stage/out}"
mkdir -p "$out"
parts="${*:-tests sanitizer bench}"
# CUDA's libraries where the machine keeps them: the toolkit, or the pip wheels beside PyTorch.
libs="$stage/lib"
for lib in libcublas.so.13 libcublasLt.so.13 libnccl.so.2 libcudart.so.13; do
  dir=$(find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /opt /usr/local/lib/python3* /usr/lib/python3 \
    -name "$lib" 2>/dev/null | head -1 | xargs -r dirname)
  [ -n "$dir" ] && libs="$libs:$dir"
done
export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"
export TANDEM_MODEL_DIR="$stage/models/stories260K"
export PATH="$PATH:/usr/local/cuda/bin"
tandem="$stage/bin/tandem"
tests="$stage/bin/tandem_cuda_tests"
nccl_tests="$stage/bin/tandem_nccl_tests"  # only from a build with NCCL
status=0
run() {
  echo "+ $*"
  "$@" || { echo "FAILED ($?): $*"; status=1; }
}
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  ldd "$stage"/bin/* | grep -i "not found" && status=1
  for part in $parts; do
    case "$part" in
      tests)
        run "$tests" --gtest_color=no
        if [ -x "$nccl_tests" ]; then run "$nccl_tests" --gtest_color=no; fi ;;
      sanitizer)
        run compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 "$tests" --gtest_color=no \
          --gtest_filter='CudaKernels.*:CudaMatmul.*' ;;
      sweep) run "$tests" --gtest_color=no --gtest_also_run_disabled_tests --gtest_filter='*Sweep*' ;;
      bench)
        for args in "llama3-8b --dtype bf16" "llama3-8b --dtype q4_0" "llama3-8b --dtype q8_0" \
                    "llama3-8b --dtype bf16 --batch 16" "llama3-8b --dtype q4_0 --batch 16" \
                    "llama-1b --dtype bf16" "llama-1b --dtype q4_0"; do
          # shellcheck disable=SC2086
          run "$tandem" bench generate --backend cuda --shape $args --prompt-tokens 512 --decode-tokens 64 --repeat 3
        done
        # The same decode without CUDA graphs: what recording the step saves.
        TANDEM_CUDA_GRAPHS=0 run "$tandem" bench generate --backend cuda --shape llama3-8b --dtype q4_0 \
          --prompt-tokens 512 --decode-tokens 64 --repeat 3 ;;
      breakdown)
        # Every kernel of a few decode steps: time and DRAM bytes summed per kernel name.
        for dtype in bf16 q4_0; do
          ncu --csv --print-units base --metrics gpu__time_duration.sum,dram__bytes_read.sum --launch-skip 1200 --launch-count 900 \
            "$tandem" bench generate --backend cuda --shape llama3-8b --dtype $dtype --prompt-tokens 1 \
            --decode-tokens 8 --repeat 1 > "$out/ncu_$dtype.csv" 2>/dev/null
          python3 - "$out/ncu_$dtype.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]; name, metric, value = head.index("Kernel Name"), head.index("Metric Name"), head.index("Metric Value")
t = collections.defaultdict(float); b = collections.defaultdict(float); n = collections.Counter()
for r in rows[1:]:
    k = r[name].split("(")[0][:60]
    v = float(r[value].replace(",", ""))
    if r[metric] == "gpu__time_duration.sum": t[k] += v; n[k] += 1
    else: b[k] += v
total = sum(t.values())
for k in sorted(t, key=t.get, reverse=True):
    print(f"{t[k]/total*100:5.1f}%  {n[k]:5d} x {t[k]/n[k]/1e3:8.1f} us  {b[k]/max(t[k],1):7.1f} GB/s  {k}")
PY
        done ;;
      *) echo "unknown part $part"; status=1 ;;
    esac
  done
  echo "gpu_check: exit $status"
  exit "$status"
} 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
