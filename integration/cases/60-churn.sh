# Day-2 churn: PFTI_CHURN_PODS pods (default 1000; tc-legacy
# PFTI_CHURN_PODS_LEGACY, default 200; --quick 40 unless set) through ADD ->
# traffic -> CHECK -> DEL, PFTI_CHURN_WORKERS (8) at a time, each verb through
# the real libcni, with a GC of the network every second listing the pods the
# "runtime" knows; every 25th pod is forgotten before its DEL and must be
# detached by the next GC (`driver churn`, integration/driver/churn.go, which
# also checks each pod's hooks right after podfence's ADD and DEL and that an
# allowed connection answers and a denied one times out).
# Then nothing may be left: attachment dirs, podfence programs on hooks or in
# tcx/XDP links, active slots, policy maps, conntrack / rule-hit / source /
# fragment entries or non-zero counters of freed slots; the kernel memory of
# podfence's maps and programs (memlock) back within 5% of what it was after
# the first pod's ADD + DEL. Prints pods, workers, wall time, ADD/CHECK/DEL/GC
# p50/p99 and memlock before/after.
# Netns PREFIX-ch<n> (made and deleted by the driver), bridge PREFIX-brch,
# 10.98.0.0/24 (IPv4 only: no DAD wait per pod), network PREFIX-churn.
# shellcheck shell=bash

CH_GW=10.98.0.1

# jq: byte strings ("0x1f") of bpftool -j dumps -> numbers
CH_JQ_DEFS='def hexbyte: ltrimstr("0x") | explode | map(if . >= 97 then . - 87 elif . >= 65 then . - 55 else . - 48 end) | .[0] * 16 + .[1];
def le32($b; $o): ($b[$o] | hexbyte) + 256 * ($b[$o + 1] | hexbyte) + 65536 * ($b[$o + 2] | hexbyte) + 16777216 * ($b[$o + 3] | hexbyte);'

# ch_dump MAP: `bpftool -j map dump` of our datapath's pinned MAP ([] if none).
ch_dump() {
	local f
	f=$(dp_map "$1")
	if [ -n "$f" ]; then bpftool -j map dump pinned "$f" 2>/dev/null || echo '[]'; else echo '[]'; fi
}

