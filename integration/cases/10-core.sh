# The core scenario group: pods a, b, c on chain 1 (bridge -> pfti-foreign-tc
# -> podfence): ingress and egress policy, IPv4/IPv6, TCP/UDP/ICMP, live
# replacement, CHECK after tampering, GC, DEL. Runs first: bad_input_case
# reuses pod a's ADD input.
# shellcheck shell=bash

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

core_case() {
	local mode=$1 conf1=$2
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
	tq "$mode: a->b TCP 8081 denied (IPv4)" tcp_denied "$PREFIX-a" "$B4" 8081
	t "$mode: a->b TCP 8080 allowed (IPv6)" tcp_ok "$PREFIX-a" "$B6" 8080
	tq "$mode: a->b TCP 8081 denied (IPv6)" tcp_denied "$PREFIX-a" "$B6" 8081
	t "$mode: c->b TCP 8081 allowed by a rule without ports" tcp_ok "$PREFIX-c" "$B4" 8081
	t "$mode: c->b ping allowed by a rule without ports" ping_ok "$PREFIX-c" "$B4"
	t "$mode: c->b ping allowed (ICMPv6)" ping_ok "$PREFIX-c" "$B6"
	tq "$mode: a->b ping denied (a's rule has ports)" ping_denied "$PREFIX-a" "$B4"
	tq "$mode: b->c TCP 80 denied (b egress isolated, no rules)" tcp_denied "$PREFIX-b" "$C4" 80
	# egress (pod a)
	t "$mode: a->c TCP 80 allowed by egress rule, reply passes a's isolated ingress" tcp_ok "$PREFIX-a" "$C4" 80
	tq "$mode: a->c TCP 81 denied by egress" tcp_denied "$PREFIX-a" "$C4" 81
	t "$mode: a->c UDP 53 allowed, reply passes" udp_ok "$PREFIX-a" "$C4" 53
	tq "$mode: a->c UDP 54 denied by egress" udp_denied "$PREFIX-a" "$C4" 54
	t "$mode: a->c TCP 80 allowed (IPv6)" tcp_ok "$PREFIX-a" "$C6" 80
	tq "$mode: a->c UDP 54 denied (IPv6)" udp_denied "$PREFIX-a" "$C6" 54
	tq "$mode: a->c ping denied by egress" ping_denied "$PREFIX-a" "$C4"
	tq "$mode: c->a TCP 8080 denied (a ingress isolated, no rules)" tcp_denied "$PREFIX-c" "$A4" 8080
	t "$mode: node->c TCP 81 allowed (c has no policy)" tcp_ok "$PREFIX-node" "$C4" 81
	tq_run # the denied probes above, before c's policy changes

	# egress-only policy with a port range (c, replaced live): only TCP
	# 8080-8081 to b leaves c; c's ingress stays open.
	jq -cn --arg b4 "$B4/32" '{policyTypes: ["Egress"],
		egress: [{to: [{ipBlock: {cidr: $b4}}], ports: [{protocol: "TCP", port: 8080, endPort: 8081}]}]}' >"$WORK/pol-c.json"
	echo '{"policyTypes": []}' >"$WORK/pol-c-open.json"
	t "$mode: podfence update gives c an egress-only policy with a port range" run_ok "$WORK/upd.out" pf update "$cc" eth0 "$WORK/pol-c.json"
	t "$mode: c->b TCP 8080 allowed (first port of the range)" tcp_ok "$PREFIX-c" "$B4" 8080
	t "$mode: c->b TCP 8081 allowed (endPort, inclusive)" tcp_ok "$PREFIX-c" "$B4" 8081
	tq "$mode: c->b ping denied by c's egress-only policy" ping_denied "$PREFIX-c" "$B4"
	tq "$mode: c->b TCP 8080 denied over IPv6 (only an IPv4 peer)" tcp_denied "$PREFIX-c" "$B6" 8080
	t "$mode: node->c TCP 81 allowed (egress-only: ingress not isolated)" tcp_ok "$PREFIX-node" "$C4" 81
	tq_run
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

	# CHECK after tampering. tcx/XDP: a stub's pin deleted: the device still
	# holds the stub, so a stays filtered (fail closed), and CHECK says what
	# is missing. Legacy tc: our cls_bpf filter deleted behind podfence's back.
	local pref
	if [ "$mode" = tc-legacy ]; then
		pref=$(cls_bpf_prefs "${POD_VETH[$ca]}" ingress | cut -d' ' -f1)
		in_ns "$PREFIX-node" tc filter del dev "${POD_VETH[$ca]}" ingress pref "${pref:-0}" 2>/dev/null || true
		t "$mode: CHECK a fails 103 after its cls_bpf filter was deleted" check_fails_103 "$ca" 'filter|cls_bpf|tc'
	elif [ -e "$ATT/${POD_DIR[$ca]:-none}/stub_egress" ]; then
		rm -f "$ATT/${POD_DIR[$ca]}/stub_egress"
		t "$mode: a->c TCP 81 still denied after stub_egress was unpinned" tcp_denied "$PREFIX-a" "$C4" 81
		t "$mode: CHECK a fails 103 after stub_egress was unpinned" check_fails_103 "$ca" 'stub_egress.*missing'
	else
		t "$mode: CHECK a fails 103 after stub_egress was unpinned" why "no stub_egress pin in ${POD_DIR[$ca]:-?}"
	fi

	# DEL
	t "$mode: DEL b through libcni" del_ok "$cb"
	t "$mode: DEL b left the foreign clsact + u32 filter on the host veth" foreign_intact "$cb"
	t "$mode: DEL b left no program on the veth (seen before the veth went)" detached_at_del "$cb" "$mode"
	t "$mode: DEL b removed pins, links and stubs" nothing_attached "$cb"
	t "$mode: second DEL b succeeds" del_ok "$cb"
	t "$mode: DEL b with empty CNI_NETNS and no prevResult succeeds" run_in_ok "$(podfence_conf "$conf1")" \
		"$WORK/del3.out" pf_cni DEL "$cb" "" eth0
	t "$mode: DEL a (a pin deleted before) succeeds" del_ok "$ca"
	t "$mode: DEL a removed everything" nothing_attached "$ca"
	t "$mode: DEL c after GC succeeds" del_ok "$cc"
	t "$mode: no attachment left after DEL of all pods" empty_or_why "$(attach_dirs)"
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
MODE_CASES+=(core_case)
