# Audit mode: pod s isolates ingress (TCP 8080 only) with
# podfence.io/enforcement: audit. What enforce would drop (TCP 8081, ping)
# passes, counted as would-deny and reported once per flow; `podfence update
# --enforcement enforce` cuts an open audited connection and then drops
# like enforce; `--enforcement audit` turns it back. A bad annotation fails
# ADD with 104 naming it, a bad netconf value with 7.
# Sourced by integration/run.sh. Namespaces pfti-au*, addresses 10.99.0.30-39 / fd99::30-39.
# shellcheck shell=bash disable=SC2016 # eval's strings expand when t runs them

AU_S4=10.99.0.30 AU_S6=fd99::30 AU_C4=10.99.0.31 AU_C6=fd99::31

# au_caps IP4 IP6 POLICY ENFORCEMENT: CAP_ARGS with both annotations.
au_caps() {
	jq -cn --arg ip4 "$1" --arg ip6 "$2" --arg pol "$3" --arg enf "$4" '{ips: [$ip4, $ip6],
		"io.kubernetes.cri.pod-annotations": {"podfence.io/policy": $pol, "podfence.io/enforcement": $enf}}'
}
au_counter() { # CID DIR FIELD: from `podfence counters --json`
	pf counters "$1" --json | jq -r --arg d "$2" --arg f "$3" '.[0].directions[$d][$f]'
}
au_counter_min() { # CID DIR FIELD MIN
	local n
	n=$(au_counter "$1" "$2" "$3") || why "podfence counters failed"
	[ "$n" -ge "$4" ] 2>/dev/null || why "$2 $3 = $n, want >= $4"
}
au_counter_is() { # CID DIR FIELD N
	local n
	n=$(au_counter "$1" "$2" "$3") || why "podfence counters failed"
	[ "$n" = "$4" ] || why "$2 $3 = $n, want $4"
}
au_enforcement() { # CID WANT: the record says WANT
	local got
	got=$(pf inspect --json | jq -r --arg c "$1" '.[] | select(.containerID == $c) | .enforcement')
	[ "$got" = "$2" ] || why "inspect --json enforcement: $got, want $2"
}
au_events_start() { # OUT: `podfence events --json` in the background
	timeout 20 env -u CNI_COMMAND "$PLUGIN" events --json --bpffs-root "$BPFFS" >"$1" 2>/dev/null &
	AU_EVPID=$!
	BGPIDS+=("$AU_EVPID")
	sleep 0.5 # it switches events on before it listens
}
au_events_stop() {
	sleep 0.5
	kill "$AU_EVPID" 2>/dev/null || true
	wait "$AU_EVPID" 2>/dev/null || true
}
au_events_count() { # OUT VERDICT DIRECTION DPORT N: exactly N such events
	local n
	n=$(jq -s --arg v "$2" --arg d "$3" --argjson p "$4" \
		'[.[] | select(.verdict == $v and .direction == $d and .dstPort == $p)] | length' "$1" 2>/dev/null)
	[ "$n" = "$5" ] || why "$n $2 $3 events to port $4, want $5: $(cat "$1")"
}
au_add_fails() { # CONF CAPS CODE REGEX: podfence's ADD alone fails with CODE, nothing attached
	local out=$WORK/au-bad.out prev rc
	prev=$(jq -c . "$WORK/res/$AU_CS.add")
	rc=$(jq -c '{"io.kubernetes.cri.pod-annotations": ."io.kubernetes.cri.pod-annotations"}' <<<"$2")
	if podfence_conf "$1" | jq -c --argjson p "$prev" --argjson rc "$rc" '. + {prevResult: $p, runtimeConfig: $rc}' |
		pf_cni ADD "$PREFIX-au-bad" "/run/netns/$PREFIX-au-s" eth1 >"$out" 2>/dev/null; then
		why "ADD succeeded"
		return 1
	fi
	cni_fails "$3" "$4" "$out"
}

