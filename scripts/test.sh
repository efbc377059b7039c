#!/usr/bin/env bash
# The test command (README "Tests"; .ci/run calls exactly this), as root on Debian 12:
# installs dependencies, checks formatting, builds a sanitizer tree (-Werror)
# and runs clang-tidy on plugin/ against it, builds the README's Release build
# (-Werror) and installs it into a staging dir, then runs the layers through CTest:
#   unit        pure logic (doctest)                                    ASan+UBSan
#   datapath    the BPF programs via BPF_PROG_TEST_RUN, incl. the
#               differential check against the reference evaluator      ASan+UBSan
#   kernel      netlink/attach plumbing, the verbs in process           ASan+UBSan
#   fuzz        libFuzzer targets, 45 s each (scripts/fuzz.sh)                 ASan+UBSan
#   integration real libcni driver, real reference plugins, real traffic in netns,
#               with the installed Release binary
# plus the benchmark suite in --quick mode (every configuration once, no speed
# assertions: it only has to run and produce numbers), with the variant build
# measured next to it (--compare).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# Where CI's time goes (its budget is ~30 min on 2 cores).
step() { echo "== scripts/test.sh: $1 done, $((SECONDS / 60)) min $((SECONDS % 60)) s in" >&2; }

scripts/install-deps.sh
scripts/check-format.sh
step "dependencies and format"

# Developers and CI build with warnings as errors (users' builds do not).
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DPODFENCE_SANITIZE=ON -DPODFENCE_WERROR=ON >/dev/null
cmake --build build/asan -j"$jobs" --target podfence_unit_tests podfence_kernel_tests
# The three layers share nothing (each kernel test names its own netns), so
# they run side by side: under ASan that took 104 s instead of 178 on 2 cores.
(cd build/asan && ctest -j"$jobs" --output-on-failure -L '^(unit|datapath|kernel)$')
step "sanitizer build and the unit, datapath and kernel layers"
scripts/tidy.sh build/asan
step clang-tidy
# libFuzzer targets (clang): the CNI stdin, the policy annotation (compiled
# entries against the reference evaluator) and `podfence update`'s input.
scripts/fuzz.sh --seconds "${PODFENCE_FUZZ_SECONDS:-45}"
step fuzzing

# The README's Install commands as written (Release, every target), then the
# install step into a staging directory instead of the node's /opt/cni/bin.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPODFENCE_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
# The .deb from that tree (cpack), its fields, contents and extracted binary.
scripts/package-test.sh build
stage=$(mktemp -d /tmp/podfence-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage cmake --install build --strip
env -u CNI_COMMAND "$stage/opt/cni/bin/podfence" version
step "Release build, package and install"

# The upgrade test's "other binary": another datapath ABI and policy layout.
cmake -S . -B build/variant -DCMAKE_BUILD_TYPE=Release -DPODFENCE_WERROR=ON -DPODFENCE_DATAPATH_VARIANT=ON \
  -DPODFENCE_TESTS=OFF >/dev/null
cmake --build build/variant -j"$jobs" --target podfence
# --podfence: the newest build is now the variant. --compare runs the variant
# next to it: ADD/DEL pod by pod, and compare-* configs in the data-plane parts
# (bench/README.md).
bench/suite/run.sh --quick --out build/bench-quick --podfence build/plugin/podfence \
  --compare build/variant/plugin/podfence
# Where ADD and DEL wait, per hook (bench/README.md, stop 29): syscalls traced,
# XDP's attach and detach timed.
bench/suite/tools/trace-verbs.sh build/plugin/podfence build/bench-quick/trace-verbs >/dev/null
bench/suite/tools/xdp-dispatcher.sh >build/bench-quick/xdp-dispatcher.txt
step "variant build and the benchmark suite, quick"
# The sanitizer tree ran the other layers; the Release tree is the shipped binary.
(cd build && PFTI_VARIANT_PLUGIN=$PWD/variant/plugin/podfence ctest --output-on-failure -L '^integration$')
step "integration layer"
# Crash sweep: the installed binary killed (SIGKILL) at each syscall of ADD and
# DEL in mode tc, then DEL/GC/ADD must recover (integration/crash_sweep.sh;
# --long covers every verb and mode).
integration/crash_sweep.sh --plugin "$stage/opt/cni/bin/podfence"
step "crash sweep"
