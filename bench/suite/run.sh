#!/usr/bin/env bash
# podfence benchmark suite: data plane (pps, TCP), rule scaling, program time,
# test_run ns/packet, control-plane latency. See README.md "Performance".
#
#   bench/suite/run.sh [--quick] [--out DIR] [--podfence BIN] [--testrun BIN]
#                      [--only matrix,scaling,progtime,testrun,control] [--verbose]
#                      [--set KEY=JSON ...]   (e.g. --set scaling_rules=[1,100000])
#                      [--compare BIN]        (another podfence next to this one: control
#                                              pod by pod, compare-* configs in matrix,
#                                              scaling and progtime)
#   bench/suite/run.sh --report-only --out DIR  (rebuild summary.md and plots)
#
# Needs root. Everything it creates is named pfb-<run id>-* (netns) or lives
# in its own temp dirs, and is removed on any exit (trap).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
quick=0 report_only=0 out="" podfence="" testrun="" compare="" only="" verbose="" sets=()

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--out) out=$2; shift ;;
	--podfence) podfence=$2; shift ;;
	--testrun) testrun=$2; shift ;;
	--compare) compare=$2; shift ;;
	--only) only=$2; shift ;;
	--verbose) verbose=--verbose ;;
	--set) sets+=(--set "$2"); shift ;;
	--report-only) report_only=1 ;;
	-h|--help) usage ;;
	*) echo "run.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
if [ "$report_only" = 1 ]; then
	[ -n "$out" ] || { echo "run.sh: --report-only needs --out DIR" >&2; exit 2; }
	out=$(cd "$out" && pwd) # before the cd below: DIR may be relative
	cd "$here" && exec python3 -m pfbench --report-only --out "$out" \
		--tmp /nonexistent --tools /nonexistent --bpffs /nonexistent --run-id none
fi
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (netns, BPF, bpffs mount)" >&2; exit 2; }
for t in ip nsenter iperf3 nft iptables-legacy-restore ip6tables-legacy-restore clang cc cmake gnuplot python3 bpftool ss; do
	command -v "$t" >/dev/null || { echo "run.sh: missing $t (scripts/install-deps.sh)" >&2; exit 2; }
done

# Newest build of a target across the build directories, unless given.
newest() { ls -t $repo/build*/"$1" 2>/dev/null | head -n1 || true; }
[ -n "$podfence" ] || podfence=$(newest plugin/podfence)
[ -n "$testrun" ] || testrun=$(newest bench/testrun/podfence_testrun_bench)
# Nothing built yet (a fresh checkout): build what the suite measures, with
# the README's Release build, before anything else runs.
if [ -z "$podfence" ] || [ -z "$testrun" ]; then
	echo "run.sh: no podfence build found: building into $repo/build (README: Install)" >&2
	cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$repo/build" -j"$(nproc)" --target podfence podfence_testrun_bench
	[ -n "$podfence" ] || podfence=$repo/build/plugin/podfence
	[ -n "$testrun" ] || testrun=$repo/build/bench/testrun/podfence_testrun_bench
fi
for bin in "$podfence" "$testrun"; do
	[ -x "$bin" ] || { echo "run.sh: $bin is not an executable (build it: README, Install)" >&2; exit 2; }
done
# Absolute: the driver runs tools from other directories.
[ -z "$podfence" ] || podfence=$(readlink -f "$podfence")
[ -z "$testrun" ] || testrun=$(readlink -f "$testrun")
if [ -n "$compare" ]; then
	[ -x "$compare" ] || { echo "run.sh: --compare $compare is not an executable" >&2; exit 2; }
	compare=$(readlink -f "$compare")
fi

[ -n "$out" ] || out="$repo/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
run_id=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d "/tmp/pfb-$run_id.XXXXXX")
bpffs="$tmp/bpffs"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# Processes the suite started inside its namespaces (iperf3 servers...).
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^pfb-$run_id-" || true); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	if mountpoint -q "$bpffs" 2>/dev/null; then umount "$bpffs" || umount -l "$bpffs" || true; fi
	# podfence keeps record copies and a backup bpffs of the engine maps in
	# /run/podfence/<bpffsRoot, / as _> (README "A lost bpffs"): the run's
	# too, for its root and the roots below it (control's reference node).
	local mirror
	for mirror in /run/podfence/"${bpffs//\//_}" /run/podfence/"${bpffs//\//_}"_*; do
		[ -d "$mirror" ] || continue
		while mountpoint -q "$mirror/bpffs" 2>/dev/null; do umount "$mirror/bpffs" || umount -l "$mirror/bpffs" || break; done
		rm -rf "$mirror"
	done
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tools: built fresh into the temp dir (no CMake dependency for the suite).
mkdir -p "$tmp/bin" "$bpffs"
cc -O2 -Wall -Wextra -Werror -o "$tmp/bin/pfb_blast" "$here/tools/pfb_blast.c" -lbpf
cc -O2 -Wall -Wextra -Werror -o "$tmp/bin/pfb_attach" "$here/tools/pfb_attach.c" -lbpf
clang -O2 -g -target bpf -I/usr/include/$(gcc -dumpmachine) \
	-c "$here/../article.bpf.c" -o "$tmp/bin/article.bpf.o"
# A private bpffs instance: podfence's pins and the article's tcx links live
# here and vanish with the unmount.
mount -t bpf bpf "$bpffs"

echo "pfbench: out=$out run=$run_id podfence=${podfence:-none} testrun=${testrun:-none}" >&2
args=(--out "$out" --tmp "$tmp" --tools "$tmp/bin" --bpffs "$bpffs" --run-id "$run_id")
[ -n "$podfence" ] && args+=(--podfence "$podfence")
[ -n "$testrun" ] && args+=(--testrun "$testrun")
[ -n "$compare" ] && args+=(--compare "$compare")
[ "$quick" = 1 ] && args+=(--quick)
[ -n "$only" ] && args+=(--only "$only")
[ -n "$verbose" ] && args+=("$verbose")
args+=("${sets[@]}")
cd "$here"
python3 -m pfbench "${args[@]}"
