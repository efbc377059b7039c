// Datapath state: fail-closed slot handling, counters, rule hits, drop
// events, conntrack entries/timeouts, and the raw trie ABI (hand-written
// entries, independent of compile()).
#include <bpf/libbpf.h>
#include <doctest/doctest.h>
#include <arpa/inet.h>

#include <cstring>
#include <memory>

#include "datapath/harness.hpp"
#include "policy/policy.hpp"

namespace pftest {
namespace {

constexpr std::uint32_t kSlot = 11;
constexpr const char* kPod = "10.0.0.10";
const Prog kProgs[] = {Prog::Tc, Prog::Xdp};

Frame arp() {
    Frame f = tcp4("1.1.1.1", 1, kPod, 1);
    f.ethertype = 0x0806;
    return f;
}

podfence::policy::Policy allow_all() {
    return podfence::policy::default_policy(podfence::policy::DefaultAction::Allow);
}

} // namespace

TEST_CASE("datapath: fail closed on unknown, inactive or policy-less slots") {
    Harness h;
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.install(kSlot, allow_all(), 1);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, tcp4("1.1.1.1", 1, kPod, 80)));

        h.set_pod(kSlot, 1, 0); // inactive: everything drops, ARP included
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, tcp4("1.1.1.1", 2, kPod, 80)));
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, arp()));
        // ...even a flow conntrack knows.
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, tcp4("1.1.1.1", 1, kPod, 80)));

        h.set_pod(kSlot, 1);
        h.remove_policy(kSlot); // active but no trie: IP drops, ARP passes
        h.conntrack_clear();
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, tcp4("1.1.1.1", 3, kPod, 80)));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, arp()));

        // Slot beyond the map and a direction that does not exist.
        CHECK_FALSE(allowed(h, p, PF_MAX_SLOTS, PF_DIR_INGRESS, arp()));
        CHECK_FALSE(allowed(h, p, PF_MAX_SLOTS + 100000, PF_DIR_EGRESS, tcp4(kPod, 1, "1.1.1.1", 80)));
        h.install(kSlot, allow_all(), 2);
        CHECK_FALSE(allowed(h, p, kSlot, 2, tcp4("1.1.1.1", 4, kPod, 80)));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, tcp4("1.1.1.1", 4, kPod, 80)));
    }
}

TEST_CASE("datapath: counters and rule hits move") {
    Harness h;
    auto pol = podfence::policy::parse_policy(
        R"({"ingress":[{"ports":[{"port":22}]},{"ports":[{"port":80}]}],"policyTypes":["Ingress"]})");
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        h.install(kSlot, pol, 5);

        Frame syn = tcp4("1.1.1.1", 1000, kPod, 80);
        Frame big = syn;
        big.payload = 300;
        Frame denied = tcp4("1.1.1.1", 1000, kPod, 81);
        const auto syn_len = build(syn).size(), big_len = build(big).size(),
                   denied_len = build(denied).size();

        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, syn));       // new flow: rule 1 hit
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, big));       // established: no hit
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, reply(syn))); // reply, egress not isolated
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, denied));
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, denied));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, tcp4("1.1.1.2", 1000, kPod, 80))); // another new flow
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, arp())); // counted, not a decision

        pf_counter in = h.counters(kSlot, PF_DIR_INGRESS);
        CHECK(in.allowed_packets == 4);
        CHECK(in.allowed_bytes == 2 * syn_len + big_len + build(arp()).size());
        CHECK(in.denied_packets == 2);
        CHECK(in.denied_bytes == 2 * denied_len);
        pf_counter out = h.counters(kSlot, PF_DIR_EGRESS);
        CHECK(out.allowed_packets == 1);
        CHECK(out.denied_packets == 0);

        CHECK(h.rule_hits(kSlot, PF_DIR_INGRESS, 1) == 2);
        CHECK(h.rule_hits(kSlot, PF_DIR_INGRESS, 0) == 0);
        // The reply was a conntrack hit, not a new egress flow.
        CHECK(h.rule_hits(kSlot, PF_DIR_EGRESS, PF_RULE_DEFAULT) == 0);
        // A new egress flow in the non-isolated direction counts as the default rule.
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, tcp4(kPod, 5, "8.8.8.8", 53)));
        CHECK(h.rule_hits(kSlot, PF_DIR_EGRESS, PF_RULE_DEFAULT) == 1);
    }
}

namespace {
int collect_event(void* ctx, void* data, size_t size) {
    auto* out = static_cast<std::vector<pf_event>*>(ctx);
    if (size >= sizeof(pf_event)) out->push_back(*static_cast<pf_event*>(data));
    return 0;
}
} // namespace

