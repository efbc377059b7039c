// Policy model -> entries of the pod's policy map (see bpf/podfence_abi.h for
// the key layout and the two longest-prefix matches the engine does over a
// hash map, by binary search over prefix lengths).
#pragma once

#include <cstddef>
#include <vector>

#include "policy.hpp"

namespace podfence::policy {

// One entry of the pod's policy map (a hash of (prefix, value) pairs
// searched by length: bpf/podfence_abi.h).
struct PolicyEntry {
    pf_policy_key key{};
    pf_policy_val val{};
};

// Deterministic: the same policy always yields the same entries in the same
// order (CHECK compares them with what is in the kernel). Keys are
// canonical (no bits set past prefixlen) and include the search's markers
// and ROOT entries (length_search.hpp), which count towards max_entries.
// Throws Error(Code::InvalidPolicy) naming the policy when more than
// max_entries would be needed: "policy needs at least N map entries, more
// than the per-pod capacity M". Counting stops past max(2M, M + 2^20), so
// time and memory stay bounded for any policy.
std::vector<PolicyEntry> compile(const Policy& policy, std::size_t max_entries = PF_POLICY_MAX_ENTRIES);

// Byte-wise equality/ordering helpers for comparing compiled sets.
bool operator==(const PolicyEntry& a, const PolicyEntry& b);
bool operator<(const PolicyEntry& a, const PolicyEntry& b);

} // namespace podfence::policy
