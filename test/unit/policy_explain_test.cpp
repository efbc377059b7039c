// `podfence explain`'s two sides: the reference-with-reasons explanation and
// the userspace walk of a compiled policy map, held to the reference
// evaluator on random policies, plus the parsing of explain's options.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "addr.hpp"
#include "common/error.hpp"
#include "policy/cidr.hpp"
#include "policy/compile.hpp"
#include "policy/explain.hpp"
#include "support/evaluator.hpp"

using namespace podfence::policy;
using podfence::Code;
using podfence::Error;

namespace {

FlowQuery query(const FlowArgs& a) {
    return parse_flow_query(a);
}

Code code_of(const FlowArgs& a) {
    try {
        parse_flow_query(a);
    } catch (const Error& e) {
        return e.code();
    }
    return Code::Io; // "did not throw": never InvalidConfig
}

FlowQuery flow(Direction d, const char* peer, std::uint8_t proto, std::uint16_t port) {
    FlowQuery q;
    q.dir = d;
    q.family = std::strchr(peer, ':') ? PF_FAMILY_V6 : PF_FAMILY_V4;
    q.peer = addr(peer);
    q.proto = proto;
    q.port = port;
    return q;
}

constexpr std::uint8_t kTcp = 6, kUdp = 17;

} // namespace

TEST_CASE("explain options: direction, peer, protocol, port") {
    auto q = query({"ingress", "10.1.2.3", "tcp", "8080"});
    CHECK(q.dir == Direction::Ingress);
    CHECK(q.family == PF_FAMILY_V4);
    CHECK(q.peer == addr("10.1.2.3"));
    CHECK(q.proto == kTcp);
    CHECK(q.port == 8080);

    q = query({"egress", "fd00::1", "UDP", "53"});
    CHECK(q.dir == Direction::Egress);
    CHECK(q.family == PF_FAMILY_V6);
    CHECK(q.proto == kUdp);

    CHECK(query({"ingress", "10.0.0.1", "SCTP", "1"}).proto == 132);
    CHECK(query({"ingress", "10.0.0.1", "ICMP", std::nullopt}).proto == kProtoIcmp);
    // ICMP towards an IPv6 peer is ICMPv6, as on the wire.
    CHECK(query({"ingress", "fd00::1", "icmp", std::nullopt}).proto == kProtoIcmpV6);
    CHECK(query({"ingress", "fd00::1", "ICMP", std::nullopt}).port == 0);
    // --port alone: TCP (Kubernetes' default protocol).
    CHECK(query({"ingress", "10.0.0.1", std::nullopt, "443"}).proto == kTcp);
    // Neither: a portless protocol no rule can name.
    q = query({"ingress", "10.0.0.1", std::nullopt, std::nullopt});
    CHECK(q.proto == kProtoOther);
    CHECK(q.port == 0);
    CHECK(query({"ingress", "10.0.0.1", "tcp", "65535"}).port == 65535);
}

TEST_CASE("explain options: what is refused") {
    const FlowArgs bad[] = {
        {std::nullopt, "10.0.0.1", "TCP", "80"},      // no direction
        {"in", "10.0.0.1", "TCP", "80"},              // not a direction
        {"ingress", std::nullopt, "TCP", "80"},       // no peer
        {"ingress", "10.0.0.0/8", "TCP", "80"},       // a prefix, not an address
        {"ingress", "example.com", "TCP", "80"},      // not an address
        {"ingress", "10.0.0.1", "GRE", std::nullopt}, // protocol not in the policy language
        {"ingress", "10.0.0.1", "TCP", std::nullopt}, // TCP needs a port
        {"ingress", "10.0.0.1", "UDP", "0"},          // ports are 1..65535
        {"ingress", "10.0.0.1", "UDP", "65536"},      // ..
        {"ingress", "10.0.0.1", "UDP", "80x"},        // ..
        {"ingress", "10.0.0.1", "UDP", "-1"},         // ..
        {"ingress", "10.0.0.1", "ICMP", "8"},         // ICMP has no port
        {"egress", "fd00::1", "icmpv6", "1"},         // ..
    };
    for (const auto& a : bad) {
        CAPTURE(a.direction.value_or("-"));
        CAPTURE(a.peer.value_or("-"));
        CAPTURE(a.proto.value_or("-"));
        CAPTURE(a.port.value_or("-"));
        CHECK(code_of(a) == Code::InvalidConfig);
    }
}

