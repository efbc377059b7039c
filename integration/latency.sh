#!/bin/bash
# ADD and DEL wall time of ONE plugin binary's own invocation (fork + exec +
# its work, as a runtime pays it), not of the whole chain:
#   podfence mode tc, podfence mode xdp (generic and native), and the
#   bandwidth plugin, each in the chain bridge -> bandwidth -> podfence.
# The chain is ADDed once through libcni (integration/driver) with a trace;
# each measured plugin is then exec'd directly with the environment and the
# stdin libcni gave it (so its prevResult is what the chain produced before
# it), DEL then ADD, N times (default 20). Prints a Markdown table: median,
# min and max in milliseconds. "cold ADD" = first ADD on a node: an empty
# bpffs, so the datapath is loaded and verified (5 samples).
#
#   integration/latency.sh [--plugin PATH] [-n N]
# Uses netns pfti-node / pfti-lat and a private bpffs; do not run it at the
# same time as run.sh (same prefix). Exit 77 when it cannot run here.
set -euo pipefail

PREFIX=pfti
# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLUGIN="" N=20 COLD=5
while [ $# -gt 0 ]; do
	case $1 in
	--plugin) PLUGIN=$2; shift 2 ;;
	-n) N=$2; shift 2 ;;
	*) echo "usage: $0 [--plugin PATH] [-n N]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "skip: needs root" >&2; exit 77; }
for tool in go jq nsenter ip; do command -v "$tool" >/dev/null || { echo "skip: no $tool" >&2; exit 77; }; done
[ -n "$PLUGIN" ] || PLUGIN=$(find_plugin) || { echo "no podfence binary: pass --plugin PATH" >&2; exit 2; }
PLUGIN=$(readlink -f "$PLUGIN")

trap release_work EXIT
trap 'exit 130' INT TERM
make_work pfti-lat || { echo "skip: cannot mount bpffs" >&2; exit 77; }
DRIVER=$WORK/driver
build_driver "$DRIVER"
CNIBIN=$WORK/cni-bin
make_cni_bin "$CNIBIN" "$PLUGIN"
new_ns "$PREFIX-node"

POLICY='{"ingress":[{"from":[{"ipBlock":{"cidr":"10.99.2.0/24","except":["10.99.2.128/25"]}}],"ports":[{"protocol":"TCP","port":8080},{"protocol":"UDP","port":5000,"endPort":5100}]}],"egress":[{"to":[{"ipBlock":{"cidr":"0.0.0.0/0"}}]}]}'
CAPS=$(jq -cn --arg p "$POLICY" '{ips: ["10.99.2.10/24", "fd99:2::a/64"],
	"io.kubernetes.cri.pod-annotations": {"podfence.io/policy": $p},
	bandwidth: {ingressRate: 1000000000, ingressBurst: 10000000, egressRate: 1000000000, egressBurst: 10000000}}')

