// Semantic table: every rule of the podfence policy semantics, through
// parse_policy() + compile() + pf_tc / pf_xdp. Failures name the case.
#include <doctest/doctest.h>

#include "datapath/table.hpp"

namespace pftest {
namespace {

constexpr const char* kPod4 = "10.0.0.10";
constexpr const char* kPod6 = "fd00::10";
constexpr std::uint32_t kSlot = 7;

// Packets relative to the pod: in_* are sent TO it, out_* FROM it.
Step in4(const char* peer, std::uint16_t dport, bool allow, std::uint8_t proto = kTcp,
         std::uint16_t sport = 40000) {
    return {kIn, ip_proto(4, peer, kPod4, proto, sport, dport), allow};
}
Step out4(const char* peer, std::uint16_t dport, bool allow, std::uint8_t proto = kTcp,
          std::uint16_t sport = 40000) {
    return {kOut, ip_proto(4, kPod4, peer, proto, sport, dport), allow};
}
Step in6(const char* peer, std::uint16_t dport, bool allow, std::uint8_t proto = kTcp,
         std::uint16_t sport = 40000) {
    return {kIn, ip_proto(6, peer, kPod6, proto, sport, dport), allow};
}
Step out6(const char* peer, std::uint16_t dport, bool allow, std::uint8_t proto = kTcp,
          std::uint16_t sport = 40000) {
    return {kOut, ip_proto(6, kPod6, peer, proto, sport, dport), allow};
}
Step with(Step s, void (*edit)(Frame&)) {
    edit(s.frame);
    return s;
}
Step back(const Step& s, bool allow) { // the reply of s
    return {static_cast<std::uint8_t>(s.dir == kIn ? kOut : kIn), reply(s.frame), allow};
}
Step icmp_in(std::uint8_t family, const char* peer, std::uint8_t type, bool allow, std::uint16_t id = 77) {
    return {kIn, icmp(family, peer, family == 4 ? kPod4 : kPod6, type, id), allow};
}
Step icmp_out(std::uint8_t family, const char* peer, std::uint8_t type, bool allow, std::uint16_t id = 77) {
    return {kOut, icmp(family, family == 4 ? kPod4 : kPod6, peer, type, id), allow};
}

void nonfirst(Frame& f) {
    f.non_first_fragment = true;
}
void otherdatagram(Frame& f) { // a later fragment of a datagram not seen
    f.non_first_fragment = true;
    f.frag_id = 0x4321;
}
void firstfrag(Frame& f) {
    f.first_fragment = true;
}

std::vector<Case> semantic_cases() {
    const auto syn_out = out4("1.2.3.4", 443, kAllow);
    const auto syn_in = in4("192.168.5.5", 8080, kAllow);
    return {
        // ---- isolation per direction
        {"{} isolates ingress only (policyTypes default)",
         "{}",
         {in4("1.2.3.4", 80, kDeny), out4("1.2.3.4", 80, kAllow), in6("2001:db8::1", 80, kDeny),
          out6("2001:db8::1", 80, kAllow)}},
        {"policyTypes [Egress]: ingress open, egress denied",
         R"({"policyTypes":["Egress"]})",
         {in4("1.2.3.4", 80, kAllow), out4("1.2.3.4", 80, kDeny), icmp_out(4, "1.2.3.4", 8, kDeny)}},
        {"egress key present: both isolated, empty lists deny all",
         R"({"egress":[]})",
         {in4("1.2.3.4", 80, kDeny), out4("1.2.3.4", 80, kDeny), out6("2001:db8::1", 53, kDeny, kUdp)}},
        {"policyTypes []: nothing isolated",
         R"({"policyTypes":[]})",
         {in4("1.2.3.4", 80, kAllow), out6("2001:db8::1", 80, kAllow, kUdp),
          in4("1.2.3.4", 0, kAllow, kGre)}},
        {"egress rules ignored when egress not isolated",
         R"({"policyTypes":["Ingress"],"ingress":[{}],"egress":[{"to":[{"ipBlock":{"cidr":"9.9.9.9/32"}}]}]})",
         {out4("1.2.3.4", 80, kAllow), in4("1.2.3.4", 80, kAllow)}},

        // ---- any peer / any port
        {"empty rule: any peer, any port, any protocol incl. ICMP and GRE",
         R"({"ingress":[{}]})",
         {in4("1.2.3.4", 80, kAllow), in4("8.8.8.8", 53, kAllow, kUdp), in6("2001:db8::9", 9, kAllow, kSctp),
          icmp_in(4, "1.2.3.4", 8, kAllow), icmp_in(6, "2001:db8::1", 128, kAllow),
          in4("1.2.3.4", 0, kAllow, kGre)}},
        {"from: [] and ports: [] mean any",
         R"({"ingress":[{"from":[],"ports":[]}]})",
         {in4("1.2.3.4", 80, kAllow), in6("2001:db8::1", 1, kAllow, kUdp),
          icmp_in(4, "1.2.3.4", 13, kAllow)}},
        {"any peer, one port",
         R"({"ingress":[{"ports":[{"port":22}]}]})",
         {in4("1.2.3.4", 22, kAllow), in6("2001:db8::1", 22, kAllow), in4("1.2.3.4", 23, kDeny),
          in4("1.2.3.4", 22, kDeny, kUdp), icmp_in(4, "1.2.3.4", 8, kDeny)}},

        // ---- CIDR + except
        {"cidr with except: edges",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16","10.2.3.0/24"]}}]}]})",
         {in4("10.0.0.0", 80, kAllow), in4("10.255.255.255", 80, kAllow), in4("10.0.255.255", 80, kAllow),
          in4("10.1.0.0", 80, kDeny), in4("10.1.255.255", 80, kDeny), in4("10.2.0.0", 80, kAllow),
          in4("10.2.3.77", 80, kDeny), in4("10.2.4.0", 80, kAllow), in4("9.255.255.255", 80, kDeny),
          in4("11.0.0.0", 80, kDeny)}},
        {"except covered by another peer of the same rule",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}},{"ipBlock":{"cidr":"10.1.2.0/24"}}]}]})",
         {in4("10.1.2.3", 80, kAllow), in4("10.1.3.3", 80, kDeny), in4("10.9.0.1", 80, kAllow)}},
        {"host bits in cidr are masked",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"192.168.1.77/24"}}]}]})",
         {in4("192.168.1.1", 80, kAllow), in4("192.168.2.1", 80, kDeny)}},
        {"egress peer is the destination",
         R"({"egress":[{"to":[{"ipBlock":{"cidr":"172.16.0.0/12"}}]}],"policyTypes":["Egress"]})",
         {out4("172.16.0.1", 80, kAllow),
          out4("172.31.255.255", 80, kAllow),
          out4("172.32.0.0", 80, kDeny),
          {kOut, ip_proto(4, "172.16.0.1", "1.1.1.1", kTcp, 1, 80), kDeny}}},

        // ---- ports and endPort
        {"port range inclusive edges, protocol must match",
         R"({"ingress":[{"ports":[{"protocol":"UDP","port":5000,"endPort":5100},{"port":8080}]}]})",
         {in4("1.1.1.1", 4999, kDeny, kUdp), in4("1.1.1.1", 5000, kAllow, kUdp),
          in4("1.1.1.1", 5050, kAllow, kUdp), in4("1.1.1.1", 5100, kAllow, kUdp),
          in4("1.1.1.1", 5101, kDeny, kUdp), in4("1.1.1.1", 5000, kDeny, kTcp),
          in4("1.1.1.1", 8080, kAllow, kTcp), in4("1.1.1.1", 8080, kDeny, kUdp),
          in4("1.1.1.1", 8081, kDeny)}},
        {"full port range 1-65535 and port 0",
         R"({"ingress":[{"ports":[{"port":1,"endPort":65535}]}]})",
         {in4("1.1.1.1", 1, kAllow), in4("1.1.1.1", 65535, kAllow), in4("1.1.1.1", 0, kDeny)}},
        {"protocol without port: every port incl. 0",
         R"({"ingress":[{"ports":[{"protocol":"SCTP"}]}]})",
         {in4("1.1.1.1", 0, kAllow, kSctp), in4("1.1.1.1", 65535, kAllow, kSctp),
          in6("2001:db8::1", 9, kAllow, kSctp), in4("1.1.1.1", 9, kDeny, kTcp)}},
        {"source port is irrelevant",
         R"({"ingress":[{"ports":[{"port":80}]}]})",
         {in4("1.1.1.1", 81, kDeny, kTcp, 80), in4("1.1.1.1", 80, kAllow, kTcp, 81)}},
        {"first admitting rule wins but any admitting rule allows",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":80}]},{"from":[{"ipBlock":{"cidr":"10.1.0.0/16"}}]}]})",
         {in4("10.1.1.1", 22, kAllow), in4("10.2.1.1", 22, kDeny), in4("10.2.1.1", 80, kAllow)}},

        // ---- v4 and v6
        {"v6 cidr with except",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"fd00:1::/64","except":["fd00:1::8000:0:0:0/65"]}}]}]})",
         {in6("fd00:1::1", 80, kAllow), in6("fd00:1::7fff:ffff:ffff:ffff", 80, kAllow),
          in6("fd00:1::8000:0:0:0", 80, kDeny), in6("fd00:1::ffff:ffff:ffff:ffff", 80, kDeny),
          in6("fd00:1:0:1::", 80, kDeny)}},
        {"v4 rules never match v6 and vice versa",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"0.0.0.0/0"}}]}],"egress":[{"to":[{"ipBlock":{"cidr":"::/0"}}]}]})",
         {in4("1.2.3.4", 80, kAllow), in6("2001:db8::1", 80, kDeny), out6("2001:db8::1", 80, kAllow),
          out4("1.2.3.4", 80, kDeny)}},

        // ---- portless protocols
        {"ICMP and GRE match only rules without ports",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":80}]},{"from":[{"ipBlock":{"cidr":"20.0.0.0/8"}}]}]})",
         {icmp_in(4, "10.1.1.1", 8, kDeny), icmp_in(4, "20.1.1.1", 8, kAllow),
          in4("10.1.1.1", 0, kDeny, kGre), in4("20.1.1.1", 0, kAllow, kGre),
          icmp_in(4, "20.1.1.1", 3, kAllow)}},
        {"ICMPv6 echo matches only port-less rules",
         R"({"ingress":[{"ports":[{"protocol":"UDP"}]}]})",
         {icmp_in(6, "2001:db8::1", 128, kDeny), in6("2001:db8::1", 7, kAllow, kUdp)}},

        // ---- ND / ARP always pass
        {"ARP and ICMPv6 ND pass a deny-all policy",
         R"({"egress":[]})",
         {{kIn,
           [] {
               Frame f = tcp4("1.1.1.1", 1, kPod4, 1);
               f.ethertype = 0x0806;
               return f;
           }(),
           kAllow},
          {kOut,
           [] {
               Frame f = tcp4(kPod4, 1, "1.1.1.1", 1);
               f.ethertype = 0x0806;
               return f;
           }(),
           kAllow},
          icmp_in(6, "fe80::1", 133, kAllow),
          icmp_in(6, "fe80::1", 134, kAllow),
          icmp_out(6, "fe80::1", 135, kAllow),
          icmp_in(6, "fe80::1", 136, kAllow),
          icmp_in(6, "fe80::1", 137, kAllow),
          icmp_in(6, "fe80::1", 132, kDeny),
          icmp_in(6, "fe80::1", 138, kDeny),
          icmp_in(6, "fe80::1", 128, kDeny),
          icmp_in(4, "1.1.1.1", 8, kDeny)}},

        // ---- fragments
        // A later fragment of an admitted datagram passes (same id); others
        // are judged with port 0 (frag_icmp_test.cpp has the rest).
        {"non-first fragments: port 0, real protocol",
         R"({"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":80}]},{"from":[{"ipBlock":{"cidr":"20.0.0.0/8"}}],"ports":[{"protocol":"UDP"}]}]})",
         {with(in4("10.1.1.1", 80, kAllow), firstfrag), with(in4("10.1.1.1", 80, kAllow), nonfirst),
          with(in4("10.1.1.1", 80, kDeny), otherdatagram), with(in4("20.1.1.1", 80, kAllow, kUdp), nonfirst),
          with(in4("20.1.1.1", 80, kDeny, kTcp), nonfirst), with(in6("::ffff:1", 80, kDeny), nonfirst)}},
        {"v6 fragments",
         R"({"ingress":[{"ports":[{"port":80}]},{"from":[{"ipBlock":{"cidr":"fd00:9::/32"}}]}]})",
         {with(in6("2001:db8::1", 80, kAllow), firstfrag), with(in6("2001:db8::1", 80, kAllow), nonfirst),
          with(in6("2001:db8::1", 80, kDeny), otherdatagram), with(in6("fd00:9::1", 80, kAllow), nonfirst)}},

        // ---- replies of allowed flows pass (the seed article's bug)
        {"reply of an allowed egress connection passes isolated ingress",
         R"({"egress":[{"to":[{"ipBlock":{"cidr":"1.2.3.4/32"}}],"ports":[{"port":443}]}]})",
         {syn_out,
          back(syn_out, kAllow),
          {kOut, tcp4(kPod4, 40000, "1.2.3.4", 443, kTcpAck), kAllow},
          in4("1.2.3.4", 40000, kDeny, kTcp, 444),
          in4("1.2.3.4", 40001, kDeny, kTcp, 443)}},
        {"reply of an allowed ingress connection passes isolated egress",
         R"({"egress":[],"ingress":[{"ports":[{"port":8080}]}]})",
         {syn_in, back(syn_in, kAllow), out4("192.168.5.5", 40000, kDeny, kTcp, 8081)}},
        {"ping reply and UDP reply",
         R"({"egress":[{"to":[{"ipBlock":{"cidr":"1.0.0.0/8"}}]}]})",
         {icmp_out(4, "1.1.1.1", 8, kAllow, 5), icmp_in(4, "1.1.1.1", 0, kAllow, 5),
          icmp_in(4, "1.1.1.1", 0, kDeny, 6), out4("1.1.1.1", 53, kAllow, kUdp, 5353),
          in4("1.1.1.1", 5353, kAllow, kUdp, 53), in4("1.1.1.1", 5353, kDeny, kTcp, 53)}},
        {"v6 ping reply",
         R"({"egress":[{"to":[{"ipBlock":{"cidr":"2001:db8::/32"}}]}]})",
         {icmp_out(6, "2001:db8::1", 128, kAllow, 5), icmp_in(6, "2001:db8::1", 129, kAllow, 5),
          icmp_in(6, "2001:db8::1", 129, kDeny, 9)}},

        // ---- header variants still parsed
        {"IPv4 options and IPv6 extension headers",
         R"({"ingress":[{"ports":[{"port":80}]}]})",
         {with(in4("1.1.1.1", 80, kAllow), [](Frame& f) { f.ipv4_option_words = 10; }),
          with(in4("1.1.1.1", 81, kDeny), [](Frame& f) { f.ipv4_option_words = 3; }),
          with(in6("2001:db8::1", 80, kAllow),
               [](Frame& f) {
                   f.v6_ext = {0, 60, 43, 44, 60};
               }),
          with(in6("2001:db8::1", 81, kDeny),
               [](Frame& f) {
                   f.v6_ext = {0, 60};
               }),
          with(in6("2001:db8::1", 80, kAllow), [](Frame& f) { f.v6_ext = {0, 60, 43, 60, 43, 60}; }),
          with(in6("2001:db8::1", 80, kDeny), [](Frame& f) { f.v6_ext = {0, 60, 43, 60, 43, 60, 60}; })}},
        {"truncated and malformed IP drop even when everything is allowed",
         R"({"policyTypes":[]})",
         {with(in4("1.1.1.1", 80, kDeny), [](Frame& f) { f.truncate_to = 14 + 19; }),
          with(in4("1.1.1.1", 80, kDeny),
               [](Frame& f) {
                   f.ipv4_option_words = 2;
                   f.truncate_to = 14 + 24;
               }),
          with(in4("1.1.1.1", 80, kDeny), [](Frame& f) { f.truncate_to = 14 + 20 + 19; }),
          with(in4("1.1.1.1", 80, kDeny, kUdp), [](Frame& f) { f.truncate_to = 14 + 20 + 7; }),
          with(in6("2001:db8::1", 80, kDeny), [](Frame& f) { f.truncate_to = 14 + 39; }),
          with(in6("2001:db8::1", 80, kDeny),
               [](Frame& f) {
                   f.v6_ext = {0};
                   f.truncate_to = 14 + 40 + 1;
               }),
          with(icmp_in(4, "1.1.1.1", 8, kDeny), [](Frame& f) { f.truncate_to = 14 + 20 + 5; }),
          with(in4("1.1.1.1", 80, kAllow), [](Frame& f) { f.payload = 100; })}},
    };
}

