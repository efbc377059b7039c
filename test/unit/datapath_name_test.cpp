// The datapath directory name carries the policy-map ABI its programs read,
// so a binary never writes its policy layout into another ABI's datapath.
#include <doctest/doctest.h>

#include "bpf/datapath.hpp"
#include "bpf/podfence_abi.h"

using podfence::bpf::datapath_abi;

TEST_CASE("datapath dir names: this binary's carries its ABI; others parse or read as 0") {
    const std::string mine = podfence::bpf::embedded_datapath_name();
    CHECK(mine.rfind("datapath-abi" + std::to_string(PF_ABI_VERSION) + "-", 0) == 0);
    CHECK(datapath_abi(mine) == PF_ABI_VERSION);
    CHECK(datapath_abi("/sys/fs/bpf/podfence/" + mine) == PF_ABI_VERSION);
    CHECK(datapath_abi("/sys/fs/bpf/podfence/datapath-abi12-00ff00ff00ff00ff") == 12);
    // Written by podfence before ABI 3: no ABI in the name.
    CHECK(datapath_abi("/sys/fs/bpf/podfence/datapath-c07d64fce1453895") == 0);
    CHECK(datapath_abi("datapath-abi-00ff") == 0);
    CHECK(datapath_abi("datapath-abi3") == 0);
    CHECK(datapath_abi("datapath-abi3x-00ff") == 0);
    CHECK(datapath_abi("") == 0);
}
