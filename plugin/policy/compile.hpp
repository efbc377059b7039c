// Policy model -> entries of the pod's policy map (see bpf/podfence_abi.h for
// the key layout, the LENS entries and the two longest-prefix matches the
// engine does over a hash map).
#pragma once

#include <cstddef>
#include <vector>

#include "policy.hpp"

namespace podfence::policy {

// One entry of the pod's policy map. (Named after ABI 1's LPM trie; the
// entries are the same (prefix, value) pairs, now in a hash.)
struct TrieEntry {
    pf_lpm_key key{};
    pf_lpm_val val{};
};

// Deterministic: the same policy always yields the same entries in the same
// order (CHECK compares them with what is in the kernel). Keys are
// canonical (no bits set past prefixlen) and include the LENS entries, which
// count towards max_entries. Throws
// Error(Code::InvalidPolicy) naming the policy when more than max_entries
// would be needed: "policy needs N map entries, more than the per-pod
// capacity M" ("needs at least N" when counting was cut short, past
// max(2M, M + 2^20)). Memory stays bounded by max_entries either way.
std::vector<TrieEntry> compile(const Policy& policy, std::size_t max_entries = PF_POLICY_MAX_ENTRIES);

// The LENS entries listing the prefix lengths that the ADDR and PORT entries
// of `entries` use (other kinds are ignored). compile() already includes
// them; tests that hand-write ADDR/PORT entries append these.
std::vector<TrieEntry> length_entries(const std::vector<TrieEntry>& entries);

// Byte-wise equality/ordering helpers for comparing compiled sets.
bool operator==(const TrieEntry& a, const TrieEntry& b);
bool operator<(const TrieEntry& a, const TrieEntry& b);

} // namespace podfence::policy
