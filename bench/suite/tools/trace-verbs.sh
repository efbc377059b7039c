#!/bin/bash
# strace -T of one podfence ADD and DEL per hook (tcx, legacy, XDP generic,
# XDP native), each after a warm-up pod on the same hook, into OUT/<hook>-<verb>.txt;
# prints the syscalls that took over 3 ms. Netns and interfaces: pfgp-*, removed
# on exit. Set /sys/kernel/rcu_expedited before running it.
# Usage: trace-verbs.sh PODFENCE OUT
set -eu
BIN=$(realpath "$1")
mkdir -p "$2"
OUT=$(realpath "$2") # podfence's logFile must be absolute
ROOT=$(mktemp -d /tmp/pfgp.XXXXXX)
mount -t bpf pfgp "$ROOT"
ip netns add pfgp-node
ip netns add pfgp-pods
cleanup() {
	ip netns del pfgp-pods 2>/dev/null || true
	ip netns del pfgp-node 2>/dev/null || true
	umount "$ROOT" && rmdir "$ROOT"
	# podfence's backup of the datapath (README "A lost bpffs")
	local mirror=/run/podfence/${ROOT//\//_}
	if [ -d "$mirror" ]; then
		umount "$mirror/bpffs" 2>/dev/null || true
		rm -rf "$mirror"
	fi
}
trap cleanup EXIT

verb() { # VERB NETCONF-KEYS POD [TRACE-FILE]
	local conf
	conf='{"cniVersion":"1.0.0","name":"pfgp","type":"podfence",'"$2"',"defaultPolicy":"allow",
"bpffsRoot":"'"$ROOT"'","logFile":"'"$OUT"'/podfence.log","prevResult":{"cniVersion":"1.0.0",
"interfaces":[{"name":"h'"$3"'"},{"name":"p'"$3"'","sandbox":"/run/netns/pfgp-pods"}],
"ips":[{"address":"10.250.0.'"$(($3 + 1))"'/32","interface":1}]}}'
	echo "$conf" | nsenter --net=/run/netns/pfgp-node env CNI_COMMAND="$1" CNI_CONTAINERID="pfgp-$3" \
		CNI_NETNS=/run/netns/pfgp-pods CNI_IFNAME="p$3" CNI_PATH=/usr/lib/cni \
		${4:+strace -f -T -tt -o "$4"} "$BIN" >/dev/null
}

i=0
for spec in 'tcx|"mode":"tc","tcBackend":"tcx"' 'legacy|"mode":"tc","tcBackend":"legacy"' \
	'xdp-generic|"mode":"xdp","xdpMode":"generic"' 'xdp-native|"mode":"xdp","xdpMode":"native"'; do
	hook=${spec%%|*}
	keys=${spec#*|}
	for traced in no yes; do
		ip -n pfgp-node link add "h$i" type veth peer name "p$i" netns pfgp-pods
		ip -n pfgp-node link set "h$i" up
		ip -n pfgp-pods link set "p$i" up
		for v in ADD DEL; do
			f=""
			[ $traced = yes ] && f="$OUT/$hook-$v.txt"
			verb $v "$keys" $i "$f"
		done
		ip -n pfgp-node link del "h$i"
		i=$((i + 1))
	done
done
for f in "$OUT"/*-ADD.txt "$OUT"/*-DEL.txt; do
	echo "== $(basename "$f" .txt)"
	awk -F'<' '/>$/ {t = $NF; sub(">", "", t); if (t + 0 > 0.003) printf "%s s  %s\n", t, substr($0, 1, 120)}' "$f"
done
