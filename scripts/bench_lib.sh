# Shared by the launch benchmarks (bench_sharded.sh, bench_train.sh); sourced,
# not run.

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

# two_namespaces SUFFIX TANDEM WORK: brings up the namespace pair
# (scripts/netns.sh) until the script exits, and sets `nodes` to the
# cluster.nodes override that runs rank 0 in namespace A (with the launcher,
# which the caller starts under `ip netns exec tandem-a-SUFFIX`) and rank 1 in
# B through a wrapper script: their stdio (the launcher's channel) crosses
# namespaces as pipes, the job's traffic crosses the veth pair.
two_namespaces() {
  local suffix=$1 tandem=$2 work=$3
  local wrapper="$work/tandem-in-b-$suffix"
  # shellcheck disable=SC2064  # expand now: the trap runs after these locals are gone
  trap "scripts/netns.sh down '$suffix' >/dev/null 2>&1 || true; rm -f '$wrapper'" EXIT
  scripts/netns.sh up "$suffix" >/dev/null
  printf '#!/bin/sh\nexec ip netns exec tandem-b-%s %s "$@"\n' "$suffix" "$tandem" >"$wrapper"
  chmod +x "$wrapper"
  nodes="cluster.nodes=[{host: localhost, data_address: 10.231.0.1, data_interface: veth-a}, \
{host: localhost, data_address: 10.231.0.2, data_interface: veth-b, tandem: '$wrapper'}]"
}
