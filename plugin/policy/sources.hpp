// The source check's model: which source addresses a pod may send from (see
// pf_sources in bpf/podfence_abi.h). One definition for the plugin (what
// ADD seeds and CHECK compares), the reference evaluator and the tests.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy.hpp"

namespace podfence::policy {

struct SourceAddr {
    std::uint8_t family = PF_FAMILY_V4;
    std::array<std::uint8_t, 16> addr{}; // network order, IPv4 in bytes 0..3
    auto operator<=>(const SourceAddr&) const = default;
};

struct PodSources {
    bool check = false;            // PF_POD_SRC_CHECK
    std::vector<SourceAddr> addrs; // the pod's pf_sources entries
};

// "10.0.0.5" or "fd00::5", with or without a "/len" suffix; nullopt otherwise.
std::optional<SourceAddr> parse_source(std::string_view text);
std::string format_source(const SourceAddr& s);

// The datapath's rule for an egress IP packet: with the check off anything
// passes; with it on, the pod's own addresses, the unspecified address
// (0.0.0.0, ::) and IPv6 link-local fe80::/64.
bool source_allowed(const PodSources& s, std::uint8_t family, const std::array<std::uint8_t, 16>& src);

} // namespace podfence::policy
