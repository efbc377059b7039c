// Reference evaluator: the semantics of podfence written plainly, with no
// tries or precomputation. The differential tests hold the BPF datapath to it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "policy/policy.hpp"
#include "policy/sources.hpp"

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
    // Fragments: offset 0 with more to come; the datagram's id (IPv4 16 bits).
    bool first_fragment = false;
    std::uint32_t frag_id = 0;
    // ICMP error (v4 3, 11, 12; v6 1-4): the packet it quotes, when its IP
    // header and 8 bytes of L4 are there (else nullopt). Same family.
    struct Quoted {
        std::array<std::uint8_t, 16> src{};
        std::array<std::uint8_t, 16> dst{};
        std::uint8_t proto = 0;
        std::uint16_t sport = 0; // as in a conntrack key: ports, ICMP echo id, else 0
        std::uint16_t dport = 0;
    };
    std::optional<Quoted> quoted;
};

struct Decision {
    bool allowed = false;
    std::uint32_t rule = PF_RULE_DEFAULT; // index of first admitting rule, or PF_RULE_DEFAULT
    // false when the packet passed without a policy decision: ICMPv6 ND, or
    // (StatefulEvaluator) an existing conntrack entry. Such packets never
    // count in pf_rule_hits; rule is then PF_RULE_DEFAULT.
    bool policy_decision = true;
    // Dropped by the source check before any policy (pf_counter.spoofed_*).
    bool spoofed = false;
};

// Stateless: does `policy` admit a NEW flow whose first packet is `pkt`
// (sent by a pod with `sources`)?
Decision evaluate(const Policy& policy, const Packet& pkt, const PodSources& sources = {});

// Stateful model of the datapath: conntrack keyed like pf_ct_key, entries
// stamped with the policy revision; replies of allowed flows pass, flows the
// current policy no longer admits are cut. Later fragments of a datagram
// whose first fragment passed pass; ICMP errors quoting a tracked flow pass.
// No timeouts (tests run quickly).
class StatefulEvaluator {
public:
    explicit StatefulEvaluator(Policy policy, std::uint32_t rev = 1);
    void replace(Policy policy, std::uint32_t rev);
    void set_sources(PodSources sources) { sources_ = std::move(sources); }
    Decision process(const Packet& pkt);

private:
    using Key = std::tuple<std::uint8_t, std::uint8_t, std::array<std::uint8_t, 16>,
                           std::array<std::uint8_t, 16>, std::uint16_t, std::uint16_t>;
    struct Entry {
        Direction origin;
        std::uint32_t rev;
    };
    // (dir, family, proto (0 for IPv6), src, dst, id), as pf_frag_key.
    using FragKey = std::tuple<Direction, std::uint8_t, std::uint8_t, std::array<std::uint8_t, 16>,
                               std::array<std::uint8_t, 16>, std::uint32_t>;
    Decision flow(const Packet& pkt);
    Decision related(const Packet& pkt) const;
    Policy policy_;
    std::uint32_t rev_;
    PodSources sources_;
    std::map<Key, Entry> ct_;
    std::set<FragKey> frags_;
};

} // namespace podfence::policy
