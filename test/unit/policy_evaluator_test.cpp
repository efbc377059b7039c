// The reference evaluator, one semantic rule per table row, and the stateful
// model (conntrack by pod-centric key, revisions, re-validation).
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "policy/evaluator.hpp"
#include "addr.hpp"

using namespace podfence::policy;

namespace {

constexpr const char* kPod4 = "10.244.0.5";
constexpr const char* kPod6 = "fd10::5";

// A packet between the pod and `peer`, in direction `dir` (pod-relative).
Packet pkt(Direction dir, const char* peer, std::uint8_t proto, std::uint16_t dport,
           std::uint16_t sport = 40000) {
    Packet p;
    p.dir = dir;
    p.family = std::strchr(peer, ':') ? PF_FAMILY_V6 : PF_FAMILY_V4;
    const auto pod = addr(p.family == PF_FAMILY_V6 ? kPod6 : kPod4);
    p.src = dir == Direction::Ingress ? addr(peer) : pod;
    p.dst = dir == Direction::Ingress ? pod : addr(peer);
    p.proto = proto;
    p.dport = dport;
    p.sport = sport;
    return p;
}

// The reply to `p`: swapped direction, addresses and ports.
Packet reply(Packet p) {
    p.dir = p.dir == Direction::Ingress ? Direction::Egress : Direction::Ingress;
    std::swap(p.src, p.dst);
    std::swap(p.sport, p.dport);
    return p;
}

constexpr auto In = Direction::Ingress;
constexpr auto Eg = Direction::Egress;
constexpr std::uint32_t D = PF_RULE_DEFAULT;

} // namespace

