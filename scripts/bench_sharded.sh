#!/usr/bin/env bash
# Sharded inference benchmark: prompt and decode tokens/s of one model run
# four ways at the same total core count, and rank 0's time in communication.
#
#   scripts/bench_sharded.sh [BUILD_DIR] [--shape NAME] [--dtype T] [--runs N] [--new TOKENS] [--local]
#
#   single   one worker, tp=1, 2 compute threads
#   tp2      two workers on this host (tp=2, 1 thread each; UCX may use shared memory)
#   tp2-ns   two workers in two network namespaces joined by a veth pair
#            (tp=2, 1 thread each, UCX_TLS=tcp,self: the network path only)
#   pp2-ns   the same with pp=2
#
# The model is `tandem model synth --shape NAME` (default stories110M: dim 768,
# 12 layers, 12 heads, hidden 2048, vocab 32000, f32), written once under
# $TANDEM_BENCH_DIR (default /tmp/tandem-bench); --dtype (f32, f16, bf16, q8_0,
# q4_0, q4_k; default f32) is model.dtype, the type each rank converts its slices to
# once loaded. Every figure is the median of --runs runs (default 3); the last
# column is decode tokens/s over the single process's, measured in the same
# invocation. The namespace rows need root (scripts/netns.sh); without it, or
# with --local, they are skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
shape=stories110M
runs=3
new_tokens=128
dtype=f32
local_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --shape) shape=$2; shift 2 ;;
    --dtype) dtype=$2; shift 2 ;;
    --local) local_only=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --new) new_tokens=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
tandem="$PWD/$build/tandem"
[ -x "$tandem" ] || { echo "bench_sharded: no $tandem; build first (scripts/build.sh $build)" >&2; exit 1; }

work=${TANDEM_BENCH_DIR:-/tmp/tandem-bench}
model_dir="$work/$shape"
mkdir -p "$model_dir" "$work/runs"
if [ ! -f "$model_dir/model.bin" ] || [ ! -f "$model_dir/tokenizer.bin" ]; then
  "$tandem" model synth --shape "$shape" --seed 1 "$model_dir/model.bin"
fi

# A prompt of ordinary words; the synthetic tokenizer turns it into ~1 token
# per character or pair, and the summary line says how many.
sentence="Once upon a time there was a little robot who wanted to see the sea, so it walked all day along the river. "
prompt="$sentence$sentence$sentence"
prompt_tokens=$(( ${#prompt} * 45 / 100 ))  # what the synthetic tokenizer makes of it, about
steps=$((prompt_tokens + new_tokens))

source scripts/bench_lib.sh

common=(--set "model.path=$model_dir" --set "model.dtype=$dtype" --set "run_dir=$work/runs" --set generate.temperature=0
        --set "generate.prompt=$prompt" --set "generate.steps=$steps" --set launch.startup_timeout_s=300
        --set launch.step_timeout_s=120)

# One run -> "prompt_tps decode_tps comm_ms comm_pct" from rank 0's summary lines.
run_once() {
  local out
  out=$("$@" 2>&1) || { echo "$out" | tail -20 >&2; return 1; }
  local summary comm
  summary=$(echo "$out" | grep -o '[0-9]* prompt tokens ([0-9.]* tok/s), [0-9]* generated ([a-z]*), [0-9.]* tok/s decode' | tail -1 || true)
  # One worker has no communication line.
  comm=$(echo "$out" | grep -o 'communication: [0-9.]* ms per generated token ([0-9.]*% of decode)' | tail -1 || true)
  local prompt_tps decode_tps comm_ms comm_pct
  prompt_tps=$(echo "$summary" | sed -E 's/.*prompt tokens \(([0-9.]+) tok\/s\).*/\1/')
  decode_tps=$(echo "$summary" | sed -E 's/.*, ([0-9.]+) tok\/s decode/\1/')
  comm_ms=$(echo "$comm" | sed -E 's/communication: ([0-9.]+) ms.*/\1/')
  comm_pct=$(echo "$comm" | sed -E 's/.*\(([0-9.]+)% of decode\)/\1/')
  echo "${prompt_tps:-0} ${decode_tps:-0} ${comm_ms:-0} ${comm_pct:-0}"
}

# layout name, then the command; prints one table row.
single_decode=""
measure() {
  local name=$1; shift
  local p=() d=() c=() q=()
  for _ in $(seq "$runs"); do
    read -r pt dt cm cp < <(run_once "$@")
    p+=("$pt"); d+=("$dt"); c+=("$cm"); q+=("$cp")
  done
  local pm dm cmm cpm
  pm=$(printf '%s\n' "${p[@]}" | median)
  dm=$(printf '%s\n' "${d[@]}" | median)
  cmm=$(printf '%s\n' "${c[@]}" | median)
  cpm=$(printf '%s\n' "${q[@]}" | median)
  [ -z "$single_decode" ] && single_decode=$dm
  printf '%-8s %14.1f %14.2f %14.3f %10.1f %10.3f\n' "$name" "$pm" "$dm" "$cmm" "$cpm" \
    "$(awk -v a="$dm" -v b="$single_decode" 'BEGIN {print a / b}')"
}

echo "model: $shape (tandem model synth --seed 1), $dtype weights, greedy, prompt of ${#prompt} characters, ~$new_tokens tokens generated"
echo "host: $(nproc) cores, $(uname -m), runs per row: $runs (medians)"
printf '%-8s %14s %14s %14s %10s %10s\n' layout "prompt tok/s" "decode tok/s" "comm ms/token" "comm %" "vs single"

measure single "$tandem" launch "${common[@]}" --set 'cluster.nodes=[{host: localhost}]' --set parallel.tp=1 \
  --set backend.threads=2
measure tp2 "$tandem" launch "${common[@]}" --set parallel.tp=2 --set backend.threads=1

if [ "$(id -u)" != 0 ] || [ "$local_only" -eq 1 ]; then
  echo "tp2-ns, pp2-ns: skipped (--local, or not root: two network namespaces need root)"
  exit 0
fi
two_namespaces "bench$$" "$tandem" "$work"
ns=(ip netns exec "tandem-a-bench$$")
measure tp2-ns "${ns[@]}" "$tandem" launch "${common[@]}" --set "$nodes" --set env.UCX_TLS=tcp,self \
  --set parallel.tp=2 --set backend.threads=1
measure pp2-ns "${ns[@]}" "$tandem" launch "${common[@]}" --set "$nodes" --set env.UCX_TLS=tcp,self \
  --set parallel.tp=1 --set parallel.pp=2 --set backend.threads=1
