// Audit mode (PF_POD_AUDIT): the engine decides as in enforce mode but passes
// what it would drop, counts it as would-deny, tracks the flow with
// PF_CT_F_AUDIT and reports it once; a switch back to enforce (a new
// revision) cuts it. Also the per-packet cost of audit versus enforce.
#include <bpf/libbpf.h>
#include <doctest/doctest.h>
#include <arpa/inet.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "datapath/harness.hpp"
#include "policy/policy.hpp"

namespace pftest {
namespace {

constexpr std::uint32_t kSlot = 21;
constexpr const char* kPod = "10.0.0.21";
constexpr const char* kPeer = "10.7.0.1";
const Prog kProgs[] = {Prog::Tc, Prog::Xdp, Prog::FastTc, Prog::FastXdp};
constexpr std::uint32_t kAudit = PF_POD_ACTIVE | PF_POD_AUDIT;

// Ingress isolated: TCP 80 and UDP 53 from anywhere. Egress open.
podfence::policy::Policy web_only() {
    return podfence::policy::parse_policy(
        R"({"policyTypes":["Ingress"],"ingress":[{"ports":[{"port":80},{"protocol":"UDP","port":53}]}]})");
}

int collect(void* ctx, void* data, size_t size) {
    auto* out = static_cast<std::vector<pf_event>*>(ctx);
    if (size >= sizeof(pf_event)) out->push_back(*static_cast<pf_event*>(data));
    return 0;
}

struct Events {
    std::vector<pf_event> got;
    std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> rb{nullptr, ring_buffer__free};
    explicit Events(const Harness& h) { rb.reset(ring_buffer__new(h.events_fd(), collect, &got, nullptr)); }
    std::size_t count(std::uint8_t reason) {
        ring_buffer__consume(rb.get());
        return static_cast<std::size_t>(
            std::count_if(got.begin(), got.end(), [&](const pf_event& e) { return e.reason == reason; }));
    }
};

std::uint32_t median(std::vector<std::uint32_t> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

TEST_CASE("datapath: audit passes what enforce drops, counted and reported once per flow") {
    Harness h;
    Events ev(h);
    REQUIRE(ev.rb != nullptr);
    h.set_config(PF_CFG_EVENTS);
    for (Prog p : kProgs) {
        CAPTURE(std::string(prog_name(p)));
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        ev.count(0);
        ev.got.clear();
        const Frame denied = tcp4(kPeer, 4000, kPod, 22);
        const Frame ok = tcp4(kPeer, 4001, kPod, 80);

        // Enforce: the same policy drops it.
        h.install(kSlot, web_only(), 10);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, denied));
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).denied_packets == 1);
        CHECK(ev.count(PF_DROP_POLICY) == 1);

        // Audit: passes, tracked as would-deny, one event for three packets.
        h.set_pod(kSlot, 11, kAudit);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, denied));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(reply(denied))));
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, reply(denied))); // its reply: the same flow
        auto in = h.counters(kSlot, PF_DIR_INGRESS);
        CHECK(in.would_deny_packets == 2);
        CHECK(in.would_deny_bytes == 2 * build(denied).size());
        CHECK(in.denied_packets == 1);
        CHECK(in.allowed_packets == 0);
        CHECK(h.counters(kSlot, PF_DIR_EGRESS).would_deny_packets == 1);
        CHECK(h.counters(kSlot, PF_DIR_EGRESS).allowed_packets == 0);
        CHECK(h.rule_hits(kSlot, PF_DIR_INGRESS, PF_RULE_NONE) == 1);
        CHECK(ev.count(PF_EVENT_AUDIT) == 1);
        const pf_event& e = ev.got.back();
        CHECK(e.reason == PF_EVENT_AUDIT);
        CHECK(e.slot == kSlot);
        CHECK(e.dir == PF_DIR_INGRESS);
        CHECK(e.dport == htons(22));
        auto ct = h.conntrack_find(ct_key_for(kSlot, PF_DIR_INGRESS, denied));
        REQUIRE(ct);
        CHECK((ct->flags & PF_CT_F_AUDIT) != 0);
        CHECK(ct->origin == PF_DIR_INGRESS);

        // What the policy admits stays allowed, not would-deny.
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, ok));
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).allowed_packets == 1);
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).would_deny_packets == 2);
        auto ok_ct = h.conntrack_find(ct_key_for(kSlot, PF_DIR_INGRESS, ok));
        REQUIRE(ok_ct);
        CHECK((ok_ct->flags & PF_CT_F_AUDIT) == 0);

        // Back to enforce (a new revision): the audited flow is cut at its
        // next packet, the allowed one keeps passing.
        h.set_pod(kSlot, 12, PF_POD_ACTIVE);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(reply(denied))));
        CHECK_FALSE(h.conntrack_find(ct_key_for(kSlot, PF_DIR_INGRESS, denied)));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(reply(ok))));
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).would_deny_packets == 2);
        CHECK(ev.count(PF_EVENT_AUDIT) == 1);
    }
}

