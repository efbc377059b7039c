// The policy model: what the podfence.io/policy annotation means, independent
// of how the datapath stores it. Parsed from JSON shaped like a Kubernetes
// NetworkPolicy spec restricted to ipBlock peers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../../bpf/podfence_abi.h"

namespace podfence::policy {

enum class Direction : std::uint8_t { Ingress = PF_DIR_INGRESS, Egress = PF_DIR_EGRESS };

// IP protocol numbers as on the wire.
enum class Protocol : std::uint8_t { TCP = 6, UDP = 17, SCTP = 132 };

struct Cidr {
    std::uint8_t family = PF_FAMILY_V4;  // PF_FAMILY_V4 or PF_FAMILY_V6
    std::array<std::uint8_t, 16> addr{}; // network order; v4 uses addr[0..3]; host bits zero
    std::uint8_t prefix_len = 0;
    bool operator==(const Cidr&) const = default;
};

struct IpBlock {
    Cidr cidr;
    std::vector<Cidr> except; // each strictly inside cidr, same family
    bool operator==(const IpBlock&) const = default;
};

// One entry of a rule's `ports`. has_port=false: every port of the protocol.
struct PortSpec {
    Protocol protocol = Protocol::TCP;
    bool has_port = false;
    std::uint16_t port = 0;     // 1..65535 when has_port
    std::uint16_t end_port = 0; // inclusive; == port when no endPort given
    bool operator==(const PortSpec&) const = default;
};

// A rule matches when (any_peer or some peer matches) and (any_port or some
// port matches). any_port also admits portless protocols (ICMP, ...).
struct Rule {
    bool any_peer = true; // no `from`/`to` given
    std::vector<IpBlock> peers;
    bool any_port = true; // no `ports` given
    std::vector<PortSpec> ports;
    bool operator==(const Rule&) const = default;
};

struct Policy {
    bool isolate_ingress = false;
    bool isolate_egress = false;
    std::vector<Rule> ingress;
    std::vector<Rule> egress;
    bool operator==(const Policy&) const = default;

    bool isolated(Direction d) const { return d == Direction::Ingress ? isolate_ingress : isolate_egress; }
    const std::vector<Rule>& rules(Direction d) const { return d == Direction::Ingress ? ingress : egress; }
};

// parse_policy() refuses a policy with more rules + peers + except blocks +
// port entries than this: it bounds compile time and memory for one pod.
inline constexpr std::size_t kMaxPolicyItems = 500000;

// Default for pods without the annotation (netconf `defaultPolicy`).
enum class DefaultAction { Allow, Deny };
Policy default_policy(DefaultAction action);

// What the datapath does with what the policy denies: drop it (Enforce),
// or pass, count and report it (Audit, PF_POD_AUDIT). Netconf
// `enforcement` sets the node default, annotation podfence.io/enforcement
// overrides it per pod, `podfence update --enforcement` switches a live pod.
enum class Enforcement { Enforce, Audit };
// "enforce" or "audit": the spelling of the netconf, annotation, CLI and record.
std::string_view to_string(Enforcement e);
// Exactly "enforce" or "audit"; nullopt for anything else.
std::optional<Enforcement> parse_enforcement(std::string_view text);
// The annotation value: throws Error(Code::InvalidPolicy) naming the field, as
// for a malformed policy, e.g. "podfence.io/enforcement: \"Audit\" is not one of enforce, audit".
Enforcement parse_enforcement_annotation(std::string_view text);

// Parses the annotation value. Host bits set in a cidr or except are masked
// (as Kubernetes does); JSON null counts as an absent key; an
// absent policyTypes defaults to ["Ingress"], plus "Egress" when an `egress`
// key is present; an explicit [] isolates nothing (to_json's form of
// default_policy(Allow)). Throws podfence::Error(Code::InvalidPolicy)
// whose message names the offending field as a JSON path, e.g.
// "podfence.io/policy: ingress[0].ports[1].endPort: 80 is less than port 443".
Policy parse_policy(std::string_view json);

// Canonical JSON of a parsed policy (for `podfence inspect` and logs).
std::string to_json(const Policy& policy);

// One line for operators: "ingress: 2 rules, egress: open".
std::string summary(const Policy& p);

} // namespace podfence::policy
