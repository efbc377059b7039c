#!/usr/bin/env bash
# The test command (README "Tests"; .ci/run calls exactly this), as root on Debian 12:
# installs dependencies, checks formatting, builds the shipped binary with
# -Werror and a sanitizer build, then runs the three layers through CTest:
#   unit        pure logic (doctest)                        ASan+UBSan and release
#   kernel      netlink/attach plumbing and the BPF datapath via BPF_PROG_TEST_RUN,
#               incl. the differential check against the reference evaluator
#   integration real libcni driver, real reference plugins, real traffic in netns
# plus the benchmark suite in --quick mode (every configuration once, no speed
# assertions: it only has to run and produce numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh
scripts/check-format.sh

cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DPODFENCE_SANITIZE=ON >/dev/null
cmake --build build/asan -j"$jobs" --target podfence_unit_tests podfence_kernel_tests
(cd build/asan && ctest --output-on-failure -R '^(unit|kernel)$')

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j"$jobs"
bench/suite/run.sh --quick --out build/bench-quick \
    --podfence build/release/plugin/podfence --testrun build/release/bench/testrun/podfence_testrun_bench
(cd build/release && ctest --output-on-failure)
