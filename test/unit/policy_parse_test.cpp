// parse_policy(): semantics of each field and every bad-input class (the
// message must name the field so an operator can fix the annotation).
#include <doctest/doctest.h>

#include <string>

#include "common/error.hpp"
#include "policy/cidr.hpp"
#include "policy/policy.hpp"

using namespace podfence;
using namespace podfence::policy;

namespace {

Cidr cidr(const char* text) {
    std::string why;
    auto c = parse_cidr(text, why);
    REQUIRE_MESSAGE(c.has_value(), why);
    return *c;
}

// The full message of the InvalidPolicy error parse_policy throws.
std::string error_of(const std::string& json) {
    try {
        parse_policy(json);
    } catch (const Error& e) {
        CHECK(e.code() == Code::InvalidPolicy);
        return e.what();
    }
    return "<no error>";
}

} // namespace

TEST_CASE("parse: the documented example") {
    const Policy p = parse_policy(R"({"policyTypes": ["Ingress","Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                     "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "UDP", "port": 5000, "endPort": 5100}]}],
        "egress":  [{"to": [{"ipBlock": {"cidr": "fd00::/64"}}]}]})");
    CHECK(p.isolate_ingress);
    CHECK(p.isolate_egress);
    REQUIRE(p.ingress.size() == 1);
    const Rule& r = p.ingress[0];
    CHECK_FALSE(r.any_peer);
    REQUIRE(r.peers.size() == 1);
    CHECK(r.peers[0].cidr == cidr("10.0.0.0/8"));
    REQUIRE(r.peers[0].except.size() == 1);
    CHECK(r.peers[0].except[0] == cidr("10.1.0.0/16"));
    CHECK_FALSE(r.any_port);
    REQUIRE(r.ports.size() == 2);
    CHECK(r.ports[0] == PortSpec{Protocol::TCP, true, 8080, 8080});
    CHECK(r.ports[1] == PortSpec{Protocol::UDP, true, 5000, 5100});
    REQUIRE(p.egress.size() == 1);
    CHECK(p.egress[0].peers[0].cidr.family == PF_FAMILY_V6);
    CHECK(p.egress[0].peers[0].cidr.prefix_len == 64);
    CHECK(p.egress[0].any_port);
}

TEST_CASE("parse: policyTypes defaults and explicit values") {
    struct Case {
        const char* json;
        bool ingress, egress;
    };
    const Case cases[] = {
        {R"({})", true, false},
        {R"({"ingress": []})", true, false},
        {R"({"egress": []})", true, true},    // an egress key present => Egress too
        {R"({"egress": null})", true, false}, // null is absent
        {R"({"policyTypes": ["Egress"]})", false, true},
        {R"({"policyTypes": ["Ingress"], "egress": [{}]})", true, false},
        {R"({"policyTypes": ["Egress", "Ingress", "Egress"]})", true, true},
        {R"({"policyTypes": []})", false, false}, // explicit: nothing isolated
        {R"({"podSelector": {}})", true, false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.json);
        const Policy p = parse_policy(c.json);
        CHECK(p.isolate_ingress == c.ingress);
        CHECK(p.isolate_egress == c.egress);
    }
}

TEST_CASE("parse: empty lists mean any peer / any port, like absent ones") {
    const Policy p =
        parse_policy(R"({"ingress": [{}, {"from": [], "ports": []}, {"from": null, "ports": null},
                                                  {"ports": [{"protocol": "SCTP"}]}]})");
    REQUIRE(p.ingress.size() == 4);
    for (int i = 0; i < 3; ++i) {
        CHECK(p.ingress[i].any_peer);
        CHECK(p.ingress[i].any_port);
        CHECK(p.ingress[i].peers.empty());
        CHECK(p.ingress[i].ports.empty());
    }
    CHECK(p.ingress[3].any_peer);
    CHECK_FALSE(p.ingress[3].any_port);
    CHECK(p.ingress[3].ports[0] == PortSpec{Protocol::SCTP, false, 0, 0});
}

TEST_CASE("parse: protocol defaults to TCP") {
    const Policy p = parse_policy(R"({"ingress": [{"ports": [{"port": 53}]}]})");
    CHECK(p.ingress[0].ports[0] == PortSpec{Protocol::TCP, true, 53, 53});
}

