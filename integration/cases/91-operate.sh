# Operating podfence: pods added with K8S_* CNI_ARGS are shown and selected
# by namespace/name; `podfence explain` agrees with real probes over a table
# of flows (both directions, IPv4/IPv6, except, port range, a rule without
# ports, ICMP) and says loudly when the live map disagrees with the stored
# policy; `podfence events --json` reports a denied flow with the pod's
# identity; options a command does not take are errors.
# Own bridge and addresses: $PREFIX-br91, 10.99.91.0/24, fd99:91::/64.
# shellcheck shell=bash

OP_NET4=10.99.91 OP_NET6=fd99:91:
# S: the pod under policy; A: a client inside the ipBlock; X: in its except;
# N: named by a rule without ports.
OP_S4=$OP_NET4.10 OP_S6=$OP_NET6:10 OP_A4=$OP_NET4.11 OP_A6=$OP_NET6:11
OP_X4=$OP_NET4.12 OP_X6=$OP_NET6:12 OP_N4=$OP_NET4.13 OP_N6=$OP_NET6:13
OP_POL=$(jq -cn --arg n4 "$OP_NET4.0/24" --arg n6 "$OP_NET6:/64" --arg x4 "$OP_X4/32" --arg x6 "$OP_X6/128" \
	--arg nn4 "$OP_N4/32" --arg nn6 "$OP_N6/128" --arg a4 "$OP_A4/32" --arg a6 "$OP_A6/128" '{
	policyTypes: ["Ingress", "Egress"],
	ingress: [
		{from: [{ipBlock: {cidr: $n4, except: [$x4]}}, {ipBlock: {cidr: $n6, except: [$x6]}}],
		 ports: [{protocol: "TCP", port: 8000, endPort: 8001}, {protocol: "UDP", port: 5353}]},
		{from: [{ipBlock: {cidr: $nn4}}, {ipBlock: {cidr: $nn6}}]}],
	egress: [{to: [{ipBlock: {cidr: $a4}}, {ipBlock: {cidr: $a6}}], ports: [{protocol: "TCP", port: 9000}]}]}')

op_k8s() { echo "IgnoreUnknown=1;K8S_POD_NAMESPACE=opns;K8S_POD_NAME=$1;K8S_POD_UID=uid-$1-91"; }

# op_probe DIR PEER-NS PEER PROTO PORT: a real flow; prints allowed/denied.
# Ingress: PEER-NS -> S; egress: S -> PEER.
op_probe() {
	local dir=$1 pns=$2 peer=$3 proto=$4 port=$5 from to got
	if [ "$dir" = ingress ]; then
		from=$pns
		if [[ $peer == *:* ]]; then to=$OP_S6; else to=$OP_S4; fi
	else
		from=$OP_SNS to=$peer
	fi
	case $proto in
	TCP) got=$(tcp_probe "$from" "$to" "$port") ;;
	UDP) got=$(udp_probe "$from" "$to" "$port") ;;
	ICMP) in_ns "$from" ping -c1 -W2 "$to" >/dev/null 2>&1 && got=pong ;;
	esac
	[ "${got:-}" = pong ] && echo allowed || echo denied
}

# op_row DIR PEER-NS PEER PROTO PORT|- WANT RULE|-: explain's verdict and rule
# are WANT and RULE, the live map agrees, and a real probe gets WANT.
op_row() {
	local dir=$1 pns=$2 peer=$3 proto=$4 port=$5 want=$6 rule=$7 out got probe
	local args=(explain opns/server --direction "$dir" --peer "$peer" --proto "$proto" --json)
	[ "$port" = - ] || args+=(--port "$port")
	out=$(pf "${args[@]}" 2>&1) || why "explain failed: $out"
	got=$(jq -r '[.verdict, (.rule // "-"), (.agree | tostring), .live.verdict] | join(" ")' <<<"$out" 2>/dev/null)
	[ "$got" = "$want $rule true $want" ] || why "explain: [$got], want [$want $rule true $want]: $out"
	probe=$(op_probe "$dir" "$pns" "$peer" "$proto" "$port")
	[ "$probe" = "$want" ] || why "real probe: $probe, explain said $want"
}

