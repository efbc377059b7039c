# Fragments and ICMP errors of admitted flows (issue 8), pod C isolated both
# ways, egress UDP only:
#  (a) S answers C's query with a 1,000- and a 3,000-byte datagram (the
#      latter fragmented at MTU 1500): C gets both; a fragmented datagram to
#      a denied port (C -> S) or to C unasked (S -> C) stays denied.
#  (b) path MTU: F sits behind router R's MTU-1300 link; C's DF datagram of
#      1,400 bytes draws frag-needed / packet-too-big from R, and C's route
#      to F shows mtu 1300 (IPv4 and IPv6).
#  (c) S's port unreachable about C's datagram reaches C's socket
#      (ECONNREFUSED); a forged error quoting no flow of C is dropped.
# Sourced by integration/run.sh. Netns pfti-fr*, addresses 10.99.0.50-59 /
# fd99::50-59 on pfti-br0 and 10.99.50.0/24 / fd99:50::/64 behind R.
# shellcheck shell=bash

FR_C4=10.99.0.50 FR_C6=fd99::50 FR_S4=10.99.0.51 FR_S6=fd99::51
FR_R4=10.99.0.59 FR_R6=fd99::59 # R's leg on pfti-br0 (not a pod)
FR_F4=10.99.50.2 FR_F6=fd99:50::2 FR_RF4=10.99.50.1 FR_RF6=fd99:50::1
FR_PORT=7000 # S's and F's service; C may send UDP to 7000-7010 only

# C: both directions isolated; egress UDP 7000-7010 to S, UDP 7000 to F.
FR_POL_C=$(jq -cn --arg s4 "$FR_S4/32" --arg s6 "$FR_S6/128" --arg f4 "$FR_F4/32" --arg f6 "$FR_F6/128" '{
	policyTypes: ["Ingress", "Egress"],
	egress: [
		{to: [{ipBlock: {cidr: $s4}}, {ipBlock: {cidr: $s6}}], ports: [{protocol: "UDP", port: 7000, endPort: 7010}]},
		{to: [{ipBlock: {cidr: $f4}}, {ipBlock: {cidr: $f6}}], ports: [{protocol: "UDP", port: 7000}]}]}')

# fr_serve NS LOG [PORT]: udp_log_server on PORT (FR_PORT), which answers
# "q" with a 1,000- and a 3,000-byte datagram.
fr_serve() {
	udp_log_server "$1" "${3:-$FR_PORT}" "$2"
	FR_PIDS+=("$LOG_SERVER_PID")
}

# fr_py NS SCRIPT ARGS...: a python3 snippet inside NS.
fr_py() {
	local ns=$1 script=$2
	shift 2
	in_ns "$ns" timeout 20 python3 -c "$script" "$@"
}

# fr_query NS DST: sends "q" to DST:FR_PORT, prints the sizes that came back.
fr_query() {
	fr_py "$1" '
import socket, sys
dst = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"q", (dst, int(sys.argv[2])))
got = []
try:
    while len(got) < 2:
        got.append(len(s.recv(65535)))
except socket.timeout:
    pass
print(" ".join(map(str, sorted(got))))
' "$2" "$FR_PORT"
}
fr_both_answers() { # NS DST
	local got
	got=$(fr_query "$1" "$2")
	[ "$got" = "1000 3000" ] || why "C got datagrams of [$got] bytes from $2, want [1000 3000]"
}

# fr_answered NS DST: DST answers a query at all (the route there works).
fr_answered() {
	[ -n "$(fr_query "$1" "$2")" ] || why "no answer from $2"
}

