#!/bin/bash
# Crash sweep: podfence killed (SIGKILL) at every syscall of a verb, then the
# next verbs must recover (issue "day-2 reliability").
#
#   integration/crash_sweep.sh [--plugin PATH] [--verbs "add del check gc update add-first upgrade"]
#                              [--modes "tc xdp tc-legacy"] [--long] [--traffic-every K]
#                              [--old-plugin PATH] [--all-recoveries] [--point NAME#N]...
#
# Default (CI): ADD and DEL in mode tc. --long: every verb in every mode
# (add-first, the ADD that loads the datapath into an empty bpffs, in mode tc
# only: the load does not depend on the mode; upgrade only with
# --old-plugin). --verbs/--modes override.
#
# Method: each verb runs once under `strace -f` from its starting state
# (add: nothing attached, the datapath loaded; add-first: an empty bpffs;
# del, check, gc, update: the pod attached with policy P1 and a connection
# tracked; upgrade: the same, attached by --old-plugin, whose datapath
# differs: the verb is a GC that lists the pod, whose first step moves it),
# then once per recorded syscall with
# `strace -e inject=NAME:signal=KILL:when=N` (N counts calls of NAME only).
# After each kill, with the kernel asked directly (tools/pfstate: bpf(2) and
# rtnetlink, never the plugin's own view):
#   - update: the pod is enforced by P1 or by P2 (CHECK with either passes),
#     and the update, run again, succeeds; check: CHECK passes; upgrade: each
#     hook holds one podfence stub whose slot is active with a policy;
#   - then one of, in turn: DEL with netns and prevResult, DEL without both,
#     GC without the pod in cni.dev/valid-attachments: it succeeds and leaves
#     nothing of the pod (no attachment dir, pin or record copy in
#     /run/podfence, no program at the veth's tcx/XDP/cls_bpf hooks or the
#     pod's XDP hook, no clsact it created, no pf_pods slot in use, no
#     policy map, no conntrack, rule-hit, source, fragment or counter
#     state; after GC also no unfinished datapath build); then ADD; or
#     (every 4th point) ADD at once (upgrade: the GC again, then CHECK);
#     with --all-recoveries, each point is killed four times, once per way
#     (4x the time: the rotation lets a defect that shows only with one
#     way at one point slip through a single mode);
#   - that ADD succeeds and attaches exactly one stub per hook, the pinned
#     ones, of the one active slot; every K-th point (--traffic-every, default
#     10; 3 with --long) real traffic: the allowed port answers, the others
#     do not;
#   - then DEL when the sweep starts from "nothing attached", and it leaves nothing.
# --point NAME#N (repeatable) runs only those kill points, e.g. --point bpf#31
# to reproduce one (points are numbered per name as in the recorded trace).
# A point whose syscall is not reached (the verb exits normally: the recorded
# list varies a little between runs) counts as "not reached".
#
# Netns pfcs-node (the node: host veth; the plugin runs there, entered with
# nsenter --net, never `ip netns exec`, which remounts /sys) and pfcs-pod,
# veth pfcsh0 <-> pfcse0, a private bpffs on a temp dir /tmp/pfcs.*; PFCS_PREFIX
# (pfcs...) renames all of it for a second run. A trap removes everything.
# Prints "ok - ..." / "not ok - ..." per point and a summary per verb and
# mode. Exit 0: every point recovered; 1: some did not; 77: skipped (not root,
# a tool missing).

# "a && b || true" is meant: each step records its failure in WHY, a chain
# stops at its first failure, and the point goes on to report it.
# shellcheck disable=SC2015
set -euo pipefail

PREFIX=${PFCS_PREFIX:-pfcs}
[[ $PREFIX == pfcs* ]] || { echo "PFCS_PREFIX must start with pfcs" >&2; exit 2; }
# shellcheck source=integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODE=$PREFIX-node POD=$PREFIX-pod HOSTIF=${PREFIX}h0 PODIF=${PREFIX}e0 CID=${PREFIX}-c0ffee NET=${PREFIX}-net
HOST_IP=10.251.77.1 POD_IP=10.251.77.2