TEST_CASE("datapath: drop events only while enabled") {
    Harness h;
    std::vector<pf_event> events;
    ring_buffer* rb = ring_buffer__new(h.events_fd(), collect_event, &events, nullptr);
    REQUIRE(rb != nullptr);
    std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> rb_owner(rb, ring_buffer__free);

    h.install(kSlot, podfence::policy::default_policy(podfence::policy::DefaultAction::Deny), 1);
    Frame f = tcp4(kPod, 4242, "9.9.9.9", 443);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        events.clear();
        h.set_config(0);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_EGRESS, f));
        ring_buffer__consume(rb);
        CHECK(events.empty());

        h.set_config(PF_CFG_EVENTS);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_EGRESS, f));
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, arp())); // allowed: no event
        ring_buffer__consume(rb);
        REQUIRE(events.size() == 1);
        const pf_event& e = events[0];
        CHECK(e.slot == kSlot);
        CHECK(e.dir == PF_DIR_EGRESS);
        CHECK(e.family == PF_FAMILY_V4);
        CHECK(e.proto == kTcp);
        CHECK(std::memcmp(e.src, ip(kPod).data(), 16) == 0);
        CHECK(std::memcmp(e.dst, ip("9.9.9.9").data(), 16) == 0);
        CHECK(ntohs(e.sport) == 4242);
        CHECK(ntohs(e.dport) == 443);
        CHECK(e.len == build(f).size());
        CHECK(e.ts_ns > 0);
        h.set_config(0);
    }
}

TEST_CASE("datapath: conntrack entries, refresh, closing and expiry") {
    Harness h;
    auto pol = podfence::policy::parse_policy(R"({"egress":[{"ports":[{"port":443},{"protocol":"UDP"}]}]})");
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.install(kSlot, pol, 9);
        Frame syn = tcp4(kPod, 40000, "1.2.3.4", 443);
        const pf_ct_key key = ct_key_for(kSlot, PF_DIR_EGRESS, syn);

        // The entry a new flow creates, keyed pod-centric.
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, syn));
        auto v = h.conntrack_find(key);
        REQUIRE(v.has_value());
        CHECK(v->rev == 9);
        CHECK(v->origin == PF_DIR_EGRESS);
        CHECK(v->flags == 0);
        CHECK(h.conntrack_find(ct_key_for(kSlot, PF_DIR_INGRESS, reply(syn))).has_value()); // same key
        CHECK(h.conntrack_size() == 1);

        // last_seen is not rewritten while fresh (< 1 s), rewritten when stale.
        pf_ct_val fresh = *v;
        fresh.last_seen_ns = coarse_now_ns() - 500000000ull;
        h.conntrack_put(key, fresh);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(syn)));
        CHECK(h.conntrack_find(key)->last_seen_ns == fresh.last_seen_ns);
        pf_ct_val stale = *v;
        stale.last_seen_ns = coarse_now_ns() - 30ull * 1000000000ull;
        h.conntrack_put(key, stale);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(syn)));
        CHECK(h.conntrack_find(key)->last_seen_ns > stale.last_seen_ns);

        // FIN marks the flow closing; a closing TCP flow expires after 10 s.
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(syn, kTcpFin | kTcpAck)));
        auto closing = h.conntrack_find(key);
        REQUIRE(closing.has_value());
        CHECK((closing->flags & PF_CT_F_CLOSING) != 0);
        closing->last_seen_ns = coarse_now_ns() - 11ull * 1000000000ull;
        h.conntrack_put(key, *closing);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(syn, kTcpAck))); // expired: a new ingress flow
        CHECK_FALSE(h.conntrack_find(key).has_value());                         // and the entry is gone

        // Not closing: 1 h idle is fine at 59 min, expired at 61 min.
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, syn));
        pf_ct_val idle = *h.conntrack_find(key);
        idle.last_seen_ns = coarse_now_ns() - 59ull * 60 * 1000000000ull;
        h.conntrack_put(key, idle);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(syn)));
        idle.last_seen_ns = coarse_now_ns() - 61ull * 60 * 1000000000ull;
        h.conntrack_put(key, idle);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(syn)));

        // UDP 120 s; an expired entry in the allowed direction is overwritten.
        Frame dns = udp4(kPod, 5353, "8.8.8.8", 53);
        const pf_ct_key ukey = ct_key_for(kSlot, PF_DIR_EGRESS, dns);
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, dns));
        pf_ct_val u = *h.conntrack_find(ukey);
        u.last_seen_ns = coarse_now_ns() - 119ull * 1000000000ull;
        h.conntrack_put(ukey, u);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(dns)));
        u.last_seen_ns = coarse_now_ns() - 121ull * 1000000000ull;
        h.conntrack_put(ukey, u);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(dns)));
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, dns));
        CHECK(h.conntrack_find(ukey)->last_seen_ns >= u.last_seen_ns + 120ull * 1000000000ull);

        // Other protocols (ICMP echo) 60 s.
        Frame ping = icmp(4, kPod, "1.2.3.4", 8, 99);
        h.install(kSlot, podfence::policy::parse_policy(R"({"egress":[{}]})"), 10);
        CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, ping));
        const pf_ct_key ikey = ct_key_for(kSlot, PF_DIR_EGRESS, ping);
        pf_ct_val iv = *h.conntrack_find(ikey);
        CHECK(ntohs(ikey.pod_port) == 99);
        CHECK(ntohs(ikey.peer_port) == 99);
        iv.last_seen_ns = coarse_now_ns() - 61ull * 1000000000ull;
        h.conntrack_put(ikey, iv);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(ping)));
    }
}