op_identity() { # inspect/counters show S's pod identity; S is selected by it
	local j
	j=$(pf inspect --json | jq -c --arg c "$OP_CS" '.[] | select(.containerID == $c) | [.podNamespace, .podName, .podUID]')
	[ "$j" = '["opns","server","uid-server-91"]' ] || why "inspect --json: $j"
	pf inspect | grep -q "^opns/server .*${OP_CS:0:12}" || why "inspect table: $(pf inspect)"
	j=$(pf inspect opns/server --json | jq -r 'map(.containerID) | join(" ")')
	[ "$j" = "$OP_CS" ] || why "inspect opns/server lists [$j]"
	j=$(pf counters opns/server --json | jq -c '[length, .[0].pod.namespace, .[0].pod.name, .[0].pod.uid, .[0].enforcement]')
	[ "$j" = '[1,"opns","server","uid-server-91","enforce"]' ] || why "counters --json: $j"
	pf counters opns/server | grep -q "^$OP_CS eth0 (pod opns/server uid uid-server-91, enforce" ||
		why "counters text: $(pf counters opns/server)"
	j=$(pf inspect "${OP_CS:0:20}" --json | jq -r '.[0].podName')
	[ "$j" = server ] || why "a container ID prefix no longer selects: $j"
}

op_ambiguous() { # a prefix of every pod's container ID: explain refuses, listing them
	local out rc=0 c
	out=$(pf explain "$OP_CPFX" --direction ingress --peer "$OP_A4" 2>&1) || rc=$?
	[ "$rc" = 7 ] || why "exit $rc, want 7: $out"
	for c in "$OP_CS" "$OP_CA" "$OP_CX" "$OP_CN"; do
		grep -q -- "$c eth0" <<<"$out" || why "candidate $c not listed: $out"
	done
	rc=0
	out=$(pf explain opns/nobody --direction ingress --peer "$OP_A4" 2>&1) || rc=$?
	[ "$rc" = 3 ] || why "unknown pod: exit $rc, want 3: $out"
}

op_strict() { # an option the command does not take fails, with the command's name
	local out rc args
	for args in "version --json" "inspect --count 1" "counters --peer $OP_A4" "events --port 1" \
		"explain opns/server --direction ingress --peer $OP_A4 --count 1"; do
		rc=0
		# shellcheck disable=SC2086
		out=$(pf $args 2>&1) || rc=$?
		if [ "$rc" != 7 ] || ! grep -q "does not take" <<<"$out"; then why "podfence $args: exit $rc: $out"; fi
	done
}

op_explain_text() { # the text form names the rule, or what failed
	local out
	out=$(pf explain opns/server --direction ingress --peer "$OP_A4" --proto TCP --port 8001)
	grep -q "^verdict: ALLOWED by ingress\[0\]: peer $OP_NET4.0/24 except $OP_X4/32, port TCP 8000-8001" <<<"$out" ||
		why "allowed: $out"
	grep -q "^live maps: ALLOWED by ingress\[0\] (agrees)" <<<"$out" || why "allowed, live: $out"
	out=$(pf explain opns/server --direction ingress --peer "$OP_X4" --proto TCP --port 8000)
	grep -q "^verdict: DENIED: ingress is isolated and no rule admits it (2 rules)" <<<"$out" || why "denied: $out"
	grep -q "ingress\[0\] failed on peer: peer: $OP_X4 is in $OP_NET4.0/24 but excepted by $OP_X4/32" <<<"$out" ||
		why "denied, reason: $out"
}

