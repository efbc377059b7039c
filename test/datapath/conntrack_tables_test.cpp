// The two conntrack tables (ABI 6): IPv4 flows by a 20-byte key in
// pf_conntrack4, IPv6 ones by the wide key in pf_conntrack; no two flows
// share an entry; and the IPv4 flows a datapath before ABI 6 left in
// pf_conntrack are adopted only while pf_config's window is open.
#include <doctest/doctest.h>

#include <string_view>

#include "datapath/harness.hpp"
#include "policy/policy.hpp"

namespace pftest {
namespace {

constexpr std::uint32_t kSlot = 21, kOther = 22;
constexpr const char* kPod = "10.0.0.10";
constexpr std::uint64_t kSecond = 1000000000ull;
const Prog kProgs[] = {Prog::Tc, Prog::Xdp};

// Egress to TCP 443/444 and UDP 443 of anyone; ingress isolated with no
// rule: a packet to the pod passes only as a reply of a tracked flow.
podfence::policy::Policy replies_only() {
    return podfence::policy::parse_policy(
        R"({"policyTypes":["Ingress","Egress"],
            "egress":[{"ports":[{"port":443,"endPort":444},{"protocol":"UDP","port":443}]}]})");
}

} // namespace

TEST_CASE("datapath: IPv4 flows in pf_conntrack4, IPv6 ones in pf_conntrack, one entry per flow") {
    Harness h;
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.install(kSlot, replies_only(), 3);
        h.install(kOther, replies_only(), 3);
        const Frame flow = tcp4(kPod, 40000, "1.2.3.4", 443);
        const pf_ct_key key = ct_key_for(kSlot, PF_DIR_EGRESS, flow);
        REQUIRE(allowed(h, p, kSlot, PF_DIR_EGRESS, flow));
        CHECK(h.conntrack_find(key).has_value()); // the narrow table
        CHECK_FALSE(h.wide_conntrack_find(key).has_value());
        CHECK(h.conntrack_size() == 1);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(flow)));

        // A reply of a flow that differs in any one key field was never
        // opened: it must not hit the entry above.
        struct Variant {
            const char* what;
            Frame f;
        };
        const Variant others[] = {
            {"pod address", tcp4("10.0.0.11", 40000, "1.2.3.4", 443)},
            {"pod port", tcp4(kPod, 40001, "1.2.3.4", 443)},
            {"peer address", tcp4(kPod, 40000, "1.2.3.5", 443)},
            {"peer port", tcp4(kPod, 40000, "1.2.3.4", 444)},
            {"protocol", udp4(kPod, 40000, "1.2.3.4", 443)},
            {"family (v4-mapped IPv6)", tcp6("::ffff:10.0.0.10", 40000, "::ffff:1.2.3.4", 443)},
            // Ports swapped between pod and peer.
            {"ports swapped", tcp4(kPod, 443, "1.2.3.4", 40000)},
        };
        for (const Variant& v : others) {
            CAPTURE(v.what);
            CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(v.f)));
        }
        CHECK_FALSE(allowed(h, p, kOther, PF_DIR_INGRESS, reply(flow))); // another pod's slot

        // Each opened in turn gets an entry of its own, in its family's table.
        for (const Variant& v : others) {
            CAPTURE(v.what);
            if (std::string_view(v.what) == "ports swapped") continue; // TCP 40000: not allowed
            CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, v.f));
            const pf_ct_key k = ct_key_for(kSlot, PF_DIR_EGRESS, v.f);
            CHECK(h.conntrack_find(k).has_value());
            CHECK(h.wide_conntrack_find(k).has_value() == (k.family == PF_FAMILY_V6));
            CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(v.f)));
        }
        CHECK(h.conntrack_size() == 7);
    }
}

TEST_CASE("datapath: ABI 5's IPv4 flows are adopted from pf_conntrack only while the window is open") {
    Harness h;
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.install(kSlot, replies_only(), 7);
        const Frame flow = tcp4(kPod, 40000, "1.2.3.4", 443);
        const pf_ct_key key = ct_key_for(kSlot, PF_DIR_EGRESS, flow);
        // What an ABI 5 datapath recorded for this flow, before the pod moved.
        const pf_ct_val old{coarse_now_ns(), 7, PF_DIR_EGRESS, 0, 0};
        h.wide_conntrack_put(key, old);

        // Closed: the flow is unknown, its reply denied.
        h.set_config(0, 0);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(flow)));
        h.set_config(0, coarse_now_ns() - kSecond); // a window that has ended
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(flow)));
        CHECK_FALSE(h.conntrack_find(key).has_value());

        // Open: the reply passes and the flow is copied to pf_conntrack4.
        h.set_config(0, coarse_now_ns() + 3600 * kSecond);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(flow)));
        auto now4 = h.conntrack_find(key);
        REQUIRE(now4.has_value());
        CHECK(now4->origin == PF_DIR_EGRESS);
        CHECK(now4->rev == 7);
        // Kept where the old datapath may still read it during the move.
        CHECK(h.wide_conntrack_find(key).has_value());
        // From now on the copy decides: with the window closed it still passes.
        h.set_config(0, 0);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(flow)));

        // Open, but expired or no longer admitted: denied like any flow.
        h.conntrack_clear();
        h.set_config(0, coarse_now_ns() + 3600 * kSecond);
        pf_ct_val expired = old;
        expired.last_seen_ns = coarse_now_ns() - 3601 * kSecond;
        h.wide_conntrack_put(key, expired);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(flow)));
        // An ingress flow to port 8080 admitted under an older revision: the
        // current policy does not admit it, so it is cut.
        const Frame in = tcp4("1.2.3.4", 5555, kPod, 8080, kTcpAck);
        const pf_ct_key ikey = ct_key_for(kSlot, PF_DIR_INGRESS, in);
        h.wide_conntrack_put(ikey, pf_ct_val{coarse_now_ns(), 6, PF_DIR_INGRESS, 0, 0});
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, in));
        CHECK_FALSE(h.conntrack_find(ikey).has_value());
        // The same flow at the current revision passes (the old datapath's
        // verdict stands until the policy changes).
        h.wide_conntrack_put(ikey, pf_ct_val{coarse_now_ns(), 7, PF_DIR_INGRESS, 0, 0});
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, in));
        h.set_config(0, 0);
    }
}

} // namespace pftest
