// The source check (PF_POD_SRC_CHECK, pf_sources): what a pod sends from an
// address it does not own is dropped before any policy and counted apart;
// its own addresses, 0.0.0.0, :: and fe80::/64 go on to the policy. Through
// pf_tc and pf_xdp.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <memory>

#include "datapath/table.hpp"
#include "policy/policy.hpp"

namespace pftest {
namespace {

namespace pol = podfence::policy;

constexpr const char* kPod4 = "10.0.0.10";
constexpr const char* kPod6 = "fd00::10";
constexpr std::uint32_t kSlot = 31;
constexpr Prog kProgs[] = {Prog::Tc, Prog::Xdp, Prog::FastTc, Prog::FastXdp};

pol::SourceAddr src(const char* text) {
    return *pol::parse_source(text);
}

pol::PodSources pod_sources(bool check = true) {
    return {check, {src(kPod4), src(kPod6)}};
}

pol::Policy parsed(const char* json) {
    return pol::parse_policy(json);
}

Frame arp() {
    Frame f = tcp4("10.0.0.66", 1, "10.0.0.1", 1);
    f.ethertype = 0x0806;
    return f;
}

struct Row {
    const char* what;
    std::uint8_t dir;
    Frame frame;
    bool allow;
    bool spoofed; // counted in spoofed_*, not in allowed_/denied_
};

// Check on, policy "egress to anywhere, ingress from anywhere": every drop
// here is the source check's.
std::vector<Row> rows() {
    Frame ns_dad = icmp(6, "::", "ff02::1:ff00:10", 135);
    Frame na_ll = icmp(6, "fe80::a8c1:abff:fe00:10", "fe80::1", 136);
    Frame rs_ll = icmp(6, "fe80::1234", "ff02::2", 133);
    Frame ns_forged = icmp(6, "fd00::99", "ff02::1:ff00:1", 135);
    Frame dhcp = udp4("0.0.0.0", 68, "255.255.255.255", 67);
    Frame ll_tcp = tcp6("fe80::a8c1:abff:fe00:10", 40000, "fe80::1", 22);
    Frame not_ll = tcp6("fe80:0:0:1::10", 40000, "fe80::1", 22); // fe80::/10 but outside fe80::/64
    return {
        {"own v4 source", kOut, udp4(kPod4, 5000, "10.0.0.20", 53), kAllow, false},
        {"own v6 source", kOut, udp6(kPod6, 5000, "fd00::20", 53), kAllow, false},
        {"forged v4 source", kOut, udp4("10.0.0.11", 5000, "10.0.0.20", 53), kDeny, true},
        {"forged v4 source, TCP", kOut, tcp4("192.168.1.1", 5000, "10.0.0.20", 80), kDeny, true},
        {"forged v6 source", kOut, udp6("fd00::11", 5000, "fd00::20", 53), kDeny, true},
        {"v6 source with the pod's v4 bytes", kOut, udp6("a00:a::", 5000, "fd00::20", 53), kDeny, true},
        {"forged v4 ICMP echo", kOut, icmp(4, "10.0.0.12", "10.0.0.20", 8, 1), kDeny, true},
        {"forged v4 non-first fragment", kOut,
         [] {
             Frame f = udp4("10.0.0.13", 1, "10.0.0.20", 2);
             f.non_first_fragment = true;
             return f;
         }(),
         kDeny, true},
        {"DHCP from 0.0.0.0", kOut, dhcp, kAllow, false},
        {"NS for DAD from ::", kOut, ns_dad, kAllow, false},
        {"NA from the pod's link-local", kOut, na_ll, kAllow, false},
        {"RS from another fe80::/64 address", kOut, rs_ll, kAllow, false},
        {"NS from a forged global source", kOut, ns_forged, kDeny, true},
        {"TCP from link-local", kOut, ll_tcp, kAllow, false},
        {"fe80::/10 outside fe80::/64", kOut, not_ll, kDeny, true},
        {"ARP (not IP: not judged)", kOut, arp(), kAllow, false},
        {"ingress from any source", kIn, udp4("172.16.9.9", 53, kPod4, 5000), kAllow, false},
        {"ingress v6 from any source", kIn, udp6("2001:db8::9", 53, kPod6, 5000), kAllow, false},
    };
}

int collect_event(void* ctx, void* data, size_t size) {
    auto* out = static_cast<std::vector<pf_event>*>(ctx);
    if (size >= sizeof(pf_event)) out->push_back(*static_cast<pf_event*>(data));
    return 0;
}

} // namespace

TEST_CASE("datapath: source check (spoof): forged sources dropped and counted apart, own pass") {
    Harness h;
    h.set_sources(kSlot, pod_sources());
    h.install(kSlot, parsed(R"({"policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]})"), 1);
    for (Prog p : kProgs) {
        for (const Row& r : rows()) {
            CAPTURE(prog_name(p));
            CAPTURE(r.what);
            h.conntrack_clear();
            h.clear_slot_stats(kSlot);
            CHECK(allowed(h, p, kSlot, r.dir, r.frame) == r.allow);
            const pf_counter c = h.counters(kSlot, r.dir);
            const std::uint64_t len = build(r.frame).size();
            CHECK(c.spoofed_packets == (r.spoofed ? 1u : 0u));
            CHECK(c.spoofed_bytes == (r.spoofed ? len : 0u));
            CHECK(c.denied_packets == 0);
            CHECK(c.allowed_packets == (r.allow ? 1u : 0u));
            // A forged packet never reaches conntrack.
            if (r.spoofed) CHECK(h.conntrack_size() == 0);
        }
    }
}

