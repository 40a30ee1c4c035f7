#!/usr/bin/env bash
# The figures of docs/benchmarks.md "Collectives (issue 3)", in one run:
# between two network namespaces joined by a veth pair (scripts/netns.sh),
# UCX pinned to tcp,self on the veth,
#   1. the link roofline: ucx_perftest tag_bw (64 MiB) and tag_lat (4 KiB),
#      server in namespace B, client in A;
#   2. tandem's all_reduce at 4 KiB and 64 MiB (bench collectives, rank 0 in
#      A, rank 1 in B);
# ROUNDS times, alternating, then the medians and the ratio the issue's bar
# is stated in. Needs root.
#
#   scripts/bench_collectives_netns.sh [BUILD_DIR (build)] [ROUNDS (5)] [extra bench flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
tandem="$build/tandem"
[ -x "$tandem" ] || { echo "no $tandem: build first" >&2; exit 1; }
command -v ucx_perftest >/dev/null || { echo "ucx_perftest not found (apt-get install ucx-utils)" >&2; exit 1; }

suffix="bench$$"
A="tandem-a-$suffix"
B="tandem-b-$suffix"
trap 'scripts/netns.sh down "$suffix"' EXIT INT TERM
scripts/netns.sh up "$suffix" >/dev/null

in_a() { ip netns exec "$A" env UCX_TLS=tcp,self UCX_NET_DEVICES=veth-a "$@"; }
in_b() { ip netns exec "$B" env UCX_TLS=tcp,self UCX_NET_DEVICES=veth-b "$@"; }

# Prints the "Final:" line's field $2 of ucx_perftest -t $1 -s $3 -n $4.
perftest() {
  local test=$1 field=$2 size=$3 iters=$4 out
  in_b ucx_perftest -p 13337 >/dev/null 2>&1 &
  local server=$!
  sleep 0.5
  out=$(in_a ucx_perftest 10.231.0.2 -p 13337 -t "$test" -s "$size" -n "$iters" 2>&1 | awk '/Final:/ {print $'"$field"'}')
  wait "$server"
  echo "$out"
}

# Prints "time_4k_us busbw_64m_gbs" of one all_reduce run.
allreduce() {
  local port=$((29500 + RANDOM % 1000)) args
  args=(bench collectives --world-size 2 --coordinator "10.231.0.1:$port" --ucx-tls tcp,self
        --ops all_reduce --counts 1024,16777216 --iters 20 --warmup 5 --timeout 60 "$@")
  ip netns exec "$B" "$tandem" "${args[@]}" --rank 1 --ucx-net-devices veth-b >/dev/null &
  local peer=$!
  ip netns exec "$A" "$tandem" "${args[@]}" --rank 0 --ucx-net-devices veth-a |
    awk '/^ / { if ($1 == 4096) t = $6; if ($1 == 67108864) b = $8 } END { print t, b }'
  wait "$peer"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf "%-6s %14s %14s %16s %16s\n" round "tag_bw GB/s" "tag_lat us" "ar 4KiB us" "ar 64MiB busbw"
bw=() lat=() t4k=() bus=()
for r in $(seq 1 "$rounds"); do
  mibs=$(perftest tag_bw 6 67108864 20)         # average bandwidth, MiB/s
  l=$(perftest tag_lat 5 4096 10000)            # average one-way latency, us
  read -r t b < <(allreduce "$@")
  g=$(awk -v m="$mibs" 'BEGIN { printf "%.3f", m * 1048576 / 1e9 }')
  bw+=("$g") lat+=("$l") t4k+=("$t") bus+=("$b")
  printf "%-6s %14s %14s %16s %16s\n" "$r" "$g" "$l" "$t" "$b"
done
mbw=$(printf "%s\n" "${bw[@]}" | median)
mlat=$(printf "%s\n" "${lat[@]}" | median)
mt=$(printf "%s\n" "${t4k[@]}" | median)
mbus=$(printf "%s\n" "${bus[@]}" | median)
printf "%-6s %14s %14s %16s %16s\n" median "$mbw" "$mlat" "$mt" "$mbus"
awk -v b="$mbus" -v r="$mbw" -v t="$mt" 'BEGIN {
  printf "all_reduce 64 MiB busbw / tag_bw = %.2f (bar >= 0.80)\n", b / r
  printf "all_reduce 4 KiB median = %s us (bar <= 50)\n", t }'
