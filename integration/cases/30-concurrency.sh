# Six parallel ADDs and DELs through libcni (skipped with --quick).
# shellcheck shell=bash

# conc_parallel VERB CONF MODE: VERB (add|del) of pods p1..p6 through libcni,
# all six at once; prints " p<i>:<driver output>" for each one that failed.
conc_parallel() {
	local verb=$1 conf=$2 mode=$3 i cid pids=()
	for i in 1 2 3 4 5 6; do
		cid=$PREFIX-$mode-p$i
		(drv "$verb" "$conf" "$cid" "/run/netns/$PREFIX-p$i" "${POD_CAPS[$cid]}") &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || printf ' p%d:%s' $((i + 1)) "$(cat "$WORK/res/$PREFIX-$mode-p$((i + 1)).$verb")"
	done
}

concurrency_case() {
	local mode=$1 conf1=$2 i cid rcs before
	[ "$QUICK" = 0 ] || return 0
	before=$(attach_dirs)
	for i in 1 2 3 4 5 6; do new_ns "$PREFIX-p$i"; done
	for i in 1 2 3 4 5 6; do
		cid=$PREFIX-$mode-p$i
		POD_NS[$cid]=$PREFIX-p$i POD_CONF[$cid]=$conf1
		POD_CAPS[$cid]=$(caps "10.99.0.2$i/24" "fd99::2$i/64" "$(jq -cn --arg c "10.99.0.1$i/32" '{ingress: [{from: [{ipBlock: {cidr: $c}}]}]}')")
	done
	rcs=$(conc_parallel add "$conf1" "$mode")
	t "$mode: 6 parallel ADDs succeed" empty_or_why "$rcs"
	t "$mode: 6 attachments exist" eval '[ "$(comm -13 <(echo "$before") <(attach_dirs) | wc -l)" = 6 ] || why "$(attach_dirs)"' 
	# the policy of each is its own: from 10.99.0.1<i> only; pod p1 is reachable only from .11 (b, gone) => node denied
	serve_tcp "$PREFIX-p1" 7000
	wait_listen "$PREFIX-p1" t 7000
	t "$mode: parallel pod p1 enforces its own policy (node denied)" tcp_denied "$PREFIX-node" 10.99.0.21 7000
	rcs=$(conc_parallel del "$conf1" "$mode")
	t "$mode: 6 parallel DELs succeed" empty_or_why "$rcs"
	t "$mode: all parallel pods' state gone" same_dirs "$before"
	for i in 1 2 3 4 5 6; do ip netns del "$PREFIX-p$i"; done
}
MODE_CASES+=(concurrency_case)
