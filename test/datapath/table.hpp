// Table-driven datapath cases (Cilium/katran style): a policy, a sequence of
// packets with the verdict each must get, run through pf_tc and pf_xdp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "support/frames.hpp"
#include "datapath/harness.hpp"

namespace pftest {

constexpr std::uint8_t kIn = PF_DIR_INGRESS, kOut = PF_DIR_EGRESS;
constexpr bool kAllow = true, kDeny = false;

struct Step {
    std::uint8_t dir;
    Frame frame;
    bool allow;
};

struct Case {
    std::string description;
    std::string policy; // podfence.io/policy JSON
    std::vector<Step> steps;
    std::string replaced_by = {}; // if set: policy swapped in (rev bump) before `after`
    std::vector<Step> after = {};
};

// Runs every case through both programs; returns one line per mismatch
// ("<prog> <description>: step N (<dir> <frame>): expected allow, got deny").
std::vector<std::string> run_cases(Harness& h, const std::vector<Case>& cases, std::uint32_t slot);

} // namespace pftest