TEST_CASE("explain: the admitting rule and what matched") {
    const Policy p = parse_policy(R"({"policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
             "ports": [{"protocol": "TCP", "port": 8000, "endPort": 8001}, {"protocol": "UDP", "port": 53}]},
            {"from": [{"ipBlock": {"cidr": "10.1.2.3/32"}}]}],
        "egress": []})");

    auto x = explain(p, flow(Direction::Ingress, "10.2.0.1", kTcp, 8001));
    CHECK(x.allowed);
    REQUIRE(x.rule);
    CHECK(*x.rule == 0);
    CHECK(x.match.peer == "10.0.0.0/8 except 10.1.0.0/16");
    CHECK(x.match.port == "TCP 8000-8001");

    // In the except, but the second rule (no ports: ICMP too) names it.
    x = explain(p, flow(Direction::Ingress, "10.1.2.3", kProtoIcmp, 0));
    CHECK(x.allowed);
    CHECK(x.rule == 1u);
    CHECK(x.match.port == "any port and protocol");

    // Ingress isolated: port misses rule 0, peer misses rule 1.
    x = explain(p, flow(Direction::Ingress, "10.2.0.1", kTcp, 8002));
    CHECK_FALSE(x.allowed);
    CHECK(x.isolated);
    REQUIRE(x.failed.size() == 2);
    CHECK(x.failed[0].index == 0);
    CHECK(x.failed[0].peer_ok);
    CHECK_FALSE(x.failed[0].port_ok);
    CHECK(x.failed[0].port == "TCP port 8002 is not in TCP 8000-8001, UDP 53");
    CHECK(x.failed[1].index == 1);
    CHECK_FALSE(x.failed[1].peer_ok);
    CHECK(x.failed[1].peer == "10.2.0.1 is not in 10.1.2.3/32");

    // The except: rule 0 fails on the peer, and says why.
    x = explain(p, flow(Direction::Ingress, "10.1.9.9", kUdp, 53));
    CHECK_FALSE(x.allowed);
    REQUIRE(x.failed.size() == 2);
    CHECK(x.failed[0].index == 0); // port matched: the closer rule
    CHECK(x.failed[0].peer == "10.1.9.9 is in 10.0.0.0/8 but excepted by 10.1.0.0/16");

    // IPv6 against IPv4-only rules.
    x = explain(p, flow(Direction::Ingress, "fd00::1", kTcp, 8000));
    CHECK_FALSE(x.allowed);
    CHECK(x.failed[0].peer == "fd00::1: the rule names no IPv6 peer");

    // A portless flow against a rule with ports.
    x = explain(p, flow(Direction::Ingress, "10.2.0.1", kProtoIcmp, 0));
    CHECK(x.failed[0].port == "ICMP (no port) is not in TCP 8000-8001, UDP 53");

    // Egress isolated, no rules at all.
    x = explain(p, flow(Direction::Egress, "10.2.0.1", kTcp, 80));
    CHECK_FALSE(x.allowed);
    CHECK(x.isolated);
    CHECK(x.failed.empty());

    // Not isolated: allowed without a rule.
    x = explain(parse_policy(R"({"policyTypes": ["Egress"], "egress": []})"),
                flow(Direction::Ingress, "10.2.0.1", kTcp, 80));
    CHECK(x.allowed);
    CHECK_FALSE(x.isolated);
    CHECK_FALSE(x.rule);
}

TEST_CASE("explain: describe and labels") {
    CHECK(describe(flow(Direction::Ingress, "10.0.0.1", kTcp, 80)) == "TCP port 80 from 10.0.0.1");
    CHECK(describe(flow(Direction::Egress, "fd00::1", kProtoIcmpV6, 0)) == "ICMPv6 to fd00::1");
    CHECK(describe(flow(Direction::Egress, "fd00::1", kProtoOther, 0)) ==
          "a protocol without ports to fd00::1");
    CHECK(rule_label(Direction::Egress, 3) == "egress[3]");
}

namespace {

// Random policies over a small address and port space, so peers, excepts
// and port ranges overlap often.
struct Rand {
    std::mt19937 rng;
    explicit Rand(unsigned seed) : rng(seed) {}
    unsigned in(unsigned lo, unsigned hi) { return std::uniform_int_distribution<unsigned>(lo, hi)(rng); }

