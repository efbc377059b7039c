// Packets that open no flow of their own, through pf_tc and pf_xdp: later IP
// fragments (admitted by their datagram's first fragment, bpf/frag.h) and
// ICMP/ICMPv6 errors (admitted by the tracked flow they quote,
// bpf/icmp_error.h); then the state behind them: expiry, no conntrack writes.
#include <doctest/doctest.h>

#include "datapath/table.hpp"

namespace pftest {
namespace {

constexpr const char* kPod4 = "10.0.0.10";
constexpr const char* kPod6 = "fd00::10";
constexpr const char* kRouter4 = "10.9.9.1";
constexpr const char* kRouter6 = "fd09::1";
constexpr std::uint32_t kSlot = 31;
const Prog kProgs[] = {Prog::Tc, Prog::Xdp};

// Both directions isolated; the pod may query the DNS server (UDP 53).
constexpr const char* kDnsClient =
    R"({"policyTypes":["Ingress","Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"1.2.3.4/32"}},{"ipBlock":{"cidr":"2001:db8::53/128"}}],"ports":[{"protocol":"UDP","port":53}]}]})";

Step in(const Frame& f, bool allow) {
    return {kIn, f, allow};
}
Step out(const Frame& f, bool allow) {
    return {kOut, f, allow};
}
Frame first(const Frame& f, std::uint32_t id) {
    return fragment(f, true, id);
}
Frame later(const Frame& f, std::uint32_t id) {
    return fragment(f, false, id);
}
Frame truncated(Frame f, std::size_t to) {
    f.truncate_to = to;
    return f;
}
Frame with_ext(Frame f, std::vector<std::uint8_t> ext) {
    f.v6_ext = std::move(ext);
    return f;
}

std::vector<Case> fragment_cases() {
    const Frame q4 = udp4(kPod4, 5353, "1.2.3.4", 53), q6 = udp6(kPod6, 5353, "2001:db8::53", 53);
    const Frame r4 = reply(q4), r6 = reply(q6);
    const char* udp5000 = R"({"ingress":[{"ports":[{"protocol":"UDP","port":5000}]}]})";
    const Frame to5000 = udp4("7.7.7.7", 4000, kPod4, 5000), to5001 = udp4("7.7.7.7", 4000, kPod4, 5001);
    const Frame to5000v6 = udp6("2001:db8::7", 4000, kPod6, 5000),
                to5001v6 = udp6("2001:db8::7", 4000, kPod6, 5001);
    const Frame ping = icmp(4, kPod4, "5.5.5.5", 8, 9);
    return {
        {"fragmented reply of an allowed egress UDP flow passes the isolated ingress (v4)",
         kDnsClient,
         {out(q4, kAllow), in(first(r4, 1), kAllow), in(later(r4, 1), kAllow), in(later(r4, 1), kAllow),
          in(later(r4, 2), kDeny), in(first(reply(udp4(kPod4, 5354, "1.2.3.4", 53)), 3), kDeny),
          in(later(r4, 3), kDeny)}},
        {"fragmented reply of an allowed egress UDP flow passes the isolated ingress (v6)",
         kDnsClient,
         {out(q6, kAllow), in(first(r6, 0x10001), kAllow), in(later(r6, 0x10001), kAllow),
          in(later(r6, 0x10002), kDeny), in(later(r6, 1), kDeny)}},
        {"fragmented datagram: to an allowed port all fragments pass, to a denied port all drop (v4)",
         udp5000,
         {in(first(to5000, 1), kAllow), in(later(to5000, 1), kAllow), in(first(to5001, 2), kDeny),
          in(later(to5001, 2), kDeny), in(later(to5001, 2), kDeny)}},
        {"fragmented datagram: to an allowed port all fragments pass, to a denied port all drop (v6)",
         udp5000,
         {in(first(to5000v6, 1), kAllow), in(later(to5000v6, 1), kAllow), in(first(to5001v6, 2), kDeny),
          in(later(to5001v6, 2), kDeny)}},
        {"out of order: later fragments drop until the first is seen",
         udp5000,
         {in(later(to5000, 3), kDeny), in(first(to5000, 3), kAllow), in(later(to5000, 3), kAllow),
          in(later(to5000v6, 3), kDeny), in(first(to5000v6, 3), kAllow), in(later(to5000v6, 3), kAllow)}},
        {"forged later fragments open no port: unseen id, other peer, other protocol, other direction",
         R"({"policyTypes":["Ingress","Egress"],"ingress":[{"ports":[{"port":22}]}]})",
         {in(later(tcp4("6.6.6.6", 40000, kPod4, 22), 9), kDeny),
          in(first(tcp4("1.1.1.1", 40000, kPod4, 22), 5), kAllow),
          in(later(tcp4("1.1.1.1", 40000, kPod4, 22), 5), kAllow),
          in(later(tcp4("6.6.6.6", 40000, kPod4, 22), 5), kDeny),
          in(later(udp4("1.1.1.1", 40000, kPod4, 22), 5), kDeny),
          out(later(tcp4(kPod4, 22, "1.1.1.1", 40000), 5), kDeny),
          in(later(tcp6("2001:db8::6", 40000, kPod6, 22), 9), kDeny)}},
        {"a direction that is not isolated passes stray later fragments (any datagram would)",
         R"({"policyTypes":["Egress"]})",
         {in(later(to5000, 7), kAllow), out(later(q4, 7), kDeny)}},
        {"a rule without ports for the protocol passes stray later fragments",
         R"({"ingress":[{"ports":[{"protocol":"UDP"}]}]})",
         {in(later(to5000, 7), kAllow), in(later(tcp4("7.7.7.7", 1, kPod4, 2), 7), kDeny)}},
        {"fragmented echo reply of the pod's ping passes the isolated ingress",
         R"({"policyTypes":["Ingress","Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"5.5.5.5/32"}}]}]})",
         {out(ping, kAllow), in(first(reply(ping), 4), kAllow), in(later(reply(ping), 4), kAllow)}},
    };
}