# fr_send NS DST PORT SIZE: one UDP datagram of SIZE bytes.
fr_send() {
	fr_py "$1" '
import socket, sys
dst, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"x" * size, (dst, port))
' "$2" "$3" "$4"
}
fr_denied_in() { # CID DIRECTION: the pod's denied packets there so far
	pf counters "$1" --json | jq -r --arg d "$2" '.[0].directions[$d].deniedPackets'
}
# fr_not_logged LOG SIZE: nothing of SIZE bytes arrived (after 1 s).
fr_not_logged() {
	sleep 1
	! grep -Eq "^[^ ]+ $2 " "$1" || why "it arrived: $(cut -d' ' -f1,2 "$1" | tr '\n' ';')"
}
fr_grew_by() { # BEFORE NOW MIN
	[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || { why "counters: [$1] then [$2]"; return 1; }
	[ "$2" -ge $(($1 + $3)) ] || why "denied packets went from $1 to $2, want at least +$3"
}

# fr_pmtu NS DST: DF datagrams of 1,400 bytes to DST:FR_PORT until the
# route to DST shows "mtu 1300" (3 s at most).
fr_pmtu() {
	local ns=$1 dst=$2 fam=-4 _ route
	[[ $dst == *:* ]] && fam=-6
	for _ in $(seq 6); do
		fr_py "$ns" '
import socket, sys
dst = sys.argv[1]
if ":" in dst:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER, IP_PMTUDISC_DO
try:
    s.sendto(b"p" * 1400, (dst, int(sys.argv[2])))
except OSError:
    pass  # EMSGSIZE: the kernel already knows a smaller path MTU
' "$dst" "$FR_PORT"
		route=$(in_ns "$ns" ip "$fam" route get "$dst")
		grep -q ' mtu 1300' <<<"$route" && return 0
		sleep 0.5
	done
	why "no PMTU learnt: ip route get $dst: $route"
}

# fr_refused NS DST PORT: a connected UDP socket's send to a closed port
# comes back as ECONNREFUSED (the ICMP port unreachable reached the socket).
fr_refused() {
	local got
	got=$(fr_py "$1" '
import errno, socket, sys, time
dst, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((dst, port))
s.settimeout(1)
for _ in range(3):
    try:
        s.send(b"hello")
        s.recv(100)
    except ConnectionRefusedError:
        print("refused")
        break
    except socket.timeout:
        continue
else:
    print("no error")
' "$2" "$3")
	[ "$got" = refused ] || why "send to $2:$3 (closed): [$got], want ECONNREFUSED"
}

# fr_forged_ignored C-NS FORGER-NS C-ADDR PEER: C holds a connected UDP
# socket C-ADDR:5555 -> PEER:7999 that sent nothing; FORGER sends C a port
# unreachable quoting that 4-tuple. It must not reach the socket.
fr_forged_ignored() {
	local cns=$1 fns=$2 caddr=$3 peer=$4 ready=$WORK/fr-ready-$RANDOM out=$WORK/fr-forged.out pid _
	rm -f "$ready"
	in_ns "$cns" timeout 20 python3 -c '
import socket, sys, time
caddr, peer, ready = sys.argv[1], sys.argv[2], sys.argv[3]
fam = socket.AF_INET6 if ":" in peer else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((caddr, 5555))
s.connect((peer, 7999))
s.settimeout(2.5)
open(ready, "w").close()
try:
    s.recv(100)
    print("data")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("nothing")
' "$caddr" "$peer" "$ready" >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 50); do [ -e "$ready" ] && break; sleep 0.05; done
	raw_send "$fns" port-unreachable "$caddr" "$peer" || why "sending the forged error failed"
	wait "$pid" 2>/dev/null || true
	[ "$(cat "$out")" = nothing ] || why "C's socket saw: $(cat "$out")"
}

# fr_router: R on pfti-br0 (FR_R4/FR_R6) routes to F over an MTU-1300 veth;
# C reaches 10.99.50.0/24 and fd99:50::/64 through R.
fr_router() {
	new_ns $PREFIX-fr-r &&
	new_ns $PREFIX-fr-f &&
	in_ns $PREFIX-fr-r sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 &&
	ip link add $PREFIX-fr-rb netns "$PREFIX-node" type veth peer name eth0 netns $PREFIX-fr-r &&
	in_ns "$PREFIX-node" ip link set $PREFIX-fr-rb master "$PREFIX-br0" up &&
	in_ns $PREFIX-fr-r ip addr add "$FR_R4/24" dev eth0 &&
	in_ns $PREFIX-fr-r ip addr add "$FR_R6/64" dev eth0 nodad &&
	in_ns $PREFIX-fr-r ip link set eth0 up &&
	ip link add $PREFIX-fr-rf netns $PREFIX-fr-r mtu 1300 type veth peer name eth0 netns $PREFIX-fr-f mtu 1300 &&
	in_ns $PREFIX-fr-r ip addr add "$FR_RF4/24" dev $PREFIX-fr-rf &&
	in_ns $PREFIX-fr-r ip addr add "$FR_RF6/64" dev $PREFIX-fr-rf nodad &&
	in_ns $PREFIX-fr-r ip link set $PREFIX-fr-rf up &&
	in_ns $PREFIX-fr-f ip addr add "$FR_F4/24" dev eth0 &&
	in_ns $PREFIX-fr-f ip addr add "$FR_F6/64" dev eth0 nodad &&
	in_ns $PREFIX-fr-f ip link set eth0 up &&
	in_ns $PREFIX-fr-f ip route add default via "$FR_RF4" &&
	in_ns $PREFIX-fr-f ip -6 route add default via "$FR_RF6" &&
	in_ns $PREFIX-fr-c ip route add 10.99.50.0/24 via "$FR_R4" &&
	in_ns $PREFIX-fr-c ip -6 route add fd99:50::/64 via "$FR_R6"
}
fr_router_ok() { fr_router >"$WORK/fr-router.out" 2>&1 || why "setting up R and F failed: $(cat "$WORK/fr-router.out")"; }

hostile_frag_icmp_case() {
	local mode=$1 conf=$2 cc=$PREFIX-fr-$1-c cs=$PREFIX-fr-$1-s
	local slog=$WORK/fr-s-$1.log clog=$WORK/fr-c-$1.log flog=$WORK/fr-f-$1.log before fam ns
	echo "# ---- mode $mode: fragments and ICMP errors (integration/cases/hostile_frag_icmp.sh)"
	new_ns $PREFIX-fr-c
	new_ns $PREFIX-fr-s
	t "$mode: frag: ADD pod C (isolated, egress UDP to S and F)" add_pod "$conf" "$cc" $PREFIX-fr-c "$(caps "$FR_C4/24" "$FR_C6/64" "$FR_POL_C")"
	t "$mode: frag: ADD pod S (default allow)" add_pod "$conf" "$cs" $PREFIX-fr-s "$(caps "$FR_S4/24" "$FR_S6/64")"
	t "$mode: frag: router R with an MTU-1300 link to server F" fr_router_ok
	FR_PIDS=()
	fr_serve $PREFIX-fr-s "$slog"
	fr_serve $PREFIX-fr-s "$slog" 7020 # a port C may not send to
	fr_serve $PREFIX-fr-f "$flog"
	fr_serve $PREFIX-fr-c "$clog" # logs what reaches C's port FR_PORT

	# (a) fragmented answers of an admitted flow; fragmented denied datagrams
	t "$mode: frag: C gets S's 1,000- and 3,000-byte answers (IPv4)" fr_both_answers $PREFIX-fr-c "$FR_S4"
	t "$mode: frag: C gets S's 1,000- and 3,000-byte answers (IPv6)" fr_both_answers $PREFIX-fr-c "$FR_S6"
	for fam in 4 6; do
		local sdst=$FR_S4 cdst=$FR_C4
		[ "$fam" = 6 ] && sdst=$FR_S6 cdst=$FR_C6
		before=$(fr_denied_in "$cc" egress || true)
		fr_send $PREFIX-fr-c "$sdst" 7020 3000 || true
		t "$mode: frag: C's 3,000-byte datagram to a denied port never reaches S (IPv$fam)" fr_not_logged "$slog" 3000
		t "$mode: frag: ... all of its fragments denied at C's egress (IPv$fam)" fr_grew_by "$before" "$(fr_denied_in "$cc" egress)" 3
		before=$(fr_denied_in "$cc" ingress || true)
		fr_send $PREFIX-fr-s "$cdst" "$FR_PORT" 3000 || true
		t "$mode: frag: S's unasked 3,000-byte datagram never reaches C (IPv$fam)" fr_not_logged "$clog" 3000
		t "$mode: frag: ... all of its fragments denied at C's ingress (IPv$fam)" fr_grew_by "$before" "$(fr_denied_in "$cc" ingress)" 3
	done

	# (b) path MTU discovery through the isolated ingress
	t "$mode: frag: C reaches F behind R (small datagram, IPv4)" fr_answered $PREFIX-fr-c "$FR_F4"
	t "$mode: frag: R's frag-needed reaches C: route to F shows mtu 1300 (IPv4)" fr_pmtu $PREFIX-fr-c "$FR_F4"
	t "$mode: frag: R's packet-too-big reaches C: route to F shows mtu 1300 (IPv6)" fr_pmtu $PREFIX-fr-c "$FR_F6"

	# (c) errors quoting an admitted flow reach the socket; forged ones do not
	t "$mode: frag: S's port unreachable reaches C's socket (IPv4)" fr_refused $PREFIX-fr-c "$FR_S4" 7005
	t "$mode: frag: S's port unreachable reaches C's socket (IPv6)" fr_refused $PREFIX-fr-c "$FR_S6" 7005
	before=$(fr_denied_in "$cc" ingress || true)
	t "$mode: frag: a forged port unreachable quoting no flow of C is dropped (IPv4)" fr_forged_ignored $PREFIX-fr-c $PREFIX-fr-s "$FR_C4" "$FR_S4"
	t "$mode: frag: a forged port unreachable quoting no flow of C is dropped (IPv6)" fr_forged_ignored $PREFIX-fr-c "$PREFIX-node" "$FR_C6" "$FR_S6"
	t "$mode: frag: ... both counted as denied at C's ingress" fr_grew_by "$before" "$(fr_denied_in "$cc" ingress)" 2

	t "$mode: frag: DEL C" del_ok "$cc"
	t "$mode: frag: DEL C removed everything" nothing_attached "$cc"
	t "$mode: frag: DEL S" del_ok "$cs"
	kill "${FR_PIDS[@]}" 2>/dev/null || true
	for ns in $PREFIX-fr-c $PREFIX-fr-s $PREFIX-fr-r $PREFIX-fr-f; do ip netns del "$ns" 2>/dev/null || true; done
	in_ns "$PREFIX-node" ip link del $PREFIX-fr-rb 2>/dev/null || true
}

MODE_CASES+=(hostile_frag_icmp_case)