# time_verb TRACE-BASE VERB OUTFILE COUNT: exec the plugin of a trace entry
# COUNT times with VERB; one duration (ms) per line. The plugin's own
# environment and stdin come from the trace; CNI_COMMAND is replaced.
time_verb() {
	local base=$1 verb=$2 out=$3 count=$4
	# run inside the node netns so nsenter is outside the measured interval
	nsenter --net="/run/netns/$PREFIX-node" bash -c '
		base=$1 verb=$2 count=$3
		mapfile -t envs < <(grep -v "^CNI_COMMAND=" "$base.env")
		plugin=$(dirname "$base")/../cni-bin/$(basename "$base" | sed -E "s/^[0-9]+-(.*)-ADD$/\1/")
		for ((i = 0; i < count; i++)); do
			t0=$EPOCHREALTIME
			env -i "${envs[@]}" CNI_COMMAND="$verb" "$plugin" <"$base.stdin" >"$base.$verb.out" 2>"$base.$verb.err" ||
				{ echo "$(basename "$base") $verb failed: $(cat "$base.$verb.out" "$base.$verb.err")" >&2; exit 1; }
			t1=$EPOCHREALTIME
			echo "$t0 $t1" | awk "{printf \"%.3f\n\", (\$2 - \$1) * 1000}"
		done' _ "$base" "$verb" "$count" >>"$out"
}
# del_add TRACE-BASE NAME [RESET-CMD...]: N x (DEL, RESET, ADD), timing DEL
# and ADD. RESET (untimed) undoes what a DEL leaves behind that would make
# the next ADD fail.
del_add() {
	local base=$1 name=$2 i
	shift 2
	: >"$WORK/$name.ADD"
	: >"$WORK/$name.DEL"
	for ((i = 0; i < N; i++)); do
		time_verb "$base" DEL "$WORK/$name.DEL" 1
		[ $# = 0 ] || "$@"
		time_verb "$base" ADD "$WORK/$name.ADD" 1
	done
}
# bandwidth's DEL removes its ifb but leaves its qdiscs on the host veth (it
# relies on the veth going away): remove them so the next ADD can run.
bw_reset() {
	in_ns "$PREFIX-node" tc qdisc del dev "$1" root 2>/dev/null || true
	in_ns "$PREFIX-node" tc qdisc del dev "$1" ingress 2>/dev/null || true
}
stats() { # FILE -> "median min max"
	sort -n "$1" | awk '{v[NR] = $1} END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f | %.1f | %.1f", m, v[1], v[NR]}'
}

ROWS=()
run_chain() { # LABEL PODFENCE-KEYS-JSON
	local label=$1 keys=$2 conf=$WORK/chain.conflist trace=$WORK/trace-$RANDOM pfbase bwbase i veth
	make_conflist 20-podfence-bandwidth.conflist "$PREFIX-lat" "$PREFIX-brl" 10.99.2.0/24 fd99:2::/64 \
		"$WORK/ipam" "$(jq -c --arg r "$BPFFS" '. + {bpffsRoot: $r, defaultPolicy: "allow", logLevel: "warn"}' <<<"$keys")" >"$conf"
	new_ns "$PREFIX-lat"
	mkdir -p "$trace"
	in_ns "$PREFIX-node" env CNI_PATH="$CNIBIN" CNI_CACHE_DIR="$WORK/cache" DRIVER_TRACE_DIR="$trace" CAP_ARGS="$CAPS" \
		"$DRIVER" add "$conf" pfti-lat "/run/netns/$PREFIX-lat" eth0 >/dev/null
	# the trace dir sits next to cni-bin so time_verb finds the binaries by type
	pfbase=$(ls "$trace"/*-podfence-ADD.stdin | sed 's/\.stdin$//')
	bwbase=$(ls "$trace"/*-bandwidth-ADD.stdin | sed 's/\.stdin$//')
	del_add "$pfbase" "pf-$label"
	ROWS+=("| podfence $label | $(stats "$WORK/pf-$label.ADD") | $(stats "$WORK/pf-$label.DEL") |")
	if [ "$label" = "tc" ]; then
		veth=$(jq -r '[.prevResult.interfaces[] | select((.sandbox // "") == "") | .name | select(startswith("veth"))][0]' "$bwbase.stdin")
		del_add "$bwbase" bandwidth bw_reset "$veth"
		ROWS+=("| bandwidth (same chain) | $(stats "$WORK/bandwidth.ADD") | $(stats "$WORK/bandwidth.DEL") |")
		# cold ADD: the first pod on a node pays the datapath load + verification
		: >"$WORK/cold.ADD"
		for ((i = 0; i < COLD; i++)); do
			time_verb "$pfbase" DEL /dev/null 1
			umount "$BPFFS" && mount -t bpf bpf "$BPFFS"
			time_verb "$pfbase" ADD "$WORK/cold.ADD" 1
		done
		ROWS+=("| podfence tc, cold ADD (empty bpffs: datapath load), $COLD samples | $(stats "$WORK/cold.ADD") | | | |")
	fi
	in_ns "$PREFIX-node" env CNI_PATH="$CNIBIN" CNI_CACHE_DIR="$WORK/cache" CAP_ARGS="$CAPS" \
		"$DRIVER" del "$conf" pfti-lat "/run/netns/$PREFIX-lat" eth0 >/dev/null
	ip netns del "$PREFIX-lat"
}

run_chain tc '{"mode": "tc"}'
run_chain "xdp generic" '{"mode": "xdp", "xdpMode": "generic"}'
run_chain "xdp native" '{"mode": "xdp", "xdpMode": "native"}'

echo "Plugin's own invocation, $N x (DEL then ADD), ms; $(nproc) CPUs, kernel $(uname -r); chain bridge -> bandwidth -> podfence"
echo
echo "| plugin | ADD median | ADD min | ADD max | DEL median | DEL min | DEL max |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
