# A lost bpffs: the mount under podfence's pins goes away (umount -l) while
# pods run with live traffic. The pods must stay filtered (the devices hold
# the stubs: tcx by BPF_PROG_ATTACH, XDP by netlink, cls_bpf), CHECK must
# fail naming what is lost and the repair, a DEL before the repair must
# still remove its pod, and `podfence repair` must restore CHECK, update and
# DEL from the kernel and the record copies in /run/podfence.
# Sourced by integration/run.sh. Namespaces pfti-ls*, addresses 10.99.0.90-99.
# shellcheck shell=bash

bpffs_loss_case() {
	local mode=$1 conf=$2
	local s=$PREFIX-$mode-lss c=$PREFIX-$mode-lsc d=$PREFIX-$mode-lsd S4=10.99.0.90 pol
	echo "# ---- mode $mode: bpffs lost under live pods, then podfence repair"
	for n in lss lsc lsd; do new_ns "$PREFIX-$n"; done
	serve_tcp "$PREFIX-lss" 8080
	serve_tcp "$PREFIX-lss" 9090
	wait_listen "$PREFIX-lss" t 8080 9090
	pol='{"ingress": [{"ports": [{"protocol": "TCP", "port": 8080}]}]}'
	t "$mode: ADD s (ingress TCP 8080 only)" add_pod "$conf" "$s" "$PREFIX-lss" "$(caps "$S4/24" fd99::90/64 "$pol")"
	t "$mode: ADD c" add_pod "$conf" "$c" "$PREFIX-lsc" "$(caps 10.99.0.91/24 fd99::91/64)"
	t "$mode: ADD d (deleted before the repair)" add_pod "$conf" "$d" "$PREFIX-lsd" "$(caps 10.99.0.92/24 fd99::92/64)"

	nsenter --net="/run/netns/$PREFIX-lsc" python3 "$INTEG_DIR/tools/longconn.py" conn "$S4" 8080 4 >"$WORK/ls-conn.json" &
	local cpid=$!
	nsenter --net="/run/netns/$PREFIX-lsc" python3 "$INTEG_DIR/tools/longconn.py" probe "$S4" 9090 4 >"$WORK/ls-probe.json" &
	local ppid=$!
	sleep 1
	umount -l "$BPFFS"
	wait "$cpid" "$ppid" || true
	t "$mode: through the loss: connection kept, no stall >= 1 s, 9090 never connected" \
		up_traffic_ok "$WORK/ls-conn.json" "$WORK/ls-probe.json"
	t "$mode: after the loss s still denies 9090 and admits 8080" eval \
		'tcp_denied "$PREFIX-lsc" "$S4" 9090 && tcp_ok "$PREFIX-lsc" "$S4" 8080'
	t "$mode: CHECK s fails 103: pins gone, still filtered, run podfence repair" check_fails_103 "$s" \
		'pins under .* are gone.*still runs its stubs.*podfence repair'
	t "$mode: DEL d before the repair succeeds" del_ok "$d"
	POD_SLOT[$d]="" # its slot was in the lost datapath, which repair replaces
	t "$mode: DEL d removed its programs and its record copy" eval \
		'detached_at_del "$d" "$mode" && nothing_attached "$d" && ! ls "/run/podfence/${BPFFS//\//_}/" 2>/dev/null | grep -q "^${d}_"'
	t "$mode: podfence repair restores s and c" eval \
		'in_ns "$PREFIX-node" env -u CNI_COMMAND "$PLUGIN" repair --bpffs-root "$BPFFS" --json >"$WORK/repair.json" &&
		 [ "$(jq ".repaired | length" "$WORK/repair.json")" = 2 ] || why "$(cat "$WORK/repair.json")"'
	t "$mode: CHECK s after repair" check_ok "$s"
	t "$mode: CHECK c after repair" check_ok "$c"
	t "$mode: s still denies 9090 and admits 8080 after repair" eval \
		'tcp_denied "$PREFIX-lsc" "$S4" 9090 && tcp_ok "$PREFIX-lsc" "$S4" 8080'
	echo '{"ingress": [{"ports": [{"protocol": "TCP", "port": 9090}]}]}' >"$WORK/ls-pol.json"
	t "$mode: podfence update s after repair: 9090 only" run_ok "$WORK/ls-upd.out" pf update "$s" eth0 "$WORK/ls-pol.json"
	t "$mode: s admits 9090 and denies 8080 after update" eval \
		'tcp_ok "$PREFIX-lsc" "$S4" 9090 && tcp_denied "$PREFIX-lsc" "$S4" 8080'
	t "$mode: DEL s" del_ok "$s"
	t "$mode: DEL c" del_ok "$c"
	t "$mode: nothing left after DEL" eval 'empty_or_why "$(attach_dirs)" && nothing_attached "$s" && nothing_attached "$c"'
	for n in lss lsc lsd; do ip netns del "$PREFIX-$n" 2>/dev/null || true; done
}
MODE_CASES+=(bpffs_loss_case)
