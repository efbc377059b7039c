#include "explain.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "../common/error.hpp"
#include "cidr.hpp"

namespace podfence::policy {
namespace {

std::string upper(std::string s) {
    for (char& c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

bool has_ports(std::uint8_t proto) {
    return proto == static_cast<std::uint8_t>(Protocol::TCP) ||
           proto == static_cast<std::uint8_t>(Protocol::UDP) ||
           proto == static_cast<std::uint8_t>(Protocol::SCTP);
}

std::string block_text(const IpBlock& b) {
    std::string s = format_cidr(b.cidr);
    for (std::size_t i = 0; i < b.except.size(); ++i)
        s += (i == 0 ? " except " : ", ") + format_cidr(b.except[i]);
    return s;
}

std::string port_text(const PortSpec& p) {
    std::string s = protocol_name(static_cast<std::uint8_t>(p.protocol));
    if (!p.has_port) return s + " (every port)";
    // append() rather than `" " + std::to_string(...)`: GCC 12 -O2 reports a
    // false -Wrestrict on operator+(const char*, string&&).
    s.append(" ").append(std::to_string(p.port));
    if (p.end_port != p.port) s.append("-").append(std::to_string(p.end_port));
    return s;
}

bool port_matches(const PortSpec& ps, std::uint8_t proto, std::uint16_t port) {
    if (proto != static_cast<std::uint8_t>(ps.protocol)) return false;
    return !ps.has_port || (ps.port <= port && port <= ps.end_port);
}

// The peer side of one rule: which ipBlock admits the peer, or why none does.
void check_peer(const Rule& r, const FlowQuery& q, RuleCheck& c) {
    if (r.any_peer) {
        c.peer_ok = true;
        c.peer = "any peer";
        return;
    }
    const std::string addr = format_addr(q.family, q.peer);
    std::vector<std::string> why;
    bool same_family = false;
    for (const IpBlock& b : r.peers) {
        if (b.cidr.family != q.family) continue;
        same_family = true;
        if (!cidr_contains(b.cidr, q.family, q.peer)) {
            why.push_back("not in " + format_cidr(b.cidr));
            continue;
        }
        auto ex = std::find_if(b.except.begin(), b.except.end(),
                               [&q](const Cidr& e) { return cidr_contains(e, q.family, q.peer); });
        if (ex == b.except.end()) {
            c.peer_ok = true;
            c.peer = block_text(b);
            return;
        }
        why.push_back("in " + format_cidr(b.cidr) + " but excepted by " + format_cidr(*ex));
    }
    if (!same_family) {
        c.peer =
            addr + ": the rule names no " + std::string(q.family == PF_FAMILY_V6 ? "IPv6" : "IPv4") + " peer";
        return;
    }
    c.peer = addr + " is ";
    for (std::size_t i = 0; i < why.size(); ++i)
        c.peer += (i == 0 ? "" : "; ") + why[i];
}

// The port side of one rule: which entry admits (proto, port), or why none does.
void check_port(const Rule& r, const FlowQuery& q, RuleCheck& c) {
    if (r.any_port) {
        c.port_ok = true;
        c.port = "any port and protocol";
        return;
    }
    std::string listed;
    for (const PortSpec& ps : r.ports) {
        if (port_matches(ps, q.proto, q.port)) {
            c.port_ok = true;
            c.port = port_text(ps);
            return;
        }
        listed += (listed.empty() ? "" : ", ") + port_text(ps);
    }
    std::string what = protocol_name(q.proto);
    if (has_ports(q.proto))
        what += " port " + std::to_string(q.port);
    else
        what += " (no port)";
    c.port = what + " is not in " + listed;
}

// An exact lookup, as in the BPF hash map (entries sorted by key).
const PolicyEntry* find(const std::vector<PolicyEntry>& entries, const pf_policy_key& k) {
    auto it = std::lower_bound(entries.begin(), entries.end(), k,
                               [](const PolicyEntry& e, const pf_policy_key& key) {
                                   return std::memcmp(&e.key, &key, sizeof key) < 0;
                               });
    if (it == entries.end() || std::memcmp(&it->key, &k, sizeof k) != 0) return nullptr;
    return &*it;
}

// Keeps the first `bits` bits of data (the kernel clamps lengths past 128).
void keep_bits(std::uint8_t* data, unsigned bits) {
    for (unsigned i = bits; i < 128; ++i)
        data[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
}

// bpf/policy.h pf_search: start from the table's ROOT rope; each hit
// remembers its answer and continues with its rope; the last hit wins.
std::uint32_t search(const std::vector<PolicyEntry>& entries, pf_policy_key k, std::uint8_t root_kind,
                     const std::uint8_t* data, bool port, std::uint32_t none) {
    pf_policy_key root = k;
    root.prefixlen = PF_ROOT_PREFIXLEN;
    root.kind = root_kind;
    std::memset(root.data, 0, sizeof root.data);
    const PolicyEntry* r = find(entries, root);
    std::uint64_t rope = r ? r->val.rope : PF_ROPE_EMPTY;
    std::uint32_t answer = none;
    for (unsigned i = 0; i < PF_ROPE_MAX; ++i) {
        const auto len = static_cast<unsigned>(rope & 0xff);
        if (len == PF_ROPE_END) break;
        rope = rope >> 8 | std::uint64_t{PF_ROPE_END} << 56;
        k.prefixlen = PF_KEY_HDR_BITS + len;
        std::memcpy(k.data, data, sizeof k.data);
        keep_bits(k.data, len);
        if (const PolicyEntry* e = find(entries, k)) {
            answer = port ? e->val.rule : e->val.set;
            rope = e->val.rope;
        }
    }
    return answer;
}

} // namespace

std::string direction_name(Direction d) {
    return d == Direction::Ingress ? "ingress" : "egress";
}

std::string protocol_name(std::uint8_t proto) {
    switch (proto) {
    case static_cast<std::uint8_t>(Protocol::TCP): return "TCP";
    case static_cast<std::uint8_t>(Protocol::UDP): return "UDP";
    case static_cast<std::uint8_t>(Protocol::SCTP): return "SCTP";
    case kProtoIcmp: return "ICMP";
    case kProtoIcmpV6: return "ICMPv6";
    case kProtoOther: return "other";
    default: return "protocol " + std::to_string(proto);
    }
}

std::string rule_label(Direction d, std::uint32_t i) {
    return direction_name(d) + "[" + std::to_string(i) + "]";
}

std::string describe(const FlowQuery& q) {
    std::string s = q.proto == kProtoOther ? std::string("a protocol without ports") : protocol_name(q.proto);
    if (has_ports(q.proto)) s += " port " + std::to_string(q.port);
    return s + (q.dir == Direction::Ingress ? " from " : " to ") + format_addr(q.family, q.peer);
}

FlowQuery parse_flow_query(const FlowArgs& args) {
    FlowQuery q;
    if (!args.direction) throw Error(Code::InvalidConfig, "explain needs --direction ingress|egress");
    if (*args.direction == "ingress")
        q.dir = Direction::Ingress;
    else if (*args.direction == "egress")
        q.dir = Direction::Egress;
    else
        throw Error(Code::InvalidConfig, "--direction: \"" + *args.direction + "\" is not ingress or egress");

    if (!args.peer) throw Error(Code::InvalidConfig, "explain needs --peer ADDRESS");
    if (inet_pton(AF_INET, args.peer->c_str(), q.peer.data()) == 1)
        q.family = PF_FAMILY_V4;
    else if (inet_pton(AF_INET6, args.peer->c_str(), q.peer.data()) == 1)
        q.family = PF_FAMILY_V6;
    else
        throw Error(Code::InvalidConfig,
                    "--peer: \"" + *args.peer + "\" is not an IPv4 or IPv6 address (no prefix length)");

    if (!args.proto)
        q.proto = args.port ? static_cast<std::uint8_t>(Protocol::TCP) : kProtoOther;
    else if (const std::string p = upper(*args.proto); p == "TCP")
        q.proto = static_cast<std::uint8_t>(Protocol::TCP);
    else if (p == "UDP")
        q.proto = static_cast<std::uint8_t>(Protocol::UDP);
    else if (p == "SCTP")
        q.proto = static_cast<std::uint8_t>(Protocol::SCTP);
    else if (p == "ICMP" || p == "ICMPV6")
        q.proto = q.family == PF_FAMILY_V6 ? kProtoIcmpV6 : kProtoIcmp;
    else
        throw Error(Code::InvalidConfig, "--proto: \"" + *args.proto + "\" is not TCP, UDP, SCTP or ICMP");

    if (has_ports(q.proto) && !args.port)
        throw Error(Code::InvalidConfig, "explain --proto " + protocol_name(q.proto) + " needs --port N");
    if (args.port) {
        if (!has_ports(q.proto))
            throw Error(Code::InvalidConfig, "--port: " + protocol_name(q.proto) + " has no ports");
        unsigned n = 0;
        const std::string& s = *args.port;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc() || end != s.data() + s.size() || n < 1 || n > 65535)
            throw Error(Code::InvalidConfig, "--port: \"" + s + "\" is not a port (1-65535)");
        q.port = static_cast<std::uint16_t>(n);
    }
    return q;
}

Explanation explain(const Policy& policy, const FlowQuery& q) {
    Explanation x;
    x.isolated = policy.isolated(q.dir);
    if (!x.isolated) {
        x.allowed = true;
        return x;
    }
    const auto& rules = policy.rules(q.dir);
    std::vector<RuleCheck> checks;
    for (std::uint32_t i = 0; i < rules.size(); ++i) {
        RuleCheck c;
        c.index = i;
        check_peer(rules[i], q, c);
        check_port(rules[i], q, c);
        if (c.peer_ok && c.port_ok) {
            x.allowed = true;
            x.rule = i;
            x.match = std::move(c);
            return x;
        }
        checks.push_back(std::move(c));
    }
    // Closest first: a rule that failed in one part only is what the
    // operator most likely meant.
    std::stable_sort(checks.begin(), checks.end(), [](const RuleCheck& a, const RuleCheck& b) {
        return (a.peer_ok || a.port_ok) > (b.peer_ok || b.port_ok);
    });
    x.failed = std::move(checks);
    return x;
}

LiveVerdict live_decide(const std::vector<PolicyEntry>& entries, const FlowQuery& q) {
    LiveVerdict v;
    pf_policy_key k{};
    k.kind = PF_KIND_ADDR;
    k.dir = static_cast<std::uint8_t>(q.dir);
    k.family = q.family;
    v.set = search(entries, k, PF_KIND_ADDR_ROOT, q.peer.data(), false, PF_SET_NONE);
    if (v.set == PF_SET_NONE) return v;
    // The port key: protocol, then the destination port, big endian.
    std::uint8_t d[16] = {q.proto, static_cast<std::uint8_t>(q.port >> 8),
                          static_cast<std::uint8_t>(q.port & 0xff)};
    k = pf_policy_key{};
    k.kind = PF_KIND_PORT;
    k.dir = static_cast<std::uint8_t>(q.dir);
    k.set = v.set;
    v.rule = search(entries, k, PF_KIND_PORT_ROOT, d, true, PF_RULE_NONE);
    v.allowed = v.rule != PF_RULE_NONE;
    return v;
}

} // namespace podfence::policy