# new_veth: the pod's veth pair, fresh (so no hook holds anything).
new_veth() {
	ip -n "$NODE" link del "$HOSTIF" 2>/dev/null || true
	ip -n "$NODE" link add "$HOSTIF" type veth peer name "$PODIF" netns "$POD"
	ip -n "$NODE" addr add "$HOST_IP/24" dev "$HOSTIF"
	ip -n "$POD" addr add "$POD_IP/24" dev "$PODIF"
	ip -n "$NODE" link set "$HOSTIF" up
	ip -n "$POD" link set "$PODIF" up
}

# The plugin keeps a copy of each record, and a second bpffs with backup pins
# of the engine maps, in /run/podfence/<bpffsRoot, / as _>/ (plugin/bpf/
# layout.hpp). For a fresh node, and at exit, that goes too.
wipe_mirror() {
	local m=/run/podfence/${BPFFS//\//_}
	[ -n "${BPFFS:-}" ] && [ -d "$m" ] || return 0
	while mountpoint -q "$m/bpffs"; do umount "$m/bpffs"; done
	rm -rf "$m"
}
before_release() { wipe_mirror; } # called by lib.sh's release_work

# outer ARGS: parses them, checks the tools, sets up the world, runs the
# sweep (this script again) inside the node's netns and cleans up.
outer() {
	local v m port rc=0
	PLUGIN="" OLD_PLUGIN="" VERBS="" MODES="" LONG=0 EVERY="" ONLY="" ALL=0
	while [ $# -gt 0 ]; do
		case $1 in
		--plugin) PLUGIN=$2; shift 2 ;;
		--old-plugin) OLD_PLUGIN=$(readlink -f "$2"); shift 2 ;;
		--verbs) VERBS=$2; shift 2 ;;
		--modes | --mode) MODES=$2; shift 2 ;;
		--long) LONG=1; shift ;;
		--traffic-every) EVERY=$2; shift 2 ;;
		--point) ONLY+=" $2"; shift 2 ;;
		--all-recoveries) ALL=1; shift ;;
		-h | --help) sed -n '2,/^$/p' "$0" | sed '$d'; exit 0 ;;
		*) echo "unknown argument: $1" >&2; exit 2 ;;
		esac
	done
	if [ "$LONG" = 1 ]; then
		VERBS=${VERBS:-add del check gc update add-first${OLD_PLUGIN:+ upgrade}} MODES=${MODES:-tc xdp tc-legacy}
		EVERY=${EVERY:-3}
	else
		VERBS=${VERBS:-add del} MODES=${MODES:-tc} EVERY=${EVERY:-10}
	fi
	for v in $VERBS; do
		case $v in add | del | check | gc | update | add-first) ;;
		upgrade) [ -x "$OLD_PLUGIN" ] || { echo "verb upgrade needs --old-plugin PATH" >&2; exit 2; } ;;
		*) echo "unknown verb $v" >&2; exit 2 ;;
		esac
	done
	for m in $MODES; do
		case $m in tc | xdp | tc-legacy) ;; *) echo "unknown mode $m" >&2; exit 2 ;; esac
	done

	skip() { echo "1..0 # SKIP $*"; exit 77; }
	[ "$(id -u)" = 0 ] || skip "needs root"
	for tool in strace go jq socat nsenter ip mountpoint; do
		command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps.sh)"
	done
	[ -e /sys/kernel/btf/vmlinux ] || skip "kernel without BTF"
	[ -n "$PLUGIN" ] || PLUGIN=$(find_plugin) || { echo "no podfence binary: pass --plugin PATH" >&2; exit 2; }
	[ -x "$PLUGIN" ] || { echo "$PLUGIN is not an executable" >&2; exit 2; }
	PLUGIN=$(readlink -f "$PLUGIN")

	trap release_work EXIT
	trap 'exit 130' INT TERM
	make_work "$PREFIX" || skip "cannot mount a bpffs"
	PFSTATE=$WORK/pfstate
	(cd "$INTEG_DIR/tools/pfstate" && GO111MODULE=off GOFLAGS='' GOPATH="$WORK/gopath" \
		GOCACHE="${GOCACHE:-$WORK/gocache}" go build -o "$PFSTATE" .) ||
		{ echo "building integration/tools/pfstate failed" >&2; exit 2; }

	log "plugin $PLUGIN, work dir $WORK, verbs [$VERBS], modes [$MODES]"
	new_ns "$NODE"
	new_ns "$POD"
	new_veth
	# Servers in the pod: each answers "pong".
	for port in 7001 7002 7003; do
		nsenter --net="/run/netns/$POD" socat TCP-LISTEN:"$port",reuseaddr,fork SYSTEM:'echo pong' 2>/dev/null &
		BGPIDS+=($!)
	done
	# The sweep runs inside the node's netns: calls without nsenter (a process
	# costs ~20 ms on a 2-core VM, and a point makes ~10 calls).
	export PFCS_INNER=1 PLUGIN OLD_PLUGIN VERBS MODES LONG EVERY ONLY ALL WORK BPFFS PFSTATE
	unset "${!CNI_@}" # the plugin gets only what each call sets
	in_ns "$NODE" "$BASH" "${BASH_SOURCE[0]}" || rc=$?
	exit "$rc"
}
[ -n "${PFCS_INNER:-}" ] || outer "$@"

