#!/bin/bash
# End-to-end suite: the real podfence binary driven by the REAL libcni
# (integration/driver), chained after the real reference plugins (bridge,
# host-local, bandwidth, macvlan/ipvlan), with real sockets between pod netns.
#
#   integration/run.sh [--plugin PATH] [--quick] [--mode "tc xdp tc-legacy"]
#
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

PREFIX=pfti
# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLUGIN="" QUICK=0 MODES=""
while [ $# -gt 0 ]; do
	case $1 in
	--plugin) PLUGIN=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--mode) MODES=$2; shift 2 ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
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

if [ -z "$PLUGIN" ]; then
	for cand in "$REPO_DIR/build/plugin/podfence" $(ls -t "$REPO_DIR"/build-*/plugin/podfence 2>/dev/null); do
		[ -x "$cand" ] && { PLUGIN=$cand; break; }
	done
fi
[ -n "$PLUGIN" ] && [ -x "$PLUGIN" ] || { echo "no podfence binary: build it or pass --plugin PATH" >&2; exit 2; }
PLUGIN=$(readlink -f "$PLUGIN")

# ---------------------------------------------------------------- setup/cleanup
WORK=$(mktemp -d /tmp/pfti.XXXXXX)
BPFFS=$WORK/bpffs
BGPIDS=()
cleanup() {
	local rc=$? pid
	set +e
	for pid in "${BGPIDS[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	del_prefixed_ns "$PREFIX"
	mountpoint -q "$BPFFS" && umount "$BPFFS"
	# KEEP=1 keeps the work dir (traces, outputs) of a failed run, KEEP=always of any run
	if [ "${KEEP:-}" = always ] || { [ "$rc" != 0 ] && [ -n "${KEEP:-}" ]; }; then
		echo "# kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

del_prefixed_ns "$PREFIX" # leftovers of an interrupted run: ours by prefix
mkdir -p "$BPFFS" "$WORK/trace" "$WORK/res" "$WORK/ipam" "$WORK/cache"
mount -t bpf bpf "$BPFFS" || skip "cannot mount a bpffs"
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

# ------------------------------------------------------------------- reporting
PASS=0 FAIL=0 WHY=""
ok() { echo "ok - $1"; PASS=$((PASS + 1)); }
notok() {
	echo "not ok - $1"
	[ -z "$WHY" ] || sed 's/^/#   /' <<<"$WHY"
	FAIL=$((FAIL + 1))
}
# t NAME PREDICATE ARGS...: a predicate returns 0/1 and may explain in WHY.
t() {
	local name=$1
	shift
	WHY=""
	# a predicate may record several reasons and go on: any reason fails it
	if "$@" && [ -z "$WHY" ]; then ok "$name"; else notok "$name"; fi
}
why() { WHY+="${WHY:+$'\n'}$*"; return 1; }
# run_ok OUT CMD...: CMD succeeds (its stdout+stderr kept in OUT for the report).
run_ok() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 || why "$* failed: $(head -c 600 "$out")"
}
# run_in_ok INPUT OUT CMD...: same with INPUT on stdin.
run_in_ok() {
	local in=$1 out=$2
	shift 2
	"$@" <<<"$in" >"$out" 2>&1 || why "$* failed: $(head -c 600 "$out")"
}
empty_or_why() { [ -z "$1" ] || why "$1"; }

# ------------------------------------------------------------- CNI invocation
SEQ=0
# drv VERB CONF CID NETNS [CAP_ARGS]: libcni via the driver, as the runtime on
# the node. Output in $WORK/res/<cid>.<verb>, the per-plugin trace in OUTTRACE.
drv() {
	local verb=$1 conf=$2 cid=$3 ns=$4 caps=${5:-}
	SEQ=$((SEQ + 1))
	OUTTRACE=$WORK/trace/$SEQ-$cid-$verb
	mkdir -p "$OUTTRACE"
	in_ns "$PREFIX-node" env CNI_PATH="$CNIBIN" CNI_CACHE_DIR="$WORK/cache" \
		DRIVER_TRACE_DIR="$OUTTRACE" CAP_ARGS="$caps" \
		"$DRIVER" "$verb" "$conf" "$cid" "$ns" eth0 >"$WORK/res/$cid.$verb" 2>"$OUTTRACE/driver.err"
}
# pf_cni VERB CID NETNS IFNAME <netconf: the plugin alone, the runtime emulated.
pf_cni() {
	local e=(CNI_COMMAND="$1" CNI_PATH="$CNIBIN")
	[ -z "$2" ] || e+=(CNI_CONTAINERID="$2")
	[ -z "$3" ] || e+=(CNI_NETNS="$3")
	[ -z "$4" ] || e+=(CNI_IFNAME="$4")
	in_ns "$PREFIX-node" env -i PATH="$PATH" "${e[@]}" "$PLUGIN"
}
# pf CLI-ARGS...: the operator CLI on our private bpffs.
pf() { env -u CNI_COMMAND "$PLUGIN" "$@" --bpffs-root "$BPFFS"; }

# caps IP4 IP6 [POLICY-JSON] [EXTRA-JSON]: CAP_ARGS for a pod.
caps() {
	jq -cn --arg ip4 "$1" --arg ip6 "$2" --arg pol "${3:-}" --argjson extra "${4:-{\}}" '
		{ips: [$ip4, $ip6]}
		+ (if $pol == "" then {} else {"io.kubernetes.cri.pod-annotations": {"podfence.io/policy": $pol}} end)
		+ $extra'
}