TEST_CASE("datapath: raw policy map ABI (hand-written entries)") {
    Harness h;
    // Ingress: 10.0.0.0/8 -> set 1 (TCP 8000-8003 = port prefix /14 -> rule 3,
    // UDP any port -> rule 4), 10.1.0.0/16 -> PF_SET_NONE, 10.1.2.3/32 ->
    // set 2. fd00::/16 -> set 2 (any -> rule 0), fd00:0:0:1::/64 ->
    // PF_SET_NONE, fd00::1:0:0:7/128 -> set 1.
    // Egress: nothing (deny).
    std::vector<Entry> entries = podfence::policy::with_search({
        addr_entry(PF_DIR_INGRESS, 4, ip("10.0.0.0"), 8, 1),
        addr_entry(PF_DIR_INGRESS, 4, ip("10.1.0.0"), 16, PF_SET_NONE),
        addr_entry(PF_DIR_INGRESS, 4, ip("10.1.2.3"), 32, 2),
        addr_entry(PF_DIR_INGRESS, 6, ip("fd00::"), 16, 2),
        addr_entry(PF_DIR_INGRESS, 6, ip("fd00:0:0:1::"), 64, PF_SET_NONE),
        addr_entry(PF_DIR_INGRESS, 6, ip("fd00:0:0:1::7"), 128, 1),
        port_entry(1, kTcp, 8000, 14, 3),
        port_entry(1, kUdp, 0, -1, 4),
        port_entry(2, 0, 0, 0, 0),
    });
    h.set_policy(kSlot, entries);
    h.set_pod(kSlot, 1);
    struct Row {
        const char* what;
        std::uint8_t dir;
        Frame f;
        bool allow;
        std::uint32_t rule;
    } rows[] = {
        {"tcp 8000 in set 1", PF_DIR_INGRESS, tcp4("10.9.9.9", 1, kPod, 8000), true, 3},
        {"tcp 8003 in set 1", PF_DIR_INGRESS, tcp4("10.9.9.9", 2, kPod, 8003), true, 3},
        {"tcp 8004 outside the /14", PF_DIR_INGRESS, tcp4("10.9.9.9", 3, kPod, 8004), false, 0},
        {"tcp 7999 outside the /14", PF_DIR_INGRESS, tcp4("10.9.9.9", 3, kPod, 7999), false, 0},
        {"udp any port", PF_DIR_INGRESS, udp4("10.9.9.9", 4, kPod, 0), true, 4},
        {"icmp: no any entry in set 1", PF_DIR_INGRESS, icmp(4, "10.9.9.9", kPod, 8, 1), false, 0},
        {"PF_SET_NONE denies", PF_DIR_INGRESS, udp4("10.1.9.9", 5, kPod, 9), false, 0},
        {"/32 inside the NONE /16 wins", PF_DIR_INGRESS, udp4("10.1.2.3", 5, kPod, 9), true, 0},
        {"ADDR miss denies", PF_DIR_INGRESS, udp4("11.0.0.1", 6, kPod, 9), false, 0},
        {"v6 any-proto entry admits ICMPv6", PF_DIR_INGRESS, icmp(6, "fd00::1", "fd00::10", 128, 1), true, 0},
        {"v6 /64 NONE denies", PF_DIR_INGRESS, icmp(6, "fd00:0:0:1::8", "fd00::10", 128, 1), false, 0},
        {"v6 /128 in the /64 -> set 1", PF_DIR_INGRESS, udp6("fd00:0:0:1::7", 7, "fd00::10", 53), true, 4},
        {"v6 miss denies", PF_DIR_INGRESS, icmp(6, "fd01::1", "fd00::10", 128, 1), false, 0},
        {"egress has no entries", PF_DIR_EGRESS, tcp4(kPod, 7, "10.9.9.9", 8000), false, 0},
    };
    for (Prog p : kProgs) {
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        for (const Row& r : rows) {
            CAPTURE(prog_name(p));
            CAPTURE(r.what);
            CHECK(allowed(h, p, kSlot, r.dir, r.f) == r.allow);
            if (r.allow) CHECK(h.rule_hits(kSlot, r.dir, r.rule) >= 1);
        }
    }

    // The engine tries only the lengths the ropes give: with the v4 ROOT
    // rope cut down to /8, the NONE /16 and the /32 are never probed and the
    // /8 answers for all of 10/8.
    std::vector<Entry> skewed = entries;
    for (Entry& e : skewed)
        if (e.key.kind == PF_KIND_ADDR_ROOT && e.key.family == PF_FAMILY_V4)
            e.val.rope = PF_ROPE_EMPTY << 8 | 8;
    h.set_policy(kSlot, skewed);
    for (Prog p : kProgs) {
        h.conntrack_clear();
        CAPTURE(prog_name(p));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, udp4("10.1.9.9", 5, kPod, 9))); // /8 -> set 1, rule 4
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, udp4("10.1.2.3", 5, kPod, 9))); // /32 still listed
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, udp4("11.1.9.9", 5, kPod, 9)));
    }
}

} // namespace pftest
