#!/usr/bin/env bash
# Serving benchmark (issue 9): `job: serve` with the HTTP endpoint, tp=2, one
# compute thread per worker, loaded by scripts/bench_serve.py at several
# concurrencies; aggregate generated tokens/s, TTFT and TPOT (p50, p99).
#
#   scripts/bench_serve.sh [BINARY] [--shape NAME] [--concurrency "1 4 16 64"]
#                          [--requests-per-client K] [--max-tokens T] [--prompt-tokens P] [--local]
#                          [--requests-csv FILE] [--pin] [--kv-dtype f32|f16]
#
# BINARY is the tandem executable (default build/tandem). The model is
# `tandem model synth --shape NAME --seed 1` (default stories110M), written once
# under $TANDEM_BENCH_DIR (default /tmp/tandem-bench, as bench_sharded.sh).
# The two workers run in two network namespaces joined by a veth pair with
# UCX_TLS=tcp,self (needs root; scripts/netns.sh), or on this host with --local
# (also the fallback without root). Each level sends K requests per client
# (default 4) of P random prompt token ids (default 32) and T new tokens
# (default 64), greedy, after a short warm-up. The bar: aggregate tokens/s at
# concurrency 16 >= 4x concurrency 1, and p99 TPOT at 16 < 3x its value at 1.
# --requests-csv appends every request's TTFT, TPOT and tokens to FILE (a
# relative path is from the project root, as BINARY's is). --pin runs rank i
# on CPU i (cluster.nodes[i].cpu_affinity). --kv-dtype sets engine.kv_dtype
# (unset: the binary's default, f32).
# Levels may repeat: "1 16 1 16 1 16" pairs each level 1 with the next level 16
# and reports every pair and the median ratios.
# The job is stopped with SIGINT at the end; its logs stay under
# $TANDEM_BENCH_DIR/runs/<run id>/.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=build/tandem
shape=stories110M
levels="1 4 16 64"
per_client=4
max_tokens=64
prompt_tokens=32
local_only=0
requests_csv=()
pin=0
kv_dtype=""
while [ $# -gt 0 ]; do
  case $1 in
    --shape) shape=$2; shift 2 ;;
    --concurrency) levels=$2; shift 2 ;;
    --requests-per-client) per_client=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --prompt-tokens) prompt_tokens=$2; shift 2 ;;
    --local) local_only=1; shift ;;
    --requests-csv) requests_csv=(--requests-csv "$(realpath -m "$2")"); shift 2 ;;
    --pin) pin=1; shift ;;
    --kv-dtype) kv_dtype=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) binary=$1; shift ;;
  esac
done
tandem=$(realpath "$binary")
[ -x "$tandem" ] || { echo "bench_serve: no $binary; build first (scripts/build.sh)" >&2; exit 1; }

work=${TANDEM_BENCH_DIR:-/tmp/tandem-bench}
model_dir="$work/$shape"
mkdir -p "$model_dir" "$work/runs"
if [ ! -f "$model_dir/model.bin" ] || [ ! -f "$model_dir/tokenizer.bin" ]; then
  "$tandem" model synth --shape "$shape" --seed 1 "$model_dir/model.bin"
fi

source scripts/bench_lib.sh
# The prompts' ids must be below the model's vocabulary: the llama2.c header's
# sixth int32 (negative when the classifier is not shared).
vocab=$(python3 -c 'import struct, sys; print(abs(struct.unpack("<7i", open(sys.argv[1], "rb").read(28))[5]))' \
  "$model_dir/model.bin")

# shellcheck disable=SC2086  # the list splits into its levels
max_level=$(printf '%s\n' $levels | sort -n | tail -1)
[ "$max_level" -lt 64 ] && max_level=64
# Every running sequence's whole prompt + generation, plus a block of slack each.
blocks=$(( max_level * ((prompt_tokens + max_tokens + 15) / 16 + 1) ))
settings=(--set job=serve --set http.enabled=true --set "model.path=$model_dir" --set "run_dir=$work/runs"
          --set parallel.tp=2 --set backend.threads=1
          --set "engine.max_running=$max_level" --set "engine.kv_blocks=$blocks"
          --set "http.max_queued=$((max_level * 2))"
          --set launch.startup_timeout_s=300 --set launch.step_timeout_s=120)

# Only when asked: a binary from before engine.kv_dtype still runs the default.
[ -n "$kv_dtype" ] && settings+=(--set "engine.kv_dtype=$kv_dtype")
pinning=()
[ "$pin" -eq 1 ] && pinning=(--set "cluster.nodes[0].cpu_affinity=0" --set "cluster.nodes[1].cpu_affinity=1")

