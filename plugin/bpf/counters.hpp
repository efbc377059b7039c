// A pod's counters as the CLI shows them: pf_counters and pf_rule_hits of
// one slot, per direction, summed over CPUs.
#pragma once

#include <array>
#include <cstdint>
#include <map>

#include "bpf/podfence_abi.h"
#include "datapath.hpp"

namespace podfence::bpf {

struct DirCounters {
    pf_counter total{};
    std::map<std::uint32_t, std::uint64_t>
        rule_hits; // rule index -> new flows admitted (PF_RULE_NONE: would-deny flows of an audit pod)
};
using SlotCounters = std::array<DirCounters, PF_NUM_DIRS>; // indexed by PF_DIR_*

// pf_counters of one slot per direction, summed over CPUs, without the
// rule-hit walk (what `events` polls every second). Throws as read_counters.
std::array<pf_counter, PF_NUM_DIRS> read_totals(const Datapath& dp, std::uint32_t slot);

// Throws Error(Code::Io) when the number of CPUs is unknown.
SlotCounters read_counters(const Datapath& dp, std::uint32_t slot);

} // namespace podfence::bpf