std::vector<Case> revision_cases() {
    const auto a = out4("1.2.3.4", 80, kAllow);
    const auto b = out4("1.2.3.4", 443, kAllow);
    const auto c = in4("5.6.7.8", 22, kAllow);
    return {
        {"revision bump cuts a flow the new policy denies, keeps one it allows",
         R"({"egress":[{"ports":[{"port":80},{"port":443}]}],"ingress":[{"ports":[{"port":22}]}]})",
         {a, back(a, kAllow), b, back(b, kAllow), c, back(c, kAllow)},
         R"({"egress":[{"ports":[{"port":443}]}],"ingress":[{"ports":[{"port":22}]}]})",
         // A's reply arrives first: re-validated in A's ORIGIN (egress) direction.
         {back(a, kDeny), {a.dir, a.frame, kDeny}, back(b, kAllow), b, back(c, kAllow), c}},
        {"revision bump: reply-direction admission after cut",
         R"({"egress":[{"ports":[{"port":80}]}]})",
         {a, back(a, kAllow)},
         // New policy denies egress to 80 but allows ingress from port 80 to
         // 40000: the cut entry is replaced by a new ingress-origin flow.
         R"({"egress":[],"ingress":[{"ports":[{"port":40000}]}]})",
         {back(a, kAllow), {a.dir, a.frame, kAllow}, b.dir == kOut ? out4("1.2.3.4", 81, kDeny) : b}},
        {"revision bump to a wider policy keeps everything",
         R"({"egress":[{"ports":[{"port":80}]}]})",
         {a, b.dir == kOut ? Step{kOut, b.frame, kDeny} : b},
         R"({"policyTypes":[]})",
         {back(a, kAllow), a, b}},
    };
}

} // namespace

TEST_CASE("datapath: semantic table (tc and xdp)") {
    Harness h;
    auto errors = run_cases(h, semantic_cases(), kSlot);
    for (const auto& e : errors)
        FAIL_CHECK(e);
    CHECK(errors.empty());
}

TEST_CASE("datapath: policy replacement with revision bump (tc and xdp)") {
    Harness h;
    auto errors = run_cases(h, revision_cases(), kSlot);
    for (const auto& e : errors)
        FAIL_CHECK(e);
    CHECK(errors.empty());
}

} // namespace pftest
