// The reference semantics, written as plainly as possible: loops over rules,
// no precomputation. Read it next to the "policy semantics" in README.md.
#include "support/evaluator.hpp"

#include "policy/cidr.hpp"

namespace podfence::policy {
namespace {

constexpr std::uint8_t kIcmp = 1;
constexpr std::uint8_t kIcmpV6 = 58;

bool has_ports(std::uint8_t proto) {
    return proto == static_cast<std::uint8_t>(Protocol::TCP) ||
           proto == static_cast<std::uint8_t>(Protocol::UDP) ||
           proto == static_cast<std::uint8_t>(Protocol::SCTP);
}

// ICMPv6 neighbour/router discovery (133-137): always passes, no state.
bool is_nd(const Packet& p) {
    return p.family == PF_FAMILY_V6 && p.proto == kIcmpV6 && !p.non_first_fragment && p.icmp_type >= 133 &&
           p.icmp_type <= 137;
}

// The port policy rules see: the destination port for TCP/UDP/SCTP first
// fragments, 0 for everything else.
std::uint16_t policy_port(const Packet& p) {
    return has_ports(p.proto) && !p.non_first_fragment ? p.dport : 0;
}

bool peer_matches(const IpBlock& b, std::uint8_t family, const std::array<std::uint8_t, 16>& addr) {
    if (!cidr_contains(b.cidr, family, addr)) return false;
    for (const Cidr& e : b.except)
        if (cidr_contains(e, family, addr)) return false;
    return true;
}

bool port_matches(const PortSpec& ps, std::uint8_t proto, std::uint16_t dport) {
    if (proto != static_cast<std::uint8_t>(ps.protocol)) return false;
    if (!ps.has_port) return true; // every port of the protocol, 0 included
    return ps.port <= dport && dport <= ps.end_port;
}

bool rule_matches(const Rule& r, std::uint8_t family, const std::array<std::uint8_t, 16>& peer,
                  std::uint8_t proto, std::uint16_t dport) {
    bool peer_ok = r.any_peer;
    for (const IpBlock& b : r.peers)
        peer_ok = peer_ok || peer_matches(b, family, peer);
    bool port_ok = r.any_port;
    for (const PortSpec& ps : r.ports)
        port_ok = port_ok || port_matches(ps, proto, dport);
    return peer_ok && port_ok;
}

// Would the policy admit a new flow in direction d from/to `peer`?
Decision new_flow(const Policy& policy, Direction d, std::uint8_t family,
                  const std::array<std::uint8_t, 16>& peer, std::uint8_t proto, std::uint16_t dport) {
    if (!policy.isolated(d)) return {true, PF_RULE_DEFAULT};
    const auto& rules = policy.rules(d);
    for (std::uint32_t i = 0; i < rules.size(); ++i)
        if (rule_matches(rules[i], family, peer, proto, dport)) return {true, i};
    return {false, PF_RULE_DEFAULT};
}

const std::array<std::uint8_t, 16>& peer_addr(const Packet& p) {
    return p.dir == Direction::Ingress ? p.src : p.dst;
}

bool is_icmp_error(const Packet& p) {
    if (p.non_first_fragment) return false;
    if (p.family == PF_FAMILY_V4)
        return p.proto == kIcmp && (p.icmp_type == 3 || p.icmp_type == 11 || p.icmp_type == 12);
    return p.proto == kIcmpV6 && p.icmp_type >= 1 && p.icmp_type <= 4;
}

// IPv6 reassembles by (src, dst, id), so no protocol there (as pf_frag_key).
auto frag_key(const Packet& p) {
    const std::uint32_t id = p.family == PF_FAMILY_V4 ? p.frag_id & 0xffff : p.frag_id;
    return std::make_tuple(p.dir, p.family, p.family == PF_FAMILY_V4 ? p.proto : std::uint8_t{0}, p.src,
                           p.dst, id);
}

// The source check comes first, before the ND pass: ND from :: or fe80::/64
// passes it, ND from someone else's address does not.
bool spoofed(const PodSources& s, const Packet& p) {
    return p.dir == Direction::Egress && !source_allowed(s, p.family, p.src);
}

} // namespace

Decision evaluate(const Policy& policy, const Packet& pkt, const PodSources& sources) {
    if (spoofed(sources, pkt)) return {false, PF_RULE_DEFAULT, false, true};
    if (is_nd(pkt)) return {true, PF_RULE_DEFAULT, false};
    return new_flow(policy, pkt.dir, pkt.family, peer_addr(pkt), pkt.proto, policy_port(pkt));
}

StatefulEvaluator::StatefulEvaluator(Policy policy, std::uint32_t rev)
    : policy_(std::move(policy)), rev_(rev) {}

void StatefulEvaluator::replace(Policy policy, std::uint32_t rev) {
    // Entries keep their old revision: each is re-validated at its next packet.
    policy_ = std::move(policy);
    rev_ = rev;
}

Decision StatefulEvaluator::process(const Packet& pkt) {
    if (spoofed(sources_, pkt)) return {false, PF_RULE_DEFAULT, false, true};
    if (is_nd(pkt)) return {true, PF_RULE_DEFAULT, false};
    Decision d = pkt.non_first_fragment || is_icmp_error(pkt) ? related(pkt) : flow(pkt);
    // A first fragment that passes admits the rest of its datagram.
    if (d.allowed && pkt.first_fragment) frags_.insert(frag_key(pkt));
    return d;
}

// Non-first fragments and ICMP errors open no flow: admitted by their
// datagram's first fragment or by the tracked flow they quote (read only),
// else judged by the policy alone with port 0, leaving no state.
Decision StatefulEvaluator::related(const Packet& pkt) const {
    if (pkt.non_first_fragment) {
        if (frags_.contains(frag_key(pkt))) return {true, PF_RULE_DEFAULT, false};
    } else if (pkt.quoted) {
        // The quoted packet travelled the other way; its pod side must be
        // the error's pod side.
        const Packet::Quoted& q = *pkt.quoted;
        const bool q_in = pkt.dir == Direction::Egress;
        const auto& pod = q_in ? q.dst : q.src;
        if (pod == (pkt.dir == Direction::Ingress ? pkt.dst : pkt.src)) {
            const std::uint16_t pod_port = q_in ? q.dport : q.sport, peer_port = q_in ? q.sport : q.dport;
            const Key key{pkt.family, q.proto, pod, q_in ? q.src : q.dst, pod_port, peer_port};
            if (auto it = ct_.find(key); it != ct_.end()) {
                const Entry& e = it->second;
                const std::uint16_t dport =
                    !has_ports(q.proto) ? 0 : (e.origin == Direction::Ingress ? pod_port : peer_port);
                if (e.rev == rev_ ||
                    new_flow(policy_, e.origin, pkt.family, std::get<3>(key), q.proto, dport).allowed)
                    return {true, PF_RULE_DEFAULT, false};
            }
        }
    }
    return new_flow(policy_, pkt.dir, pkt.family, peer_addr(pkt), pkt.proto, 0);
}

Decision StatefulEvaluator::flow(const Packet& pkt) {
    // Pod-centric key: both directions of a connection find the same entry.
    const bool in = pkt.dir == Direction::Ingress;
    std::uint16_t pod_port = 0, peer_port = 0;
    if (!pkt.non_first_fragment && has_ports(pkt.proto)) {
        pod_port = in ? pkt.dport : pkt.sport;
        peer_port = in ? pkt.sport : pkt.dport;
    } else if (!pkt.non_first_fragment && pkt.icmp_echo && (pkt.proto == kIcmp || pkt.proto == kIcmpV6)) {
        pod_port = peer_port = pkt.dport; // the echo identifier
    }
    const Key key{pkt.family, pkt.proto, in ? pkt.dst : pkt.src, in ? pkt.src : pkt.dst, pod_port, peer_port};

    // 1. Existing flow.
    if (auto it = ct_.find(key); it != ct_.end()) {
        Entry& e = it->second;
        if (e.rev == rev_) return {true, PF_RULE_DEFAULT, false};
        // 1b. Policy replaced since: re-validate as a new flow in the
        // direction that opened it.
        const Direction o = e.origin;
        const std::uint16_t dport =
            !has_ports(pkt.proto) ? 0 : (o == Direction::Ingress ? pod_port : peer_port);
        if (new_flow(policy_, o, pkt.family, std::get<3>(key), pkt.proto, dport).allowed) {
            e.rev = rev_;
            return {true, PF_RULE_DEFAULT, false};
        }
        ct_.erase(it);
    }

    // 2. New flow in the packet's direction.
    Decision d = new_flow(policy_, pkt.dir, pkt.family, peer_addr(pkt), pkt.proto, policy_port(pkt));
    if (d.allowed) ct_[key] = Entry{pkt.dir, rev_};
    return d;
}

} // namespace podfence::policy
