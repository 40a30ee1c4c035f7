#!/usr/bin/env bash
# Training benchmark: tokens/s of the Shakespeare recipe (configs/train-shakespeare.yaml)
# on one worker and data-parallel on two, one compute thread per worker, and
# the share of step time the workers spend waiting on the gradient all-reduce.
#
#   scripts/bench_train.sh [BUILD_DIR] [--iters N] [--runs N] [--set KEY=VALUE ...]
#
#   dp1      one worker, one thread
#   dp2      two workers on this host (UCX may use shared memory)
#   dp2-ns   two workers in two network namespaces joined by a veth pair
#            (UCX_TLS=tcp,self: the network path only); needs root
#
# Each row is the median over --runs runs (default 3) of the median tokens/s
# of the run's logged intervals (every 10 steps; the last interval, which
# holds the final evaluation and checkpoint, left out). Scaling efficiency =
# dp2 tokens/s / (2 x dp1 tokens/s), measured in the same invocation.
# --set passes config overrides to every run (e.g. --set train.overlap=false).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
iters=200
runs=3
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --set) extra+=(--set "$2"); shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
tandem="$PWD/$build/tandem"
[ -x "$tandem" ] || { echo "bench_train: no $tandem; build first (scripts/build.sh $build)" >&2; exit 1; }

work=${TANDEM_BENCH_DIR:-/tmp/tandem-bench}/train
mkdir -p "$work/runs"
source scripts/bench_lib.sh

common=(configs/train-shakespeare.yaml --set "run_dir=$work/runs" --set "train.iters=$iters"
        --set "train.lr_decay_iters=$iters" --set train.eval_interval=0 --set train.checkpoint_interval=0
        --set train.eval_batches=2 --set backend.threads=1 ${extra[@]+"${extra[@]}"})

# One run -> "tokens_per_s comm_pct" from its loss.csv and progress lines.
run_once() {
  local out run_id
  run_id="bench-$(date +%s%N)"
  out=$("$@" --run-id "$run_id" --set "train.out_dir=$work/out-$run_id" 2>&1) || { echo "$out" | tail -20 >&2; return 1; }
  local tps comm
  tps=$(tail -n +2 "$work/runs/$run_id/loss.csv" | head -n -1 | cut -d, -f5 | sort -g |
        awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}')
  comm=$(echo "$out" | grep -o 'comm [0-9.]*%' | sed -E 's/comm ([0-9.]+)%/\1/' | head -n -1 | sort -g |
         awk '{v[NR]=$1} END {print (NR ? (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2) : 0)}')
  rm -rf "$work/out-$run_id"
  echo "$tps $comm"
}

dp1_tps=""
measure() {
  local name=$1; shift
  local t=() c=()
  for _ in $(seq "$runs"); do
    local result
    result=$(run_once "$@") || { echo "bench_train: $name: a run failed (its output is above)" >&2; exit 1; }
    read -r tps comm <<<"$result"
    [ -n "$tps" ] || { echo "bench_train: $name: no tokens/s in the run's loss.csv" >&2; exit 1; }
    t+=("$tps"); c+=("$comm")
  done
  local tm cm
  tm=$(printf '%s\n' "${t[@]}" | median)
  cm=$(printf '%s\n' "${c[@]}" | median)
  [ -z "$dp1_tps" ] && dp1_tps=$tm
  local workers=1
  [ "$name" != dp1 ] && workers=2
  printf '%-8s %12.0f %10.1f %12.3f\n' "$name" "$tm" "$cm" \
    "$(awk -v a="$tm" -v b="$dp1_tps" -v n="$workers" 'BEGIN {print a / (n * b)}')"
}

echo "recipe: configs/train-shakespeare.yaml, $iters steps, 12 windows of 64 tokens per step, 1 thread per worker"
echo "host: $(nproc) cores, $(uname -m), runs per row: $runs (medians)"
printf '%-8s %12s %10s %12s\n' layout "tokens/s" "comm %" "efficiency"
measure dp1 "$tandem" launch "${common[@]}" --set 'cluster.nodes=[{host: localhost}]' --set parallel.dp=1
measure dp2 "$tandem" launch "${common[@]}" --set parallel.dp=2

if [ "$(id -u)" != 0 ]; then
  echo "dp2-ns: skipped (two network namespaces need root)"
  exit 0
fi
two_namespaces "train$$" "$tandem" "$work"
measure dp2-ns ip netns exec "tandem-a-train$$" "$tandem" launch "${common[@]}" --set "$nodes" \
  --set env.UCX_TLS=tcp,self --set parallel.dp=2