# ch_state: one JSON object describing what podfence holds in the kernel now:
# active slots, policy maps (with entries; spares apart), entries of freed
# slots per map, non-zero counters of freed slots, its programs (stubs among them) and links, memlock.
ch_state() {
	local dir f d=$WORK/churn-state
	mkdir -p "$d"
	: >"$d/pinned"
	for dir in "$BPFFS"/podfence/datapath-*; do
		[ -d "$dir" ] || continue
		for f in "$dir"/*; do # prog pins (prog_tc, prog_xdp) are not maps: no id
			bpftool -j map show pinned "$f" 2>/dev/null | jq '.id // empty' >>"$d/pinned" || true
		done
	done
	bpftool -j map show >"$d/maps" && bpftool -j prog show >"$d/progs" && bpftool -j link show >"$d/links" || return 1
	for f in pf_policy pf_conntrack pf_conntrack4 pf_rule_hits pf_sources pf_frags; do
		ch_dump "$f" >"$d/$f"
	done
	jq -s add "$d/pf_conntrack" "$d/pf_conntrack4" >"$d/ct" # IPv6 and IPv4 flows
	# Policy maps that hold entries; an empty one is a freed slot's spare,
	# kept by DEL for the slot's next pod (PolicyStore::clear).
	jq -r "$CH_JQ_DEFS"'.[] | le32(.value; 0)' "$d/pf_policy" | while read -r f; do
		bpftool map getnext id "$f" >/dev/null 2>&1 && echo "$f"
	done | jq -s . >"$d/policy_full"
	# the two arrays (4,096 and 8,192 entries), cut to the entries that matter
	ch_dump pf_pods | jq -c '[.[] | select(.value[4:8] != ["0x00", "0x00", "0x00", "0x00"]) | {key, value}]' >"$d/pf_pods"
	ch_dump pf_counters | jq -c '[.[] | select(any(.values[].value[]; . != "0x00")) | {key}]' >"$d/pf_counters"
	jq -n "$CH_JQ_DEFS"'
		$pinned as $pinned | $progs[0] as $progs | $links[0] as $links | $maps[0] as $maps
		| $pods[0] as $pods | $policy[0] as $policy | $ct[0] as $ct | $hits[0] as $hits
		| $srcs[0] as $srcs | $frags[0] as $frags | $ctrs[0] as $ctrs
		# programs using our maps: the engines and every stub of this datapath
		| [$progs[] | select((.map_ids // []) | any(. as $m | $pinned | index($m)))] as $ours
		| ([$ours[].id]) as $prog_ids
		| [$policy[] | le32(.value; 0)] as $inner
		| ($pinned + [$ours[].map_ids[]] + $inner | unique) as $map_ids
		| [$pods[] | select(le32(.value; 4) != 0) | le32(.key; 0)] as $used
		| ($used | map({key: tostring, value: true}) | from_entries) as $inuse
		| def freed: [.[] | select($inuse[le32(.key; 0) | tostring] | not)] | length;
		{
			active_slots: [$pods[] | select(le32(.value; 4) % 2 == 1)] | length,
			used_slots: $used | length,
			policy_maps: ($full[0] | length), spare_maps: (($inner | length) - ($full[0] | length)),
			ct: $ct | length, rule_hits: $hits | length,
			ct_freed: $ct | freed, rule_hits_freed: $hits | freed,
			sources_freed: $srcs | freed, frags_freed: $frags | freed,
			counters_nonzero: $ctrs | length,
			# pf_counters is indexed slot * 2 + dir
			counters_freed_nonzero: [$ctrs[] | select($inuse[le32(.key; 0) / 2 | floor | tostring] | not)] | length,
			progs: $prog_ids | length,
			stubs: [$ours[] | select(.name | startswith("pf_stub"))] | length,
			links: [$links[] | select(.prog_id as $p | $prog_ids | index($p))] | length,
			tcx_xdp_links: [$links[] | select(.prog_id as $p | $prog_ids | index($p))
				| select(.type == "xdp" or .type == "tcx" or .type == 11)] | length,
			memlock: (([$maps[] | select(.id as $i | $map_ids | index($i)) | .bytes_memlock] | add // 0)
				+ ([$ours[].bytes_memlock] | add // 0))
		}' --slurpfile pinned "$d/pinned" --slurpfile progs "$d/progs" --slurpfile maps "$d/maps" \
		--slurpfile links "$d/links" --slurpfile pods "$d/pf_pods" --slurpfile policy "$d/pf_policy" --slurpfile full "$d/policy_full" \
		--slurpfile ct "$d/ct" --slurpfile hits "$d/pf_rule_hits" --slurpfile srcs "$d/pf_sources" \
		--slurpfile frags "$d/pf_frags" --slurpfile ctrs "$d/pf_counters"
}

ch_driver() { # CONF PODS WORKERS REPORT-FILE MODE
	in_ns "$PREFIX-node" env CNI_PATH="$CNIBIN" CNI_CACHE_DIR="$WORK/cache" \
		"$DRIVER" churn "$1" -pods "$2" -workers "$3" -prefix "$PREFIX" -mode "$5" -server "$CH_GW" \
		>"$4" 2>"$4.err"
}

ch_report_ok() { # REPORT-FILE ORPHANS
	local n
	[ -s "$1" ] || { why "no report: $(tail -5 "$1.err")"; return 1; }
	n=$(jq -r '.failures' "$1")
	[ "$n" = 0 ] || why "$n failures: $(jq -r '.failure_list[]' "$1" | head -20)"
	[ "$(jq -r '.orphans_gced' "$1")" = "$2" ] || why "orphans detached by GC: $(jq -r '.orphans_gced' "$1"), want $2"
	[ "$(jq -r '.gcs' "$1")" -gt 0 ] || why "no GC ran"
	[ -z "$WHY" ]
}

# ch_zero STATE-FILE KEY...: each KEY of the state is 0.
ch_zero() {
	local s=$1 k v
	shift
	for k in "$@"; do
		v=$(jq -r --arg k "$k" '.[$k]' "$s")
		[ "$v" = 0 ] || why "$k = $v"
	done
	[ -z "$WHY" ]
}

# ch_settled STATE-FILE: ch_state once no stub of ours is left, waiting up to
# 3 s (a detached program is freed after an RCU grace period).
ch_settled() {
	local end=$((SECONDS + 3))
	while :; do
		ch_state >"$1" || true
		[ "$(jq -r '.stubs' "$1" 2>/dev/null)" != 0 ] && [ "$SECONDS" -lt "$end" ] || return 0
		sleep 0.2
	done
}

# ch_ge STATE-FILE KEY=MIN...: each KEY of the state is at least MIN.
ch_ge() {
	local s=$1 kv v
	shift
	for kv in "$@"; do
		v=$(jq -r --arg k "${kv%=*}" '.[$k]' "$s")
		[ "$v" -ge "${kv#*=}" ] 2>/dev/null || why "${kv%=*} = $v, want >= ${kv#*=}"
	done
	[ -z "$WHY" ]
}

# ch_control CONF MODE: the state probe sees a live pod (so its zeros mean
# something): ADD through libcni, a ping to the gateway (conntrack entry,
# rule hit, counters), then DEL takes it all away again.
ch_control() {
	local conf=$1 mode=$2 cid=$PREFIX-$2-chctl ns=$PREFIX-chctl st=$WORK/churn-$2.control capargs
	capargs=$(jq -cn --arg p "{\"policyTypes\": [\"Ingress\", \"Egress\"], \"egress\": [{\"to\": [{\"ipBlock\": {\"cidr\": \"$CH_GW/32\"}}]}]}" \
		'{"io.kubernetes.cri.pod-annotations": {"podfence.io/policy": $p}}')
	new_ns "$ns"
	add_pod "$conf" "$cid" "$ns" "$capargs" || { ip netns del "$ns"; return 1; }
	ping_ok "$ns" "$CH_GW"
	ch_state >"$st" || why "reading the state failed"
	ch_ge "$st" active_slots=1 policy_maps=1 stubs=2 ct=1 rule_hits=1 counters_nonzero=1 || true
	[ "$(jq .active_slots "$st")" = 1 ] || why "active slots: $(jq .active_slots "$st"), want 1"
	del_ok "$cid" || true
	ip netns del "$ns"
	ch_settled "$st.after"
	ch_zero "$st.after" active_slots policy_maps stubs ct_freed rule_hits_freed counters_freed_nonzero || true
	[ -z "$WHY" ]
}

ch_first_pod() { # CONF MODE REPORT
	ch_driver "$1" 1 1 "$3" "$2" || true
	ch_report_ok "$3" 0
}
ch_nothing_on_node() { # no veth on the churn bridge, no churn netns
	local v n
	v=$(in_ns "$PREFIX-node" ip -o link show master "$PREFIX-brch" 2>/dev/null || true)
	n=$(ip netns list | grep "^$PREFIX-ch" || true)
	[ -z "$v" ] || why "veths: $v"
	[ -z "$n" ] || why "netns: $(head -3 <<<"$n")"
	[ -z "$WHY" ]
}
ch_same() { # KEY BASE-FILE END-FILE
	[ "$(jq ".$1" "$3")" = "$(jq ".$1" "$2")" ] || why "$1: $(jq ".$1" "$3"), after the first pod: $(jq ".$1" "$2")"
}
ch_memlock_back() { # BASE-FILE END-FILE: within 5%
	local b e
	b=$(jq .memlock "$1") e=$(jq .memlock "$2")
	[ "$b" -gt 0 ] && [ $((e * 100)) -le $((b * 105)) ] && [ $((e * 100)) -ge $((b * 95)) ] ||
		why "memlock $e, after the first pod $b"
}
ch_summary() { # MODE REPORT BASE END
	[ -s "$2" ] && [ -s "$3" ] && [ -s "$4" ] || return 0
	jq -r --arg m "$1" --slurpfile b "$3" --slurpfile e "$4" '
		def ms(v): "\(v.p50_ms)/\(v.p99_ms)/\(v.max_ms)";
		"# churn \($m): \(.pods) pods, \(.workers) workers, \(.wall_s) s wall, \(.gcs) GCs, \(.orphans_gced) orphans detached by GC",
		"# churn \($m): ms p50/p99/max through libcni: ADD \(ms(.add)), CHECK \(ms(.check)), DEL \(ms(.del)), GC \(ms(.gc))",
		"# churn \($m): CPU s (user+sys): plugins \(.cpu_s.plugins_user + .cpu_s.plugins_sys | floor), driver \(.cpu_s.driver_user + .cpu_s.driver_sys | floor)",
		"# churn \($m): podfence alone: ADD \(ms(.plugin_runs["podfence ADD"])), CHECK \(ms(.plugin_runs["podfence CHECK"])), DEL \(ms(.plugin_runs["podfence DEL"])), GC \(ms(.plugin_runs["podfence GC"]))",
		"# churn \($m): left: attachment dirs \($e[0].dirs // 0), stubs \($e[0].stubs), links \($e[0].links), active slots \($e[0].active_slots), conntrack of freed slots \($e[0].ct_freed), rule hits of freed slots \($e[0].rule_hits_freed); memlock \($b[0].memlock) B after the first pod, \($e[0].memlock) B after the churn"' "$2"
}

churn_case() {
	local mode=$1 pfkeys=$3 pods workers conf rep
	pods=${PFTI_CHURN_PODS:-1000}
	[ "$mode" != tc-legacy ] || pods=${PFTI_CHURN_PODS_LEGACY:-$((pods < 200 ? pods : 200))}
	[ "$QUICK" = 0 ] || pods=${PFTI_CHURN_PODS:-40}
	workers=${PFTI_CHURN_WORKERS:-8}
	conf=$WORK/churn-$mode.conflist rep=$WORK/churn-$mode
	make_conflist 10-podfence-containerd.conflist "$PREFIX-churn" "$PREFIX-brch" 10.98.0.0/24 fd98::/64 \
		"$WORK/ipam-churn" "$pfkeys" | jq '.plugins |= map(if .type == "bridge" then
			.ipam.ranges = [[{subnet: "10.98.0.0/24"}]] | .ipam.routes = [{dst: "0.0.0.0/0"}] else . end)' >"$conf"
	echo "# ---- mode $mode: churn, $pods pods, $workers workers"

	# the first pod's ADD + DEL loads the datapath (once per node): the baseline
	t "$mode/churn: first pod's ADD, traffic, CHECK, DEL" ch_first_pod "$conf" "$mode" "$rep.first"
	t "$mode/churn: the state probe sees a live pod's slot, policy, stubs, conntrack, rule hit, counters, and their removal" \
		ch_control "$conf" "$mode"
	ch_settled "$rep.base"

	ch_driver "$conf" "$pods" "$workers" "$rep.json" "$mode" || true
	t "$mode/churn: $pods pods, $workers workers, GC every second: no verb, probe or hook check failed" \
		ch_report_ok "$rep.json" "$((pods / 25))"
	ch_settled "$rep.end"
	jq --argjson n "$(attach_dirs | grep -c . || true)" '. + {dirs: $n}' "$rep.end" >"$rep.end.tmp" && mv "$rep.end.tmp" "$rep.end"
	t "$mode/churn: no attachment dir left" ch_zero "$rep.end" dirs
	t "$mode/churn: no podfence stub or link left (tcx/XDP links of our programs: $(jq .tcx_xdp_links "$rep.end"))" \
		ch_zero "$rep.end" stubs links tcx_xdp_links
	t "$mode/churn: no veth or netns of churn pods left" ch_nothing_on_node
	t "$mode/churn: no active slot, no policy map" ch_zero "$rep.end" active_slots used_slots policy_maps
	t "$mode/churn: no conntrack, rule-hit, source or fragment entry of a freed slot, counters zero" \
		ch_zero "$rep.end" ct_freed rule_hits_freed sources_freed frags_freed counters_freed_nonzero
	t "$mode/churn: as many podfence programs as after the first pod" ch_same progs "$rep.base" "$rep.end"
	t "$mode/churn: memlock within 5% of the first pod's" ch_memlock_back "$rep.base" "$rep.end"
	ch_summary "$mode" "$rep.json" "$rep.base" "$rep.end"
}
MODE_CASES+=(churn_case)
