# `podfence metrics` read by the real consumers: two Kubernetes-named pods
# (K8S_POD_* CNI_ARGS, as containerd passes them) get allowed and denied
# traffic; `promtool check metrics` (Debian's prometheus) accepts the output
# of stdout and of --listen without a problem or lint warning; --textfile's
# file is served by Debian's prometheus-node-exporter (textfile collector
# only) and its /metrics carries podfence's series with the values of
# `podfence counters --json`; --listen answers /metrics, 404s other paths and
# stops cleanly on SIGTERM. node_exporter and the --listen server run inside
# $PREFIX-node, so their loopback ports are the test's own; both are started
# by nsenter, which execs, so $! is the server itself (killed at the end and
# by release_work).
# Sourced by integration/run.sh. Bridge $PREFIX-br92, 10.99.92.0/24,
# fd99:92::/64, netns $PREFIX-mx*.
# shellcheck shell=bash

MX_NE_PORT=9100 # node_exporter's default, free in $PREFIX-node

# mx_compare BEFORE AFTER METRICS-FILE NAMESPACE:POD...: every packet/byte
# counter and rule hit `podfence counters --json` reports has its series in
# METRICS-FILE (Prometheus text, any label order) with the pod's Kubernetes
# labels and a value between the counters read just BEFORE and AFTER the
# metrics were (equal when nothing passed in between; the node's ARP/ND may
# add a packet); prints what differs.
mx_compare() {
	python3 - "$@" <<'EOF'
import json, re, sys
counters = json.load(open(sys.argv[1]))
after = {(r["containerID"], r["ifname"]): r for r in json.load(open(sys.argv[2]))}
pods = sys.argv[4:]
series = {}
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
for line in open(sys.argv[3]):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    m = line_re.match(line)
    if not m:
        print("unparsable line:", line)
        continue
    labels = dict(label_re.findall(m.group(2) or ""))
    series[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
bad = 0
def expect(name, labels, lo, hi):
    global bad
    got = series.get((name, frozenset(labels.items())))
    if got is None or not lo <= int(got) <= hi:
        bad += 1
        print("%s%s: %s, counters says %d..%d" % (name, labels, got, lo, hi))
if len(counters) != len(pods):
    print("counters lists %d attachments, want %d" % (len(counters), len(pods)))
    bad += 1
for rec, pod in zip(counters, pods):
    ns, name = pod.split(":")
    base = {"namespace": ns, "pod": name, "container_id": rec["containerID"], "interface": rec["ifname"]}
    later = after[(rec["containerID"], rec["ifname"])]["directions"]
    for d, c in rec["directions"].items():
        for verdict, key in (("allowed", "allowed"), ("denied", "denied"), ("spoofed", "spoofed"), ("would_deny", "wouldDeny")):
            if key + "Packets" not in c:
                continue  # a counters view without it
            for unit, fam in (("Packets", "podfence_packets_total"), ("Bytes", "podfence_bytes_total")):
                expect(fam, dict(base, direction=d, verdict=verdict), c[key + unit], later[d][key + unit])
        for rule, n in c["ruleHits"].items():
            label = "none" if rule in ("none", "4294967294") else rule
            expect("podfence_rule_hits_total", dict(base, direction=d, rule=label), n, later[d]["ruleHits"][rule])
print("%d series compared" % len(series), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# mx_series FILE NAME: the value of an unlabelled series (empty if absent).
mx_series() { awk -v n="$2" '$1 == n { print $2 }' "$1"; }

# mx_promtool FILE: promtool finds no problem (errors or lint) in FILE.
mx_promtool() {
	local out
	command -v promtool >/dev/null || return 0 # reported by mx_t_promtool
	out=$(promtool check metrics <"$1" 2>&1) || why "promtool check metrics failed: $out"
	[ -z "$out" ] || why "promtool: $out"
}

# mx_t_promtool NAME FILE: t NAME mx_promtool FILE, a SKIP without promtool.
mx_t_promtool() {
	if command -v promtool >/dev/null; then
		t "$1" mx_promtool "$2"
	else
			ok "$1 # SKIP promtool is not installed (scripts/install-deps.sh)"
	fi
}

# mx_compare_ok BEFORE AFTER FILE PODS...: mx_compare with its output as the reason.
mx_compare_ok() {
	local out
	out=$(mx_compare "$@" 2>&1) || why "$out"
}

# mx_node_values FILE: node-wide series are present and sane.
mx_node_values() {
	local f=$1 cap
	cap=$(sed -n 's/^#define PF_CT_MAX_ENTRIES[[:space:]]*\([0-9]*\).*/\1/p' "$REPO_DIR/bpf/podfence_abi.h")
	cap=$((2 * cap)) # two tables: IPv4 and IPv6
	[ "$(mx_series "$f" podfence_conntrack_max_entries)" = "$cap" ] ||
		why "podfence_conntrack_max_entries $(mx_series "$f" podfence_conntrack_max_entries), want $cap"
	[ "$(mx_series "$f" podfence_conntrack_entries)" -ge 1 ] 2>/dev/null ||
		why "podfence_conntrack_entries: $(mx_series "$f" podfence_conntrack_entries)"
	[ "$(mx_series "$f" podfence_metrics_read_errors)" = 0 ] || why "read errors: $(grep read_errors "$f")"
	grep -Eq '^podfence_build_info\{.*version="[^"]+".*\} 1$' "$f" || why "no podfence_build_info"
	grep -Eq '^podfence_datapath_info\{.*name="datapath-abi[0-9]+-[0-9a-f]+".*\} 1$' "$f" ||
		why "no podfence_datapath_info"
	grep -Eq '^podfence_attachments\{.*enforcement="enforce".*\} 2$' "$f" ||
		why "podfence_attachments: $(grep '^podfence_attachments' "$f" | tr '\n' ';')"
}

# mx_wait_http NS URL OUT: URL answers 200 within 10 s; the body in OUT.
mx_wait_http() {
	local _
	for _ in $(seq 100); do
		in_ns "$1" curl -fsS -m 5 -o "$3" "$2" 2>/dev/null && return 0
		sleep 0.1
	done
	why "no answer from $2 in $1"
}

# mx_metrics_to FILE: `podfence metrics` succeeds, its stdout in FILE.
mx_metrics_to() { pf metrics >"$1" 2>"$1.err" || why "podfence metrics failed: $(cat "$1.err")"; }

# mx_stopped RC STDERR: the --listen server exited 0 saying so.
mx_stopped() { [ "$1" = 0 ] && grep -q "stopped" "$2" || why "exit $1: $(cat "$2")"; }

# mx_status NS URL [CURL-ARGS]: the HTTP status of URL.
mx_status() {
	local ns=$1 url=$2
	shift 2
	in_ns "$ns" curl -s -m 5 -o /dev/null -w '%{http_code}' "$@" "$url" || true
}

metrics_case() {
	local mode=$1 conf pfkeys=$3 tool
	for tool in curl python3; do
		if ! command -v "$tool" >/dev/null; then
			ok "$mode/metrics # SKIP $tool is not installed (scripts/install-deps.sh)"
			return 0
		fi
	done
	local a=$PREFIX-$mode-mxa b=$PREFIX-$mode-mxb nsa=$PREFIX-mxa nsb=$PREFIX-mxb node=$PREFIX-node
	local A4=10.99.92.10 B4=10.99.92.11 out=$WORK/mx-$mode pol
	echo "# ---- mode $mode: metrics through promtool and node_exporter"
	mkdir -p "$out/textfile"
	conf=$WORK/mx-$mode.conflist
	make_conflist 10-podfence-containerd.conflist "$PREFIX-net92" "$PREFIX-br92" 10.99.92.0/24 fd99:92::/64 \
		"$WORK/ipam-mx-$mode" "$pfkeys" >"$conf"
	new_ns "$nsa"
	new_ns "$nsb"
	serve_tcp "$nsa" 8080
	serve_tcp "$nsa" 9090
	serve_tcp "$nsb" 9090
	wait_listen "$nsa" t 8080 9090
	wait_listen "$nsb" t 9090
	# a isolates ingress (TCP 8080 only, rule 0); b has no policy (rule "default")
	pol='{"ingress": [{"ports": [{"protocol": "TCP", "port": 8080}]}]}'
	CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=mx-shop;K8S_POD_NAME=web-a;K8S_POD_UID=0d1e6f3a-92aa-4b1c-9c1e-00000000000a" \
		t "$mode/metrics: ADD a (K8S_POD_* CNI_ARGS)" add_pod "$conf" "$a" "$nsa" "$(caps "$A4/24" fd99:92::10/64 "$pol")"
	CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=mx-shop;K8S_POD_NAME=db-b;K8S_POD_UID=0d1e6f3a-92aa-4b1c-9c1e-00000000000b" \
		t "$mode/metrics: ADD b (K8S_POD_* CNI_ARGS)" add_pod "$conf" "$b" "$nsb" "$(caps "$B4/24" fd99:92::11/64)"
	t "$mode/metrics: a's 8080 answers" tcp_ok "$node" "$A4" 8080
	t "$mode/metrics: a's 9090 denied" tcp_denied "$node" "$A4" 9090
	t "$mode/metrics: b's 9090 answers" tcp_ok "$node" "$B4" 9090
	# pods in CID order, as `podfence counters` lists them
	local pods=(mx-shop:web-a mx-shop:db-b)
	[[ $a < $b ]] || pods=(mx-shop:db-b mx-shop:web-a)
	# Each output is compared with `podfence counters --json` read just
	# before and after it.
	pf counters --json >"$out/c0.json"
	t "$mode/metrics: podfence metrics succeeds" mx_metrics_to "$out/stdout.prom"
	pf counters --json >"$out/c1.json"
	log "podfence metrics (first lines): $(head -4 "$out/stdout.prom" | tr '\n' '|')"
	mx_t_promtool "$mode/metrics: promtool check metrics accepts stdout" "$out/stdout.prom"
	t "$mode/metrics: stdout matches podfence counters" mx_compare_ok "$out/c0.json" "$out/c1.json" "$out/stdout.prom" "${pods[@]}"
	t "$mode/metrics: node-wide series (conntrack, build, datapath, attachments)" mx_node_values "$out/stdout.prom"
	t "$mode/metrics: denied and rule series are non-zero" eval '
		grep -Eq "^podfence_packets_total\{namespace=\"mx-shop\",pod=\"web-a\",.*direction=\"ingress\",verdict=\"denied\"\} [1-9]" "$out/stdout.prom" || why "no denied packets of web-a"
		grep -Eq "^podfence_rule_hits_total\{namespace=\"mx-shop\",pod=\"web-a\",.*direction=\"ingress\",rule=\"0\"\} [1-9]" "$out/stdout.prom" || why "no rule 0 hits of web-a"
		grep -Eq "^podfence_rule_hits_total\{namespace=\"mx-shop\",pod=\"db-b\",.*direction=\"ingress\",rule=\"default\"\} [1-9]" "$out/stdout.prom" || why "no default hits of db-b"'

	# --textfile + node_exporter
	t "$mode/metrics: --textfile writes podfence.prom" run_ok "$out/textfile.err" pf metrics --textfile "$out/textfile"
	pf counters --json >"$out/c2.json"
	t "$mode/metrics: --textfile leaves only podfence.prom" eval '[ "$(ls -A "$out/textfile")" = podfence.prom ] || why "$(ls -A "$out/textfile")"'
	mx_t_promtool "$mode/metrics: promtool check metrics accepts the textfile" "$out/textfile/podfence.prom"
	t "$mode/metrics: the textfile matches podfence counters" mx_compare_ok "$out/c1.json" "$out/c2.json" "$out/textfile/podfence.prom" "${pods[@]}"
	if ! command -v prometheus-node-exporter >/dev/null; then
		ok "$mode/metrics: node_exporter # SKIP prometheus-node-exporter is not installed (scripts/install-deps.sh)"
	else
	in_ns "$node" prometheus-node-exporter --web.listen-address="127.0.0.1:$MX_NE_PORT" \
		--collector.disable-defaults --collector.textfile \
		--collector.textfile.directory="$out/textfile" >"$out/node_exporter.log" 2>&1 &
	local nepid=$!
	BGPIDS+=("$nepid")
	t "$mode/metrics: node_exporter serves /metrics" mx_wait_http "$node" "http://127.0.0.1:$MX_NE_PORT/metrics" "$out/ne.prom"
	t "$mode/metrics: node_exporter read the textfile without error" eval '
		grep -qx "node_textfile_scrape_error 0" "$out/ne.prom" || why "$(grep -E "textfile|podfence" "$out/node_exporter.log" | tail -3)"
		grep -q "^# TYPE podfence_packets_total counter" "$out/ne.prom" || why "no podfence_packets_total family"'
	t "$mode/metrics: node_exporter's podfence series match podfence counters" mx_compare_ok "$out/c1.json" "$out/c2.json" "$out/ne.prom" "${pods[@]}"
	log "node_exporter: $(grep -c '^podfence_' "$out/ne.prom") podfence series, $(grep '^node_textfile_scrape_error' "$out/ne.prom")"
	kill "$nepid" 2>/dev/null
	wait "$nepid" 2>/dev/null
	fi

	# --listen inside $PREFIX-node on an ephemeral port
	nsenter --net="/run/netns/$node" env -u CNI_COMMAND "$PLUGIN" metrics --listen 127.0.0.1:0 --bpffs-root "$BPFFS" \
		>"$out/listen.out" 2>"$out/listen.err" &
	local lpid=$! port="" _
	BGPIDS+=("$lpid")
	for _ in $(seq 100); do
		port=$(sed -n 's|.*serving http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$out/listen.err")
		[ -n "$port" ] && break
		sleep 0.05
	done
	t "$mode/metrics: --listen reports its port" eval '[ -n "$port" ] || why "stderr: $(cat "$out/listen.err")"'
	if [ -n "$port" ]; then
		pf counters --json >"$out/c3.json"
		t "$mode/metrics: --listen serves /metrics" mx_wait_http "$node" "http://127.0.0.1:$port/metrics" "$out/listen.prom"
		pf counters --json >"$out/c4.json"
		mx_t_promtool "$mode/metrics: promtool check metrics accepts --listen's /metrics" "$out/listen.prom"
		t "$mode/metrics: --listen matches podfence counters" mx_compare_ok "$out/c3.json" "$out/c4.json" "$out/listen.prom" "${pods[@]}"
		t "$mode/metrics: --listen content type is 0.0.4 text" eval '
			ct=$(in_ns "$node" curl -s -m 5 -o /dev/null -w "%{content_type}" "http://127.0.0.1:$port/metrics")
			[ "$ct" = "text/plain; version=0.0.4; charset=utf-8" ] || why "Content-Type: $ct"'
		t "$mode/metrics: --listen 404s other paths, 405s POST" eval '
			s1=$(mx_status "$node" "http://127.0.0.1:$port/") s2=$(mx_status "$node" "http://127.0.0.1:$port/metricsx")
			s3=$(mx_status "$node" "http://127.0.0.1:$port/metrics" -X POST)
			[ "$s1 $s2 $s3" = "404 404 405" ] || why "got $s1 $s2 $s3"'
		# a fresh read per scrape: new denied traffic shows in the next one
		tcp_denied "$node" "$A4" 9090 || true
		t "$mode/metrics: --listen reads fresh values per scrape" eval '
			in_ns "$node" curl -fsS -m 5 "http://127.0.0.1:$port/metrics" >"$out/listen2.prom"
			k="namespace=\"mx-shop\",pod=\"web-a\""
			v1=$(grep "^podfence_packets_total{$k.*direction=\"ingress\",verdict=\"denied\"}" "$out/listen.prom" | cut -d" " -f2)
			v2=$(grep "^podfence_packets_total{$k.*direction=\"ingress\",verdict=\"denied\"}" "$out/listen2.prom" | cut -d" " -f2)
			[ "${v2:-0}" -gt "${v1:-0}" ] || why "denied packets $v1 then $v2"'
	fi
	kill -TERM "$lpid" 2>/dev/null
	local rc=0
	wait "$lpid" || rc=$?
	t "$mode/metrics: --listen stops cleanly on SIGTERM" mx_stopped "$rc" "$out/listen.err"
	t "$mode/metrics: --listen rejects a bad address" eval '! pf metrics --listen nonsense >/dev/null 2>&1 || why "accepted"'

	t "$mode/metrics: DEL a" del_ok "$a"
	t "$mode/metrics: DEL b" del_ok "$b"
	t "$mode/metrics: after DEL no pod series remain" eval '
		pf metrics >"$out/after.prom" || why "metrics failed"
		! grep -q "^podfence_packets_total" "$out/after.prom" || why "$(grep "^podfence_packets_total" "$out/after.prom" | head -2)"
		mx_promtool "$out/after.prom"'
	ip netns del "$nsa" 2>/dev/null || true
	ip netns del "$nsb" 2>/dev/null || true
}
MODE_CASES+=(metrics_case)