op_events() { # events --json of S while X is denied; a filter on N shows nothing
	local evs=$WORK/op-ev-s.json evn=$WORK/op-ev-n.json pid line
	# One reader at a time: readers of the node's ring buffer share its events.
	timeout 15 env -u CNI_COMMAND "$PLUGIN" events opns/server --json --count 1 --bpffs-root "$BPFFS" >"$evs" 2>"$evs.err" &
	pid=$!
	BGPIDS+=("$pid")
	sleep 1.5 # it switches events on before it listens
	tcp_probe "$OP_XNS" "$OP_S4" 8000 >/dev/null
	wait "$pid" 2>/dev/null || true
	timeout 4 env -u CNI_COMMAND "$PLUGIN" events opns/noports --json --bpffs-root "$BPFFS" >"$evn" 2>/dev/null &
	pid=$!
	BGPIDS+=("$pid")
	sleep 1.5
	tcp_probe "$OP_XNS" "$OP_S4" 8000 >/dev/null
	wait "$pid" 2>/dev/null || true
	line=$(head -1 "$evs")
	[ -n "$line" ] || why "events opns/server --json printed nothing: $(cat "$evs.err"); counters: $(pf counters opns/server)"
	jq -e --arg c "$OP_CS" --arg x "$OP_X4" --arg s "$OP_S4" '
		.verdict == "denied" and .direction == "ingress" and .containerID == $c and .ifname == "eth0"
		and .pod == {namespace: "opns", name: "server", uid: "uid-server-91"}
		and .family == "ipv4" and .protocol == "tcp" and .src == $x and .dst == $s and .dstPort == 8000
		and (.srcPort > 0) and (.length > 0)
		and (.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{9}Z$"))
		and .rule.isolated and .rule.closest == {rule: "ingress[0]", failed: "peer"}' <<<"$line" >/dev/null ||
		why "events --json printed: $(cat "$evs")"
	# the timestamp is now, not boot-relative
	local t now
	t=$(jq -r '.time' <<<"$line" | cut -c1-19)
	now=$(date -u +%s)
	t=$(date -u -d "${t}Z" +%s 2>/dev/null || echo 0)
	if [ $((now - t)) -lt 0 ] || [ $((now - t)) -ge 30 ]; then why "event time $(jq -r .time <<<"$line") is not now"; fi
	[ ! -s "$evn" ] || why "events opns/noports showed another pod's event: $(cat "$evn")"
}

op_lost() { # a reader that stalls: the full ring's losses are counted and reported
	local out=$WORK/op-ev-lost.json n
	# The pipe fills within a few hundred events and stalls the reader, so
	# the 256 KiB ring (4,096 events) overflows under the flood below.
	timeout 10 env -u CNI_COMMAND "$PLUGIN" events opns/server --json --bpffs-root "$BPFFS" 2>/dev/null |
		{ sleep 4; cat; } >"$out" &
	BGPIDS+=($!)
	sleep 0.5
	in_ns "$OP_ANS" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20000):
    s.sendto(b"x", (sys.argv[1], 8002))' "$OP_S4"
	wait "$!" 2>/dev/null || true
	n=$(pf counters opns/server --json | jq '.[0].directions.ingress.eventsLost')
	[ "${n:-0}" -gt 0 ] || why "counters: eventsLost $n"
	jq -e -s --argjson n "$n" '[.[] | select(has("lost"))] | (length > 0) and (map(.lost) | add) == $n
		and .[0].pods[0].pod.name == "server"' "$out" >/dev/null ||
		why "no lost report adding up to $n: $(grep lost "$out" | head -3)"
}

op_disagree() { # a live map tampered with: explain says so and exits 103
	local id out rc=0 key
	id=$(policy_trie_id "$(pf inspect opns/server --json | jq -r '.[0].slot')") || return 1
	# The ADDR_ROOT entry of ingress IPv4: prefixlen 64, kind 3, dir 0, family 4.
	key="40 00 00 00 03 00 04 00 00 00 00 00 $(printf '00 %.0s' $(seq 16))"
	# shellcheck disable=SC2086
	bpftool map delete id "$id" key hex $key || why "bpftool map delete id $id failed"
	out=$(pf explain opns/server --direction ingress --peer "$OP_A4" --proto TCP --port 8000 --json 2>/dev/null) || rc=$?
	[ "$rc" = 103 ] || why "exit $rc, want 103"
	[ "$(jq -c '[.verdict, .live.verdict, .agree]' <<<"$out")" = '["allowed","denied",false]' ] || why "--json: $out"
	out=$(pf explain opns/server --direction ingress --peer "$OP_A4" --proto TCP --port 8000 2>&1) || true
	grep -q "DISAGREES" <<<"$out" || why "text: $out"
}

