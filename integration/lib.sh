# Shared helpers for integration/run.sh, integration/latency.sh and
# scripts/demo.sh. Source it; callers set PREFIX (netns/link name prefix)
# first. Nothing here touches objects outside PREFIX-*, WORK and the private
# bpffs make_work mounts.
# shellcheck shell=bash

INTEG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$INTEG_DIR/.." && pwd)

log() { echo "# $*" >&2; }

# build_driver OUT: compiles integration/driver against Debian's libcni in
# GOPATH mode (offline: /usr/share/gocode holds libcni and its packages).
build_driver() {
	local out=$1 gopath
	gopath=$(dirname "$out")/gopath
	mkdir -p "$gopath"
	(cd "$INTEG_DIR/driver" &&
		GO111MODULE=off GOFLAGS='' GOPATH="/usr/share/gocode:$gopath" \
			GOCACHE="${GOCACHE:-$gopath/cache}" go build -o "$out" .)
}

# make_cni_bin DIR PODFENCE: a CNI_PATH dir with the reference plugins, the
# test-only plugins and "podfence" -> the binary under test.
make_cni_bin() {
	local dir=$1 plugin=$2 p
	mkdir -p "$dir"
	for p in bridge host-local bandwidth ptp ipvlan macvlan loopback firewall; do
		[ -x "/usr/lib/cni/$p" ] && ln -sf "/usr/lib/cni/$p" "$dir/$p"
	done
	ln -sf "$INTEG_DIR/plugins/pfti-foreign-tc" "$dir/pfti-foreign-tc"
	ln -sf "$(readlink -f "$plugin")" "$dir/podfence"
}

# make_conflist TEMPLATE NAME BRIDGE SUBNET4 SUBNET6 DATADIR [jq podfence-overrides]
# Turns a shipped example from conf/ into a test conflist: our bridge, ranges
# and host-local dataDir, no ipMasq/portmap (no iptables state), podfence's
# keys overridden by the JSON object given as the last argument.
make_conflist() {
	local tmpl=$1 name=$2 br=$3 s4=$4 s6=$5 datadir=$6 pf=${7:-'{}'}
	jq --arg name "$name" --arg br "$br" --arg s4 "$s4" --arg s6 "$s6" \
		--arg dd "$datadir" --argjson pf "$pf" '
		.name = $name
		| .plugins |= map(select(.type != "portmap"))
		| .plugins |= map(
			if .type == "bridge" then
				.bridge = $br | del(.ipMasq)
				| .ipam.ranges = [[{subnet: $s4}], [{subnet: $s6}]]
				| .ipam.dataDir = $dd
			elif .type == "podfence" then . + $pf
			else . end)' "$REPO_DIR/conf/$tmpl"
}

# insert_before_podfence CONFLIST PLUGIN-JSON: adds a plugin just before podfence.
insert_before_podfence() {
	jq --argjson p "$2" '.plugins |= (map(select(.type != "podfence")) + [$p]
		+ map(select(.type == "podfence")))' "$1"
}

# in_ns NS CMD...: run CMD with only the network namespace switched (never
# `ip netns exec`: it remounts /sys and would hide bpffs from the plugin).
in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" -- "$@"
}

# new_ns NS: a network namespace with lo up and IPv6 DAD off (addresses are
# usable at once, no 2 s wait per pod).
new_ns() {
	ip netns add "$1"
	in_ns "$1" ip link set lo up
	in_ns "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# del_prefixed_ns PREFIX: deletes every netns named PREFIX-*.
del_prefixed_ns() {
	local ns
	for ns in $(ip netns list | awk '{print $1}' | grep "^$1-" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# find_plugin: prints the podfence binary of build/ (the README's build), else
# of the newest build-*/; fails when there is none.
find_plugin() {
	local cand
	for cand in "$REPO_DIR/build/plugin/podfence" $(ls -t "$REPO_DIR"/build-*/plugin/podfence 2>/dev/null); do
		[ -x "$cand" ] && { readlink -f "$cand"; return 0; }
	done
	return 1
}

# make_work NAME: WORK, a fresh temp dir /tmp/NAME.*, with a private bpffs
# instance mounted at BPFFS=$WORK/bpffs (so the node's own podfence state,
# if any, is never touched). Leftover PREFIX-* netns of an interrupted run go.
# Callers set `trap release_work EXIT` right after. Fails if bpffs cannot be mounted.
BGPIDS=()
make_work() {
	WORK=$(mktemp -d "/tmp/$1.XXXXXX")
	BPFFS=$WORK/bpffs
	mkdir -p "$BPFFS" "$WORK/ipam" "$WORK/cache"
	del_prefixed_ns "$PREFIX"
	mount -t bpf bpf "$BPFFS"
}

# release_work: the EXIT trap of every caller. Stops BGPIDS (servers the
# caller started), deletes PREFIX-* netns, unmounts the bpffs and removes
# WORK, which KEEP=1 keeps after a failure and KEEP=always after any run.
release_work() {
	local rc=$? pid
	set +e
	[ "$(type -t before_release)" != function ] || before_release
	for pid in "${BGPIDS[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	del_prefixed_ns "$PREFIX"
	[ -z "${BPFFS:-}" ] || ! mountpoint -q "$BPFFS" || umount "$BPFFS"
	# podfence's record copies and backup pins for this bpffs (layout::mirror_dir)
	if [ -n "${BPFFS:-}" ]; then
		while umount "/run/podfence/${BPFFS//\//_}/bpffs" 2>/dev/null; do :; done
		rm -rf "/run/podfence/${BPFFS//\//_}"
	fi
	if [ -n "${WORK:-}" ]; then
		if [ "${KEEP:-}" = always ] || { [ "$rc" != 0 ] && [ -n "${KEEP:-}" ]; }; then
			echo "# kept $WORK" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}