# ------------------------------------------------------------------ the world
# fresh_bpffs: a new bpffs instance (a new node as far as podfence knows).
fresh_bpffs() {
	! mountpoint -q "$BPFFS" || umount "$BPFFS"
	wipe_mirror
	mount -t bpf bpf "$BPFFS"
}
# reset_world: after a failed point, whatever it left goes (a new veth drops
# programs attached without a pin) and the sweep goes on from scratch.
reset_world() {
	new_veth
	fresh_bpffs
}

# ------------------------------------------------------------------ netconfs
P1='{"ingress":[{"from":[{"ipBlock":{"cidr":"10.251.77.0/24"}}],"ports":[{"protocol":"TCP","port":7001}]}]}'
P2='{"ingress":[{"from":[{"ipBlock":{"cidr":"10.251.77.0/24"}}],"ports":[{"protocol":"TCP","port":7002}]}]}'
echo "$P2" >"$WORK/p2.json"
mkdir -p "$WORK/conf"
# write_confs MODE: the netconfs of each call, as a runtime sends them.
write_confs() {
	local keys base prev
	keys=$(jq -cn --arg m "$1" 'if $m == "xdp" then {mode: "xdp", xdpMode: "native"}
		elif $m == "tc-legacy" then {mode: "tc", tcBackend: "legacy"} else {mode: "tc"} end')
	base=$(jq -cn --arg n "$NET" --arg r "$BPFFS" --argjson k "$keys" \
		'{cniVersion: "1.1.0", name: $n, type: "podfence", bpffsRoot: $r,
		  capabilities: {"io.kubernetes.cri.pod-annotations": true}} + $k')
	prev=$(jq -cn --arg h "$HOSTIF" --arg p "$PODIF" --arg ns "/run/netns/$POD" --arg ip "$POD_IP/24" \
		'{cniVersion: "1.1.0", interfaces: [{name: $h}, {name: $p, sandbox: $ns}],
		  ips: [{address: $ip, interface: 1}]}')
	pod() { jq -c --argjson prev "$prev" --arg pol "$1" \
		'. + {prevResult: $prev, runtimeConfig: {"io.kubernetes.cri.pod-annotations": {"podfence.io/policy": $pol}}}' <<<"$base"; }
	pod "$P1" >"$WORK/conf/p1.json"
	pod "$P2" >"$WORK/conf/p2.json"
	echo "$base" >"$WORK/conf/bare.json"
	jq -c '. + {"cni.dev/valid-attachments": []}' <<<"$base" >"$WORK/conf/gc.json"
	jq -c --arg c "$CID" --arg i "$PODIF" '. + {"cni.dev/valid-attachments": [{containerID: $c, ifname: $i}]}' \
		<<<"$base" >"$WORK/conf/gc-keep.json"
}

# ------------------------------------------------------------------ calls
WRAP=() # a prefix for the plugin: strace while recording or killing
OUT=$WORK/out
# cni VERB: the plugin ($BIN, else the one under test) as a runtime calls
# it. VERB: ADD, DEL (netns, prevResult), DEL-bare (containerd's second DEL:
# neither), CHECK, CHECK2 (CHECK against P2), GC (the pod not valid),
# GC-keep (the pod valid), UPDATE (the CLI, to P2).
BIN=""
cni() {
	local conf=$WORK/conf/p1.json netns=/run/netns/$POD verb=$1 bin=${BIN:-$PLUGIN}
	case $1 in
	ADD | DEL | CHECK) ;;
	CHECK2) verb=CHECK conf=$WORK/conf/p2.json ;;
	DEL-bare) verb=DEL conf=$WORK/conf/bare.json netns="" ;;
	GC | GC-keep)
		[ "$1" = GC ] && conf=$WORK/conf/gc.json || conf=$WORK/conf/gc-keep.json
		CNI_COMMAND=GC CNI_PATH=/usr/lib/cni "${WRAP[@]}" "$bin" <"$conf" >"$OUT" 2>&1
		return
		;;
	UPDATE)
		"${WRAP[@]}" "$bin" update "$CID" "$PODIF" "$WORK/p2.json" --bpffs-root "$BPFFS" </dev/null >"$OUT" 2>&1
		return
		;;
	esac
	CNI_COMMAND=$verb CNI_CONTAINERID=$CID CNI_IFNAME=$PODIF CNI_NETNS=$netns CNI_PATH=/usr/lib/cni \
		"${WRAP[@]}" "$bin" <"$conf" >"$OUT" 2>&1
}
# call_ok VERB: it succeeds (else WHY says how it failed).
call_ok() { cni "$1" || why "$1 failed (exit $?): $(tail -c 600 "$OUT")"; }

