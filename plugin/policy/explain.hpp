// `podfence explain`: the verdict a NEW flow would get, computed twice: from
// the policy model with plain reference semantics and the reasons behind it
// (which rule, which peer and port matched; when denied, what failed in each
// rule), and from a pod's compiled policy map entries walked exactly as the
// engine walks them (bpf/policy.h). The CLI compares the two.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compile.hpp"
#include "policy.hpp"

namespace podfence::policy {

inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoIcmpV6 = 58;
// No --proto and no --port: a protocol without ports that no rule can name
// (255 is reserved, never on the wire); only rules without `ports` admit it,
// as for any portless protocol the engine sees (GRE, ...).
inline constexpr std::uint8_t kProtoOther = 255;

// A new flow as the engine judges it: the peer (source for ingress,
// destination for egress), the protocol, the destination port (0 = none).
struct FlowQuery {
    Direction dir = Direction::Ingress;
    std::uint8_t family = PF_FAMILY_V4;
    std::array<std::uint8_t, 16> peer{}; // network order, v4 in bytes 0..3
    std::uint8_t proto = static_cast<std::uint8_t>(Protocol::TCP);
    std::uint16_t port = 0; // host order
};

// The options of `explain`, as given (nullopt = absent). direction: ingress
// or egress; peer: an IPv4 or IPv6 address; proto: TCP, UDP, SCTP or ICMP
// (any case; ICMP with an IPv6 peer is ICMPv6); port: 1..65535, not with
// ICMP or without a port-carrying protocol. --port alone means TCP (the
// Kubernetes default); neither means kProtoOther. Throws
// Error(Code::InvalidConfig) naming the option.
struct FlowArgs {
    std::optional<std::string> direction, peer, proto, port;
};
FlowQuery parse_flow_query(const FlowArgs& args);

std::string direction_name(Direction d);              // "ingress" / "egress"
std::string protocol_name(std::uint8_t proto);        // "TCP", "ICMPv6", "other"
std::string rule_label(Direction d, std::uint32_t i); // "ingress[1]"
// "TCP port 8080 from 10.0.0.1" / "ICMP to fd00::1".
std::string describe(const FlowQuery& q);

// One rule held against the flow.
struct RuleCheck {
    std::uint32_t index = 0;
    bool peer_ok = false;
    bool port_ok = false;
    std::string peer; // matched: the ipBlock (or "any peer"); failed: why not
    std::string port; // matched: the port entry (or "any port"); failed: why not
};

struct Explanation {
    bool allowed = false;
    bool isolated = false;
    std::optional<std::uint32_t> rule; // the first admitting rule
    RuleCheck match;                   // that rule's check, when there is one
    // When denied: every rule of the direction, those that failed in one
    // part only (peer or port) first, then in rule order.
    std::vector<RuleCheck> failed;
};

// Reference semantics (README "Policy"): in an isolated direction the first
// rule whose peers AND ports match admits the flow; no rule: denied.
Explanation explain(const Policy& policy, const FlowQuery& q);

// What the engine's two longest-prefix matches give on a policy map.
struct LiveVerdict {
    bool allowed = false;
    std::uint32_t rule = PF_RULE_NONE; // PF_RULE_DEFAULT: the direction is not isolated
    std::uint32_t set = PF_SET_NONE;   // the port set the address match chose
};
// `entries`: a pod's policy map, sorted (PolicyStore::read, compile()).
LiveVerdict live_decide(const std::vector<PolicyEntry>& entries, const FlowQuery& q);

} // namespace podfence::policy