TEST_CASE("parse: host bits are masked in cidr and except") {
    const Policy p =
        parse_policy(R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.1.2.3/8", "except": ["10.9.9.9/16"]}},
                                                           {"ipBlock": {"cidr": "fd00::1:2/64"}},
                                                           {"ipBlock": {"cidr": "192.168.1.7/32"}},
                                                           {"ipBlock": {"cidr": "1.2.3.4/0"}}]}]})");
    const auto& peers = p.ingress[0].peers;
    CHECK(peers[0].cidr == cidr("10.0.0.0/8"));
    CHECK(format_cidr(peers[0].cidr) == "10.0.0.0/8");
    CHECK(format_cidr(peers[0].except[0]) == "10.9.0.0/16");
    CHECK(format_cidr(peers[1].cidr) == "fd00::/64");
    CHECK(format_cidr(peers[2].cidr) == "192.168.1.7/32");
    CHECK(format_cidr(peers[3].cidr) == "0.0.0.0/0");
}

TEST_CASE("parse: every bad input names its field") {
    struct Case {
        const char* name;
        const char* json;
        const char* message; // the whole message must start with this
    };
    const Case cases[] = {
        // document
        {"not JSON", R"({"ingress": [)", "podfence.io/policy: not valid JSON"},
        {"not an object", R"([1,2])", "podfence.io/policy: must be a JSON object"},
        {"string document", R"("x")", "podfence.io/policy: must be a JSON object"},
        // unknown keys at every level
        {"unknown top key", R"({"ingres": []})", "podfence.io/policy: ingres: unknown field"},
        {"unknown rule key", R"({"ingress": [{"to": []}]})",
         "podfence.io/policy: ingress[0].to: unknown field"},
        {"unknown egress rule key", R"({"egress": [{"from": []}]})",
         "podfence.io/policy: egress[0].from: unknown field"},
        {"unknown peer key", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "1.0.0.0/8"}, "x": 1}]}]})",
         "podfence.io/policy: ingress[0].from[0].x: unknown field"},
        {"unknown ipBlock key",
         R"({"ingress": [{"from": [{"ipBlock": {"cidr": "1.0.0.0/8", "excepts": []}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.excepts: unknown field"},
        {"unknown port key", R"({"egress": [{"ports": [{"port": 1, "end_port": 2}]}]})",
         "podfence.io/policy: egress[0].ports[0].end_port: unknown field"},
        // wrong JSON types
        {"policyTypes string", R"({"policyTypes": "Ingress"})",
         "podfence.io/policy: policyTypes: must be an array"},
        {"policyTypes element", R"({"policyTypes": [1]})",
         "podfence.io/policy: policyTypes[0]: must be a string"},
        {"ingress object", R"({"ingress": {}})", "podfence.io/policy: ingress: must be an array"},
        {"rule not object", R"({"ingress": [[]]})", "podfence.io/policy: ingress[0]: must be an object"},
        {"from not array", R"({"ingress": [{"from": {}}]})",
         "podfence.io/policy: ingress[0].from: must be an array"},
        {"peer not object", R"({"egress": [{"to": ["10.0.0.0/8"]}]})",
         "podfence.io/policy: egress[0].to[0]: must be an object"},
        {"ipBlock not object", R"({"egress": [{"to": [{"ipBlock": "10.0.0.0/8"}]}]})",
         "podfence.io/policy: egress[0].to[0].ipBlock: must be an object"},
        {"cidr number", R"({"egress": [{"to": [{"ipBlock": {"cidr": 10}}]}]})",
         "podfence.io/policy: egress[0].to[0].ipBlock.cidr: must be a string"},
        {"except string",
         R"({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": "10.1.0.0/16"}}]}]})",
         "podfence.io/policy: egress[0].to[0].ipBlock.except: must be an array"},
        {"ports object", R"({"ingress": [{"ports": {"port": 80}}]})",
         "podfence.io/policy: ingress[0].ports: must be an array"},
        {"protocol number", R"({"ingress": [{"ports": [{"protocol": 6}]}]})",
         "podfence.io/policy: ingress[0].ports[0].protocol: must be a string"},
        {"port bool", R"({"ingress": [{"ports": [{"port": true}]}]})",
         "podfence.io/policy: ingress[0].ports[0].port: must be an integer"},
        {"podSelector array", R"({"podSelector": []})", "podfence.io/policy: podSelector: must be an object"},
        // policyTypes values
        {"bad policy type", R"({"policyTypes": ["Ingress", "ingress"]})",
         "podfence.io/policy: policyTypes[1]: \"ingress\" is not a policy type"},
        // CIDRs
        {"bare address", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"10.0.0.1\" is not a CIDR: missing "
         "/prefix-length"},
        {"v4 prefix too long", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"10.0.0.0/33\" is not a CIDR: prefix length "
         "33"},
        {"v6 prefix too long", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/129"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"fd00::/129\" is not a CIDR: prefix length "
         "129"},
        {"bad v4 syntax", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.256/8"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"10.0.0.256/8\" is not a CIDR: bad IPv4"},
        {"bad v6 syntax", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "fd00:::1/64"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"fd00:::1/64\" is not a CIDR: bad IPv6"},
        {"v4 leading zeros", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "010.0.0.0/8"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"010.0.0.0/8\" is not a CIDR: bad IPv4"},
        {"short v4", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10/8"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"10/8\" is not a CIDR: bad IPv4"},
        {"empty prefix", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"10.0.0.0/\" is not a CIDR: bad prefix "
         "length"},
        {"negative prefix", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/-1"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"10.0.0.0/-1\" is not a CIDR: bad prefix "
         "length"},
        {"prefix junk", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8x"}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: \"10.0.0.0/8x\" is not a CIDR: bad prefix "
         "length"},
        {"missing cidr", R"({"ingress": [{"from": [{"ipBlock": {"except": []}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.cidr: is required"},
        {"bad except syntax",
         R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0"]}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.except[0]: \"10.1.0.0\" is not a CIDR"},
        // except placement
        {"except outside", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.1.0.0/16"}},
                                                     {"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.1.0/24", "10.2.0.0/16"]}}]}]})",
         "podfence.io/policy: ingress[0].from[1].ipBlock.except[1]: 10.2.0.0/16 is not inside cidr "
         "10.1.0.0/16"},
        {"except equal",
         R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.0.0/16"]}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.except[0]: 10.1.0.0/16 is not inside cidr "
         "10.1.0.0/16"},
        {"except shorter",
         R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.0.0.0/8"]}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.except[0]: 10.0.0.0/8 is not inside cidr "
         "10.1.0.0/16"},
        {"except other family",
         R"({"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["::/1"]}}]}]})",
         "podfence.io/policy: ingress[0].from[0].ipBlock.except[0]: ::/1 is not inside cidr 0.0.0.0/0"},
        // ports
        {"port 0", R"({"ingress": [{"ports": [{"port": 0}]}]})",
         "podfence.io/policy: ingress[0].ports[0].port: 0 is not a port number 1-65535"},
        {"port 65536", R"({"ingress": [{"ports": [{"port": 65536}]}]})",
         "podfence.io/policy: ingress[0].ports[0].port: 65536 is not a port number 1-65535"},
        {"port negative", R"({"ingress": [{"ports": [{"port": -80}]}]})",
         "podfence.io/policy: ingress[0].ports[0].port: -80 is not a port number 1-65535"},
        {"port huge", R"({"ingress": [{"ports": [{"port": 18446744073709551615}]}]})",
         "podfence.io/policy: ingress[0].ports[0].port: 18446744073709551615 is not a port number"},
        {"port float", R"({"ingress": [{"ports": [{"port": 80.5}]}]})",
         "podfence.io/policy: ingress[0].ports[0].port: must be an integer 1-65535, got a non-integer "
         "number"},
        {"named port", R"({"ingress": [{"ports": [{"port": "http"}]}]})",
         "podfence.io/policy: ingress[0].ports[0].port: named port \"http\" is not supported"},
        {"endPort < port", R"({"ingress": [{"ports": [{"port": 443, "endPort": 80}]}]})",
         "podfence.io/policy: ingress[0].ports[0].endPort: 80 is less than port 443"},
        {"endPort without port", R"({"egress": [{"ports": [{"protocol": "UDP", "endPort": 80}]}]})",
         "podfence.io/policy: egress[0].ports[0].endPort: requires port"},
        {"endPort 65536", R"({"egress": [{"ports": [{"port": 1, "endPort": 65536}]}]})",
         "podfence.io/policy: egress[0].ports[0].endPort: 65536 is not a port number 1-65535"},
        {"endPort named", R"({"egress": [{"ports": [{"port": 1, "endPort": "x"}]}]})",
         "podfence.io/policy: egress[0].ports[0].endPort: named port"},
        {"lowercase protocol", R"({"ingress": [{"ports": [{"protocol": "tcp", "port": 80}]}]})",
         "podfence.io/policy: ingress[0].ports[0].protocol: \"tcp\" is not a protocol"},
        {"ICMP protocol", R"({"ingress": [{"ports": [{"protocol": "ICMP"}]}]})",
         "podfence.io/policy: ingress[0].ports[0].protocol: \"ICMP\" is not a protocol"},
        // selectors
        {"peer podSelector", R"({"ingress": [{"from": [{"podSelector": {"matchLabels": {"a": "b"}}}]}]})",
         "podfence.io/policy: ingress[0].from[0].podSelector: cannot be resolved on a node: only ipBlock "
         "peers are supported"},
        {"peer namespaceSelector",
         R"({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"namespaceSelector": {}}]}]})",
         "podfence.io/policy: egress[0].to[1].namespaceSelector: cannot be resolved on a node: only ipBlock "
         "peers are supported"},
        {"peer without ipBlock", R"({"egress": [{"to": [{}]}]})",
         "podfence.io/policy: egress[0].to[0]: a peer needs an ipBlock"},
        {"top podSelector labels", R"({"podSelector": {"matchLabels": {"app": "x"}}})",
         "podfence.io/policy: podSelector: only {} (this pod) is supported"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        const std::string msg = error_of(c.json);
        CAPTURE(msg);
        CHECK(msg.rfind(c.message, 0) == 0);
    }
}