TEST_CASE("evaluate: one row per semantic rule") {
    struct Case {
        const char* name;
        const char* policy;
        Packet packet;
        bool allowed;
        std::uint32_t rule;
    };
    auto frag = [](Packet p) {
        p.non_first_fragment = true;
        return p;
    };
    auto echo = [](Packet p) {
        p.icmp_echo = true;
        p.icmp_type = 8;
        p.sport = p.dport;
        return p;
    };
    auto icmp6 = [](Packet p, std::uint8_t type) {
        p.icmp_type = type;
        return p;
    };
    const char* web = R"({"policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                     "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "UDP", "port": 5000, "endPort": 5100}]},
                    {"from": [{"ipBlock": {"cidr": "10.1.2.0/24"}}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/64"}}], "ports": [{"protocol": "SCTP"}]}]})";
    const Case cases[] = {
        // isolation
        {"not isolated: anything passes, rule DEFAULT", R"({"policyTypes": []})", pkt(In, "1.2.3.4", 6, 22),
         true, D},
        {"not isolated egress ignores its rules",
         R"({"policyTypes": ["Ingress"], "egress": [{"ports": [{"port": 1}]}]})", pkt(Eg, "1.2.3.4", 6, 22),
         true, D},
        {"isolated, no rules: deny", R"({"policyTypes": ["Ingress"]})", pkt(In, "1.2.3.4", 6, 22), false, D},
        {"isolated egress, empty list: deny", R"({"egress": []})", pkt(Eg, "1.2.3.4", 1, 0), false, D},
        {"default Ingress only: egress open", R"({"ingress": []})", pkt(Eg, "1.2.3.4", 6, 22), true, D},
        // peers
        {"peer in cidr, port listed", web, pkt(In, "10.9.9.9", 6, 8080), true, 0},
        {"peer outside cidr", web, pkt(In, "11.0.0.1", 6, 8080), false, D},
        {"peer in except", web, pkt(In, "10.1.9.9", 6, 8080), false, D},
        {"peer in except but in a later rule's cidr", web, pkt(In, "10.1.2.3", 6, 8080), true, 1},
        {"ingress peer is the SOURCE", web,
         [] {
             auto p = pkt(In, "11.0.0.1", 6, 8080);
             p.dst = addr("10.9.9.9");
             return p;
         }(),
         false, D},
        {"egress peer is the DESTINATION", web, pkt(Eg, "fd00::1", 132, 9), true, 0},
        {"egress peer outside v6 cidr", web, pkt(Eg, "fd00:0:0:1::1", 132, 9), false, D},
        {"v4 rules never match v6", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]})",
         pkt(In, "fd00::1", 6, 80), false, D},
        {"v6 rules never match v4", R"({"ingress": [{"from": [{"ipBlock": {"cidr": "::/0"}}]}]})",
         pkt(In, "1.1.1.1", 6, 80), false, D},
        {"from [] is any peer, both families", R"({"ingress": [{"from": [], "ports": [{"port": 80}]}]})",
         pkt(In, "fd00::1", 6, 80), true, 0},
        // ports
        {"port range lower bound", web, pkt(In, "10.9.9.9", 17, 5000), true, 0},
        {"port range upper bound", web, pkt(In, "10.9.9.9", 17, 5100), true, 0},
        {"port range past the end", web, pkt(In, "10.9.9.9", 17, 5101), false, D},
        {"protocol must match", web, pkt(In, "10.9.9.9", 17, 8080), false, D},
        {"dport decides, not sport", web, pkt(In, "10.9.9.9", 6, 40000, 8080), false, D},
        {"egress also uses the destination port",
         R"({"egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})", pkt(Eg, "8.8.8.8", 17, 53, 33333),
         true, 0},
        {"whole-protocol spec admits any port", web, pkt(Eg, "fd00::1", 132, 65535), true, 0},
        {"whole-protocol spec admits port 0", web, pkt(Eg, "fd00::1", 132, 0), true, 0},
        {"ICMP only passes rules without ports", web, pkt(In, "10.9.9.9", 1, 0), false, D},
        {"ICMP with no ports rule", web, pkt(In, "10.1.2.3", 1, 0), true, 1},
        {"ICMP echo judged with port 0", R"({"ingress": [{"ports": [{"port": 7}]}]})",
         echo(pkt(In, "1.1.1.1", 1, 7)), false, D},
        {"GRE with ports: [] rule", R"({"ingress": [{"ports": []}]})", pkt(In, "1.1.1.1", 47, 0), true, 0},
        {"GRE vs TCP whole-protocol", R"({"ingress": [{"ports": [{"protocol": "TCP"}]}]})",
         pkt(In, "1.1.1.1", 47, 0), false, D},
        // fragments
        {"non-first fragment: port 0 misses port rules", web, frag(pkt(In, "10.9.9.9", 6, 8080)), false, D},
        {"non-first fragment passes a whole-protocol rule", web, frag(pkt(Eg, "fd00::1", 132, 9)), true, 0},
        {"non-first fragment passes a no-ports rule", web, frag(pkt(In, "10.1.2.3", 17, 9)), true, 1},
        // first admitting rule
        {"first admitting rule wins", R"({"ingress": [{"ports": [{"port": 1}]}, {"from": []}, {}]})",
         pkt(In, "1.1.1.1", 6, 80), true, 1},
        {"earlier matching rule wins", R"({"ingress": [{"ports": [{"port": 80}]}, {}]})",
         pkt(In, "1.1.1.1", 6, 80), true, 0},
        // ND
        {"ICMPv6 ND passes an isolated direction", R"({"policyTypes": ["Ingress", "Egress"]})",
         icmp6(pkt(In, "fe80::1", 58, 0), 135), true, D},
        {"ICMPv6 RS (133) passes", R"({"policyTypes": ["Egress"]})", icmp6(pkt(Eg, "ff02::2", 58, 0), 133),
         true, D},
        {"ICMPv6 redirect (137) passes", R"({"policyTypes": ["Ingress"]})",
         icmp6(pkt(In, "fe80::1", 58, 0), 137), true, D},
        {"ICMPv6 138 is policy", R"({"policyTypes": ["Ingress"]})", icmp6(pkt(In, "fe80::1", 58, 0), 138),
         false, D},
        {"ICMPv6 echo is policy", R"({"policyTypes": ["Ingress"]})", echo(pkt(In, "fe80::1", 58, 0)), false,
         D},
        {"ICMP (v4) type 135 is policy", R"({"policyTypes": ["Ingress"]})",
         icmp6(pkt(In, "1.1.1.1", 1, 0), 135), false, D},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        const Decision d = evaluate(parse_policy(c.policy), c.packet);
        CHECK(d.allowed == c.allowed);
        CHECK(d.rule == c.rule);
    }
}