operate_case() {
	local mode=$1 pfkeys=$3 conf
	conf=$WORK/op-$mode.conflist
	OP_CPFX=$PREFIX-op-$mode-
	OP_CS=${OP_CPFX}server OP_CA=${OP_CPFX}client OP_CX=${OP_CPFX}excepted OP_CN=${OP_CPFX}noports
	OP_SNS=$PREFIX-op$mode-s OP_ANS=$PREFIX-op$mode-a OP_XNS=$PREFIX-op$mode-x OP_NNS=$PREFIX-op$mode-n
	echo "# ---- mode $mode: operating podfence: identity, explain, events --json (integration/cases/91-operate.sh)"
	make_conflist 10-podfence-containerd.conflist "$PREFIX-op-net" "$PREFIX-br91" "$OP_NET4.0/24" "$OP_NET6:/64" \
		"$WORK/ipam91" "$pfkeys" >"$conf"
	local ns pids=()
	for ns in "$OP_SNS" "$OP_ANS" "$OP_XNS" "$OP_NNS"; do new_ns "$ns"; done
	local before=${#BGPIDS[@]}
	serve_tcp "$OP_SNS" 8000; serve_tcp "$OP_SNS" 8001; serve_tcp "$OP_SNS" 8002; serve_udp "$OP_SNS" 5353
	serve_tcp "$OP_ANS" 9000; serve_tcp "$OP_ANS" 9001; serve_udp "$OP_NNS" 5353
	pids=("${BGPIDS[@]:$before}")
	wait_listen "$OP_SNS" t 8000 8001 8002; wait_listen "$OP_SNS" u 5353
	wait_listen "$OP_ANS" t 9000 9001; wait_listen "$OP_NNS" u 5353

	CNI_ARGS=$(op_k8s server) t "$mode: op: ADD pod opns/server with K8S_* CNI_ARGS" \
		add_pod "$conf" "$OP_CS" "$OP_SNS" "$(caps "$OP_S4/24" "$OP_S6/64" "$OP_POL")"
	CNI_ARGS=$(op_k8s client) t "$mode: op: ADD pod opns/client" \
		add_pod "$conf" "$OP_CA" "$OP_ANS" "$(caps "$OP_A4/24" "$OP_A6/64")"
	CNI_ARGS=$(op_k8s excepted) t "$mode: op: ADD pod opns/excepted" \
		add_pod "$conf" "$OP_CX" "$OP_XNS" "$(caps "$OP_X4/24" "$OP_X6/64")"
	CNI_ARGS=$(op_k8s noports) t "$mode: op: ADD pod opns/noports" \
		add_pod "$conf" "$OP_CN" "$OP_NNS" "$(caps "$OP_N4/24" "$OP_N6/64")"

	t "$mode: op: inspect/counters show and select by the pod identity" op_identity
	t "$mode: op: an ambiguous prefix lists the candidates; an unknown pod is exit 3" op_ambiguous
	t "$mode: op: options a command does not take are errors" op_strict

	# DIR PEER-NS PEER PROTO PORT WANT RULE
	local row lbl
	while read -r row; do
		# shellcheck disable=SC2086
		set -- $row
		lbl="$1 $4"
		[ "$5" = - ] || lbl+=" $5"
		lbl+=" $3 -> $6"
		[ "$7" = - ] || lbl+=" by $7"
		# read-only (explain and a probe): the rows run side by side
		tq "$mode: op: explain = real probe: $lbl" op_row "$@"
	done <<EOF
ingress $OP_ANS $OP_A4 TCP 8000 allowed ingress[0]
ingress $OP_ANS $OP_A6 TCP 8001 allowed ingress[0]
ingress $OP_ANS $OP_A4 TCP 8002 denied -
ingress $OP_ANS $OP_A6 UDP 5353 allowed ingress[0]
ingress $OP_XNS $OP_X4 TCP 8000 denied -
ingress $OP_XNS $OP_X6 TCP 8001 denied -
ingress $OP_ANS $OP_A4 ICMP - denied -
ingress $OP_NNS $OP_N4 ICMP - allowed ingress[1]
ingress $OP_NNS $OP_N6 ICMP - allowed ingress[1]
ingress $OP_NNS $OP_N4 TCP 8002 allowed ingress[1]
egress $OP_ANS $OP_A4 TCP 9000 allowed egress[0]
egress $OP_ANS $OP_A6 TCP 9000 allowed egress[0]
egress $OP_ANS $OP_A4 TCP 9001 denied -
egress $OP_ANS $OP_A6 ICMP - denied -
egress $OP_NNS $OP_N4 UDP 5353 denied -
EOF
	tq_run # before the events checks, which count denied flows
	t "$mode: op: explain's text names the matching rule, or what failed" op_explain_text
	t "$mode: op: events --json: a denied flow with pod identity, time, closest rule; filtered by pod" op_events
	t "$mode: op: events lost to a full ring are counted and reported (--json)" op_lost
	t "$mode: op: a tampered live map: explain disagrees loudly (exit 103)" op_disagree

	local c
	for c in "$OP_CS" "$OP_CA" "$OP_CX" "$OP_CN"; do
		t "$mode: op: DEL $c" del_ok "$c"
	done
	for c in "${pids[@]}"; do kill "$c" 2>/dev/null; done
	for ns in "$OP_SNS" "$OP_ANS" "$OP_XNS" "$OP_NNS"; do ip netns del "$ns" 2>/dev/null; done
	in_ns "$PREFIX-node" ip link del "$PREFIX-br91" 2>/dev/null || true
}
MODE_CASES+=(operate_case)