log=$(mktemp "$work/bench-serve-XXXXXX.log")
launcher_pid=""
where=local
cleanup() {
  if [ -n "$launcher_pid" ] && kill -0 "$launcher_pid" 2>/dev/null; then
    kill -INT "$launcher_pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$launcher_pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$launcher_pid" 2>/dev/null; then
      echo "bench_serve: the launcher did not stop within 30 s of SIGINT; killing it" >&2
      kill -KILL "$launcher_pid" 2>/dev/null || true
    fi
    wait "$launcher_pid" 2>/dev/null || true
  fi
}
if [ "$(id -u)" != 0 ] || [ "$local_only" -eq 1 ]; then
  trap cleanup EXIT
  "$tandem" launch "${settings[@]}" "${pinning[@]}" >"$log" 2>&1 &
  launcher_pid=$!
else
  where="two namespaces (veth, UCX_TLS=tcp,self)"
  two_namespaces "serve$$" "$tandem" "$work"
  # two_namespaces' trap removes the pair; stop the job before that.
  eval "$(trap -p EXIT | sed -E 's/^trap -- /netns_trap=/; s/ EXIT$//')"
  # shellcheck disable=SC2154  # netns_trap is set by the eval above
  trap 'cleanup; eval "$netns_trap"' EXIT
  ip netns exec "tandem-a-serve$$" "$tandem" launch "${settings[@]}" --set "$nodes" "${pinning[@]}" \
    --set env.UCX_TLS=tcp,self >"$log" 2>&1 &
  launcher_pid=$!
fi

# The launcher prints the run directory first, then the endpoint once rank 0 serves.
deadline=$((SECONDS + 300))
url=""
while [ -z "$url" ]; do
  if ! kill -0 "$launcher_pid" 2>/dev/null; then
    echo "bench_serve: the job exited before serving; its output:" >&2; tail -30 "$log" >&2; exit 1
  fi
  [ "$SECONDS" -lt "$deadline" ] || { echo "bench_serve: no http endpoint after 300 s:" >&2; tail -30 "$log" >&2; exit 1; }
  run=$(sed -nE 's/^tandem: run ([^:]+):.*/\1/p' "$log" | head -1)
  if [ -n "$run" ] && [ -s "$work/runs/$run/http_endpoint" ]; then
    url=$(tail -1 "$work/runs/$run/http_endpoint")
  fi
  sleep 0.5
done
# Where the endpoint is bound (namespace A's loopback); the client runs there too.
client=(python3 scripts/bench_serve.py)
[ "$where" = local ] || client=(ip netns exec "tandem-a-serve$$" python3 scripts/bench_serve.py)

echo "model: $shape (tandem model synth --seed 1), f32, ${kv_dtype:-f32} KV cache, tp=2, 1 thread per worker, $where$([ "$pin" -eq 1 ] && echo ", rank i on CPU i")"
echo "requests: $prompt_tokens prompt tokens, $max_tokens new, greedy, streamed; $per_client per client; engine.max_running=$max_level, kv_blocks=$blocks"
echo "host: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg); run: $work/runs/$run"
"${client[@]}" --url "$url" --concurrency 2 --requests 2 --max-tokens 8 --prompt-tokens "$prompt_tokens" \
  --vocab "$vocab" --seed 99 >/dev/null
table=$(mktemp "$work/bench-serve-XXXXXX.txt")
header=()
for c in $levels; do
  "${client[@]}" --url "$url" --concurrency "$c" --requests $((c * per_client)) --max-tokens "$max_tokens" \
    --prompt-tokens "$prompt_tokens" --vocab "$vocab" --metrics "${header[@]}" "${requests_csv[@]}" | tee -a "$table"
  header=(--no-header)
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Columns: concurrency requests tokens short agg TTFTp50 TTFTp99 TPOTp50 TPOTp99 ...
# The k-th level 1 pairs with the k-th level 16 (--concurrency "1 16 1 16 1 16"
# interleaves them, so the host's mood of the moment weighs on both sides of
# each ratio); with several pairs the median ratio is the verdict.
row() { awk -v c="$1" '$1 == c {print $5, $9}' "$table"; }
if [ -n "$(row 1)" ] && [ -n "$(row 16)" ]; then
  paste -d' ' <(row 1) <(row 16) | awk -v pairs="$(row 1 | wc -l)" '
    NF == 4 { n++; tps[n] = $3 / $1; tpot[n] = $4 / $2
              if (pairs > 1) printf "pair %d: aggregate tok/s 16 vs 1 %.2fx, p99 TPOT 16 vs 1 %.2fx\n", n, tps[n], tpot[n] }
    function median(v, k,   i, j, t) {
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
    }
    END {
      what = n > 1 ? sprintf(" (median of %d pairs)", n) : ""
      a = median(tps, n); b = median(tpot, n)
      printf "aggregate tok/s 16 vs 1%s: %.2fx (bar >= 4x: %s)\n", what, a, (a >= 4 ? "met" : "MISSED")
      printf "p99 TPOT 16 vs 1%s: %.2fx (bar < 3x: %s)\n", what, b, (b < 3 ? "met" : "MISSED")
    }'
fi