# ------------------------------------------------------------------ probes
PASS=0 FAIL=0 WHY=""
why() { WHY+="${WHY:+$'\n'}$*"; return 1; }
# probe: the kernel's view, into S[key] (values of repeated keys joined by
# spaces) and N[key] (lines). Builtins only from here: a process costs ~20 ms
# on a 2-core VM, and the sweep probes ~3 times per point.
declare -A S N
probe() {
	local out line k
	S=() N=()
	out=$("$PFSTATE" "$BPFFS" "$HOSTIF" "/run/netns/$POD" "$PODIF" 2>&1) ||
		{ why "pfstate failed: $out"; return 1; }
	while IFS= read -r line; do
		k=${line%% *}
		[ "$k" != "$line" ] || line+=" "
		S[$k]+="${S[$k]:+ }${line#* }"
		S[$k]=${S[$k]% }
		N[$k]=$((${N[$k]:-0} + 1))
	done <<<"$out"
}
words() { local -a a; read -ra a <<<"$1"; echo "${#a[@]}"; }

# nothing_left WHEN [builds-ok]: nothing of the pod anywhere (the pod is the
# only one here); and no unfinished datapath build (tmp-*) unless builds-ok:
# only GC and the next load remove those (DEL is about its pod).
nothing_left() {
	local when=$1 builds_ok=${2:-} k
	probe || return 1
	[ -z "${S[dir]:-}" ] || why "$when: attachment dir left: ${S[dir]}"
	[ -z "${S[copies]:-}" ] || why "$when: record copy left in /run/podfence: ${S[copies]}"
	for k in pods policy conntrack rule_hits sources frags counters tcx-ingress tcx-egress \
		xdp-host xdp-pod cls-ingress cls-egress; do
		[ -z "${S[$k]:-}" ] || why "$when: $k: ${S[$k]}"
	done
	[ "${S[clsact]:-}" != yes ] || why "$when: a clsact qdisc is left on $HOSTIF"
	[ -n "$builds_ok" ] || [ -z "${S[tmp]:-}" ] || why "$when: unfinished datapath build left: ${S[tmp]}"
	[ -z "${S[partial]:-}" ] || why "$when: half-removed datapath left: ${S[partial]}"
	[ -z "$WHY" ]
}