TEST_CASE("datapath: audit revalidation keeps, clears or reports a flow once") {
    Harness h;
    Events ev(h);
    REQUIRE(ev.rb != nullptr);
    h.set_config(PF_CFG_EVENTS);
    auto open = podfence::policy::default_policy(podfence::policy::DefaultAction::Allow);
    auto closed = podfence::policy::default_policy(podfence::policy::DefaultAction::Deny);
    for (Prog p : kProgs) {
        CAPTURE(std::string(prog_name(p)));
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        ev.count(0);
        ev.got.clear();
        const Frame f = udp4(kPeer, 5000, kPod, 9000);
        h.install(kSlot, open, 20);
        h.set_pod(kSlot, 20, kAudit);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, f)); // allowed flow
        CHECK(ev.count(PF_EVENT_AUDIT) == 0);

        // The policy now denies it while the pod audits: kept, reported once.
        h.install(kSlot, closed, 21);
        h.set_pod(kSlot, 21, kAudit);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, f));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, f));
        CHECK(ev.count(PF_EVENT_AUDIT) == 1);
        auto ct = h.conntrack_find(ct_key_for(kSlot, PF_DIR_INGRESS, f));
        REQUIRE(ct);
        CHECK((ct->flags & PF_CT_F_AUDIT) != 0);
        CHECK(ct->rev == 21);
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).would_deny_packets == 2);
        // A revalidation that still denies does not report it again.
        h.set_pod(kSlot, 22, kAudit);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, f));
        CHECK(ev.count(PF_EVENT_AUDIT) == 1);
        // Allowed again: no longer audited.
        h.install(kSlot, open, 23);
        h.set_pod(kSlot, 23, kAudit);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, f));
        ct = h.conntrack_find(ct_key_for(kSlot, PF_DIR_INGRESS, f));
        REQUIRE(ct);
        CHECK((ct->flags & PF_CT_F_AUDIT) == 0);
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).allowed_packets == 2);
    }
}

TEST_CASE("datapath: audit keeps the source check, malformed drops and fail-closed slots") {
    Harness h;
    h.set_sources(kSlot, {true, {podfence::policy::SourceAddr{PF_FAMILY_V4, ip(kPod)}}});
    for (Prog p : kProgs) {
        CAPTURE(std::string(prog_name(p)));
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        h.install(kSlot, podfence::policy::default_policy(podfence::policy::DefaultAction::Deny), 30);
        h.set_pod(kSlot, 30, kAudit | PF_POD_SRC_CHECK);
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, tcp4(kPod, 1, "8.8.8.8", 443))); // would-deny
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_EGRESS, tcp4("10.0.0.99", 1, "8.8.8.8", 443)));
        CHECK(h.counters(kSlot, PF_DIR_EGRESS).spoofed_packets == 1);
        Frame cut = tcp4(kPeer, 1, kPod, 80);
        cut.truncate_to = 40; // inside the TCP header
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, cut));
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).denied_packets == 1);
        h.remove_policy(kSlot); // active, audit, no policy map: still closed
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, tcp4(kPeer, 2, kPod, 80)));
    }
}

