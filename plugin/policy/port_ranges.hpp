// Port interval arithmetic for the PORT entries of the trie.
#pragma once

#include <cstdint>
#include <vector>

namespace podfence::policy {

// Inclusive interval [lo, hi] of ports carrying a rule index.
struct PortRange {
    std::uint32_t lo = 0;
    std::uint32_t hi = 0;
    std::uint32_t rule = 0;
    bool operator==(const PortRange&) const = default;
};

// A port prefix: the top `len` bits (0..16) of `port` are fixed.
struct PortPrefix {
    std::uint16_t port = 0;
    std::uint8_t len = 0;
    bool operator==(const PortPrefix&) const = default;
};

// The minimal set of disjoint prefixes whose union is exactly [lo, hi].
std::vector<PortPrefix> range_to_prefixes(std::uint32_t lo, std::uint32_t hi);

// Pointwise minimum rule over possibly overlapping ranges: sorted, disjoint
// pieces; adjacent pieces with the same rule merged. Ports no range covers
// are absent. O(n log n).
std::vector<PortRange> min_rule_pieces(const std::vector<PortRange>& ranges);

} // namespace podfence::policy