TEST_CASE("evaluate: ND is not a policy decision; others are") {
    Packet nd = pkt(In, "fe80::1", 58, 0);
    nd.icmp_type = 136;
    CHECK_FALSE(evaluate(default_policy(DefaultAction::Deny), nd).policy_decision);
    CHECK(evaluate(default_policy(DefaultAction::Deny), pkt(In, "1.1.1.1", 6, 1)).policy_decision);
    CHECK(evaluate(default_policy(DefaultAction::Allow), pkt(In, "1.1.1.1", 6, 1)).policy_decision);
}

TEST_CASE("stateful: replies of an allowed flow pass an isolated direction") {
    StatefulEvaluator ev(parse_policy(R"({"policyTypes": ["Ingress", "Egress"],
                                        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443}]}]})"));
    const Packet out = pkt(Eg, "10.1.1.1", 6, 443, 50000);
    const Decision first = ev.process(out);
    CHECK(first.allowed);
    CHECK(first.rule == 0);
    CHECK(first.policy_decision);

    const Decision back = ev.process(reply(out));
    CHECK(back.allowed); // ingress is isolated with no rules, but this is a reply
    CHECK_FALSE(back.policy_decision);
    CHECK(back.rule == D);
    CHECK(ev.process(out).allowed);
    CHECK_FALSE(ev.process(out).policy_decision);

    // Another flow from the same peer (other port) is new: denied at ingress.
    Packet other = reply(out);
    other.sport = 444;
    CHECK_FALSE(ev.process(other).allowed);
    // A denied packet creates no state.
    CHECK_FALSE(ev.process(other).allowed);
    // Same peer, different pod port: a different key.
    Packet other_pod_port = reply(out);
    other_pod_port.dport = 50001;
    CHECK_FALSE(ev.process(other_pod_port).allowed);
}

TEST_CASE("stateful: ICMP echo is keyed by identifier, other ICMP by 0/0") {
    StatefulEvaluator ev(parse_policy(R"({"policyTypes": ["Ingress", "Egress"], "egress": [{}]})"));
    Packet req = pkt(Eg, "1.1.1.1", 1, 77, 77);
    req.icmp_echo = true;
    req.icmp_type = 8;
    CHECK(ev.process(req).allowed);
    Packet rep = reply(req);
    rep.icmp_type = 0;
    CHECK(ev.process(rep).allowed);
    Packet other_id = rep;
    other_id.sport = other_id.dport = 78;
    CHECK_FALSE(ev.process(other_id).allowed);

    // Non-echo ICMP opened by the pod: any ICMP from that peer matches 0/0.
    Packet unreach = pkt(Eg, "2.2.2.2", 1, 0, 0);
    unreach.icmp_type = 3;
    CHECK(ev.process(unreach).allowed);
    CHECK(ev.process(reply(unreach)).allowed);
}

TEST_CASE("stateful: non-first fragments use ports 0/0") {
    StatefulEvaluator ev(parse_policy(R"({"policyTypes": ["Ingress", "Egress"], "egress": [{}]})"));
    Packet f = pkt(Eg, "1.1.1.1", 17, 53, 5353);
    f.non_first_fragment = true;
    CHECK(ev.process(f).allowed); // egress open to any: creates the 0/0 entry
    Packet back = reply(f);
    back.sport = 9; // a fragment's "ports" are meaningless
    back.dport = 10;
    CHECK(ev.process(back).allowed);
    // The first fragment of a reply carries real ports: its own key, denied.
    Packet first = reply(pkt(Eg, "1.1.1.1", 17, 53, 5353));
    CHECK_FALSE(ev.process(first).allowed);
}

TEST_CASE("stateful: ND passes and leaves no state") {
    StatefulEvaluator ev(default_policy(DefaultAction::Deny));
    Packet ns = pkt(Eg, "fe80::1", 58, 0, 0);
    ns.icmp_type = 135;
    const Decision d = ev.process(ns);
    CHECK(d.allowed);
    CHECK_FALSE(d.policy_decision);
    Packet na = reply(ns);
    na.icmp_type = 1; // not ND: there must be no entry letting it through
    CHECK_FALSE(ev.process(na).allowed);
}