# attached MODE WHEN: one attachment, one active slot with its policy and
# source; on each hook of MODE exactly its pinned stub, nothing elsewhere.
attached() {
	local mode=$1 when=$2 pods slot flags v k want_hooks stubs="" hooks="" x
	probe || return 1
	[ "${N[dir]:-0}" = 1 ] && [[ ${S[dir]} == "${CID}_$PODIF "*record* ]] ||
		why "$when: attachment dirs: [${S[dir]:-}]"
	[ "${S[copies]:-}" = "${CID}_$PODIF.json" ] || why "$when: record copies in /run/podfence: [${S[copies]:-}]"
	pods=${S[pods]:-}
	slot=${pods%%:*} flags=${pods#*:} flags=${flags%%:*}
	if [ "$(words "$pods")" != 1 ] || (((flags & 1) == 0)); then
		why "$when: pf_pods slots in use (slot:flags:rev): [$pods], want one active"
	fi
	[ "${S[policy]:-}" = "$slot" ] || why "$when: pf_policy slots [${S[policy]:-}], want [$slot]"
	[ "${S[sources]:-}" = "$slot:1" ] || why "$when: pf_sources [${S[sources]:-}], want [$slot:1]"
	for k in conntrack rule_hits frags; do
		for v in ${S[$k]:-}; do [ "${v%%:*}" = "$slot" ] || why "$when: $k of slot ${v%%:*}: $v"; done
	done
	for v in ${S[counters]:-}; do [ "$v" = "$slot" ] || why "$when: counters of slot $v"; done
	want_hooks=$(hooks_of "$mode")
	for k in tcx-ingress tcx-egress xdp-host xdp-pod cls-ingress cls-egress; do
		v=${S[$k]:-}
		if [[ " $want_hooks " == *" $k "* ]]; then
			[[ $(words "$v") == 1 && $v == *:pf_stub*:"$slot@"*:live ]] ||
				why "$when: $k: [$v], want one podfence stub, of the active slot $slot"
			hooks+=" ${v%%:*}"
		else
			[ -z "$v" ] || why "$when: $k: $v (mode $mode attaches nothing there)"
		fi
	done
	[ -z "${S[partial]:-}" ] || why "$when: half-removed datapath left: ${S[partial]}"
	[ "$mode" != tc-legacy ] || [ "${S[clsact]:-}" = yes ] || why "$when: no clsact on $HOSTIF"
	# "stub" values come in pairs: DIR/PIN ID:NAME
	for x in ${S[stub]:-}; do [[ $x != */* ]] && stubs+=" ${x%%:*}"; done
	same_set "$stubs" "$hooks" ||
		why "$when: programs at the hooks [$hooks ] are not the pinned stubs [$stubs ]"
	[ -z "$WHY" ]
}
# same_set "A..." "B...": the same words, in any order.
same_set() {
	local x
	[ "$(words "$1")" = "$(words "$2")" ] || return 1
	for x in $1; do [[ " $2 " == *" $x "* ]] || return 1; done
}

# enforced MODE WHEN: each hook of MODE holds one podfence stub whose slot is
# active with a policy (pfstate reads the slot and datapath from the stub).
enforced() {
	local mode=$1 when=$2 k v
	probe || return 1
	for k in $(hooks_of "$mode"); do
		v=${S[$k]:-}
		[[ $(words "$v") == 1 && $v == *:pf_stub*:live ]] || why "$when: $k: [$v], want one live podfence stub"
	done
	[ -z "$WHY" ]
}
hooks_of() {
	case $1 in
	tc) echo tcx-ingress tcx-egress ;;
	xdp) echo xdp-host xdp-pod ;;
	tc-legacy) echo cls-ingress cls-egress ;;
	esac
}

probe_tcp() { # PORT WAIT: what the pod's server on PORT answers the node
	socat -u -T2 TCP:"$POD_IP":"$1",connect-timeout="$2" STDOUT </dev/null 2>/dev/null || true
}
# traffic ALLOWED-PORT: it answers; the two other ports do not (checked in
# parallel: a denied probe waits its full timeout).
traffic() {
	local ok=$1 p pids=() f=$WORK/denied
	: >"$f"
	for p in 7001 7002 7003; do
		[ "$p" = "$ok" ] && continue
		{ [ -z "$(probe_tcp "$p" 0.7)" ] || echo "$p" >>"$f"; } &
		pids+=($!)
	done
	[ "$(probe_tcp "$ok" 3)" = pong ] || why "traffic: port $ok allowed but no answer"
	wait "${pids[@]}"
	[ ! -s "$f" ] || why "traffic: port(s) $(tr '\n' ' ' <"$f")answered, the policy denies them"
}
# conn: one allowed connection, so the slot has conntrack, rule-hit and counter state.
conn() { [ "$(probe_tcp 7001 3)" = pong ] || why "allowed connection to port 7001 failed"; }

# ------------------------------------------------------------------ the sweep
# starts_clean VERB: its starting state has nothing attached.
starts_clean() { [ "$1" = add ] || [ "$1" = add-first ]; }
cni_verb() { # VERB of the sweep -> the call
	case $1 in
	add | add-first) cni ADD ;;
	del) cni DEL ;;
	check) cni CHECK ;;
	gc) cni GC ;;
	update) cni UPDATE ;;
	upgrade) cni GC-keep ;; # its first step moves the pod onto this binary's datapath
	esac
}
# baseline VERB MODE: the state the verb starts from; WHY says what failed.
baseline() {
	local verb=$1 mode=$2
	if [ "$verb" = add-first ]; then
		fresh_bpffs
	elif [ "$verb" = upgrade ]; then
		# a node where the older binary attached the pod
		fresh_bpffs
		BIN=$OLD_PLUGIN call_ok ADD && attached "$mode" "ADD by $OLD_PLUGIN" && conn
	elif starts_clean "$verb"; then
		# the datapath loaded, as when the verb was recorded
		call_ok ADD && call_ok DEL && nothing_left "before $verb" || true
	else
		call_ok ADD && attached "$mode" "baseline ADD" && conn
	fi
}

declare -A TRIED RECOVERED UNREACHED FAILED FIRST
RECOVERY=(DEL DEL-bare GC)
# point VERB MODE NAME N I: the I-th point: kill at the N-th NAME call, then
# recover one way (in turn), or every way with --all-recoveries.
point() {
	local v
	if [ "$ALL" = 1 ]; then
		for v in 0 1 2 3; do kill_point "$@" "$v" || return 1; done
	else
		kill_point "$@" $(($5 % 4))
	fi
}
# kill_point VERB MODE NAME N I VARIANT
kill_point() {
	local verb=$1 mode=$2 name=$3 n=$4 i=$5 variant=$6 rc=0 how sample=0 label l rec
	label="$verb $mode $name#$n"
	WHY=""
	if [ $((i % EVERY)) = 0 ] || [ "$i" = 1 ]; then sample=1; fi
	WRAP=(strace -f -qq -o /dev/null -e trace="$name" -e inject="$name":signal=KILL:when="$n")
	# (2>/dev/null: bash's own "Killed" notice; the plugin's output is in OUT)
	cni_verb "$verb" 2>/dev/null || rc=$?
	WRAP=()
	case $rc in
	137) how=killed ;;
	0) how="not reached" ;;
	*) how="exit $rc" && why "$verb exited $rc without being killed: $(tail -c 400 "$OUT")" ;;
	esac

	# What the verb itself must guarantee after a kill.
	if [ "$verb" = update ]; then
		if cni CHECK; then
			how+=", P1 held"
			[ "$sample" = 0 ] || traffic 7001
		elif cni CHECK2; then
			how+=", P2 held"
			[ "$sample" = 0 ] || traffic 7002
		else
			why "after the kill neither P1 nor P2 is enforced: $(tail -c 400 "$OUT")"
		fi
		call_ok UPDATE && call_ok CHECK2
	elif [ "$verb" = check ]; then
		call_ok CHECK
	elif [ "$verb" = upgrade ]; then
		# Enforced right after the kill, by one datapath or the other.
		enforced "$mode" "after the kill" && { [ "$sample" = 0 ] || traffic 7001; } || true
	fi

	# Recovery, one way per point in turn.
	case $variant in
	0 | 1 | 2)
		rec=${RECOVERY[variant]}
		how+=", then $rec"
		call_ok "$rec" && nothing_left "after $rec" "$([ "$rec" = GC ] || echo builds-ok)" || true
		call_ok ADD && attached "$mode" "ADD after it" || true
		;;
	3)
		if [ "$verb" = upgrade ]; then # the next verb finishes the move
			how+=", then GC (pod valid)"
			call_ok GC-keep && attached "$mode" "GC after it" && call_ok CHECK || true
		else
			how+=", then ADD"
			call_ok ADD && attached "$mode" "ADD right after the kill" || true
		fi
		;;
	esac
	[ "$sample" = 0 ] || [ -n "$WHY" ] || { traffic 7001 && how+=", traffic"; } || true
	if [ "$variant" = 3 ] || starts_clean "$verb"; then
		call_ok DEL && nothing_left "DEL after ADD" || true
	fi
	# The next point's start.
	if [ -z "$WHY" ] && [ "$verb" = upgrade ]; then
		{ [ "$variant" = 3 ] || { call_ok DEL && nothing_left "DEL after ADD"; }; } &&
			baseline "$verb" "$mode" || true
	elif [ -z "$WHY" ] && ! starts_clean "$verb"; then
		{ [ "$variant" != 3 ] || { call_ok ADD && attached "$mode" "baseline ADD"; }; } && conn || true
	fi
	[ "$verb" != add-first ] || [ -n "$WHY" ] || fresh_bpffs

	TRIED[$verb/$mode]=$((${TRIED[$verb/$mode]:-0} + 1))
	if [ -n "$WHY" ]; then
		echo "not ok - $label ($how)"
		while IFS= read -r l; do echo "#   $l"; done <<<"$WHY"
		FAIL=$((FAIL + 1))
		FAILED[$verb/$mode]=$((${FAILED[$verb/$mode]:-0} + 1))
		[ -n "${FIRST[$verb/$mode]:-}" ] || FIRST[$verb/$mode]="$name#$n ($how): $(head -3 <<<"$WHY" | tr '\n' ';')"
		# Whatever is left goes; the next point starts from scratch.
		reset_world
		WHY=""
		baseline "$verb" "$mode" || true
		[ -z "$WHY" ] || { echo "# cannot restore the starting state of $verb/$mode: $WHY"; return 1; }
		return 0
	fi
	echo "ok - $label ($how)"
	PASS=$((PASS + 1))
	if [ "$rc" = 0 ]; then
		UNREACHED[$verb/$mode]=$((${UNREACHED[$verb/$mode]:-0} + 1))
	else
		RECOVERED[$verb/$mode]=$((${RECOVERED[$verb/$mode]:-0} + 1))
	fi
}

# sweep VERB MODE: record the verb's syscalls, then one point per syscall.
sweep() {
	local verb=$1 mode=$2 trace=$WORK/trace-$1-$2 i=0 name n start=$SECONDS
	write_confs "$mode"
	reset_world
	WHY=""
	baseline "$verb" "$mode" || true
	if [ -n "$WHY" ]; then
		echo "not ok - $verb $mode: setup: $WHY"
		FAIL=$((FAIL + 1))
		return 0
	fi
	WRAP=(strace -f -qq -o "$trace")
	cni_verb "$verb" || why "recording $verb: exit $?: $(tail -c 400 "$OUT")"
	WRAP=()
	# Back to the starting state for the first point.
	if starts_clean "$verb"; then
		call_ok DEL && nothing_left "after recording" || true
		[ "$verb" != add-first ] || fresh_bpffs
	elif [ "$verb" = update ]; then
		call_ok DEL && call_ok ADD && conn || true
	elif [ "$verb" = upgrade ]; then
		call_ok DEL && baseline "$verb" "$mode" || true
	elif [ "$verb" != check ]; then
		call_ok ADD && conn || true
	fi
	if [ -n "$WHY" ]; then
		echo "not ok - $verb $mode: recording: $WHY"
		FAIL=$((FAIL + 1))
		return 0
	fi
	# "PID  name(" lines of the traced process (the first pid): the N-th call
	# of each name, in order. strace counts injection per name and process.
	awk 'NR == 1 { pid = $1 } $1 == pid && match($0, /^[0-9]+ +[a-z0-9_]+\(/) {
		s = substr($0, RSTART, RLENGTH - 1); sub(/^[0-9]+ +/, "", s); c[s]++; print s, c[s] }' \
		"$trace" >"$trace.points"
	log "$verb/$mode: $(wc -l <"$trace.points") syscalls recorded"
	while read -r -u 9 name n; do
		i=$((i + 1))
		[ -z "$ONLY" ] || [[ " $ONLY " == *" $name#$n "* ]] || continue
		point "$verb" "$mode" "$name" "$n" "$i" || break
	done 9<"$trace.points"
	log "$verb/$mode: $((SECONDS - start)) s"
}

START=$SECONDS
for m in $MODES; do
	for v in $VERBS; do
		# add-first in mode tc only under --long: the datapath load is the same in every mode
		[ "$v" != add-first ] || [ "$m" = tc ] || [ "$LONG" = 0 ] || continue
		sweep "$v" "$m"
	done
done

echo "# summary (kill points tried: recovered / not reached / failed)"
for m in $MODES; do
	for v in $VERBS; do
		k=$v/$m
		[ -n "${TRIED[$k]:-}" ] || continue
		echo "# $k: ${TRIED[$k]} tried: ${RECOVERED[$k]:-0} recovered / ${UNREACHED[$k]:-0} not reached / ${FAILED[$k]:-0} failed${FIRST[$k]:+; first failure: ${FIRST[$k]}}"
	done
done
echo "# $((SECONDS - START)) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
