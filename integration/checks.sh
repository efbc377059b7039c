# The assertion vocabulary of integration/run.sh and its scenario groups
# (integration/cases/*.sh): TAP-like reporting, CNI invocation through the
# real libcni (driver) or the plugin alone, probes of podfence's state in
# bpffs and the kernel, traffic probes. Sourced by run.sh after its setup
# (PREFIX, WORK, BPFFS, ATT, PLUGIN, DRIVER, CNIBIN, REPORT are set).
# shellcheck shell=bash

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
# tq NAME PREDICATE ARGS...: t, with the predicate started in the background;
# tq_run waits for the queue and reports it in order. Only for probes that
# change nothing (traffic, reading state), so that the seconds a denied
# probe waits for nothing overlap. Call tq_run before anything the queued
# probes' outcome depends on changes (a policy update, a GC, a DEL).
TQ_NAMES=() TQ_PIDS=() TQ_MAX=8 # at most this many at once, for a 2-core machine
tq() {
	local f=$WORK/tq/${#TQ_NAMES[@]} n=${#TQ_PIDS[@]}
	TQ_NAMES+=("$1")
	shift
	mkdir -p "$WORK/tq"
	((n < TQ_MAX)) || wait "${TQ_PIDS[n - TQ_MAX]}" || true
	(
		WHY=""
		if "$@" >/dev/null 2>&1 && [ -z "$WHY" ]; then : >"$f.ok"; else printf '%s' "${WHY:-failed}" >"$f.why"; fi
	) &
	TQ_PIDS+=("$!")
}
tq_result() { [ -e "$1.ok" ] || why "$(cat "$1.why" 2>/dev/null || echo "no result")"; }
tq_run() {
	local i
	((${#TQ_PIDS[@]} == 0)) || wait "${TQ_PIDS[@]}" || true
	for i in "${!TQ_NAMES[@]}"; do t "${TQ_NAMES[$i]}" tq_result "$WORK/tq/$i"; done
	TQ_NAMES=() TQ_PIDS=()
	rm -rf "$WORK/tq"
}
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
# slot_clear SLOT: pf_pods[slot] inactive and no policy left in pf_policy[slot]
# (an empty map there is the slot's spare, kept by DEL for its next pod).
slot_clear() {
	local flags id
	# shellcheck disable=SC2046 # le32 prints the four key bytes as words
	flags=$(bpftool -j map lookup pinned "$(dp_map pf_pods)" key $(le32 "$1") | jq -r '.formatted.value.flags')
	[ "$flags" = 0 ] || why "pf_pods[$1].flags = $flags"
	# shellcheck disable=SC2046
	if bpftool -j map lookup pinned "$(dp_map pf_policy)" key $(le32 "$1") >/dev/null 2>&1; then
		id=$(policy_trie_id "$1")
		[ "$(bpftool -j map dump id "$id" | jq length)" = 0 ] || why "pf_policy[$1] still holds policy entries"
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
# A line every 10 ms to each client, unasked (longconn.py pull).
serve_push() { # NS PORT
	nsenter --net="/run/netns/$1" socat TCP6-LISTEN:"$2",reuseaddr,fork,ipv6only=0 \
		SYSTEM:'while echo tick; do sleep 0.01; done' 2>/dev/null &
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
# udp_log_server NS PORT LOG: a dual-stack UDP server (python3) on PORT that
# appends "<source> <size> <payload, first 32 bytes>" to LOG per datagram,
# except "q", which it answers with a 1,000- and a 3,000-byte datagram (the
# latter fragmented at MTU 1500). Its pid: BGPIDS and LOG_SERVER_PID.
udp_log_server() {
	touch "$3"
	nsenter --net="/run/netns/$1" python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
out = open(sys.argv[2], "a", buffering=1)
while True:
    data, peer = s.recvfrom(65535)
    if data == b"q":
        s.sendto(b"a" * 1000, peer)
        s.sendto(b"b" * 3000, peer)
    else:
        src = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
        out.write("%s %d %s\n" % (src, len(data), data[:32].decode(errors="replace")))
' "$2" "$3" &
	LOG_SERVER_PID=$!
	BGPIDS+=("$LOG_SERVER_PID")
	wait_listen "$1" u "$2"
}
# raw_send NS KIND ARGS...: a packet written by hand, sent from NS through a
# raw socket as given (integration/tools/rawpkt.py: KIND udp SRC DST PORT TAG
# or port-unreachable CADDR PEER).
raw_send() {
	local ns=$1
	shift
	in_ns "$ns" timeout 20 python3 "$INTEG_DIR/tools/rawpkt.py" "$@"
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
