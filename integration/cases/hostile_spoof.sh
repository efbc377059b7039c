# A pod that forges its source address (issue 8): pod S sends, through its
# own eth0 with a raw socket, UDP datagrams whose IPv4/IPv6 source is not
# its address to pod R. With the source check (the default) they never reach
# R and count as spoofed; with sourceCheck: false they do. S's real traffic,
# even from the same raw socket, passes either way.
# Sourced by integration/run.sh; only netns $PREFIX-sp* (pfti-sp*),
# addresses 10.99.0.60-69 / fd99::60-69 on $PREFIX-br0.
# shellcheck shell=bash

SP_S4=10.99.0.60 SP_S6=fd99::60 SP_R4=10.99.0.61 SP_R6=fd99::61
SP_FORGED4=10.99.0.62 SP_FORGED6=fd99::62 # in the subnet: R's rp_filter cannot be what drops them
SP_OFF_S4=10.99.0.63 SP_OFF_S6=fd99::63 SP_OFF_R4=10.99.0.64 SP_OFF_R6=fd99::64
SP_PORT=7070

# sp_send NS SRC DST TAG: one UDP datagram SRC -> DST:SP_PORT carrying TAG,
# IP header written by hand (raw_send udp): the kernel takes the source as
# given, as a pod with CAP_NET_RAW can.
sp_send() { raw_send "$1" udp "$2" "$3" "$SP_PORT" "$4"; }

# sp_listen NS LOG: udp_log_server on SP_PORT.
sp_listen() { udp_log_server "$1" "$SP_PORT" "$2"; }

# sp_got LOG SRC TAG: the listener received TAG from SRC (waits up to 3 s).
sp_got() {
	local _
	for _ in $(seq 30); do
		grep -Eqx -- "$2 [0-9]+ $3" "$1" && return 0
		sleep 0.1
	done
	why "R did not receive $3 from $2; it got: $(tr '\n' ';' <"$1")"
}
# sp_not_got LOG TAG: nothing carrying TAG arrived (after 1 s: the forged
# datagram was sent before, so it had all that time to arrive).
sp_not_got() {
	sleep 1
	! grep -q -- " $2\$" "$1" || why "R received it: $(grep -- " $2\$" "$1" | tr '\n' ';')"
}

sp_spoofed() { # CID: egress spoofed packets of the pod in `podfence counters --json`
	pf counters "$1" --json | jq -r '.[0].directions.egress.spoofedPackets'
}
sp_spoofed_is() { # CID N
	local n
	n=$(sp_spoofed "$1") || why "podfence counters failed"
	[ "$n" = "$2" ] || why "spoofedPackets = $n, want $2"
}
sp_counters_text() { # CID: the text view names the spoofed count
	local out
	out=$(pf counters "$1") || why "podfence counters failed: $out"
	grep -Eq 'egress .* spoofed [1-9][0-9]* pkts' <<<"$out" || why "no spoofed count in: $out"
}
sp_inspect() { # CID CHECK(true|false) ADDRS(json array)
	local got
	got=$(pf inspect --json | jq -c --arg c "$1" '.[] | select(.containerID == $c) | [.sourceCheck, .sources]')
	[ "$got" = "[$2,$3]" ] || why "inspect --json: $got, want [$2,$3]"
	pf inspect | grep -q -- "${1:0:12}" || why "inspect table misses $1"
}
sp_slot_sources() { # SLOT COUNT: pf_sources holds COUNT entries of SLOT
	local n
	n=$(bpftool -j map dump pinned "$(dp_map pf_sources)" |
		jq --argjson s "$1" '[.[] | select((.formatted.key.slot // -1) == $s)] | length')
	[ "$n" = "$2" ] || why "pf_sources holds $n entries of slot $1, want $2"
}
# sp_key4 SLOT ADDR4: the pf_sources key of an IPv4 address, as bpftool
# hex words: slot (u32, little endian), family 4, padding, address, zeros.
sp_key4() {
	local a b c d
	IFS=. read -r a b c d <<<"$2"
	printf 'hex %02x %02x %02x %02x 04 00 00 00 %02x %02x %02x %02x' \
		$(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255)) "$a" "$b" "$c" "$d"
	printf ' 00%.0s' $(seq 12)
}
# sp_too_many CONFLIST: the plugin alone, with a prevResult giving eth0
# nine addresses: error 102 naming the limit (before anything is touched).
sp_too_many() {
	local nine prev
	nine=$(jq -cn '[range(10; 19) | {address: "10.99.0.\(. + 50)/24", interface: 1}]')
	prev=$(jq -cn --argjson ips "$nine" --arg ns "/run/netns/$PREFIX-sp-s" '{cniVersion: "1.0.0", ips: $ips,
		interfaces: [{name: "vethpfsp0"}, {name: "eth0", sandbox: $ns}]}')
	if podfence_conf "$1" | jq -c --argjson p "$prev" '. + {prevResult: $p}' |
		pf_cni ADD "$PREFIX-sp-nine" "/run/netns/$PREFIX-sp-s" eth0 >"$WORK/spoof-nine.out" 2>/dev/null; then
		why "ADD succeeded"
		return 1
	fi
	cni_fails 102 "limit of 8" "$WORK/spoof-nine.out"
}
# sp_check_conf_fails CID CONFLIST REGEX: CHECK of CID with another conflist fails 103.
sp_check_conf_fails() {
	local saved=${POD_CONF[$1]}
	POD_CONF[$1]=$2
	check_fails_103 "$1" "$3" || true
	POD_CONF[$1]=$saved
	[ -z "$WHY" ]
}
sp_events() { # OUT: `podfence events --count 1` in the background
	timeout 10 env -u CNI_COMMAND "$PLUGIN" events --count 1 --bpffs-root "$BPFFS" >"$1" 2>/dev/null &
	SP_EVPID=$!
	BGPIDS+=("$SP_EVPID")
	sleep 0.5 # it switches events on before it listens
}
sp_event_spoofed() { # OUT SRC
	wait "$SP_EVPID" 2>/dev/null || true
	grep -q "^spoofed-source egress .* $2:40000 -> " "$1" || why "events printed: $(cat "$1")"
}

