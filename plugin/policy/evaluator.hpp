// Reference evaluator: the semantics of podfence written plainly, with no
// tries or precomputation. The differential tests hold the BPF datapath to it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>

#include "policy.hpp"

namespace podfence::policy {

// An IP packet as the datapath sees it at one of the pod's attach points.
struct Packet {
    Direction dir = Direction::Ingress; // relative to the pod
    std::uint8_t family = PF_FAMILY_V4;
    std::array<std::uint8_t, 16> src{};
    std::array<std::uint8_t, 16> dst{};
    std::uint8_t proto = 6;          // IP protocol number
    std::uint16_t sport = 0;         // host order; 0 when the protocol has none
    std::uint16_t dport = 0;         // ICMP echo: both = identifier
    bool icmp_echo = false;          // ICMP/ICMPv6 echo request or reply
    bool non_first_fragment = false; // judged with port 0 (no L4 header)
    bool tcp_fin_or_rst = false;
    std::uint8_t icmp_type = 0; // ICMP/ICMPv6 type; ICMPv6 133-137 (ND) always pass
};

struct Decision {
    bool allowed = false;
    std::uint32_t rule = PF_RULE_DEFAULT; // index of first admitting rule, or PF_RULE_DEFAULT
    // false when the packet passed without a policy decision: ICMPv6 ND, or
    // (StatefulEvaluator) an existing conntrack entry. Such packets never
    // count in pf_rule_hits; rule is then PF_RULE_DEFAULT.
    bool policy_decision = true;
};

// Stateless: does `policy` admit a NEW flow whose first packet is `pkt`?
Decision evaluate(const Policy& policy, const Packet& pkt);

// Stateful model of the datapath: conntrack keyed like pf_ct_key, entries
// stamped with the policy revision; replies of allowed flows pass, flows the
// current policy no longer admits are cut. No timeouts (tests run quickly).
class StatefulEvaluator {
public:
    explicit StatefulEvaluator(Policy policy, std::uint32_t rev = 1);
    void replace(Policy policy, std::uint32_t rev);
    Decision process(const Packet& pkt);

private:
    using Key = std::tuple<std::uint8_t, std::uint8_t, std::array<std::uint8_t, 16>,
                           std::array<std::uint8_t, 16>, std::uint16_t, std::uint16_t>;
    struct Entry {
        Direction origin;
        std::uint32_t rev;
    };
    Policy policy_;
    std::uint32_t rev_;
    std::map<Key, Entry> ct_;
};

} // namespace podfence::policy
