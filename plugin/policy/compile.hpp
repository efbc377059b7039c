// Policy model -> entries of the pod's LPM trie (see bpf/podfence_abi.h for
// the key layout and the two-lookup scheme).
#pragma once

#include <cstddef>
#include <vector>

#include "policy.hpp"

namespace podfence::policy {

struct TrieEntry {
    pf_lpm_key key{};
    pf_lpm_val val{};
};

// Deterministic: the same policy always yields the same entries in the same
// order (CHECK compares them with what is in the kernel). Throws
// Error(Code::InvalidPolicy) naming the policy when more than max_entries
// would be needed: "policy needs N map entries, more than the per-pod
// capacity M" ("needs at least N" when counting was cut short, past
// max(2M, M + 2^20)). Memory stays bounded by max_entries either way.
std::vector<TrieEntry> compile(const Policy& policy, std::size_t max_entries = PF_POLICY_MAX_ENTRIES);

// Byte-wise equality/ordering helpers for comparing compiled sets.
bool operator==(const TrieEntry& a, const TrieEntry& b);
bool operator<(const TrieEntry& a, const TrieEntry& b);

} // namespace podfence::policy
