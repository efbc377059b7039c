# GC is per network (spec 1.1): two conflists with different names over the
# same bridge, pods on both. A GC of one network (with a list, an empty list,
# or no list as libcni's GCNetworkList(list, nil) sends it) removes only that
# network's attachments; the other network's pods stay enforced.
# Sourced by integration/run.sh. Namespaces pfti-gc*, addresses 10.99.0.70-79.
# shellcheck shell=bash

# gc_net CONFLIST JSON-LIST|none: GC of that conflist's network, as libcni
# sends it (the podfence entry, no CNI_CONTAINERID/NETNS/IFNAME); "none" omits
# the list.
gc_net() {
	local nc
	nc=$(podfence_conf "$1" 1.1.0)
	[ "$2" = none ] || nc=$(jq -c --argjson l "$2" '. + {"cni.dev/valid-attachments": $l}' <<<"$nc")
	run_in_ok "$nc" "$WORK/gc-net.out" pf_cni GC "" "" ""
}
gc_list() { # CID...: valid-attachments JSON for these pods' eth0
	printf '%s\n' "$@" | jq -Rsc 'split("\n") | map(select(. != "") | {containerID: ., ifname: "eth0"})'
}

# enforced CID IP: the pod's policy holds (8080 answers, 9090 does not).
# Both predicates only probe, so the pods' checks run side by side (tq).
gc_enforced() { tcp_ok "$PREFIX-node" "$2" 8080 && tcp_denied "$PREFIX-node" "$2" 9090; }
# gc_removed CID IP: its attachment is gone and nothing filters it any more.
gc_removed() { nothing_attached "$1" "${POD_VETH[$1]:-}" "${POD_NS[$1]}" && tcp_ok "$PREFIX-node" "$2" 9090; }

gc_networks_case() {
	local mode=$1 confa=$2 confb=$WORK/gc-netb-$mode.conflist pol p
	# network B: same bridge and subnet, its own name and IPAM store
	jq --arg dd "$WORK/ipam-gc" '.name = "pfti-net2"
		| .plugins |= map(if .type == "bridge" then .ipam.dataDir = $dd else . end)' "$confa" >"$confb"
	pol='{"ingress": [{"ports": [{"protocol": "TCP", "port": 8080}]}]}'
	local a1=$PREFIX-$mode-gca1 a2=$PREFIX-$mode-gca2 b1=$PREFIX-$mode-gcb1 b2=$PREFIX-$mode-gcb2 b3=$PREFIX-$mode-gcb3
	local -A ip=([$a1]=10.99.0.70 [$a2]=10.99.0.71 [$b1]=10.99.0.72 [$b2]=10.99.0.73 [$b3]=10.99.0.74)
	local -A ns=([$a1]=$PREFIX-gca1 [$a2]=$PREFIX-gca2 [$b1]=$PREFIX-gcb1 [$b2]=$PREFIX-gcb2 [$b3]=$PREFIX-gcb3)
	echo "# ---- mode $mode: GC per network (pfti-net: a1 a2, pfti-net2: b1 b2)"
	for p in "$a1" "$a2" "$b1" "$b2" "$b3"; do
		new_ns "${ns[$p]}"
		serve_tcp "${ns[$p]}" 8080
		serve_tcp "${ns[$p]}" 9090
	done
	for p in "$a1" "$a2" "$b1" "$b2" "$b3"; do wait_listen "${ns[$p]}" t 8080 9090; done
	local c n=1
	for p in "$a1" "$a2" "$b1" "$b2"; do
		c=$confa
		[[ $p == *gcb* ]] && c=$confb
		t "$mode/gc: ADD $p" add_pod "$c" "$p" "${ns[$p]}" "$(caps "${ip[$p]}/24" "fd99::7$n/64" "$pol")"
		n=$((n + 1))
	done
	for p in "$a1" "$a2" "$b1" "$b2"; do tq "$mode/gc: $p enforced after ADD" gc_enforced "$p" "${ip[$p]}"; done
	tq_run
	t "$mode/gc: records name their network" eval '[ "$(pf inspect --json | jq -r --arg c "$b1" ".[] | select(.containerID == \$c) | .network")" = pfti-net2 ] || why "inspect: $(pf inspect --json | jq -c .)"'

	# 1. GC of B listing both of B's pods: nothing changes on either network
	t "$mode/gc: GC pfti-net2 [b1, b2] succeeds" gc_net "$confb" "$(gc_list "$b1" "$b2")"
	for p in "$a1" "$a2" "$b1" "$b2"; do tq "$mode/gc: after GC pfti-net2 [b1 b2], $p still enforced" gc_enforced "$p" "${ip[$p]}"; done
	tq_run

	# 2. GC of B with an empty list: B's pods go, A's stay enforced
	t "$mode/gc: GC pfti-net2 [] succeeds" gc_net "$confb" '[]'
	for p in "$b1" "$b2"; do tq "$mode/gc: after GC pfti-net2 [], $p removed" gc_removed "$p" "${ip[$p]}"; done
	for p in "$a1" "$a2"; do tq "$mode/gc: after GC pfti-net2 [], $p (pfti-net) still enforced" gc_enforced "$p" "${ip[$p]}"; done
	tq_run

	# 3. a new pod b3 on B; GC of A listing a1 only: a2 goes, a1 and b3 stay
	t "$mode/gc: ADD b3 on pfti-net2" add_pod "$confb" "$b3" "${ns[$b3]}" "$(caps "${ip[$b3]}/24" fd99::75/64 "$pol")"
	t "$mode/gc: GC pfti-net [a1] succeeds" gc_net "$confa" "$(gc_list "$a1")"
	tq "$mode/gc: after GC pfti-net [a1], a2 removed" gc_removed "$a2" "${ip[$a2]}"
	tq "$mode/gc: after GC pfti-net [a1], a1 still enforced" gc_enforced "$a1" "${ip[$a1]}"
	tq "$mode/gc: after GC pfti-net [a1], b3 (pfti-net2) still enforced" gc_enforced "$b3" "${ip[$b3]}"
	tq_run

	# 4. GC of A without a list (libcni's GCNetworkList(list, nil)): all of
	# A's attachments go, B's stay
	t "$mode/gc: GC pfti-net without a list succeeds" gc_net "$confa" none
	tq "$mode/gc: after GC pfti-net (no list), a1 removed" gc_removed "$a1" "${ip[$a1]}"
	tq "$mode/gc: after GC pfti-net (no list), b3 (pfti-net2) still enforced" gc_enforced "$b3" "${ip[$b3]}"
	tq_run
	t "$mode/gc: CHECK b3 passes after both GCs" check_ok "$b3"

	for p in "$a1" "$a2" "$b1" "$b2" "$b3"; do t "$mode/gc: DEL $p" del_ok "$p"; done
	t "$mode/gc: nothing of either network left" eval 'for p in "$a1" "$a2" "$b1" "$b2" "$b3"; do nothing_attached "$p"; done; [ -z "$WHY" ]'
	for p in "$a1" "$a2" "$b1" "$b2" "$b3"; do ip netns del "${ns[$p]}" 2>/dev/null || true; done
}
MODE_CASES+=(gc_networks_case)
