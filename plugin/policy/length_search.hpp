// The binary search over prefix lengths that the engine does in a pod's
// policy map (bpf/podfence_abi.h, "The search"): from plain ADDR and PORT
// entries, the markers, the ropes and the ROOT entries that drive it.
#pragma once

#include <cstddef>
#include <vector>

#include "compile.hpp"

namespace podfence::policy {

// `plain`: ADDR and PORT entries with canonical keys and zero ropes (any
// other kind is a logic error). Returns them with their ropes set, plus one
// marker per (table, length, masked data) that a search path needs and no
// real entry provides, plus one ROOT entry per table; sorted. Throws
// Error(Code::InvalidPolicy) ("policy needs at least N map entries, more
// than the per-pod capacity M") once more than max_entries would be needed.
std::vector<PolicyEntry> with_search(std::vector<PolicyEntry> plain,
                                     std::size_t max_entries = PF_POLICY_MAX_ENTRIES);

} // namespace podfence::policy
