#!/bin/bash
# Which XDP attaches and detaches wait: one program attached to three veths in
# turn, then a second program to a fourth, then all detached; each step an `ip`
# command, timed (an `ip` command that changes nothing XDP-related, an MTU,
# for the baseline). Netns pfgp-x, removed on exit.
# Usage: xdp-dispatcher.sh
set -eu
DIR=$(mktemp -d /tmp/pfgp.XXXXXX)
mkdir "$DIR/fs"
mount -t bpf pfgp "$DIR/fs"
ip netns add pfgp-x
cleanup() {
	ip netns del pfgp-x 2>/dev/null || true
	umount "$DIR/fs"
	rm -rf "$DIR"
}
trap cleanup EXIT
cat >"$DIR/pass.bpf.c" <<'C'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int pass(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
C
clang -O2 -target bpf -I/usr/include/"$(gcc -print-multiarch)" -c "$DIR/pass.bpf.c" -o "$DIR/pass.bpf.o"
bpftool prog load "$DIR/pass.bpf.o" "$DIR/fs/p" type xdp
bpftool prog load "$DIR/pass.bpf.o" "$DIR/fs/q" type xdp
for i in 0 1 2 3; do ip -n pfgp-x link add "x$i" type veth peer name "y$i"; done
t() {
	local s e
	s=$(date +%s%N)
	nsenter --net=/run/netns/pfgp-x ip link set "$@"
	e=$(date +%s%N)
	echo "$(((e - s) / 1000)) us: ip link set $*"
}
echo "rcu_expedited=$(cat /sys/kernel/rcu_expedited)"
t dev x0 mtu 1400
t dev x0 mtu 1500
for i in 0 1 2; do t dev "x$i" xdpgeneric pinned "$DIR/fs/p"; done
t dev x3 xdpgeneric pinned "$DIR/fs/q"
for i in 0 1 2 3; do t dev "x$i" xdpgeneric off; done
