# In-place datapath upgrade: pods attached by this binary move onto the
# datapath of a second binary built with another ABI and policy-value layout
# (cmake -DPODFENCE_DATAPATH_VARIANT=ON; run.sh --variant PATH or
# PFTI_VARIANT_PLUGIN), under live traffic: two long-lived TCP connections
# (an echo, and a server that pushes unasked, whose packets pass only if the
# new datapath finds the flows the old one tracked) must not be reset or
# stall over 1 s, and a prober of a denied port must never connect. Run with
# --plugin an older release's binary and --variant this build, it checks
# that upgrade path too. tc mode moves through `podfence upgrade`, the others
# through the first verb the new binary runs (a libcni CHECK). Then CHECK and
# update work on every pod, the old datapath is gone, and the old binary
# refuses to move pods back (downgrade), or, when both binaries are of one
# ABI (an older build of the same release line), moves them back as it would
# any other datapath of its ABI.
# Sourced by integration/run.sh. Namespaces pfti-up*, addresses 10.99.0.80-89.
# shellcheck shell=bash

VARIANT=${VARIANT:-${PFTI_VARIANT_PLUGIN:-}}
# PFTI_UPGRADE_PODS=N: N more pods (host-local addresses, default policy)
# move too, for the time an upgrade of a full node takes (0 in CI).
UPGRADE_PODS=${PFTI_UPGRADE_PODS:-0}

# up_traffic_ok FILE-CONN FILE-PROBE [FILE-PULL]: the measurements of
# longconn.py (conn, probe, pull).
up_traffic_ok() {
	local err gap n c f what
	for f in "$1" ${3:+"$3"}; do
		what=$([ "$f" = "$1" ] && echo "echo connection" || echo "server-push connection")
		err=$(jq -r .error "$f") gap=$(jq -r .max_gap_ms "$f") n=$(jq -r '.echoed // .received' "$f")
		log "upgrade traffic: $what $(cat "$f")"
		[ -z "$err" ] || why "$what: $err"
		awk -v g="$gap" 'BEGIN { exit !(g < 1000) }' || why "$what stalled $gap ms"
		[ "$n" -gt 100 ] 2>/dev/null || why "$what: only $n messages"
	done
	c=$(jq -r .connected "$2")
	log "upgrade traffic: denied prober $(cat "$2")"
	[ "$c" = 0 ] || why "the denied prober connected $c times"
}

# up_on_datapath ABI: every record names a datapath of that ABI, and no
# other datapath directory is left.
up_on_datapath() {
	local dps recs
	dps=$(find "$BPFFS/podfence" -maxdepth 1 -name 'datapath-*' -printf '%f\n' | sort | tr '\n' ' ')
	recs=$(pf inspect --json | jq -r '.[].datapathDir' | xargs -rn1 basename | sort -u | tr '\n' ' ')
	[[ $dps == datapath-abi$1-*" " && $(wc -w <<<"$dps") = 1 ]] || why "datapath dirs: $dps"
	[ "$recs" = "$dps" ] || why "records on: $recs, dirs: $dps"
}