TEST_CASE("datapath: source check (spoof): a forged source cannot ride a flow of the pod") {
    Harness h;
    h.set_sources(kSlot, pod_sources());
    h.install(kSlot, parsed(R"({"ingress": [{}]})"), 1);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        // The peer opens a flow to the pod; the reply from the pod passes...
        Frame in = tcp4("10.0.0.20", 40000, kPod4, 80);
        CHECK(allowed(h, p, kSlot, kIn, in));
        CHECK(allowed(h, p, kSlot, kOut, reply(in)));
        // ...a "reply" with a forged source does not, even for a known flow key.
        Frame forged = reply(in);
        forged.src = ip("10.0.0.11");
        CHECK_FALSE(allowed(h, p, kSlot, kOut, forged));
    }
}

TEST_CASE("datapath: source check (spoof) off: forged sources go on to the policy") {
    Harness h;
    h.set_sources(kSlot, pod_sources(false));
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.install(kSlot, parsed("{}"), 1); // egress not isolated
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        CHECK(allowed(h, p, kSlot, kOut, udp4("10.0.0.11", 5000, "10.0.0.20", 53)));
        CHECK(allowed(h, p, kSlot, kOut, udp6("fd00::11", 5000, "fd00::20", 53)));
        // The policy still judges them: denied, counted as denied.
        h.install(kSlot, parsed(R"({"egress": []})"), 2);
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp4("10.0.0.11", 5000, "10.0.0.20", 53)));
        const pf_counter c = h.counters(kSlot, kOut);
        CHECK(c.spoofed_packets == 0);
        CHECK(c.allowed_packets == 2);
        CHECK(c.denied_packets == 1);
    }
}

TEST_CASE("datapath: source check (spoof) comes before the policy, which still judges own sources") {
    Harness h;
    h.set_sources(kSlot, pod_sources());
    h.install(kSlot, parsed(R"({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}]})"), 1);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        CHECK(allowed(h, p, kSlot, kOut, udp4(kPod4, 1, "10.0.0.20", 53)));            // own, admitted
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp4(kPod4, 1, "10.9.0.20", 53)));      // own, policy denies
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp4("10.0.0.3", 1, "10.0.0.20", 53))); // forged
        const pf_counter c = h.counters(kSlot, kOut);
        CHECK(c.allowed_packets == 1);
        CHECK(c.denied_packets == 1);
        CHECK(c.spoofed_packets == 1);
    }
}

TEST_CASE("datapath: source check (spoof): drop events say spoofed") {
    Harness h;
    std::vector<pf_event> events;
    ring_buffer* rb = ring_buffer__new(h.events_fd(), collect_event, &events, nullptr);
    REQUIRE(rb != nullptr);
    std::unique_ptr<ring_buffer, void (*)(ring_buffer*)> rb_owner(rb, ring_buffer__free);
    h.set_sources(kSlot, pod_sources());
    h.install(kSlot, parsed(R"({"egress": []})"), 1);
    h.set_config(PF_CFG_EVENTS);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        events.clear();
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp6("fd00::11", 5000, "fd00::20", 53)));
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp6(kPod6, 5000, "fd00::20", 53))); // policy
        ring_buffer__consume(rb);
        REQUIRE(events.size() == 2);
        CHECK(events[0].reason == PF_DROP_SPOOFED);
        CHECK(events[0].dir == PF_DIR_EGRESS);
        CHECK(events[0].family == PF_FAMILY_V6);
        CHECK(std::memcmp(events[0].src, ip("fd00::11").data(), 16) == 0);
        CHECK(ntohs(events[0].dport) == 53);
        CHECK(events[1].reason == PF_DROP_POLICY);
    }
    h.set_config(0);
}

TEST_CASE("datapath: source check (spoof): slots keep their own addresses; reuse inherits none") {
    Harness h;
    constexpr std::uint32_t kOther = kSlot + 1;
    const char* allow_all = R"({"policyTypes": []})";
    h.set_sources(kSlot, pod_sources());
    h.set_sources(kOther, {true, {src("10.0.0.11")}});
    h.install(kSlot, parsed(allow_all), 1);
    h.install(kOther, parsed(allow_all), 1);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        // Another pod's address is not this pod's.
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp4("10.0.0.11", 1, "10.0.0.20", 53)));
        CHECK(allowed(h, p, kOther, kOut, udp4("10.0.0.11", 1, "10.0.0.20", 53)));
        CHECK_FALSE(allowed(h, p, kOther, kOut, udp4(kPod4, 1, "10.0.0.20", 53)));
    }
    // The slot gets a new pod: the old pod's addresses are gone.
    const std::size_t before = h.sources_size();
    h.set_sources(kSlot, {true, {src("10.0.0.50")}});
    CHECK(h.sources_size() == before - 1);
    h.install(kSlot, parsed(allow_all), 2);
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp4(kPod4, 1, "10.0.0.20", 53)));
        CHECK_FALSE(allowed(h, p, kSlot, kOut, udp6(kPod6, 1, "fd00::20", 53)));
        CHECK(allowed(h, p, kSlot, kOut, udp4("10.0.0.50", 1, "10.0.0.20", 53)));
    }
}

} // namespace pftest