TEST_CASE("datapath: fragments and ICMP errors of an audited flow") {
    Harness h;
    Events ev(h);
    REQUIRE(ev.rb != nullptr);
    h.set_config(PF_CFG_EVENTS);
    for (Prog p : kProgs) {
        CAPTURE(std::string(prog_name(p)));
        h.conntrack_clear();
        h.frag_clear();
        h.clear_slot_stats(kSlot);
        ev.count(0);
        ev.got.clear();
        h.install(kSlot, web_only(), 40);
        h.set_pod(kSlot, 40, kAudit);
        const Frame dgram = udp4(kPeer, 7000, kPod, 7001); // UDP 7001: denied
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, fragment(dgram, true, 77)));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, fragment(dgram, false, 77)));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, fragment(dgram, false, 77)));
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).would_deny_packets == 3);
        CHECK(ev.count(PF_EVENT_AUDIT) == 1); // the flow's, not one per fragment
        // An ICMP error from the peer about the pod's reply of that flow.
        const Frame err = icmp_error(kPeer, kPod, 3, 3, reply(dgram));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, err));
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).would_deny_packets == 4);
        CHECK(ev.count(PF_EVENT_AUDIT) == 1);
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).allowed_packets == 0);

        // Enforce: the recorded datagram and the flow no longer admit them.
        h.set_pod(kSlot, 41, PF_POD_ACTIVE);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, fragment(dgram, false, 77)));
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, err));
        CHECK(h.counters(kSlot, PF_DIR_INGRESS).denied_packets == 2);
    }
}

TEST_CASE("datapath: a full event ring counts lost events") {
    Harness h;
    h.set_config(PF_CFG_EVENTS);
    h.install(kSlot, podfence::policy::default_policy(podfence::policy::DefaultAction::Deny), 50);
    h.set_scratch(kSlot, PF_DIR_INGRESS);
    // Nobody reads the ring: 8,000 drop events overflow its 256 KiB.
    h.run(Prog::Tc, build(tcp4(kPeer, 1, kPod, 80)), 8000);
    const auto c = h.counters(kSlot, PF_DIR_INGRESS);
    CHECK(c.denied_packets == 8000);
    CHECK(c.events_lost > 0);
    CHECK(c.events_lost < 8000);
}

// Per-packet cost, same policy, enforce vs audit: an established flow (a
// conntrack hit, repeated in the kernel) and a new flow (conntrack emptied
// before each single run, so each run decides a new flow). Printed, not
// asserted: timing on a shared machine. Median of 15 runs each.
TEST_CASE("datapath: audit cost per packet vs enforce (test_run ns)") {
    Harness h;
    const Frame est = tcp4(kPeer, 6000, kPod, 80);
    for (Prog p : kProgs) {
        for (bool audit : {false, true}) {
            h.install(kSlot, web_only(), audit ? 61 : 60);
            h.set_pod(kSlot, audit ? 61 : 60, audit ? kAudit : PF_POD_ACTIVE);
            h.set_scratch(kSlot, PF_DIR_INGRESS);
            std::vector<std::uint32_t> established, fresh, fresh_denied;
            for (int i = 0; i < 15; ++i) {
                h.conntrack_clear();
                h.run(p, build(est));
                established.push_back(h.run(p, build(est), 100000).duration_ns);
                // A new flow the policy admits, and one it denies (dropped
                // in enforce, passed as would-deny in audit).
                h.conntrack_clear();
                fresh.push_back(
                    h.run(p, build(tcp4(kPeer, static_cast<std::uint16_t>(7000 + i), kPod, 80))).duration_ns);
                h.conntrack_clear();
                fresh_denied.push_back(
                    h.run(p, build(tcp4(kPeer, static_cast<std::uint16_t>(7000 + i), kPod, 22))).duration_ns);
            }
            MESSAGE(std::string(prog_name(p)), audit ? " audit  " : " enforce", ": established ",
                    median(established), " ns, new flow allowed ", median(fresh), " ns, new flow denied ",
                    median(fresh_denied), " ns (median of 15)");
        }
    }
}

} // namespace pftest
