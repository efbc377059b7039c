#!/bin/bash
# podfence in one command, on a fresh Debian 12, as root:
#   installs the dependencies (scripts/install-deps.sh), builds podfence into
#   build/, then plays a container runtime with the real libcni
#   (integration/driver): two "pods" (network namespaces pfdemo-web and
#   pfdemo-client) on a bridge, chained bridge + host-local -> podfence.
#   pfdemo-web carries the annotation podfence.io/policy "ingress TCP 8080
#   from the client only". Shows an allowed and a denied connection, then
#   `podfence inspect` and `podfence counters`. Everything is removed at the
#   end, also on failure or Ctrl-C.
#
#   scripts/demo.sh [--skip-deps] [--build-dir DIR] [--plugin PATH] [--mode tc|xdp]
#
# It touches only namespaces named pfdemo-* (the bridge and host veths live
# in pfdemo-node, not in your host namespace) and a private bpffs mounted on
# a temp dir, so it leaves no trace on the machine.
set -euo pipefail

PREFIX=pfdemo
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=integration/lib.sh
source "$REPO/integration/lib.sh"

DEPS=1 BUILD_DIR=$REPO/build PLUGIN="" MODE=tc
while [ $# -gt 0 ]; do
	case $1 in
	--skip-deps) DEPS=0; shift ;;
	--build-dir) BUILD_DIR=$2; shift 2 ;;
	--plugin) PLUGIN=$2; shift 2 ;;
	--mode) MODE=$2; shift 2 ;;
	*) sed -n '2,17p' "$0"; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it creates network namespaces and loads eBPF)" >&2; exit 1; }

B=$(tput bold 2>/dev/null || true) G=$(tput setaf 2 2>/dev/null || true) R=$(tput setaf 1 2>/dev/null || true) N=$(tput sgr0 2>/dev/null || true)
step() { echo; echo "${B}==> $*${N}"; }
show() { echo "${B}\$ $*${N}"; }

if [ "$DEPS" = 1 ]; then
	step "Installing dependencies (scripts/install-deps.sh)"
	"$REPO/scripts/install-deps.sh"
fi
if [ -z "$PLUGIN" ]; then
	step "Building podfence into $BUILD_DIR"
	cmake -S "$REPO" -B "$BUILD_DIR" -DPODFENCE_TESTS=OFF >/dev/null
	cmake --build "$BUILD_DIR" -j"$(nproc)" --target podfence >/dev/null
	PLUGIN=$BUILD_DIR/plugin/podfence
fi
PLUGIN=$(readlink -f "$PLUGIN")

# The pods go through DEL as a runtime would remove them, then release_work
# (integration/lib.sh) removes the rest.
before_release() {
	step "Cleaning up"
	if [ -n "${CONF:-}" ] && [ -e "/run/netns/$PREFIX-node" ]; then
		for pod in web client; do run_driver del "$pod" >/dev/null 2>&1; done
	fi
	echo "removing namespaces $PREFIX-*, the private bpffs and $WORK"
}
trap release_work EXIT
trap 'exit 130' INT TERM
make_work pfdemo

step "Building the runtime stand-in (integration/driver, on Debian's libcni)"
build_driver "$WORK/driver"
make_cni_bin "$WORK/cni-bin" "$PLUGIN"

new_ns "$PREFIX-node"
new_ns "$PREFIX-web"
new_ns "$PREFIX-client"

WEB=10.98.0.10 CLIENT=10.98.0.20
CONF=$WORK/demo.conflist
make_conflist 10-podfence-containerd.conflist "$PREFIX" "$PREFIX-br0" 10.98.0.0/24 fd98::/64 "$WORK/ipam" \
	"$(jq -cn --arg m "$MODE" --arg r "$BPFFS" --arg l "$WORK/podfence.log" \
		'{mode: $m, bpffsRoot: $r, logFile: $l} + (if $m == "xdp" then {xdpMode: "generic"} else {} end)')" >"$CONF"