# ------------------------------------------------------------- state probes
attach_dirs() { ls -1 "$ATT" 2>/dev/null | sort || true; }
same_dirs() { # BEFORE: the attachment dirs are exactly BEFORE
	local now
	now=$(attach_dirs)
	[ "$now" = "$1" ] || why "attachment dirs now: $(tr '\n' ' ' <<<"$now")(before: $(tr '\n' ' ' <<<"$1"))"
}
# inspected_cids: container IDs `podfence inspect --json` reports (the table
# view truncates long IDs).
inspected_cids() { pf inspect --json | jq -r '.[].containerID'; }
inspect_lists() { # CID...: `podfence inspect` names each
	local out c
	out=$(inspected_cids 2>&1) || why "podfence inspect --json failed: $out"
	for c in "$@"; do grep -qx -- "$c" <<<"$out" || why "inspect does not list $c: $(tr '\n' ' ' <<<"$out")"; done
	[ -z "$WHY" ]
}
# Kernel maps of the datapath (one datapath-* dir per BPF object).
dp_map() { ls -d "$BPFFS"/podfence/datapath-*/"$1" 2>/dev/null | head -1; }
le32() { printf '%d %d %d %d' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)); }
# slot_clear SLOT: pf_pods[slot] inactive and no policy trie in pf_policy[slot].
slot_clear() {
	local flags
	# shellcheck disable=SC2046 # le32 prints the four key bytes as words
	flags=$(bpftool -j map lookup pinned "$(dp_map pf_pods)" key $(le32 "$1") | jq -r '.formatted.value.flags')
	[ "$flags" = 0 ] || why "pf_pods[$1].flags = $flags"
	# shellcheck disable=SC2046
	if bpftool -j map lookup pinned "$(dp_map pf_policy)" key $(le32 "$1") >/dev/null 2>&1; then
		why "pf_policy[$1] still holds a trie"
	fi
	[ -z "$WHY" ]
}
# policy_trie_id SLOT: id of the policy map in pf_policy[slot].
policy_trie_id() {
	local hex
	# shellcheck disable=SC2046
	hex=$(bpftool -j map lookup pinned "$(dp_map pf_policy)" key $(le32 "$1") | jq -r '.value | map(.[2:]) | reverse | join("")')
	echo $((16#$hex))
}
# delete_one_policy_entry SLOT: tampering, as a confused operator with bpftool would.
delete_one_policy_entry() {
	local id key
	id=$(policy_trie_id "$1") || return 1
	key=$(bpftool -j map dump id "$id" | jq -r '.[0].key | map(.[2:]) | join(" ")')
	[ -n "$key" ] || why "trie $id of slot $1 is empty"
	bpftool map delete id "$id" key hex $key || why "bpftool map delete id $id failed"
}
# host_veth RESULT-FILE: the bridge's host-side veth named in a CNI result.
host_veth() { jq -r '[.interfaces[]? | select((.sandbox // "") == "") | .name | select(startswith("veth"))] | first // empty' "$1"; }
# cls_bpf_prefs DEV ingress|egress: prefs of the legacy bpf filters there.
cls_bpf_prefs() {
	in_ns "$PREFIX-node" tc filter show dev "$1" "$2" 2>/dev/null |
		awk '/ bpf / {for (i = 1; i < NF; i++) if ($i == "pref") print $(i + 1)}' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
tcx_progs() { in_ns "$PREFIX-node" "$DRIVER" tcx-progs "$1" "$2" | tr '\n' ' ' | sed 's/ $//'; }
xdp_id() { # NS DEV
	in_ns "$1" ip link show dev "$2" 2>/dev/null | grep -o 'prog/xdp[a-z]* id [0-9]*' | awk '{print $3}'
}
# ids_of_dir DIR: "link:<id> prog:<id>" for every pinned link and stub there.
ids_of_dir() {
	local f
	for f in "$1"/link_*; do
		[ -e "$f" ] || continue
		bpftool -j link show pinned "$f" 2>/dev/null | jq -r '"link:\(.id) prog:\(.prog_id)"'
	done
	for f in "$1"/stub_*; do
		[ -e "$f" ] || continue
		bpftool -j prog show pinned "$f" 2>/dev/null | jq -r '"prog:\(.id)"'
	done
}
# ids_gone "IDS": every link/prog id listed no longer exists (programs are
# freed after an RCU grace period: retry for up to 3 s).
ids_gone() {
	local id left i
	for i in $(seq 30); do
		left=""
		for id in $1; do
			case $id in
			link:*) bpftool link show id "${id#link:}" >/dev/null 2>&1 && left+=" $id" ;;
			prog:*) bpftool prog show id "${id#prog:}" >/dev/null 2>&1 && left+=" $id" ;;
			esac
		done
		[ -n "$left" ] || return 0
		sleep 0.1
	done
	why "still present:$left"
}

# Per pod, after ADD: POD_DIR[cid] (attachment dir), POD_IDS[cid], POD_VETH[cid].
declare -A POD_DIR POD_IDS POD_VETH POD_NS POD_CAPS POD_CONF POD_SLOT

# add_pod CONF CID NS CAPS: ADD through libcni and remember what appeared.
add_pod() {
	local conf=$1 cid=$2 ns=$3 capargs=$4 before after
	before=$(attach_dirs)
	POD_NS[$cid]=$ns POD_CAPS[$cid]=$capargs POD_CONF[$cid]=$conf
	drv add "$conf" "$cid" "/run/netns/$ns" "$capargs" || {
		why "driver add: $(cat "$WORK/res/$cid.add") $(tail -3 "$OUTTRACE/driver.err")"
		return 1
	}
	after=$(attach_dirs)
	POD_DIR[$cid]=$(comm -13 <(echo "$before") <(echo "$after") | head -1)
	POD_VETH[$cid]=$(host_veth "$WORK/res/$cid.add")
	POD_IDS[$cid]=$(ids_of_dir "$ATT/${POD_DIR[$cid]}" | tr '\n' ' ')
	POD_SLOT[$cid]=$(pf inspect --json | jq -r --arg c "$cid" '.[] | select(.containerID == $c) | .slot')
	cp "$OUTTRACE"/*-podfence-ADD.stdin "$WORK/res/$cid.pf-add-stdin" 2>/dev/null || true
	cp "$OUTTRACE"/*-podfence-ADD.stdout "$WORK/res/$cid.pf-add-stdout" 2>/dev/null || true
	[ -n "${POD_DIR[$cid]}" ] || why "no new attachment directory under $ATT"
}

# attached MODE CID: the pod's hooks hold podfence's programs.
attached() {
	local mode=$1 cid=$2 veth=${POD_VETH[$2]:-} ns=${POD_NS[$2]:-} i e
	[ -n "$veth" ] || why "no host veth in the ADD result"
	if [ "$mode" = tc ]; then
		i=$(tcx_progs "$veth" ingress) e=$(tcx_progs "$veth" egress)
		[ -n "$i" ] && [ -n "$e" ] || why "tcx on $veth: ingress [$i] egress [$e]"
	elif [ "$mode" = tc-legacy ]; then
		i=$(cls_bpf_prefs "$veth" ingress) e=$(cls_bpf_prefs "$veth" egress)
		[ -n "$i" ] && [ -n "$e" ] || why "cls_bpf filters on $veth: ingress [$i] egress [$e]"
	else
		[ -n "$(xdp_id "$PREFIX-node" "$veth")" ] || why "no XDP program on host veth $veth"
		[ -n "$(xdp_id "$ns" eth0)" ] || why "no XDP program on eth0 in $ns"
	fi
	[ -n "${POD_IDS[$cid]:-}" ] || why "no pinned links/stubs in ${POD_DIR[$cid]:-?}"
	[ -z "$WHY" ]
}

xdp_native() { # CID: `ip link` shows native ("prog/xdp"), not generic, on both sides
	local h p
	h=$(in_ns "$PREFIX-node" ip link show dev "${POD_VETH[$1]:-none}" | grep -o 'prog/xdp[a-z]*' || true)
	p=$(in_ns "${POD_NS[$1]}" ip link show dev eth0 | grep -o 'prog/xdp[a-z]*' || true)
	[ "$h" = prog/xdp ] && [ "$p" = prog/xdp ] || why "host veth: [$h], pod eth0: [$p]"
}

# nothing_attached CID [VETH NS]: no record, no pins, links and stubs freed,
# and (if the veth still exists) no tcx/XDP program on either side.
nothing_attached() {
	local cid=$1 veth=${2:-} ns=${3:-} d
	d=${POD_DIR[$cid]:-}
	[ -z "$d" ] || [ ! -e "$ATT/$d" ] || why "attachment dir $d still pinned: $(ls "$ATT/$d" | tr '\n' ' ')"
	[ -z "${POD_IDS[$cid]:-}" ] || ids_gone "${POD_IDS[$cid]}" || true
	local listing
	listing=$(inspected_cids 2>&1) || why "podfence inspect --json failed: $listing"
	if grep -qx -- "$cid" <<<"$listing"; then why "podfence inspect still lists $cid"; fi
	[ -z "${POD_SLOT[$cid]:-}" ] || slot_clear "${POD_SLOT[$cid]}" || true
	if [ -n "$veth" ] && in_ns "$PREFIX-node" ip link show dev "$veth" >/dev/null 2>&1; then
		local i e
		i=$(tcx_progs "$veth" ingress) e=$(tcx_progs "$veth" egress)
		[ -z "$i$e" ] || why "tcx programs left on $veth: ingress [$i] egress [$e]"
		i=$(cls_bpf_prefs "$veth" ingress) e=$(cls_bpf_prefs "$veth" egress)
		[ -z "$i$e" ] || why "cls_bpf filters left on $veth: ingress [$i] egress [$e]"
		[ -z "$(xdp_id "$PREFIX-node" "$veth")" ] || why "XDP program left on $veth"
	fi
	if [ -n "$ns" ] && [ -e "/run/netns/$ns" ]; then
		[ -z "$(xdp_id "$ns" eth0)" ] || why "XDP program left on eth0 in $ns"
	fi
	[ -z "$WHY" ]
}

# --------------------------------------------------------------- traffic
# Servers answer "pong" then echo what they get (so one server serves both
# short probes and long-lived connections). Dual-stack listeners.
# nsenter execs socat (no fork), so $! is the server itself and cleanup can
# kill it by pid.
serve_tcp() { # NS PORT
	nsenter --net="/run/netns/$1" socat TCP6-LISTEN:"$2",reuseaddr,fork,ipv6only=0 SYSTEM:'echo pong; cat' 2>/dev/null &
	BGPIDS+=($!)
}
# The UDP server reads the datagram before answering: a shell that exits
# unread makes socat's write fail (EPIPE) and, racing, drop the answer.
serve_udp() { # NS PORT
	nsenter --net="/run/netns/$1" socat UDP6-RECVFROM:"$2",fork,ipv6only=0 SYSTEM:'read -r x; echo pong' 2>/dev/null &
	BGPIDS+=($!)
}
wait_listen() { # NS PROTO(t|u) PORT...
	local ns=$1 p=$2 port i
	shift 2
	for port in "$@"; do
		for i in $(seq 50); do
			[ -n "$(in_ns "$ns" ss -H -ln"$p" "sport = :$port")" ] && break
			sleep 0.05
		done
	done
}
addr() { [[ $1 == *:* ]] && echo "[$1]" || echo "$1"; }
# Allowed probes wait long (they return as soon as the answer comes: no cost
# when things work, no flake on a loaded machine); denied probes wait 1.5 s,
# several SYN-ACK round trips even under load.
PROBE_WAIT=1.5
tcp_probe() { # NS IP PORT [SRC-IP] -> prints what came back
	in_ns "$1" timeout 8 socat -T3 - TCP:"$(addr "$2")":"$3",connect-timeout=$PROBE_WAIT${4:+,bind=$4} </dev/null 2>/dev/null || true
}
udp_probe() {
	# -t: how long to wait for the answer after sending (the server forks a
	# shell per datagram, slow on a loaded 2-core machine)
	echo ping | in_ns "$1" timeout 4 socat -t2 -T2 - UDP:"$(addr "$2")":"$3" 2>/dev/null || true
}
tcp_ok() { [ "$(PROBE_WAIT=4 tcp_probe "$@")" = pong ] || why "no TCP answer from $2:$3 in $1"; }
tcp_denied() { [ -z "$(tcp_probe "$@")" ] || why "TCP $2:$3 answered from $1"; }
udp_ok() { [ "$(udp_probe "$@")" = pong ] || why "no UDP answer from $2:$3 in $1"; }
udp_denied() { [ -z "$(udp_probe "$@")" ] || why "UDP $2:$3 answered from $1"; }
ping_ok() { in_ns "$1" ping -c1 -W3 "$2" >/dev/null 2>&1 || why "ping $2 from $1 failed"; }
ping_denied() { ! in_ns "$1" ping -c1 -W1 "$2" >/dev/null 2>&1 || why "ping $2 from $1 answered"; }

# ---------------------------------------------------------- result checks
# add_output_is_prev CID: podfence's ADD output == the prevResult libcni gave it.
add_output_is_prev() {
	local in=$WORK/res/$1.pf-add-stdin out=$WORK/res/$1.pf-add-stdout a b
	[ -s "$in" ] && [ -s "$out" ] || why "no podfence ADD trace for $1"
	a=$(jq -S '.prevResult' "$in") || why "prevResult not JSON"
	b=$(jq -S '.' "$out") || why "podfence ADD output not JSON: $(head -c 300 "$out")"
	[ "$a" = "$b" ] || why "differs: $(diff <(echo "$a") <(echo "$b") | head -20)"
	# and the runtime got the same thing as the chain's final result
	[ "$(jq -S . "$WORK/res/$1.add")" = "$b" ] || why "driver's final result differs from podfence's output"
	[ -z "$WHY" ]
}
# cni_fails CODE REGEX FILE: FILE holds a CNI error with CODE and a msg matching REGEX.
cni_fails() {
	local code msg
	code=$(jq -r '.code // empty' "$3" 2>/dev/null) msg=$(jq -r '"\(.msg) \(.details // "")"' "$3" 2>/dev/null)
	[ "$code" = "$1" ] || why "code [$code], want $1: $(head -c 400 "$3")"
	grep -Eiq -- "$2" <<<"$msg" || why "message does not match /$2/: $msg"
	[ -z "$WHY" ]
}
report_line() { grep "^$1 $2 " "$REPORT" | tail -1 | cut -d' ' -f3-; }
foreign_intact() { # CID
	local r
	r=$(report_line "$1" foreign-tc)
	[ "$r" = ok ] || why "foreign qdisc/filter after podfence DEL: ${r:-no report}"
}
detached_at_del() { # CID MODE: what the foreign plugin saw between podfence's DEL and the veth's removal
	local r
	for k in tcx-ingress tcx-egress; do
		r=$(report_line "$1" "$k")
		[ -z "$(echo $r)" ] || why "$k still had programs [$r] after podfence DEL"
	done
	for k in xdp-host xdp-pod; do
		r=$(report_line "$1" "$k")
		[ "$r" = none ] || [ -z "$r" ] || why "$k still had program $r after podfence DEL"
	done
	r=$(report_line "$1" cls-bpf)
	[ "$r" = 0 ] || why "cls-bpf: ${r:-no report} legacy bpf filters left after podfence DEL"
	grep -q "^$1 tcx-ingress" "$REPORT" || why "no report from pfti-foreign-tc's DEL"
	[ -z "$WHY" ]
}
del_ok() { # CID: DEL through libcni
	drv del "${POD_CONF[$1]}" "$1" "/run/netns/${POD_NS[$1]}" "${POD_CAPS[$1]}" ||
		why "driver del: $(cat "$WORK/res/$1.del")"
}
check_ok() {
	drv check "${POD_CONF[$1]}" "$1" "/run/netns/${POD_NS[$1]}" "${POD_CAPS[$1]}" ||
		why "driver check: $(cat "$WORK/res/$1.check")"
}
check_fails_103() { # CID REGEX
	if drv check "${POD_CONF[$1]}" "$1" "/run/netns/${POD_NS[$1]}" "${POD_CAPS[$1]}"; then
		why "CHECK passed"
		return 1
	fi
	cni_fails 103 "$2" "$WORK/res/$1.check"
}

# podfence_conf CONFLIST: the podfence entry of a conflist as a standalone
# netconf (what a runtime sends that plugin), cniVersion overridable.
podfence_conf() {
	jq -c --arg v "${2:-}" '(.plugins[] | select(.type == "podfence")) + {name: .name,
		cniVersion: (if $v == "" then .cniVersion else $v end)}' "$1"
}

# ============================================================== the cases
# Addresses (fixed through the "ips" capability so policies can name them
# before ADD, as a real cluster's would).
A4=10.99.0.10 A6=fd99::a B4=10.99.0.11 B6=fd99::b C4=10.99.0.12 C6=fd99::c

# b: ingress TCP 8080 from a only; anything from c (a rule without ports, so
# ICMP too); egress isolated with no rules (its replies pass only through
# conntrack).
POL_B=$(jq -cn --arg a4 "$A4/32" --arg a6 "$A6/128" --arg c4 "$C4/32" --arg c6 "$C6/128" '{
	policyTypes: ["Ingress", "Egress"],
	ingress: [
		{from: [{ipBlock: {cidr: $a4}}, {ipBlock: {cidr: $a6}}], ports: [{protocol: "TCP", port: 8080}]},
		{from: [{ipBlock: {cidr: $c4}}, {ipBlock: {cidr: $c6}}]}],
	egress: []}')
# b after a replace: only TCP 8081 from a.
POL_B2=$(jq -cn --arg a4 "$A4/32" '{ingress: [{from: [{ipBlock: {cidr: $a4}}], ports: [{protocol: "TCP", port: 8081}]}]}')
# a: egress only UDP 53 / TCP 80 to c, anything to b; ingress isolated, no rules.
POL_A=$(jq -cn --arg b4 "$B4/32" --arg b6 "$B6/128" --arg c4 "$C4/32" --arg c6 "$C6/128" '{
	policyTypes: ["Ingress", "Egress"],
	egress: [
		{to: [{ipBlock: {cidr: $c4}}, {ipBlock: {cidr: $c6}}], ports: [{protocol: "UDP", port: 53}, {protocol: "TCP", port: 80}]},
		{to: [{ipBlock: {cidr: $b4}}, {ipBlock: {cidr: $b6}}]}]}')

run_mode() {
	local mode=$1 pfkeys conf1 cid
	pfkeys=$(jq -cn --arg m "$mode" --arg root "$BPFFS" --arg lf "$WORK/podfence.log" \
		'{mode: $m, bpffsRoot: $root, logFile: $lf, logLevel: "debug", defaultPolicy: "allow"}
		 + (if $m == "xdp" then {xdpMode: "native"} elif $m == "tc-legacy" then {mode: "tc", tcBackend: "legacy"} else {} end)')
	local foreign
	foreign=$(jq -cn --arg r "$REPORT" --arg d "$DRIVER" '{type: "pfti-foreign-tc", reportFile: $r, driver: $d}')
	conf1=$WORK/chain1-$mode.conflist
	make_conflist 10-podfence-containerd.conflist "$PREFIX-net" "$PREFIX-br0" 10.99.0.0/24 fd99::/64 \
		"$WORK/ipam" "$pfkeys" >"$conf1.tmp"
	insert_before_podfence "$conf1.tmp" "$foreign" >"$conf1"

	local ca=$PREFIX-$mode-a cb=$PREFIX-$mode-b cc=$PREFIX-$mode-c
	for p in a b c; do new_ns "$PREFIX-$p"; done
	serve_tcp "$PREFIX-b" 8080; serve_tcp "$PREFIX-b" 8081; serve_tcp "$PREFIX-a" 8080
	serve_tcp "$PREFIX-c" 80; serve_tcp "$PREFIX-c" 81; serve_udp "$PREFIX-c" 53; serve_udp "$PREFIX-c" 54
	wait_listen "$PREFIX-b" t 8080 8081; wait_listen "$PREFIX-c" t 80 81; wait_listen "$PREFIX-c" u 53 54

	echo "# ---- mode $mode: chain bridge -> pfti-foreign-tc -> podfence"
	t "$mode: ADD pod b (ingress+egress policy)" add_pod "$conf1" "$cb" "$PREFIX-b" "$(caps "$B4/24" "$B6/64" "$POL_B")"
	t "$mode: ADD pod a (egress+ingress policy)" add_pod "$conf1" "$ca" "$PREFIX-a" "$(caps "$A4/24" "$A6/64" "$POL_A")"
	t "$mode: ADD pod c (no annotation, defaultPolicy allow)" add_pod "$conf1" "$cc" "$PREFIX-c" "$(caps "$C4/24" "$C6/64")"
	for cid in "$ca" "$cb" "$cc"; do
		t "$mode: $cid programs attached at its hooks" attached "$mode" "$cid"
		t "$mode: $cid ADD output equals the chain's prevResult" add_output_is_prev "$cid"
	done
	if [ "$mode" = xdp ]; then
		t "$mode: native XDP took on the host veth and in the pod" xdp_native "$ca"
	fi
	t "$mode: CHECK a after ADD" check_ok "$ca"
	t "$mode: CHECK b after ADD" check_ok "$cb"
	t "$mode: CHECK c after ADD" check_ok "$cc"
	t "$mode: STATUS ready" run_in_ok "$(podfence_conf "$conf1" 1.1.0)" "$WORK/status.out" pf_cni STATUS "" "" ""

	# ingress (pod b)
	t "$mode: a->b TCP 8080 allowed, handshake and reply (IPv4)" tcp_ok "$PREFIX-a" "$B4" 8080
	t "$mode: a->b TCP 8081 denied (IPv4)" tcp_denied "$PREFIX-a" "$B4" 8081
	t "$mode: a->b TCP 8080 allowed (IPv6)" tcp_ok "$PREFIX-a" "$B6" 8080
	t "$mode: a->b TCP 8081 denied (IPv6)" tcp_denied "$PREFIX-a" "$B6" 8081
	t "$mode: c->b TCP 8081 allowed by a rule without ports" tcp_ok "$PREFIX-c" "$B4" 8081
	t "$mode: c->b ping allowed by a rule without ports" ping_ok "$PREFIX-c" "$B4"
	t "$mode: c->b ping allowed (ICMPv6)" ping_ok "$PREFIX-c" "$B6"
	t "$mode: a->b ping denied (a's rule has ports)" ping_denied "$PREFIX-a" "$B4"
	t "$mode: b->c TCP 80 denied (b egress isolated, no rules)" tcp_denied "$PREFIX-b" "$C4" 80
	# egress (pod a)
	t "$mode: a->c TCP 80 allowed by egress rule, reply passes a's isolated ingress" tcp_ok "$PREFIX-a" "$C4" 80
	t "$mode: a->c TCP 81 denied by egress" tcp_denied "$PREFIX-a" "$C4" 81
	t "$mode: a->c UDP 53 allowed, reply passes" udp_ok "$PREFIX-a" "$C4" 53
	t "$mode: a->c UDP 54 denied by egress" udp_denied "$PREFIX-a" "$C4" 54
	t "$mode: a->c TCP 80 allowed (IPv6)" tcp_ok "$PREFIX-a" "$C6" 80
	t "$mode: a->c UDP 54 denied (IPv6)" udp_denied "$PREFIX-a" "$C6" 54
	t "$mode: a->c ping denied by egress" ping_denied "$PREFIX-a" "$C4"
	t "$mode: c->a TCP 8080 denied (a ingress isolated, no rules)" tcp_denied "$PREFIX-c" "$A4" 8080
	t "$mode: node->c TCP 81 allowed (c has no policy)" tcp_ok "$PREFIX-node" "$C4" 81

	# egress-only policy with a port range (c, replaced live): only TCP
	# 8080-8081 to b leaves c; c's ingress stays open.
	jq -cn --arg b4 "$B4/32" '{policyTypes: ["Egress"],
		egress: [{to: [{ipBlock: {cidr: $b4}}], ports: [{protocol: "TCP", port: 8080, endPort: 8081}]}]}' >"$WORK/pol-c.json"
	echo '{"policyTypes": []}' >"$WORK/pol-c-open.json"
	t "$mode: podfence update gives c an egress-only policy with a port range" run_ok "$WORK/upd.out" pf update "$cc" eth0 "$WORK/pol-c.json"
	t "$mode: c->b TCP 8080 allowed (first port of the range)" tcp_ok "$PREFIX-c" "$B4" 8080
	t "$mode: c->b TCP 8081 allowed (endPort, inclusive)" tcp_ok "$PREFIX-c" "$B4" 8081
	t "$mode: c->b ping denied by c's egress-only policy" ping_denied "$PREFIX-c" "$B4"
	t "$mode: c->b TCP 8080 denied over IPv6 (only an IPv4 peer)" tcp_denied "$PREFIX-c" "$B6" 8080
	t "$mode: node->c TCP 81 allowed (egress-only: ingress not isolated)" tcp_ok "$PREFIX-node" "$C4" 81
	t "$mode: podfence update opens c again" run_ok "$WORK/upd.out" pf update "$cc" eth0 "$WORK/pol-c-open.json"
	t "$mode: c->b ping allowed again" ping_ok "$PREFIX-c" "$B4"

	t "$mode: podfence inspect lists the three pods" inspect_lists "$ca" "$cb" "$cc"
	t "$mode: podfence counters runs" run_ok "$WORK/counters.out" pf counters "$cb"

	# CHECK after tampering: the kernel's policy no longer matches the annotation
	echo "$POL_B2" >"$WORK/pol-b2.json"
	echo "$POL_B" >"$WORK/pol-b.json"
	t "$mode: podfence update replaces b's policy" run_ok "$WORK/upd.out" pf update "$cb" eth0 "$WORK/pol-b2.json"
	t "$mode: CHECK b fails 103 after the policy was replaced" check_fails_103 "$cb" 'polic|entr'
	t "$mode: podfence update restores b's policy" run_ok "$WORK/upd.out" pf update "$cb" eth0 "$WORK/pol-b.json"
	t "$mode: CHECK b passes again" check_ok "$cb"

	# policy replace cuts an established connection the new policy does not admit
	if [ "$QUICK" = 0 ]; then
		policy_replace_case "$mode" "$ca" "$cb"
	fi

	# CHECK after tampering: one entry deleted from c's policy trie with bpftool
	if delete_one_policy_entry "${POD_SLOT[$cc]:-none}" >"$WORK/tamper.out" 2>&1; then
		t "$mode: CHECK c fails 103 after an entry of its policy trie was deleted" check_fails_103 "$cc" 'entr|differ|polic'
	else
		t "$mode: CHECK c fails 103 after an entry of its policy trie was deleted" why "tampering failed: $(cat "$WORK/tamper.out")"
	fi

	# GC: a and b valid, c not
	local gc
	gc=$(podfence_conf "$conf1" 1.1.0 | jq -c --arg a "$ca" --arg b "$cb" \
		'. + {"cni.dev/valid-attachments": [{containerID: $a, ifname: "eth0"}, {containerID: $b, ifname: "eth0"}]}')
	t "$mode: GC with valid-attachments [a, b] succeeds" run_in_ok "$gc" "$WORK/gc.out" pf_cni GC "" "" ""
	t "$mode: GC removed c's state and detached its veth" nothing_attached "$cc" "${POD_VETH[$cc]}" "$PREFIX-c"
	t "$mode: after GC a and b still attached" eval "attached $mode '$ca' && attached $mode '$cb'"
	t "$mode: after GC a->b TCP 8080 still allowed" tcp_ok "$PREFIX-a" "$B4" 8080
	t "$mode: after GC a->b TCP 8081 still denied" tcp_denied "$PREFIX-a" "$B4" 8081
	t "$mode: after GC a->c TCP 81 still denied (a's egress)" tcp_denied "$PREFIX-a" "$C4" 81
	t "$mode: after GC c->b ping still allowed" ping_ok "$PREFIX-c" "$B4"

	# CHECK after tampering: a link unpinned (=> detached); legacy tc: our
	# cls_bpf filter deleted behind podfence's back
	local link pref
	link=$(find "$ATT/${POD_DIR[$ca]:-none}" -maxdepth 1 -name 'link_*' -printf '%f\n' 2>/dev/null | head -1 || true)
	if [ "$mode" = tc-legacy ]; then
		pref=$(cls_bpf_prefs "${POD_VETH[$ca]}" ingress | cut -d' ' -f1)
		in_ns "$PREFIX-node" tc filter del dev "${POD_VETH[$ca]}" ingress pref "${pref:-0}" 2>/dev/null || true
		t "$mode: CHECK a fails 103 after its cls_bpf filter was deleted" check_fails_103 "$ca" 'filter|cls_bpf|tc'
	elif [ -n "$link" ]; then
		rm -f "$ATT/${POD_DIR[$ca]}/$link"
		t "$mode: CHECK a fails 103 after $link was unpinned" check_fails_103 "$ca" 'link|detach|missing|pin'
	else
		t "$mode: CHECK a fails 103 after a link was unpinned" why "no link_* pin in ${POD_DIR[$ca]:-?}"
	fi

	# DEL
	t "$mode: DEL b through libcni" del_ok "$cb"
	t "$mode: DEL b left the foreign clsact + u32 filter on the host veth" foreign_intact "$cb"
	t "$mode: DEL b left no program on the veth (seen before the veth went)" detached_at_del "$cb" "$mode"
	t "$mode: DEL b removed pins, links and stubs" nothing_attached "$cb"
	t "$mode: second DEL b succeeds" del_ok "$cb"
	t "$mode: DEL b with empty CNI_NETNS and no prevResult succeeds" run_in_ok "$(podfence_conf "$conf1")" \
		"$WORK/del3.out" pf_cni DEL "$cb" "" eth0
	t "$mode: DEL a (one link unpinned before) succeeds" del_ok "$ca"
	t "$mode: DEL a removed everything" nothing_attached "$ca"
	t "$mode: DEL c after GC succeeds" del_ok "$cc"
	t "$mode: no attachment left after DEL of all pods" empty_or_why "$(attach_dirs)"

	bad_input_cases "$mode" "$conf1"
	[ "$QUICK" = 1 ] || concurrency_case "$mode" "$conf1"
	bandwidth_case "$mode" "$pfkeys" "$foreign"

	for p in a b c; do ip netns del "$PREFIX-$p" 2>/dev/null || true; done
}

# A long-lived TCP connection a->b:8080 is cut when b's policy stops
# admitting it; a new connection the new policy allows works.
policy_replace_case() {
	local mode=$1 ca=$2 cb=$3 fifo=$WORK/ll.in out=$WORK/ll.out cpid
	rm -f "$fifo" "$out"
	mkfifo "$fifo"
	nsenter --net="/run/netns/$PREFIX-a" timeout 30 socat -T20 - TCP:"$B4":8080,connect-timeout=2 <"$fifo" >"$out" 2>/dev/null &
	cpid=$!
	BGPIDS+=("$cpid")
	exec 7>"$fifo"
	echo one >&7
	local i
	for i in $(seq 20); do grep -q one "$out" 2>/dev/null && break; sleep 0.1; done
	t "$mode: long-lived a->b:8080 connection established and echoing" eval 'grep -q one "$out" || why "got: $(cat "$out")"' 
	t "$mode: podfence update b: only TCP 8081 from a" run_ok "$WORK/upd.out" pf update "$cb" eth0 "$WORK/pol-b2.json"
	echo two >&7
	sleep 2.5 # the echo would be back in microseconds if the flow still passed
	t "$mode: established connection cut after the replace" eval '! grep -q two "$out" || why "the echo of a later line came back"' 
	t "$mode: new a->b:8081 connection allowed by the new policy" tcp_ok "$PREFIX-a" "$B4" 8081
	t "$mode: new a->b:8080 connection denied by the new policy" tcp_denied "$PREFIX-a" "$B4" 8080
	exec 7>&-
	kill "$cpid" 2>/dev/null || true
	wait "$cpid" 2>/dev/null || true
	t "$mode: podfence update restores b's policy" run_ok "$WORK/upd.out" pf update "$cb" eth0 "$WORK/pol-b.json"
	t "$mode: a->b:8080 allowed again after restore" tcp_ok "$PREFIX-a" "$B4" 8080
}

bad_input_cases() {
	local mode=$1 conf1=$2 nc base before cid
	nc=$(podfence_conf "$conf1")
	before=$(attach_dirs)
	# a real prevResult to pair with bad config: pod a's ADD input
	base=$(jq -c '.prevResult' "$WORK/res/$PREFIX-$mode-a.pf-add-stdin" 2>/dev/null || echo null)
	cid=$PREFIX-$mode-bad

	pf_cni ADD "$cid" "/run/netns/$PREFIX-a" eth0 <<<"$nc" >"$WORK/bad1.out" 2>>"$WORK/stderr.log" || true
	t "$mode: ADD without prevResult fails 7 naming prevResult" cni_fails 7 prevResult "$WORK/bad1.out"
	pf_cni ADD "$cid" "/run/netns/$PREFIX-a" eth0 <<<'{"cniVersion": "1.0.0", "name": "x", "type": "podfence", ' >"$WORK/bad2.out" 2>>"$WORK/stderr.log" || true
	t "$mode: ADD with broken JSON fails 6" cni_fails 6 'json|pars|decod' "$WORK/bad2.out"
	jq -c --argjson p "$base" '. + {mode: "foo", prevResult: $p}' <<<"$nc" |
		pf_cni ADD "$cid" "/run/netns/$PREFIX-a" eth0 >"$WORK/bad3.out" 2>>"$WORK/stderr.log" || true
	t "$mode: ADD with unknown mode fails 7 naming mode" cni_fails 7 'mode.*foo|foo.*mode' "$WORK/bad3.out"
	t "$mode: nothing attached after bad config" same_dirs "$before"

	# malformed annotation, through the whole chain: libcni does not roll
	# back, so bridge's veth stays; podfence must have attached nothing.
	new_ns "$PREFIX-d"
	local cd=$PREFIX-$mode-d badpol='{"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.300/8"}}]}]}'
	if add_pod "$conf1" "$cd" "$PREFIX-d" "$(caps 10.99.0.13/24 fd99::d/64 "$badpol")"; then
		t "$mode: ADD with a bad CIDR in the annotation fails 104" why "ADD succeeded"
	else
		WHY=""
		t "$mode: ADD with a bad CIDR in the annotation fails 104" cni_fails 104 'cidr|10\.0\.0\.300' "$WORK/res/$cd.add"
	fi
	POD_VETH[$cd]=$(host_veth "$OUTTRACE"/*-bridge-ADD.stdout 2>/dev/null || true)
	t "$mode: nothing attached after the bad annotation (veth ${POD_VETH[$cd]:-?})" eval \
		'[ -n "${POD_VETH[$cd]}" ] || why "no veth from bridge"; nothing_attached "$cd" "${POD_VETH[$cd]}" "$PREFIX-d"; same_dirs "$before"' 
	t "$mode: DEL after the failed ADD succeeds" del_ok "$cd"
	ip netns del "$PREFIX-d"

	# A primary that makes no veth => 105, nothing attached. This kernel has
	# neither ipvlan nor dummy built in, so: macvlan (the same class of
	# interface, and podfence rejects both) on a veth master in the node netns,
	# and ipvlan as well where the kernel has it.
	in_ns "$PREFIX-node" ip link show "$PREFIX-mv0" >/dev/null 2>&1 ||
		in_ns "$PREFIX-node" ip link add "$PREFIX-mv0" type veth peer name "$PREFIX-mv1"
	in_ns "$PREFIX-node" ip link set "$PREFIX-mv0" up
	local kind
	for kind in macvlan ipvlan; do
		if [ "$kind" = ipvlan ] && ! in_ns "$PREFIX-node" ip link add "$PREFIX-ipvt" link "$PREFIX-mv0" type ipvlan 2>/dev/null; then
			echo "# (ipvlan case skipped: kernel without ipvlan)"
			continue
		fi
		in_ns "$PREFIX-node" ip link del "$PREFIX-ipvt" 2>/dev/null || true
		new_ns "$PREFIX-e"
		local confi=$WORK/chain-$kind-$mode.conflist ci=$PREFIX-$mode-$kind
		jq --arg k "$kind" --arg m "$PREFIX-mv0" --arg dd "$WORK/ipam" '.name = "pfti-\($k)" | .plugins[0] = {
			type: $k, master: $m, mode: (if $k == "ipvlan" then "l2" else "bridge" end),
			ipam: {type: "host-local", ranges: [[{subnet: "10.99.9.0/24"}]], dataDir: $dd}}
			| .plugins |= map(select(.type == $k or .type == "podfence"))' "$conf1" >"$confi"
		if add_pod "$confi" "$ci" "$PREFIX-e" '{}'; then
			t "$mode: ADD after a $kind primary fails 105" why "ADD succeeded"
		else
			WHY=""
			t "$mode: ADD after a $kind primary fails 105" cni_fails 105 "veth|$kind" "$WORK/res/$ci.add"
		fi
		t "$mode: nothing attached after the $kind ADD" eval 'nothing_attached "$ci" "" "$PREFIX-e"; same_dirs "$before"'
		t "$mode: DEL after the $kind ADD succeeds" del_ok "$ci"
		ip netns del "$PREFIX-e"
	done
}

concurrency_case() {
	local mode=$1 conf1=$2 i cid pids=() rcs="" before
	before=$(attach_dirs)
	for i in 1 2 3 4 5 6; do new_ns "$PREFIX-p$i"; done
	for i in 1 2 3 4 5 6; do
		cid=$PREFIX-$mode-p$i
		POD_NS[$cid]=$PREFIX-p$i POD_CONF[$cid]=$conf1
		POD_CAPS[$cid]=$(caps "10.99.0.2$i/24" "fd99::2$i/64" "$(jq -cn --arg c "10.99.0.1$i/32" '{ingress: [{from: [{ipBlock: {cidr: $c}}]}]}')")
		(drv add "$conf1" "$cid" "/run/netns/$PREFIX-p$i" "${POD_CAPS[$cid]}") &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || rcs+=" p$((i + 1)):$(cat "$WORK/res/$PREFIX-$mode-p$((i + 1)).add")"; done
	t "$mode: 6 parallel ADDs succeed" empty_or_why "$rcs"
	t "$mode: 6 attachments exist" eval '[ "$(comm -13 <(echo "$before") <(attach_dirs) | wc -l)" = 6 ] || why "$(attach_dirs)"' 
	# the policy of each is its own: from 10.99.0.1<i> only; pod p1 is reachable only from .11 (b, gone) => node denied
	serve_tcp "$PREFIX-p1" 7000
	wait_listen "$PREFIX-p1" t 7000
	t "$mode: parallel pod p1 enforces its own policy (node denied)" tcp_denied "$PREFIX-node" 10.99.0.21 7000
	pids=() rcs=""
	for i in 1 2 3 4 5 6; do
		cid=$PREFIX-$mode-p$i
		(drv del "$conf1" "$cid" "/run/netns/$PREFIX-p$i" "${POD_CAPS[$cid]}") &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do wait "${pids[$i]}" || rcs+=" p$((i + 1)):$(cat "$WORK/res/$PREFIX-$mode-p$((i + 1)).del")"; done
	t "$mode: 6 parallel DELs succeed" empty_or_why "$rcs"
	t "$mode: all parallel pods' state gone" same_dirs "$before"
	for i in 1 2 3 4 5 6; do ip netns del "$PREFIX-p$i"; done
}

has_tbf() {
	local q
	q=$(in_ns "$PREFIX-node" tc qdisc show dev "$1" 2>&1)
	grep -q 'qdisc tbf' <<<"$q" || why "no tbf qdisc on $1: $q"
}

# chain 2: bridge -> bandwidth -> pfti-foreign-tc -> podfence
bandwidth_case() {
	local mode=$1 pfkeys=$2 foreign=$3 bw ce cf conf2
	conf2=$WORK/chain2-$mode.conflist
	[ "$mode" = xdp ] && pfkeys=$(jq -c '. + {xdpMode: "generic"}' <<<"$pfkeys")
	make_conflist 20-podfence-bandwidth.conflist "$PREFIX-bw" "$PREFIX-br1" 10.99.1.0/24 fd99:1::/64 \
		"$WORK/ipam" "$(jq -c '. + {defaultPolicy: "deny"}' <<<"$pfkeys")" >"$conf2.tmp"
	insert_before_podfence "$conf2.tmp" "$foreign" >"$conf2"
	echo "# ---- mode $mode$([ "$mode" = xdp ] && echo " (generic)"): chain bridge -> bandwidth -> pfti-foreign-tc -> podfence (defaultPolicy deny)"
	bw='{"bandwidth": {"ingressRate": 1000000000, "ingressBurst": 10000000, "egressRate": 1000000000, "egressBurst": 10000000}}'
	# bandwidth's egress shaping takes the ingress qdisc, which excludes the
	# clsact legacy tc needs: shape pod ingress only (tbf) there
	[ "$mode" = tc-legacy ] && bw='{"bandwidth": {"ingressRate": 1000000000, "ingressBurst": 10000000}}'
	new_ns "$PREFIX-e"; new_ns "$PREFIX-f"
	ce=$PREFIX-$mode-bw-e cf=$PREFIX-$mode-bw-f
	serve_tcp "$PREFIX-e" 8080; serve_tcp "$PREFIX-e" 8081
	wait_listen "$PREFIX-e" t 8080 8081
	local pol_e
	pol_e=$(jq -cn '{ingress: [{from: [{ipBlock: {cidr: "10.99.1.0/24", except: ["10.99.1.0/28"]}}], ports: [{port: 8080}]}],
		egress: [{to: [{ipBlock: {cidr: "10.99.1.0/24"}}]}]}')
	t "$mode/bw: ADD pod e (policy)" add_pod "$conf2" "$ce" "$PREFIX-e" "$(caps 10.99.1.30/24 fd99:1::30/64 "$pol_e" "$bw")"
	t "$mode/bw: ADD pod f (no annotation => defaultPolicy deny)" add_pod "$conf2" "$cf" "$PREFIX-f" "$(caps 10.99.1.40/24 fd99:1::40/64 '' "$bw")"
	t "$mode/bw: e ADD output equals the chain's prevResult" add_output_is_prev "$ce"
	t "$mode/bw: bandwidth's tbf qdisc on e's host veth" has_tbf "${POD_VETH[$ce]:-none}"
	t "$mode/bw: CHECK e" check_ok "$ce"
	# f is default-deny both ways; e admits 8080 from 10.99.1.0/24 minus .0/28
	t "$mode/bw: f->e denied (f's default deny egress)" tcp_denied "$PREFIX-f" 10.99.1.30 8080
	t "$mode/bw: node(10.99.1.1, in except)->e:8080 denied" tcp_denied "$PREFIX-node" 10.99.1.30 8080
	in_ns "$PREFIX-node" ip addr add 10.99.1.100/24 dev "$PREFIX-br1"
	t "$mode/bw: node(10.99.1.100)->e:8080 allowed" tcp_ok "$PREFIX-node" 10.99.1.30 8080 10.99.1.100
	t "$mode/bw: node(10.99.1.100)->e:8081 denied" tcp_denied "$PREFIX-node" 10.99.1.30 8081 10.99.1.100
	in_ns "$PREFIX-node" ip addr del 10.99.1.100/24 dev "$PREFIX-br1"
	t "$mode/bw: DEL e" del_ok "$ce"
	t "$mode/bw: DEL e left bandwidth's qdiscs/filters and the foreign filter" foreign_intact "$ce"
	t "$mode/bw: DEL e left no program on the veth" detached_at_del "$ce" "$mode"
	t "$mode/bw: DEL e removed everything" nothing_attached "$ce"
	t "$mode/bw: DEL f" del_ok "$cf"
	t "$mode/bw: DEL f left bandwidth's qdiscs/filters" foreign_intact "$cf"
	ip netns del "$PREFIX-e"; ip netns del "$PREFIX-f"
}

START=$SECONDS
for m in $MODES; do run_mode "$m"; done
echo "# $((SECONDS - START)) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