    std::array<std::uint8_t, 16> host(std::uint8_t family) {
        auto a = addr(family == PF_FAMILY_V4 ? "10.0.0.0" : "fd00::");
        a[family == PF_FAMILY_V4 ? 3 : 15] = static_cast<std::uint8_t>(in(0, 63));
        return a;
    }
    Cidr cidr(std::uint8_t family, unsigned min_len) {
        const unsigned bits = family_bits(family);
        Cidr c;
        c.family = family;
        c.prefix_len = static_cast<std::uint8_t>(in(std::max(min_len, bits - 7), bits));
        c.addr = mask_addr(host(family), c.prefix_len);
        return c;
    }
    std::string json_policy() {
        std::string out = R"({"policyTypes": [)";
        const unsigned iso = in(0, 3);
        out += std::string(iso & 1 ? R"("Ingress")" : "") + (iso == 3 ? "," : "") +
               (iso & 2 ? R"("Egress")" : "");
        out += "]";
        for (const char* d : {"ingress", "egress"}) {
            out += std::string(", \"") + d + "\": [";
            const unsigned rules = in(0, 3);
            for (unsigned r = 0; r < rules; ++r) {
                out += std::string(r ? "," : "") + "{";
                if (in(0, 3) != 0) {
                    out += std::string("\"") + (d[0] == 'i' ? "from" : "to") + "\": [";
                    const unsigned peers = in(1, 2);
                    for (unsigned i = 0; i < peers; ++i) {
                        const std::uint8_t fam = in(0, 1) ? PF_FAMILY_V4 : PF_FAMILY_V6;
                        const Cidr c = cidr(fam, 0);
                        out +=
                            std::string(i ? "," : "") + R"({"ipBlock": {"cidr": ")" + format_cidr(c) + "\"";
                        if (c.prefix_len < family_bits(fam) && in(0, 1)) {
                            Cidr e = cidr(fam, c.prefix_len + 1u);
                            // Inside c: c's bits, then e's own.
                            for (unsigned b = 0; b < c.prefix_len; ++b) {
                                const auto bit = static_cast<std::uint8_t>(0x80u >> (b % 8));
                                e.addr[b / 8] =
                                    static_cast<std::uint8_t>((e.addr[b / 8] & ~bit) | (c.addr[b / 8] & bit));
                            }
                            out += R"(, "except": [")" + format_cidr(e) + "\"]";
                        }
                        out += "}}";
                    }
                    out += "],";
                }
                out += R"("ports": [)";
                const unsigned ports = in(0, 2);
                for (unsigned i = 0; i < ports; ++i) {
                    const char* protos[] = {"TCP", "UDP", "SCTP"};
                    out += std::string(i ? "," : "") + R"({"protocol": ")" + protos[in(0, 2)] + "\"";
                    if (in(0, 3) != 0) {
                        const unsigned p = in(1, 40);
                        out += R"(, "port": )" + std::to_string(p);
                        if (in(0, 1)) out += R"(, "endPort": )" + std::to_string(p + in(0, 10));
                    }
                    out += "}";
                }
                out += "]}";
            }
            out += "]";
        }
        return out + "}";
    }
    FlowQuery flow_query() {
        FlowQuery q;
        q.dir = in(0, 1) ? Direction::Ingress : Direction::Egress;
        q.family = in(0, 1) ? PF_FAMILY_V4 : PF_FAMILY_V6;
        q.peer = host(q.family);
        const std::uint8_t protos[] = {kTcp, kUdp, 132, kProtoOther,
                                       q.family == PF_FAMILY_V4 ? kProtoIcmp : kProtoIcmpV6};
        q.proto = protos[in(0, 4)];
        q.port =
            q.proto == kTcp || q.proto == kUdp || q.proto == 132 ? static_cast<std::uint16_t>(in(1, 52)) : 0;
        return q;
    }
};

} // namespace

TEST_CASE("explain and the live-map walk agree with the reference evaluator (random policies)") {
    Rand r(91);
    for (int i = 0; i < 300; ++i) {
        const std::string text = r.json_policy();
        CAPTURE(text);
        const Policy p = parse_policy(text);
        const auto entries = compile(p); // sorted, as PolicyStore::read returns them
        for (int j = 0; j < 60; ++j) {
            const FlowQuery q = r.flow_query();
            CAPTURE(describe(q));
            CAPTURE(direction_name(q.dir));
            Packet pkt;
            pkt.dir = q.dir;
            pkt.family = q.family;
            (q.dir == Direction::Ingress ? pkt.src : pkt.dst) = q.peer;
            (q.dir == Direction::Ingress ? pkt.dst : pkt.src) =
                addr(q.family == PF_FAMILY_V4 ? "10.9.9.9" : "fd09::9");
            pkt.proto = q.proto;
            pkt.dport = q.port;
            const Decision ref = evaluate(p, pkt);
            const Explanation x = explain(p, q);
            const LiveVerdict live = live_decide(entries, q);
            REQUIRE(x.allowed == ref.allowed);
            REQUIRE(live.allowed == ref.allowed);
            if (ref.allowed) {
                CHECK(x.rule.value_or(PF_RULE_DEFAULT) == ref.rule);
                CHECK(live.rule == ref.rule);
            } else {
                // Every rule of the isolated direction failed in some part.
                CHECK(x.failed.size() == p.rules(q.dir).size());
                for (const auto& c : x.failed)
                    CHECK_FALSE((c.peer_ok && c.port_ok));
            }
        }
    }
}

TEST_CASE("live walk: an empty map denies (no policy map entries = fail closed)") {
    CHECK_FALSE(live_decide({}, flow(Direction::Ingress, "10.0.0.1", kTcp, 80)).allowed);
}
