// The reference evaluator, one semantic rule per table row, and the stateful
// model (conntrack by pod-centric key, revisions, re-validation).
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "support/evaluator.hpp"
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

    // Non-echo ICMP opened by the pod (timestamp; errors open nothing, see
    // below): any such ICMP from that peer matches 0/0.
    Packet stamp = pkt(Eg, "2.2.2.2", 1, 0, 0);
    stamp.icmp_type = 13;
    CHECK(ev.process(stamp).allowed);
    CHECK(ev.process(reply(stamp)).allowed);
}

TEST_CASE("stateful: later fragments pass when their datagram's first fragment passed") {
    StatefulEvaluator ev(parse_policy(R"({"policyTypes": ["Ingress", "Egress"], "egress": [{}],
                                        "ingress": [{"ports": [{"protocol": "UDP", "port": 5000}]}]})"));
    auto frag = [](Packet p, bool first, std::uint32_t id) {
        (first ? p.first_fragment : p.non_first_fragment) = true;
        p.frag_id = id;
        return p;
    };
    // The pod's query is a flow; its answer comes back in fragments.
    const Packet q = pkt(Eg, "1.1.1.1", 17, 53, 5353);
    CHECK(ev.process(q).allowed);
    CHECK(ev.process(frag(reply(q), false, 1)).allowed == false); // before its first: dropped
    const Decision first = ev.process(frag(reply(q), true, 1));
    CHECK(first.allowed);
    CHECK_FALSE(first.policy_decision); // conntrack admitted it
    const Decision later = ev.process(frag(reply(q), false, 1));
    CHECK(later.allowed);
    CHECK_FALSE(later.policy_decision);
    CHECK_FALSE(ev.process(frag(reply(q), false, 2)).allowed); // another datagram
    Packet other_peer = frag(reply(q), false, 1);
    other_peer.src = addr("1.1.1.2");
    CHECK_FALSE(ev.process(other_peer).allowed);
    // IPv4 ids are 16 bits.
    CHECK(ev.process(frag(reply(q), false, 0x10001)).allowed);

    // A first fragment the policy admits, and one it denies.
    CHECK(ev.process(frag(pkt(In, "7.7.7.7", 17, 5000, 4000), true, 3)).allowed);
    CHECK(ev.process(frag(pkt(In, "7.7.7.7", 17, 5000, 4000), false, 3)).allowed);
    CHECK_FALSE(ev.process(frag(pkt(In, "7.7.7.7", 17, 5001, 4000), true, 4)).allowed);
    CHECK_FALSE(ev.process(frag(pkt(In, "7.7.7.7", 17, 5001, 4000), false, 4)).allowed);
    // Stray later fragments are judged with port 0 and leave no state: the
    // open egress admits one, the reply of it is still dropped.
    const Decision stray = ev.process(frag(pkt(Eg, "9.9.9.9", 17, 53, 5353), false, 5));
    CHECK(stray.allowed);
    CHECK(stray.rule == 0);
    CHECK_FALSE(ev.process(frag(reply(pkt(Eg, "9.9.9.9", 17, 53, 5353)), false, 5)).allowed);
    // IPv6: keyed without the protocol.
    const Packet q6 = pkt(Eg, "fd00::1", 17, 53, 5353);
    CHECK(ev.process(q6).allowed);
    CHECK(ev.process(frag(reply(q6), true, 0x10001)).allowed);
    Packet other_proto = frag(reply(q6), false, 0x10001);
    other_proto.proto = 60;
    CHECK(ev.process(other_proto).allowed);
}

TEST_CASE("stateful: ICMP errors pass when they quote a tracked flow, create nothing") {
    StatefulEvaluator ev(parse_policy(R"({"policyTypes": ["Ingress", "Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "1.1.1.1/32"}}], "ports": [{"protocol": "UDP", "port": 53}]}]})"));
    const Packet q = pkt(Eg, "1.1.1.1", 17, 53, 5353);
    auto error = [](Direction dir, const char* other, std::uint8_t type, const Packet& quoted) {
        Packet e = pkt(dir, other, quoted.family == PF_FAMILY_V4 ? 1 : 58, 0, 0);
        e.icmp_type = type;
        e.quoted = Packet::Quoted{quoted.src, quoted.dst, quoted.proto, quoted.sport, quoted.dport};
        return e;
    };
    // Nothing tracked yet: judged with port 0, denied (no ingress rules).
    CHECK_FALSE(ev.process(error(In, "10.9.9.1", 3, q)).allowed);
    CHECK(ev.process(q).allowed);
    for (std::uint8_t type : {3, 11, 12}) {
        const Decision d = ev.process(error(In, "10.9.9.1", type, q));
        CHECK(d.allowed);
        CHECK_FALSE(d.policy_decision);
    }
    Packet echo_type = error(In, "10.9.9.1", 8, q); // not an error: a new flow
    CHECK_FALSE(ev.process(echo_type).allowed);
    // The flow's other direction, another pod address, no quote at all.
    CHECK_FALSE(ev.process(error(In, "10.9.9.1", 3, reply(q))).allowed);
    Packet elsewhere = error(In, "10.9.9.1", 3, q);
    elsewhere.dst = addr("10.244.0.6");
    CHECK_FALSE(ev.process(elsewhere).allowed);
    Packet unquoted = error(In, "10.9.9.1", 3, q);
    unquoted.quoted.reset();
    CHECK_FALSE(ev.process(unquoted).allowed);
    // The pod's own error about the flow's answer (say its socket closed)
    // is related too; about an answer of another flow it is not.
    CHECK(ev.process(error(Eg, "1.1.1.1", 3, reply(q))).allowed);
    Packet other = reply(q);
    other.dport = 5354;
    CHECK_FALSE(ev.process(error(Eg, "1.1.1.1", 3, other)).allowed);
    // After a replacement: counts while the new policy admits the flow.
    ev.replace(parse_policy(
                   R"({"policyTypes": ["Ingress", "Egress"], "egress": [{"ports": [{"protocol": "UDP"}]}]})"),
               2);
    CHECK(ev.process(error(In, "10.9.9.1", 3, q)).allowed);
    ev.replace(parse_policy(R"({"policyTypes": ["Ingress", "Egress"]})"), 3);
    CHECK_FALSE(ev.process(error(In, "10.9.9.1", 3, q)).allowed);
    // v6 types 1-4.
    StatefulEvaluator ev6(parse_policy(R"({"policyTypes": ["Ingress", "Egress"], "egress": [{}]})"));
    const Packet q6 = pkt(Eg, "fd00::1", 17, 53, 5353);
    CHECK(ev6.process(q6).allowed);
    for (std::uint8_t type : {1, 2, 3, 4})
        CHECK(ev6.process(error(In, "fd09::1", type, q6)).allowed);
    CHECK_FALSE(ev6.process(error(In, "fd09::1", 5, q6)).allowed);
    // An admitted error left no entry: the router's address opened nothing.
    Packet to_router = pkt(Eg, "fd09::1", 58, 0, 0);
    to_router.icmp_type = 2;
    CHECK(ev6.process(to_router).allowed); // egress open
    Packet from_router = reply(to_router);
    from_router.icmp_type = 13;
    CHECK_FALSE(ev6.process(from_router).allowed);
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