std::vector<Case> icmp_error_cases() {
    const Frame q4 = udp4(kPod4, 5353, "1.2.3.4", 53), q6 = udp6(kPod6, 5353, "2001:db8::53", 53);
    const Frame untracked4 = udp4(kPod4, 5354, "1.2.3.4", 53),
                untracked6 = udp6(kPod6, 5354, "2001:db8::53", 53);
    const Frame syn = tcp4(kPod4, 40000, "1.2.3.4", 443);
    const Frame ping = icmp(4, kPod4, "5.5.5.5", 8, 9), ping6 = icmp(6, kPod6, "2001:db8::5", 128, 9);
    const Frame to_pod = udp4("7.7.7.7", 4000, kPod4, 9000);
    return {
        {"errors quoting the pod's UDP datagram pass the isolated ingress (v4: 3/4, 3/3, 11, 12)",
         kDnsClient,
         {out(q4, kAllow), in(icmp_error(kRouter4, kPod4, 3, 4, q4, 1300), kAllow),
          in(icmp_error("1.2.3.4", kPod4, 3, 3, q4), kAllow),
          in(icmp_error(kRouter4, kPod4, 11, 0, q4), kAllow),
          in(icmp_error(kRouter4, kPod4, 12, 0, q4), kAllow),
          // nothing tracked, the flow's other direction, another pod address
          in(icmp_error(kRouter4, kPod4, 3, 4, untracked4, 1300), kDeny),
          in(icmp_error(kRouter4, kPod4, 3, 3, reply(q4)), kDeny),
          in(icmp_error(kRouter4, "10.0.0.11", 3, 4, q4, 1300), kDeny),
          // the quote cut before 8 bytes of UDP, an error quoting nothing
          in(icmp_error(kRouter4, kPod4, 3, 4, truncated(q4, 14 + 20 + 4), 1300), kDeny),
          in(icmp(4, kRouter4, kPod4, 3), kDeny)}},
        {"errors quoting the pod's UDP datagram pass the isolated ingress (v6: 2, 1/4, 3, 4)",
         kDnsClient,
         {out(q6, kAllow), in(icmp_error(kRouter6, kPod6, 2, 0, q6, 1300), kAllow),
          in(icmp_error("2001:db8::53", kPod6, 1, 4, q6), kAllow),
          in(icmp_error(kRouter6, kPod6, 3, 0, q6), kAllow),
          in(icmp_error(kRouter6, kPod6, 4, 0, q6), kAllow),
          in(icmp_error(kRouter6, kPod6, 2, 0, untracked6, 1300), kDeny),
          in(icmp_error(kRouter6, kPod6, 1, 4, reply(q6)), kDeny),
          in(icmp_error(kRouter6, "fd00::11", 2, 0, q6, 1300), kDeny)}},
        {"an error quoting the first fragment of the pod's datagram (v6 extension headers walked)",
         kDnsClient,
         {out(q6, kAllow), in(icmp_error(kRouter6, kPod6, 2, 0, with_ext(first(q6, 8), {60}), 1300), kAllow),
          in(icmp_error(kRouter6, kPod6, 2, 0, later(q6, 8), 1300), kDeny), out(first(q4, 8), kAllow),
          in(icmp_error(kRouter4, kPod4, 3, 4, first(q4, 8), 1300), kAllow),
          in(icmp_error(kRouter4, kPod4, 3, 4, later(q4, 8), 1300), kDeny)}},
        {"errors about a TCP connection and a ping pass; about another echo id they drop",
         R"({"policyTypes":["Ingress","Egress"],"egress":[{"to":[{"ipBlock":{"cidr":"1.2.3.4/32"}}],"ports":[{"port":443}]},{"to":[{"ipBlock":{"cidr":"5.5.5.5/32"}},{"ipBlock":{"cidr":"2001:db8::5/128"}}]}]})",
         {out(syn, kAllow), in(icmp_error(kRouter4, kPod4, 3, 4, syn, 1300), kAllow),
          in(icmp_error(kRouter4, kPod4, 3, 4, tcp4(kPod4, 40001, "1.2.3.4", 443), 1300), kDeny),
          out(ping, kAllow), in(icmp_error(kRouter4, kPod4, 11, 0, ping), kAllow),
          in(icmp_error(kRouter4, kPod4, 11, 0, icmp(4, kPod4, "5.5.5.5", 8, 10)), kDeny), out(ping6, kAllow),
          in(icmp_error(kRouter6, kPod6, 3, 0, ping6), kAllow),
          in(icmp_error(kRouter6, kPod6, 3, 0, icmp(6, kPod6, "2001:db8::5", 128, 10)), kDeny)}},
        {"the pod's own error about an admitted ingress datagram passes its isolated egress",
         R"({"policyTypes":["Ingress","Egress"],"ingress":[{"ports":[{"protocol":"UDP","port":9000}]}]})",
         {in(to_pod, kAllow), out(icmp_error(kPod4, "7.7.7.7", 3, 3, to_pod), kAllow),
          out(icmp_error(kPod4, "7.7.7.7", 3, 3, udp4("7.7.7.7", 4000, kPod4, 9001)), kDeny),
          out(icmp_error(kPod4, "7.7.7.7", 3, 3, reply(to_pod)), kDeny)}},
        {"a direction that is not isolated passes errors quoting nothing (judged with port 0)",
         R"({"policyTypes":["Egress"]})",
         {in(icmp_error(kRouter4, kPod4, 3, 4, untracked4, 1300), kAllow),
          out(icmp_error(kPod4, kRouter4, 3, 3, reply(untracked4)), kDeny)}},
        {"after a policy replacement an error counts while the new policy still admits its flow",
         kDnsClient,
         {out(q4, kAllow)},
         R"({"policyTypes":["Ingress","Egress"],"egress":[{"ports":[{"protocol":"UDP","port":53}]}]})",
         {in(icmp_error(kRouter4, kPod4, 3, 4, q4, 1300), kAllow)}},
        {"after a policy replacement an error drops when the new policy cuts its flow",
         kDnsClient,
         {out(q4, kAllow)},
         R"({"policyTypes":["Ingress","Egress"],"egress":[{"ports":[{"protocol":"UDP","port":54}]}]})",
         {in(icmp_error(kRouter4, kPod4, 3, 4, q4, 1300), kDeny)}},
    };
}

