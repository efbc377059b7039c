# Chain 2: bridge -> bandwidth -> pfti-foreign-tc -> podfence with
# defaultPolicy deny: podfence next to bandwidth's qdiscs, except blocks.
# shellcheck shell=bash

has_tbf() {
	local q
	q=$(in_ns "$PREFIX-node" tc qdisc show dev "$1" 2>&1)
	grep -q 'qdisc tbf' <<<"$q" || why "no tbf qdisc on $1: $q"
}

# chain 2: bridge -> bandwidth -> pfti-foreign-tc -> podfence
bandwidth_case() {
	local mode=$1 pfkeys=$3 bw ce cf conf2
	conf2=$WORK/chain2-$mode.conflist
	[ "$mode" = xdp ] && pfkeys=$(jq -c '. + {xdpMode: "generic"}' <<<"$pfkeys")
	make_conflist 20-podfence-bandwidth.conflist "$PREFIX-bw" "$PREFIX-br1" 10.99.1.0/24 fd99:1::/64 \
		"$WORK/ipam" "$(jq -c '. + {defaultPolicy: "deny"}' <<<"$pfkeys")" >"$conf2.tmp"
	insert_before_podfence "$conf2.tmp" "$FOREIGN" >"$conf2"
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
MODE_CASES+=(bandwidth_case)
