#!/usr/bin/env bash
# Two network namespaces joined by a veth pair: two "hosts" on one machine for
# the collectives' tests and benchmarks (needs root and iproute2).
#
#   scripts/netns.sh up   [SUFFIX]              create tandem-a-SUFFIX and tandem-b-SUFFIX
#   scripts/netns.sh down [SUFFIX]              remove them (nothing to remove is fine)
#   scripts/netns.sh exec a|b [SUFFIX] -- CMD   run CMD inside one of them
#   scripts/netns.sh run  [SUFFIX] -- CMD       up, run CMD here with TANDEM_NS_A/B set, down on any exit
#
# A holds veth-a 10.231.0.1/24, B holds veth-b 10.231.0.2/24. The veth ends are
# created directly inside the namespaces, so interface names never collide
# with the host's or another run's; only the namespace names carry SUFFIX
# (default: dev), which parallel runs must make unique. `up` on an existing
# pair recreates it; a failed `up` removes what it made.
#
# Two namespaces share the kernel's memory: pin UCX to network transports
# (UCX_TLS=tcp,self, UCX_NET_DEVICES=veth-a / veth-b) in anything measured here.
set -euo pipefail

usage() {
  sed -n '2,17p' "$0" >&2
  exit 2
}

[ $# -ge 1 ] || usage
cmd=$1
shift

ns_names() {
  local suffix=$1
  if ! [[ $suffix =~ ^[A-Za-z0-9_.-]{1,40}$ ]]; then
    echo "netns.sh: bad suffix '$suffix' (letters, digits, _ . -)" >&2
    exit 2
  fi
  A="tandem-a-$suffix"
  B="tandem-b-$suffix"
}

down() {
  # Deleting a namespace destroys the veth end inside it, and with it the peer.
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}

up() {
  down
  trap 'down; trap - ERR; exit 1' ERR
  ip netns add "$A"
  ip netns add "$B"
  ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
  ip -n "$A" addr add 10.231.0.1/24 dev veth-a
  ip -n "$B" addr add 10.231.0.2/24 dev veth-b
  for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
  ip -n "$A" link set veth-a up
  ip -n "$B" link set veth-b up
  # Carrier comes up asynchronously; a test that starts before it would
  # measure the wait. (No ping here: iproute2 alone.)
  local i
  for i in $(seq 1 50); do
    if ip -n "$A" -o link show veth-a | grep -q 'state UP' &&
       ip -n "$B" -o link show veth-b | grep -q 'state UP'; then break; fi
    [ "$i" -lt 50 ] || { echo "netns.sh: veth-a/veth-b did not come up" >&2; false; }
    sleep 0.1
  done
  trap - ERR
}

case "$cmd" in
  up)
    ns_names "${1:-dev}"
    up
    echo "$A 10.231.0.1 veth-a"
    echo "$B 10.231.0.2 veth-b"
    ;;
  down)
    ns_names "${1:-dev}"
    down
    ;;
  exec)
    [ $# -ge 1 ] || usage
    side=$1
    shift
    suffix=dev
    if [ $# -ge 1 ] && [ "$1" != "--" ]; then suffix=$1; shift; fi
    [ "${1:-}" = "--" ] && shift
    [ $# -ge 1 ] || usage
    ns_names "$suffix"
    case "$side" in
      a) exec ip netns exec "$A" "$@" ;;
      b) exec ip netns exec "$B" "$@" ;;
      *) usage ;;
    esac
    ;;
  run)
    suffix=dev
    if [ $# -ge 1 ] && [ "$1" != "--" ]; then suffix=$1; shift; fi
    [ "${1:-}" = "--" ] && shift
    [ $# -ge 1 ] || usage
    ns_names "$suffix"
    trap down EXIT INT TERM
    up
    TANDEM_NS_A=$A TANDEM_NS_B=$B "$@"
    ;;
  *)
    usage
    ;;
esac