void check_cases(const std::vector<Case>& cases) {
    Harness h;
    auto errors = run_cases(h, cases, kSlot);
    for (const auto& e : errors)
        FAIL_CHECK(e);
    CHECK(errors.empty());
}

} // namespace

TEST_CASE("datapath: later fragments of admitted datagrams (tc and xdp)") {
    check_cases(fragment_cases());
}

TEST_CASE("datapath: ICMP errors about admitted flows (tc and xdp)") {
    check_cases(icmp_error_cases());
}

TEST_CASE("datapath: fragment state: first fragments with more to come only, expiry") {
    Harness h;
    const Frame dgram = udp4("7.7.7.7", 4000, kPod4, 5000);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.frag_clear();
        h.install(
            kSlot,
            podfence::policy::parse_policy(R"({"ingress":[{"ports":[{"protocol":"UDP","port":5000}]}]})"), 1);
        // Unfragmented packets and denied first fragments record nothing.
        CHECK(allowed(h, p, kSlot, kIn, dgram));
        CHECK_FALSE(allowed(h, p, kSlot, kIn, first(udp4("7.7.7.7", 4000, kPod4, 5001), 1)));
        CHECK(h.frag_size() == 0);

        const Frame f1 = first(dgram, 1);
        const pf_frag_key k = frag_key_for(kSlot, kIn, f1);
        const std::uint64_t before = coarse_now_ns();
        CHECK(allowed(h, p, kSlot, kIn, f1));
        REQUIRE(h.frag_find(k));
        CHECK(h.frag_find(k)->first_seen_ns >= before - 10'000'000); // coarse clock tick
        CHECK(h.frag_size() == 1);

        // Just inside the timeout: passes; just past it: the datagram is gone.
        // (Bit 0 of the stamp is PF_FRAG_AUDIT, and the coarse clock can be odd.)
        h.frag_put(k, {(coarse_now_ns() - PF_FRAG_TIMEOUT + 1'000'000'000ull) & ~PF_FRAG_AUDIT});
        CHECK(allowed(h, p, kSlot, kIn, later(dgram, 1)));
        h.frag_put(k, {(coarse_now_ns() - PF_FRAG_TIMEOUT - 1'000'000'000ull) & ~PF_FRAG_AUDIT});
        CHECK_FALSE(allowed(h, p, kSlot, kIn, later(dgram, 1)));
        // A later fragment never refreshes or creates the record.
        CHECK(h.frag_find(k)->first_seen_ns < coarse_now_ns() - PF_FRAG_TIMEOUT);
        CHECK(h.frag_size() == 1);
        // A repeated first fragment records the datagram again.
        CHECK(allowed(h, p, kSlot, kIn, f1));
        CHECK(allowed(h, p, kSlot, kIn, later(dgram, 1)));
        // Another slot does not see this slot's datagrams.
        h.install(
            kSlot + 1,
            podfence::policy::parse_policy(R"({"ingress":[{"ports":[{"protocol":"UDP","port":5000}]}]})"), 1);
        CHECK_FALSE(allowed(h, p, kSlot + 1, kIn, later(dgram, 1)));
    }
}

TEST_CASE("datapath: ICMP errors neither create nor refresh conntrack entries") {
    Harness h;
    const Frame q = udp4(kPod4, 5353, "1.2.3.4", 53);
    const auto pol = podfence::policy::parse_policy(kDnsClient);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.install(kSlot, pol, 1);
        CHECK(allowed(h, p, kSlot, kOut, q));
        const pf_ct_key key = ct_key_for(kSlot, kOut, q);
        auto ct = h.conntrack_find(key);
        REQUIRE(ct);
        // Idle for 100 s of UDP's 120: an error must not reset that.
        ct->last_seen_ns = coarse_now_ns() - 100'000'000'000ull;
        h.conntrack_put(key, *ct);
        CHECK(allowed(h, p, kSlot, kIn, icmp_error(kRouter4, kPod4, 3, 4, q, 1300)));
        CHECK(h.conntrack_find(key)->last_seen_ns == ct->last_seen_ns);
        CHECK(h.conntrack_size() == 1);
        // Expired: the error finds no flow.
        ct->last_seen_ns = coarse_now_ns() - PF_CT_TIMEOUT_UDP - 1'000'000'000ull;
        h.conntrack_put(key, *ct);
        CHECK_FALSE(allowed(h, p, kSlot, kIn, icmp_error(kRouter4, kPod4, 3, 4, q, 1300)));
        // Errors a policy admits (open egress here) leave no entry either.
        h.install(kSlot, podfence::policy::parse_policy(R"({"policyTypes":["Ingress"]})"), 2);
        h.conntrack_clear();
        CHECK(allowed(h, p, kSlot, kOut, icmp_error(kPod4, kRouter4, 3, 3, reply(q))));
        CHECK(h.conntrack_size() == 0);
    }
}

} // namespace pftest