TEST_CASE("parse: the total item limit names the field that crosses it") {
    // 1 rule + kMaxPolicyItems ports: the last port is item kMaxPolicyItems + 1.
    std::string json = R"({"ingress": [{"ports": [)";
    for (std::size_t i = 0; i < kMaxPolicyItems; ++i)
        json += i ? ",{}" : "{}";
    json += "]}]}";
    const std::string msg = error_of(json);
    CHECK(msg == "podfence.io/policy: ingress[0].ports[" + std::to_string(kMaxPolicyItems - 1) +
                     "]: policy has more than " + std::to_string(kMaxPolicyItems) +
                     " rules, peers, except blocks and ports in total");

    // Exactly at the limit is fine.
    std::string ok = R"({"ingress": [{"ports": [)";
    for (std::size_t i = 0; i + 1 < kMaxPolicyItems; ++i)
        ok += i ? ",{}" : "{}";
    ok += "]}]}";
    CHECK(parse_policy(ok).ingress[0].ports.size() == kMaxPolicyItems - 1);
}

TEST_CASE("to_json: canonical, and parse_policy reads it back equal") {
    const char* inputs[] = {
        R"({})",
        R"({"policyTypes": []})",
        R"({"egress": []})",
        R"({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{"ports": [{"port": 1}]}]})",
        R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.1.2.3/8", "except": ["10.9.0.0/16", "10.8.8.0/24"]}},
                                  {"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:1::/32"]}}],
                         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "SCTP"}, {"port": 10, "endPort": 20},
                                   {"port": 7, "endPort": 7}]},
                        {"from": [], "ports": []}],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]})",
    };
    for (const char* in : inputs) {
        CAPTURE(in);
        const Policy p = parse_policy(in);
        const std::string canon = to_json(p);
        CAPTURE(canon);
        CHECK(parse_policy(canon) == p);
        CHECK(to_json(parse_policy(canon)) == canon); // a fixed point
        CHECK(canon.find("\"policyTypes\"") != std::string::npos);
    }
    CHECK(
        to_json(parse_policy(
            R"({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.1/24"}}], "ports": [{"port": 5, "endPort": 5}]}]})")) ==
        R"({"egress":[{"ports":[{"port":5,"protocol":"TCP"}],"to":[{"ipBlock":{"cidr":"10.0.0.0/24"}}]}],"ingress":[],"policyTypes":["Ingress","Egress"]})");
    CHECK(parse_policy(to_json(default_policy(DefaultAction::Allow))) ==
          default_policy(DefaultAction::Allow));
    CHECK(parse_policy(to_json(default_policy(DefaultAction::Deny))) == default_policy(DefaultAction::Deny));
}

TEST_CASE("default_policy") {
    const Policy allow = default_policy(DefaultAction::Allow);
    CHECK_FALSE(allow.isolate_ingress);
    CHECK_FALSE(allow.isolate_egress);
    const Policy deny = default_policy(DefaultAction::Deny);
    CHECK(deny.isolate_ingress);
    CHECK(deny.isolate_egress);
    CHECK(deny.ingress.empty());
    CHECK(deny.egress.empty());
}
