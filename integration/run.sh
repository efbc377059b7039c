#!/bin/bash
# End-to-end suite: the real podfence binary driven by the REAL libcni
# (integration/driver), chained after the real reference plugins (bridge,
# host-local, bandwidth, macvlan/ipvlan), with real sockets between pod netns.
#
#   integration/run.sh [--plugin PATH] [--quick] [--mode "tc xdp tc-legacy"] [--case FN]... [--variant PATH]
#
# --variant PATH: a podfence built with -DPODFENCE_DATAPATH_VARIANT=ON, for
# upgrade_case (also PFTI_VARIANT_PLUGIN); without it that case is skipped.
# --case FN runs only that scenario group of integration/cases/*.sh (its
# function name, e.g. gc_networks_case), in each mode.
# Modes: tc (tcx, tcBackend auto), xdp (native on chain 1, generic on the
# bandwidth chain); tc-legacy (tcBackend legacy: clsact + cls_bpf next to
# foreign filters) runs too unless --mode is given. --quick skips the
# policy-replace and concurrency cases and the tc-legacy mode.
#
# Topology, all in namespaces named pfti-*:
#   pfti-node  the runtime's host side: bridges pfti-br0 / pfti-br1, the host
#              veths; every plugin runs with this network namespace (entered
#              with nsenter --net, never `ip netns exec`, which hides bpffs)
#   pfti-a, pfti-b, pfti-c ...  pods
# bpffsRoot is a private bpffs instance on a fresh temp dir.
# Prints TAP-like "ok - name" / "not ok - name" lines and "N passed, M failed".
# Exit: 0 all passed, 1 some failed, 77 skipped (not root, no BPF, missing tools).
set -euo pipefail

# PFTI_PREFIX: another prefix for every netns this run makes (and cleans up),
# so that two runs on one machine leave each other alone.
PREFIX=${PFTI_PREFIX:-pfti}
# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLUGIN="" QUICK=0 MODES="" ONLY="" VARIANT=${PFTI_VARIANT_PLUGIN:-}
while [ $# -gt 0 ]; do
	case $1 in
	--plugin) PLUGIN=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--mode) MODES=$2; shift 2 ;;
	--case) ONLY+=" $2"; shift 2 ;;
	--variant) VARIANT=$2; shift 2 ;;
	-h | --help) sed -n '2,25p' "$0"; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
done

[ -n "$MODES" ] || { [ "$QUICK" = 1 ] && MODES="tc xdp" || MODES="tc xdp tc-legacy"; }
skip() { echo "1..0 # SKIP $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
for tool in go jq socat nsenter ip tc bpftool ping ss timeout comm; do
	command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps.sh)"
done
[ -e /sys/kernel/btf/vmlinux ] || skip "kernel without BTF"
[ -x /usr/lib/cni/bridge ] || skip "containernetworking-plugins are not installed"
[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] ||
	skip "golang-github-appc-cni-dev (libcni source) is not installed"

[ -n "$PLUGIN" ] || PLUGIN=$(find_plugin) || { echo "no podfence binary: build it (README: Install) or pass --plugin PATH" >&2; exit 2; }
[ -x "$PLUGIN" ] || { echo "$PLUGIN is not an executable" >&2; exit 2; }
PLUGIN=$(readlink -f "$PLUGIN")

# ---------------------------------------------------------------- setup/cleanup
trap release_work EXIT
trap 'exit 130' INT TERM
make_work pfti || skip "cannot mount a bpffs"
mkdir -p "$WORK/trace" "$WORK/res"
bpftool prog show >/dev/null 2>&1 || skip "bpf() is not usable here"

DRIVER=$WORK/driver
build_driver "$DRIVER" || { echo "building integration/driver failed" >&2; exit 2; }
CNIBIN=$WORK/cni-bin
make_cni_bin "$CNIBIN" "$PLUGIN"
REPORT=$WORK/foreign-report
: >"$REPORT"
ATT=$BPFFS/podfence/attachments
log "plugin $PLUGIN, work dir $WORK"

new_ns "$PREFIX-node"
in_ns "$PREFIX-node" sysctl -qw net.ipv4.ip_forward=1

# shellcheck source=integration/checks.sh
source "$INTEG_DIR/checks.sh"

# Chain 1 of every mode: bridge -> pfti-foreign-tc (records what it sees on
# the veth at DEL) -> podfence. Each scenario group gets it and podfence's keys.
FOREIGN=$(jq -cn --arg r "$REPORT" --arg d "$DRIVER" '{type: "pfti-foreign-tc", reportFile: $r, driver: $d}')
run_mode() {
	local mode=$1 pfkeys conf1 fn t0
	pfkeys=$(jq -cn --arg m "$mode" --arg root "$BPFFS" --arg lf "$WORK/podfence.log" \
		'{mode: $m, bpffsRoot: $root, logFile: $lf, logLevel: "debug", defaultPolicy: "allow"}
		 + (if $m == "xdp" then {xdpMode: "native"} elif $m == "tc-legacy" then {mode: "tc", tcBackend: "legacy"} else {} end)')
	conf1=$WORK/chain1-$mode.conflist
	make_conflist 10-podfence-containerd.conflist "$PREFIX-net" "$PREFIX-br0" 10.99.0.0/24 fd99::/64 \
		"$WORK/ipam" "$pfkeys" >"$conf1.tmp"
	insert_before_podfence "$conf1.tmp" "$FOREIGN" >"$conf1"
	for fn in "${MODE_CASES[@]}"; do
		[ -z "$ONLY" ] || [[ " $ONLY " == *" $fn "* ]] || continue
		t0=$SECONDS
		"$fn" "$mode" "$conf1" "$pfkeys"
		# Where the layer's time goes (CI's budget is ~30 min for everything).
		echo "# $mode $fn: $((SECONDS - t0)) s"
	done
}

# Scenario groups, one file each; a file defines its functions and appends
# them to MODE_CASES.
MODE_CASES=()
for f in "$INTEG_DIR"/cases/*.sh; do
	[ -e "$f" ] || continue
	# shellcheck source=/dev/null
	source "$f"
done

START=$SECONDS
for m in $MODES; do run_mode "$m"; done
echo "# $((SECONDS - START)) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
