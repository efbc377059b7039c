# Bad input: broken netconf, missing prevResult, unknown mode, a malformed
# annotation through the whole chain, primaries without a veth (105). Each
# must fail with the right code and leave nothing attached.
# shellcheck shell=bash

bad_input_case() {
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
MODE_CASES+=(bad_input_case)