audit_case() {
	local mode=$1 conf=$2 cs=$PREFIX-au-$1-s cc=$PREFIX-au-$1-c ev=$WORK/au-ev-$1.out
	local fifo=$WORK/au-ll.in out=$WORK/au-ll.out cpid pol badconf=$WORK/au-badconf-$1.conflist
	echo "# ---- mode $mode: audit mode (integration/cases/90-audit.sh)"
	new_ns "$PREFIX-au-s"
	new_ns "$PREFIX-au-c"
	serve_tcp "$PREFIX-au-s" 8080
	serve_tcp "$PREFIX-au-s" 8081
	wait_listen "$PREFIX-au-s" t 8080 8081
	pol='{"policyTypes":["Ingress"],"ingress":[{"ports":[{"protocol":"TCP","port":8080}]}]}'
	AU_CS=$cs

	t "$mode: audit: ADD s (ingress TCP 8080 only, podfence.io/enforcement: audit)" \
		add_pod "$conf" "$cs" "$PREFIX-au-s" "$(au_caps "$AU_S4/24" "$AU_S6/64" "$pol" audit)"
	t "$mode: audit: ADD c (no policy)" add_pod "$conf" "$cc" "$PREFIX-au-c" "$(caps "$AU_C4/24" "$AU_C6/64")"
	t "$mode: audit: inspect --json shows s in audit" au_enforcement "$cs" audit
	t "$mode: audit: CHECK s passes" check_ok "$cs"

	au_events_start "$ev"
	t "$mode: audit: c->s TCP 8080 allowed (IPv4)" tcp_ok "$PREFIX-au-c" "$AU_S4" 8080
	t "$mode: audit: c->s TCP 8081 passes though the policy denies it (IPv4)" tcp_ok "$PREFIX-au-c" "$AU_S4" 8081
	t "$mode: audit: c->s TCP 8081 passes (IPv6)" tcp_ok "$PREFIX-au-c" "$AU_S6" 8081
	t "$mode: audit: c->s ping passes (the rule has ports)" ping_ok "$PREFIX-au-c" "$AU_S4"
	au_events_stop
	t "$mode: audit: one audit event per would-deny TCP flow (2 flows, many packets)" au_events_count "$ev" audit ingress 8081 2
	t "$mode: audit: no audit event for the allowed flow" au_events_count "$ev" audit ingress 8080 0
	t "$mode: audit: no drop event" au_events_count "$ev" denied ingress 8081 0
	# Each 8081 connection: SYN, ACK, data, FIN... at least 3 packets in, 3 out (the replies).
	t "$mode: audit: would-deny ingress packets counted (>= 7: two TCP flows + ping)" au_counter_min "$cs" ingress wouldDenyPackets 7
	t "$mode: audit: would-deny egress packets counted (the replies)" au_counter_min "$cs" egress wouldDenyPackets 7
	t "$mode: audit: nothing denied" au_counter_is "$cs" ingress deniedPackets 0

	# A long-lived audited connection, then the switch to enforce.
	rm -f "$fifo" "$out"
	mkfifo "$fifo"
	nsenter --net="/run/netns/$PREFIX-au-c" timeout 30 socat -T20 - TCP:"$AU_S4":8081,connect-timeout=2 <"$fifo" >"$out" 2>/dev/null &
	cpid=$!
	BGPIDS+=("$cpid")
	exec 7>"$fifo"
	echo one >&7
	for _ in $(seq 20); do grep -q one "$out" 2>/dev/null && break; sleep 0.1; done
	t "$mode: audit: long-lived c->s:8081 connection echoing" eval 'grep -q one "$out" || why "got: $(cat "$out")"'
	t "$mode: audit: podfence update s --enforcement enforce" run_ok "$WORK/au-upd.out" pf update "$cs" eth0 --enforcement enforce
	t "$mode: audit: the record says enforce" au_enforcement "$cs" enforce
	t "$mode: audit: CHECK s passes after the switch" check_ok "$cs"
	echo two >&7
	sleep 2.5 # the echo would be back in microseconds if the flow still passed
	t "$mode: audit: the audited connection is cut by enforce" eval '! grep -q two "$out" || why "the echo of a later line came back"'
	exec 7>&-
	kill "$cpid" 2>/dev/null || true
	wait "$cpid" 2>/dev/null || true
	t "$mode: audit: enforce drops c->s TCP 8081 (same policy)" tcp_denied "$PREFIX-au-c" "$AU_S4" 8081
	t "$mode: audit: enforce drops the ping" ping_denied "$PREFIX-au-c" "$AU_S4"
	t "$mode: audit: enforce still allows TCP 8080" tcp_ok "$PREFIX-au-c" "$AU_S4" 8080
	t "$mode: audit: drops counted as denied" au_counter_min "$cs" ingress deniedPackets 2

	# Back to audit, together with a policy (one step); a bad flag value is refused.
	echo "$pol" >"$WORK/au-pol.json"
	t "$mode: audit: update --enforcement bogus fails, nothing changes" eval \
		'! pf update "$cs" eth0 --enforcement bogus >/dev/null 2>&1 || why "accepted"'
	t "$mode: audit: ... still enforce" au_enforcement "$cs" enforce
	t "$mode: audit: update s with a policy and --enforcement audit" run_ok "$WORK/au-upd.out" pf update "$cs" eth0 "$WORK/au-pol.json" --enforcement audit
	t "$mode: audit: c->s TCP 8081 passes again" tcp_ok "$PREFIX-au-c" "$AU_S4" 8081

	# CHECK: the slot's flag behind podfence's back (the record says audit).
	local slot=${POD_SLOT[$cs]:-0} rev
	rev=$(pf inspect --json | jq -r --arg c "$cs" '.[] | select(.containerID == $c) | .rev')
	# pf_pods[slot] = {rev, PF_POD_ACTIVE | PF_POD_SRC_CHECK}: PF_POD_AUDIT gone.
	if [ -n "$rev" ] && bpftool map update pinned "$(dp_map pf_pods)" key $((slot & 255)) $(((slot >> 8) & 255)) 0 0 \
		value $((rev & 255)) $(((rev >> 8) & 255)) $(((rev >> 16) & 255)) $(((rev >> 24) & 255)) 3 0 0 0 2>"$WORK/au-tamper.err"; then
		t "$mode: audit: CHECK s fails 103 when the slot enforces and the record says audit" check_fails_103 "$cs" 'enforce mode, the pod.s record says enforcement audit'
	else
		t "$mode: audit: CHECK s fails 103 when the slot enforces and the record says audit" why "bpftool: rev '$rev' $(cat "$WORK/au-tamper.err" 2>/dev/null)"
	fi

	# Bad values: annotation -> 104 naming it; netconf -> 7 naming the key.
	t "$mode: audit: ADD with podfence.io/enforcement: Audit fails 104 naming it" \
		au_add_fails "$conf" "$(au_caps "$AU_S4/24" "$AU_S6/64" "$pol" Audit)" 104 'podfence.io/enforcement'
	jq '(.plugins[] | select(.type == "podfence")) += {enforcement: "dryrun"}' "$conf" >"$badconf"
	t "$mode: audit: ADD with netconf enforcement: dryrun fails 7 naming it" \
		au_add_fails "$badconf" "$(au_caps "$AU_S4/24" "$AU_S6/64" "$pol" audit)" 7 'enforcement'

	t "$mode: audit: DEL s" del_ok "$cs"
	t "$mode: audit: DEL s removed everything" nothing_attached "$cs"
	t "$mode: audit: DEL c" del_ok "$cc"
	# The server side of the connection enforce cut never saw its end:
	# stop what runs in this case's netns before removing it.
	local pid
	for pid in $(ip netns pids "$PREFIX-au-s" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
	ip netns del "$PREFIX-au-s" 2>/dev/null || true
	ip netns del "$PREFIX-au-c" 2>/dev/null || true
}
MODE_CASES+=(audit_case)