hostile_spoof_case() {
	local mode=$1 conf=$2 cs=$PREFIX-sp-$1-s cr=$PREFIX-sp-$1-r confoff=$WORK/spoof-off-$1.conflist
	local log=$WORK/spoof-$1.log ev=$WORK/spoof-ev-$1.out sps=$PREFIX-sp-s spr=$PREFIX-sp-r
	echo "# ---- mode $mode: hostile pod forging its source (integration/cases/hostile_spoof.sh)"
	new_ns "$sps"
	new_ns "$spr"
	sp_listen "$spr" "$log"

	t "$mode: spoof: ADD pod S" add_pod "$conf" "$cs" "$sps" "$(caps "$SP_S4/24" "$SP_S6/64")"
	t "$mode: spoof: ADD pod R" add_pod "$conf" "$cr" "$spr" "$(caps "$SP_R4/24" "$SP_R6/64")"
	t "$mode: spoof: inspect shows S's check and addresses" sp_inspect "$cs" true "[\"$SP_S4\",\"$SP_S6\"]"
	t "$mode: spoof: CHECK S passes" check_ok "$cs"
	printf plain4 | in_ns "$sps" socat -u - UDP:"$SP_R4":"$SP_PORT"
	t "$mode: spoof: S->R UDP from a plain socket passes (IPv4)" sp_got "$log" "$SP_S4" plain4
	printf plain6 | in_ns "$sps" socat -u - UDP:"[$SP_R6]":"$SP_PORT"
	t "$mode: spoof: S->R UDP from a plain socket passes (IPv6)" sp_got "$log" "$SP_S6" plain6
	sp_send "$sps" "$SP_S4" "$SP_R4" real4
	t "$mode: spoof: S->R raw UDP from S's own IPv4 address passes" sp_got "$log" "$SP_S4" real4
	sp_send "$sps" "$SP_S6" "$SP_R6" real6
	t "$mode: spoof: S->R raw UDP from S's own IPv6 address passes" sp_got "$log" "$SP_S6" real6
	t "$mode: spoof: no spoofed packets counted yet" sp_spoofed_is "$cs" 0
	sp_events "$ev"
	sp_send "$sps" "$SP_FORGED4" "$SP_R4" forged4
	t "$mode: spoof: forged IPv4 source never reaches R" sp_not_got "$log" forged4
	t "$mode: spoof: podfence events shows it as spoofed-source" sp_event_spoofed "$ev" "$SP_FORGED4"
	sp_send "$sps" "$SP_FORGED6" "$SP_R6" forged6
	t "$mode: spoof: forged IPv6 source never reaches R" sp_not_got "$log" forged6
	t "$mode: spoof: counters --json: S's egress spoofedPackets = 2" sp_spoofed_is "$cs" 2
	t "$mode: spoof: counters (text) shows the spoofed count" sp_counters_text "$cs"
	t "$mode: spoof: R's counters show no spoofed packets" sp_spoofed_is "$cr" 0
	sp_send "$sps" "$SP_S4" "$SP_R4" real4b
	t "$mode: spoof: S's real traffic still passes afterwards" sp_got "$log" "$SP_S4" real4b
	t "$mode: spoof: S->R ping (IPv6, ND from link-local) passes" ping_ok "$sps" "$SP_R6"

	# CHECK: an address taken out of pf_sources behind podfence's back
	local slot=${POD_SLOT[$cs]:-none}
	# shellcheck disable=SC2046 # sp_key4 prints the key bytes as words
	if bpftool map delete pinned "$(dp_map pf_sources)" key $(sp_key4 "$slot" "$SP_S4") 2>"$WORK/spoof-tamper.err"; then
		t "$mode: spoof: CHECK S fails 103 naming pf_sources after an address was deleted" check_fails_103 "$cs" 'pf_sources'
	else
		t "$mode: spoof: CHECK S fails 103 naming pf_sources after an address was deleted" why "bpftool: $(cat "$WORK/spoof-tamper.err")"
	fi

	t "$mode: spoof: pf_sources holds S's other address (IPv6)" sp_slot_sources "$slot" 1
	t "$mode: spoof: DEL S" del_ok "$cs"
	t "$mode: spoof: DEL S removed everything" nothing_attached "$cs"
	t "$mode: spoof: DEL S cleared its pf_sources entries" sp_slot_sources "$slot" 0
	t "$mode: spoof: DEL R" del_ok "$cr"
	t "$mode: spoof: DEL R removed everything" nothing_attached "$cr"

	# More than PF_POD_MAX_SOURCES (8) addresses on the pod's interface: 102, nothing attached.
	t "$mode: spoof: ADD with 9 addresses on eth0 fails 102 naming the limit" sp_too_many "$conf"
	t "$mode: spoof: ... and nothing was attached" same_dirs ""

	# sourceCheck: false (a pod that routes other addresses): forged sources pass.
	jq '(.plugins[] | select(.type == "podfence")) += {sourceCheck: false}' "$conf" >"$confoff"
	local cso=$PREFIX-sp-$1-off-s cro=$PREFIX-sp-$1-off-r
	t "$mode: spoof: ADD pod S with sourceCheck: false" add_pod "$confoff" "$cso" "$sps" "$(caps "$SP_OFF_S4/24" "$SP_OFF_S6/64")"
	t "$mode: spoof: ADD pod R with sourceCheck: false" add_pod "$confoff" "$cro" "$spr" "$(caps "$SP_OFF_R4/24" "$SP_OFF_R6/64")"
	t "$mode: spoof: inspect shows the check off" sp_inspect "$cso" false "[]"
	t "$mode: spoof: CHECK S (check off) passes" check_ok "$cso"
	sp_send "$sps" "$SP_FORGED4" "$SP_OFF_R4" offforged4
	t "$mode: spoof: check off: the forged IPv4 source reaches R" sp_got "$log" "$SP_FORGED4" offforged4
	sp_send "$sps" "$SP_FORGED6" "$SP_OFF_R6" offforged6
	t "$mode: spoof: check off: the forged IPv6 source reaches R" sp_got "$log" "$SP_FORGED6" offforged6
	t "$mode: spoof: check off: nothing counted as spoofed" sp_spoofed_is "$cso" 0
	t "$mode: spoof: CHECK with sourceCheck: true fails 103 for the pod attached without it" \
		sp_check_conf_fails "$cso" "$conf" 'source check is off'
	t "$mode: spoof: DEL S (check off)" del_ok "$cso"
	t "$mode: spoof: DEL R (check off)" del_ok "$cro"
	t "$mode: spoof: no attachment left" empty_or_why "$(attach_dirs)"

	ip netns del "$sps" 2>/dev/null || true
	ip netns del "$spr" 2>/dev/null || true
}
MODE_CASES+=(hostile_spoof_case)