upgrade_case() {
	local mode=$1 conf=$2 old=$PLUGIN
	if [ -z "$VARIANT" ]; then
		ok "$mode: upgrade # SKIP no variant binary (run.sh --variant PATH)"
		return 0
	fi
	local s=$PREFIX-$mode-ups c=$PREFIX-$mode-upc p=$PREFIX-$mode-upp
	local S4=10.99.0.80 C4=10.99.0.81 P4=10.99.0.82 pol cpol vabi oabi odp
	vabi=$(env -u CNI_COMMAND "$VARIANT" version | sed -n 's/.*(ABI \([0-9]*\)).*/\1/p')
	oabi=$(env -u CNI_COMMAND "$old" version | sed -n 's/.*(ABI \([0-9]*\)).*/\1/p')
	odp=$(env -u CNI_COMMAND "$old" version | sed -n 's/^datapath \([^ ]*\) .*/\1/p')
	echo "# ---- mode $mode: in-place datapath upgrade to $(basename "$VARIANT") (ABI $vabi)"
	for n in ups upc upp; do new_ns "$PREFIX-$n"; done
	serve_tcp "$PREFIX-ups" 8080
	serve_push "$PREFIX-ups" 8082
	wait_listen "$PREFIX-ups" t 8080 8082
	# s admits TCP 8080 from c only: the prober p is denied. Both s and c
	# isolate both directions, so each one's replies pass only as a flow its
	# conntrack holds: the connection survives the move only if the new
	# datapath finds the flows the old one recorded.
	# (The echo connection's client speaks first, which opens a lost flow
	# again; the push connection's server does, which cannot.)
	pol=$(jq -cn --arg c "$C4/32" '{ingress: [{from: [{ipBlock: {cidr: $c}}], ports: [{protocol: "TCP", port: 8080}, {protocol: "TCP", port: 8082}]}], egress: []}')
	cpol=$(jq -cn --arg s "$S4/32" '{egress: [{to: [{ipBlock: {cidr: $s}}], ports: [{protocol: "TCP", port: 8080}, {protocol: "TCP", port: 8082}]}]}')
	t "$mode: ADD server s (old binary)" add_pod "$conf" "$s" "$PREFIX-ups" "$(caps "$S4/24" fd99::80/64 "$pol")"
	t "$mode: ADD client c (old binary)" add_pod "$conf" "$c" "$PREFIX-upc" "$(caps "$C4/24" fd99::81/64 "$cpol")"
	t "$mode: ADD prober p (old binary)" add_pod "$conf" "$p" "$PREFIX-upp" "$(caps "$P4/24" fd99::82/64)"
	local i extra=()
	for ((i = 0; i < UPGRADE_PODS; i++)); do
		new_ns "$PREFIX-upx$i"
		extra+=("$PREFIX-$mode-upx$i")
		add_pod "$conf" "${extra[-1]}" "$PREFIX-upx$i" '{}' || { t "$mode: ADD extra pod $i" false; break; }
	done
	local total=$((3 + ${#extra[@]}))
	t "$mode: c->s 8080 allowed, p->s 8080 denied before" eval 'tcp_ok "$PREFIX-upc" "$S4" 8080 && tcp_denied "$PREFIX-upp" "$S4" 8080'

	nsenter --net="/run/netns/$PREFIX-upc" python3 "$INTEG_DIR/tools/longconn.py" conn "$S4" 8080 5 >"$WORK/up-conn.json" &
	local cpid=$!
	nsenter --net="/run/netns/$PREFIX-upc" python3 "$INTEG_DIR/tools/longconn.py" pull "$S4" 8082 5 >"$WORK/up-pull.json" &
	local lpid=$!
	nsenter --net="/run/netns/$PREFIX-upp" python3 "$INTEG_DIR/tools/longconn.py" probe "$S4" 8080 5 >"$WORK/up-probe.json" &
	local ppid=$!
	sleep 1.5
	ln -sf "$(readlink -f "$VARIANT")" "$CNIBIN/podfence" # the node's binary is replaced
	PLUGIN=$VARIANT
	if [ "$mode" = tc ]; then
		t "$mode: podfence upgrade (new binary) moves all $total pods" eval \
			'in_ns "$PREFIX-node" env -u CNI_COMMAND "$PLUGIN" upgrade --bpffs-root "$BPFFS" --json >"$WORK/up.json" && [ "$(jq ".moved | length" "$WORK/up.json")" = "$total" ] || why "$(cat "$WORK/up.json")"'
		log "podfence upgrade: $(jq -c '{moved: (.moved | length), milliseconds}' "$WORK/up.json" 2>/dev/null)"
	else
		t "$mode: the new binary's first verb (CHECK s) moves the pods and passes" check_ok "$s"
	fi
	wait "$cpid" "$lpid" "$ppid" || true
	t "$mode: through the upgrade: both connections kept, no stall >= 1 s, denied prober never connected" \
		up_traffic_ok "$WORK/up-conn.json" "$WORK/up-probe.json" "$WORK/up-pull.json"
	t "$mode: every pod on the new datapath (ABI $vabi), the old one removed" up_on_datapath "$vabi"
	for cid in "$s" "$c" "$p"; do t "$mode: CHECK $cid after the upgrade" check_ok "$cid"; done
	t "$mode: c->s 8080 allowed, p->s 8080 denied after" eval 'tcp_ok "$PREFIX-upc" "$S4" 8080 && tcp_denied "$PREFIX-upp" "$S4" 8080'
	jq -cn --arg p "$P4/32" '{ingress: [{from: [{ipBlock: {cidr: $p}}], ports: [{protocol: "TCP", port: 8080}]}]}' >"$WORK/up-pol.json"
	t "$mode: podfence update s (new binary): now p only" run_ok "$WORK/up-upd.out" pf update "$s" eth0 "$WORK/up-pol.json"
	t "$mode: p->s 8080 allowed, c->s denied after update" eval 'tcp_ok "$PREFIX-upp" "$S4" 8080 && tcp_denied "$PREFIX-upc" "$S4" 8080'
	if [ "$oabi" = "$vabi" ]; then
		t "$mode: the old binary, also ABI $vabi, moves the pods to its own datapath" eval \
			'in_ns "$PREFIX-node" env -u CNI_COMMAND "$old" upgrade --bpffs-root "$BPFFS" >"$WORK/down.out" 2>&1 || why "$(cat "$WORK/down.out")"'
		t "$mode: pods on the old binary's datapath ($odp) after moving back" eval \
			'up_on_datapath "$vabi" && [ "$(pf inspect --json | jq -r ".[].datapathDir" | xargs -rn1 basename | sort -u)" = "$odp" ] || why "not on $odp"'
		t "$mode: the updated policy still holds after moving back" eval 'tcp_ok "$PREFIX-upp" "$S4" 8080 && tcp_denied "$PREFIX-upc" "$S4" 8080'
	else
		t "$mode: the old binary refuses to move pods back (downgrade)" eval \
			'! in_ns "$PREFIX-node" env -u CNI_COMMAND "$old" upgrade --bpffs-root "$BPFFS" >"$WORK/down.out" 2>&1 && grep -q "downgrad" "$WORK/down.out" || why "$(cat "$WORK/down.out")"'
		t "$mode: pods still on ABI $vabi after the refused downgrade" up_on_datapath "$vabi"
	fi
	for cid in "$s" "$c" "$p"; do t "$mode: DEL $cid (new binary)" del_ok "$cid"; done
	for cid in "${extra[@]}"; do del_ok "$cid" || t "$mode: DEL $cid" false; done
	t "$mode: nothing left after DEL" eval 'empty_or_why "$(attach_dirs)"'
	# The next groups run the binary under test again; its datapath loads anew.
	ln -sf "$(readlink -f "$old")" "$CNIBIN/podfence"
	PLUGIN=$old
	rm -rf "$BPFFS"/podfence/datapath-abi"$vabi"-*
	for n in ups upc upp; do ip netns del "$PREFIX-$n" 2>/dev/null || true; done
	for ((i = 0; i < UPGRADE_PODS; i++)); do ip netns del "$PREFIX-upx$i" 2>/dev/null || true; done
}
MODE_CASES+=(upgrade_case)