TEST_CASE("stateful: a replaced policy cuts flows it no longer admits, in either direction") {
    const Policy v1 = parse_policy(
        R"({"policyTypes": ["Ingress", "Egress"], "ingress": [{"ports": [{"port": 80}, {"port": 22}]}]})");
    const Policy v2 = parse_policy(
        R"({"policyTypes": ["Ingress", "Egress"], "ingress": [{"ports": [{"port": 80}]}, {"ports": [{"port": 8080}]}]})");
    StatefulEvaluator ev(v1, 1);
    const Packet web = pkt(In, "1.1.1.1", 6, 80, 40000);
    const Packet ssh = pkt(In, "1.1.1.1", 6, 22, 40001);
    CHECK(ev.process(web).allowed);
    CHECK(ev.process(ssh).allowed);
    CHECK(ev.process(reply(ssh)).allowed);
    ev.replace(v2, 2);
    // The server's reply is the next ssh packet: re-validated in the ORIGIN
    // direction (ingress, dport = pod port 22) => entry deleted; as a new
    // egress flow it is denied too (egress isolated, no rules).
    CHECK_FALSE(ev.process(reply(ssh)).allowed);
    // The entry is gone: the client's packet is a new ingress flow, denied.
    CHECK_FALSE(ev.process(ssh).allowed);
    // The web flow survives, re-validated against v2 (reply first).
    const Decision r = ev.process(reply(web));
    CHECK(r.allowed);
    CHECK_FALSE(r.policy_decision);
    CHECK(ev.process(web).allowed);
    CHECK_FALSE(ev.process(web).policy_decision);
}

TEST_CASE("stateful: the same revision does not re-validate") {
    // Mirrors the datapath: only a changed pf_pod.rev triggers re-validation.
    StatefulEvaluator ev(parse_policy(R"({"ingress": [{}]})"), 5);
    const Packet in = pkt(In, "1.1.1.1", 6, 80);
    CHECK(ev.process(in).allowed);
    ev.replace(default_policy(DefaultAction::Deny), 5);
    CHECK(ev.process(in).allowed);
    ev.replace(default_policy(DefaultAction::Deny), 6);
    CHECK_FALSE(ev.process(in).allowed);
}

TEST_CASE("stateful: re-validation uses the origin direction and pod/peer ports") {
    // Egress-opened flow to 10.0.0.1:443. After replacement, egress allows
    // only port 443 to 10.0.0.0/24 — the reply (ingress, dport = 50000)
    // must be judged as the egress flow (dport = peer port 443), not as an
    // ingress one.
    const Policy v1 = parse_policy(R"({"policyTypes": ["Ingress", "Egress"], "egress": [{}]})");
    const Policy v2 = parse_policy(R"({"policyTypes": ["Ingress", "Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"port": 443}]}]})");
    const Policy v3 = parse_policy(R"({"policyTypes": ["Ingress", "Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.1.0/24"}}]}]})");
    StatefulEvaluator ev(v1, 1);
    const Packet out = pkt(Eg, "10.0.0.1", 6, 443, 50000);
    CHECK(ev.process(out).allowed);
    ev.replace(v2, 2);
    CHECK(ev.process(reply(out)).allowed);
    ev.replace(v3, 3);
    CHECK_FALSE(ev.process(reply(out)).allowed); // peer no longer admitted
    CHECK_FALSE(ev.process(out).allowed);        // and the pod cannot reopen it
}

TEST_CASE("stateful: a denied re-validation falls through to a new-flow decision") {
    // Flow opened by ingress; the new policy closes ingress but opens
    // egress: the pod's next packet is deleted from conntrack, then admitted
    // as a NEW egress flow (counted for its rule).
    const Policy v1 = parse_policy(R"({"policyTypes": ["Ingress", "Egress"], "ingress": [{}]})");
    const Policy v2 =
        parse_policy(R"({"policyTypes": ["Ingress", "Egress"], "egress": [{"ports": [{"port": 1}]}, {}]})");
    StatefulEvaluator ev(v1, 7);
    const Packet in = pkt(In, "1.1.1.1", 6, 80, 40000);
    CHECK(ev.process(in).allowed);
    ev.replace(v2, 8);
    const Decision d = ev.process(reply(in));
    CHECK(d.allowed);
    CHECK(d.policy_decision);
    CHECK(d.rule == 1);
    // Now origin = egress: the client's packets are its replies.
    CHECK(ev.process(in).allowed);
    CHECK_FALSE(ev.process(in).policy_decision);
}
