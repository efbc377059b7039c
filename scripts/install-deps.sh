#!/usr/bin/env bash
# Installs everything podfence needs to build, test, demo and benchmark on a
# fresh Debian 12 (root). Idempotent: skips apt when all packages are present.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev
  libzstd-dev libmnl-dev nlohmann-json3-dev doctest-dev clang-format clang-tidy
  # integration: real reference plugins and the real libcni (Go, offline GOPATH build)
  containernetworking-plugins golang-go golang-github-appc-cni-dev
  iproute2 socat netcat-openbsd iputils-ping util-linux jq
  # benchmarks
  iperf3 nftables iptables gnuplot-nox ethtool python3
  # the .deb check (scripts/package-test.sh)
  file
  # day-2 tests: crash sweep (strace fault injection), libFuzzer targets
  strace libclang-rt-14-dev
)
# Not yet listed: prometheus-node-exporter, prometheus (promtool) and lintian,
# which the metrics case and scripts/package-test.sh use when present (they
# report a SKIP without them). They join this list once those checks have run
# against them.

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # prometheus and prometheus-node-exporter are daemons: the tests start
  # node_exporter on loopback themselves, so no service may start on install
  # (the same policy-rc.d as Debian's container images carry).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