POLICY=$(jq -cn --arg c "$CLIENT/32" '{ingress: [{from: [{ipBlock: {cidr: $c}}], ports: [{protocol: "TCP", port: 8080}]}]}')

# run_driver VERB POD: what containerd does for a pod sandbox, via libcni.
run_driver() {
	local ip caps
	ip=$([ "$2" = web ] && echo $WEB || echo $CLIENT)
	caps=$(jq -cn --arg ip "$ip/24" --arg p "$([ "$2" = web ] && echo "$POLICY")" \
		'{ips: [$ip]} + (if $p == "" then {} else {"io.kubernetes.cri.pod-annotations": {"podfence.io/policy": $p}} end)')
	# The pod's identity, as containerd and CRI-O pass it.
	in_ns "$PREFIX-node" env CNI_PATH="$WORK/cni-bin" CNI_CACHE_DIR="$WORK/cache" CAP_ARGS="$caps" \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$2;K8S_POD_UID=00000000-0000-4000-8000-0000000000$([ "$2" = web ] && echo 01 || echo 02)" \
		"$WORK/driver" "$1" "$CONF" "$PREFIX-$2" "/run/netns/$PREFIX-$2" eth0
}

step "The conflist (conf/10-podfence-containerd.conflist, adapted to the demo)"
jq -c '.plugins[]' "$CONF"
step "ADD pod $PREFIX-web ($WEB) with annotation podfence.io/policy:"
echo "   $POLICY"
run_driver add web | jq -c '{interfaces: [.interfaces[].name], ips: [.ips[].address]}'
step "ADD pod $PREFIX-client ($CLIENT), no annotation (defaultPolicy allow)"
run_driver add client | jq -c '{interfaces: [.interfaces[].name], ips: [.ips[].address]}'

# web listens on 8080 and 9090; nsenter execs socat, so the pid is the server
for port in 8080 9090; do
	nsenter --net="/run/netns/$PREFIX-web" socat TCP-LISTEN:$port,reuseaddr,fork SYSTEM:"echo hello from web:$port" 2>/dev/null &
	BGPIDS+=($!)
done
sleep 0.3

probe() { # PORT
	local out
	show "client -> $WEB:$1"
	out=$(in_ns "$PREFIX-client" timeout 4 socat -T2 - TCP:$WEB:$1,connect-timeout=2 </dev/null 2>&1 || true)
	if grep -q hello <<<"$out"; then
		echo "   ${G}ALLOWED${N}: $out"
	else
		echo "   ${R}DENIED${N}: no answer within 2 s (the SYN was dropped by podfence)"
	fi
}
step "Connections from the client"
probe 8080
probe 9090

step "podfence inspect"
show "podfence inspect --bpffs-root $BPFFS"
"$PLUGIN" inspect --bpffs-root "$BPFFS"
step "podfence counters"
show "podfence counters --bpffs-root $BPFFS"
"$PLUGIN" counters --bpffs-root "$BPFFS"
step "podfence explain: why a flow is allowed or denied"
show "podfence explain demo/web --direction ingress --peer $CLIENT --proto TCP --port 8080"
"$PLUGIN" explain demo/web --direction ingress --peer "$CLIENT" --proto TCP --port 8080 --bpffs-root "$BPFFS"
show "podfence explain demo/web --direction ingress --peer $CLIENT --proto TCP --port 9090"
"$PLUGIN" explain demo/web --direction ingress --peer "$CLIENT" --proto TCP --port 9090 --bpffs-root "$BPFFS"
step "podfence events --json (one JSON object per line, for log shippers)"
show "podfence events demo/web --json --count 1   # while the client tries port 9090 again"
timeout 10 "$PLUGIN" events demo/web --json --count 1 --bpffs-root "$BPFFS" 2>/dev/null &
EVPID=$!
sleep 0.5
in_ns "$PREFIX-client" timeout 3 socat -T1 - TCP:$WEB:9090,connect-timeout=1 </dev/null >/dev/null 2>&1 || true
wait "$EVPID" || true
