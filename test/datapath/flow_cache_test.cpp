// The flow cache (pf_flowcache, ABI 7): an established flow's later packets
// pass on a cached copy of its conntrack verdict, and that copy serves no
// other flow, no other revision, no FIN or RST, and nothing after its time;
// the pod's own packets skip the source check on it only from an address
// that passed the check.
#include <doctest/doctest.h>
#include <sched.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "datapath/harness.hpp"
#include "policy/policy.hpp"

namespace pftest {
namespace {

constexpr std::uint32_t kSlot = 31;
constexpr std::uint32_t kRev = 5;
constexpr const char* kPod4 = "10.0.0.31";
constexpr const char* kPod6 = "fd00::31";
const Prog kProgs[] = {Prog::Tc, Prog::Xdp, Prog::FastTc, Prog::FastXdp};

// Egress to TCP 443 of anyone; ingress isolated with no rule: a packet to
// the pod passes only as a reply of a tracked flow.
podfence::policy::Policy replies_only() {
    return podfence::policy::parse_policy(
        R"({"policyTypes":["Ingress","Egress"],"egress":[{"ports":[{"port":443}]}]})");
}

// The engine's cache is per CPU and BPF_PROG_TEST_RUN runs on the caller's
// CPU: a test that fills on one CPU and probes on another would miss the
// entry and prove nothing. Pinned for the guard's life.
class PinnedToOneCpu {
public:
    PinnedToOneCpu() {
        REQUIRE(sched_getaffinity(0, sizeof old_, &old_) == 0);
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu(), &one);
        REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    }
    ~PinnedToOneCpu() { sched_setaffinity(0, sizeof old_, &old_); }
    PinnedToOneCpu(const PinnedToOneCpu&) = delete;
    PinnedToOneCpu& operator=(const PinnedToOneCpu&) = delete;

private:
    cpu_set_t old_{};
};

// The entry on this CPU at the flow's index, if it holds that flow.
std::optional<pf_fc_entry> cached(const Harness& h, const pf_ct_key& k) {
    const pf_fc_entry e = h.flow_cache_at(flow_cache_index(k)).at(static_cast<std::size_t>(sched_getcpu()));
    const FlowCacheKey c = flow_cache_key(k);
    if (e.family != k.family || std::memcmp(e.key, c.w, c.n * 4) != 0) return std::nullopt;
    return e;
}

// Opens flow f (egress), then lets two replies through: the first finds
// conntrack and fills the cache, the second is served from it.
void open_and_cache(Harness& h, Prog p, const Frame& f) {
    REQUIRE(allowed(h, p, kSlot, PF_DIR_EGRESS, f));
    REQUIRE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));
    REQUIRE(cached(h, ct_key_for(kSlot, PF_DIR_EGRESS, f)).has_value());
    REQUIRE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));
}

// A flow that differs from f in the one field `vary` sets from a counter and
// lands on f's cache entry; nullopt if none of `tries` does.
template <typename Vary>
std::optional<Frame> colliding(const Frame& f, Vary vary, std::uint32_t tries = 1u << 20) {
    const pf_ct_key key = ct_key_for(kSlot, PF_DIR_EGRESS, f);
    const std::uint32_t want = flow_cache_index(key);
    for (std::uint32_t i = 1; i < tries; ++i) {
        Frame g = f;
        if (!vary(g, i)) continue;
        const pf_ct_key other = ct_key_for(kSlot, PF_DIR_EGRESS, g);
        if (std::memcmp(&other, &key, sizeof key) != 0 && flow_cache_index(other) == want) return g;
    }
    return std::nullopt;
}

Addr v4(std::uint32_t host_order) {
    Addr a{};
    a[0] = static_cast<std::uint8_t>(host_order >> 24);
    a[1] = static_cast<std::uint8_t>(host_order >> 16);
    a[2] = static_cast<std::uint8_t>(host_order >> 8);
    a[3] = static_cast<std::uint8_t>(host_order);
    return a;
}

// A pod of replies_only() at kRev, on a harness pinned to one CPU.
struct RepliesOnlyPod {
    PinnedToOneCpu pin;
    Harness h;
    RepliesOnlyPod() { h.install(kSlot, replies_only(), kRev); }
};

} // namespace

TEST_CASE_FIXTURE(RepliesOnlyPod,
                  "datapath: a cached flow serves no other flow, even one on its cache entry") {
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        const Frame f4 = tcp4(kPod4, 40000, "1.2.3.4", 443);
        const Frame f6 = tcp6(kPod6, 40000, "2001:db8::4", 443);
        open_and_cache(h, p, f4);
        open_and_cache(h, p, f6);

        // The reply of a flow never opened, differing from a cached one in a
        // single key word and hashed onto the same entry, must find conntrack
        // (and be denied there), not the cached verdict.
        struct Case {
            std::string what;
            const Frame& base;
            std::optional<Frame> other;
        };
        std::vector<Case> cases = {
            {"v4 pod port", f4,
             colliding(f4,
                       [](Frame& g, std::uint32_t i) {
                           g.sport = static_cast<std::uint16_t>(i);
                           return i < 65536;
                       })},
            {"v4 peer port", f4,
             colliding(f4,
                       [](Frame& g, std::uint32_t i) {
                           g.dport = static_cast<std::uint16_t>(i);
                           return i < 65536;
                       })},
            {"v4 pod address", f4,
             colliding(f4,
                       [](Frame& g, std::uint32_t i) {
                           g.src = v4(0x0a000000u + i);
                           return true;
                       })},
            {"v4 peer address", f4,
             colliding(f4,
                       [](Frame& g, std::uint32_t i) {
                           g.dst = v4(0x01000000u + i);
                           return true;
                       })},
            {"v6 pod port", f6,
             colliding(f6,
                       [](Frame& g, std::uint32_t i) {
                           g.sport = static_cast<std::uint16_t>(i);
                           return i < 65536;
                       })},
            {"v6 peer port", f6,
             colliding(f6,
                       [](Frame& g, std::uint32_t i) {
                           g.dport = static_cast<std::uint16_t>(i);
                           return i < 65536;
                       })},
        };
        // Every word of both IPv6 addresses: the cache hashes only some of
        // them and compares the key two words at a time.
        for (const bool pod : {true, false})
            for (unsigned word = 0; word < 4; ++word)
                cases.push_back(
                    {std::string(pod ? "v6 pod" : "v6 peer") + " address, word " + std::to_string(word), f6,
                     colliding(f6, [pod, word](Frame& g, std::uint32_t i) {
                         std::memcpy(&(pod ? g.src : g.dst)[4 * word], &i, 4);
                         return true;
                     })});
        for (const Case& c : cases) {
            CAPTURE(c.what);
            REQUIRE(c.other.has_value());
            // Refill: the previous case's probe may have evicted it.
            REQUIRE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(c.base)));
            REQUIRE(cached(h, ct_key_for(kSlot, PF_DIR_EGRESS, c.base)).has_value());
            CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(*c.other)));
        }
    }
}

TEST_CASE_FIXTURE(RepliesOnlyPod,
                  "datapath: a cache entry of the other family is not served, whatever its words") {
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        // Never opened: its reply passes only on a planted entry.
        const Frame f = tcp4(kPod4, 40009, "1.2.3.4", 443);
        const pf_ct_key key = ct_key_for(kSlot, PF_DIR_EGRESS, f);
        const FlowCacheKey c = flow_cache_key(key);
        // A live expiry, in the engine's clock: that of a flow it just cached.
        const Frame live = tcp4(kPod4, 40010, "1.2.3.4", 443);
        open_and_cache(h, p, live);
        const auto filled = cached(h, ct_key_for(kSlot, PF_DIR_EGRESS, live));
        REQUIRE(filled.has_value());
        pf_fc_entry e{};
        std::memcpy(e.key, c.w, c.n * 4);
        e.rev = kRev;
        e.verdict = PF_VERDICT_ALLOW;
        e.until_jiffies = filled->until_jiffies;
        e.family = PF_FAMILY_V6;
        h.flow_cache_set(flow_cache_index(key), e);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));
        e.family = PF_FAMILY_V4; // control: the same entry as the engine writes it
        h.flow_cache_set(flow_cache_index(key), e);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));
        h.flow_cache_clear();
    }
}

// The engine caches only ALLOW and AUDIT (pf_decide). The per-pod program
// serves only those; anything else in an entry goes to the engine, which
// decides and counts the packet once.
TEST_CASE_FIXTURE(RepliesOnlyPod,
                  "datapath: a cached verdict the engine never writes is not served, and counted once") {
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        const Frame f = tcp4(kPod4, 40011, "1.2.3.4", 443);
        open_and_cache(h, p, f);
        const pf_ct_key key = ct_key_for(kSlot, PF_DIR_EGRESS, f);
        pf_fc_entry e = *cached(h, key);
        e.verdict = PF_VERDICT_DENY;
        h.flow_cache_set(flow_cache_index(key), e);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));
        const pf_counter c = h.counters(kSlot, PF_DIR_INGRESS);
        CHECK(c.denied_packets == 1);
        CHECK(c.allowed_packets == 2); // open_and_cache's replies
        h.flow_cache_clear();
    }
}

TEST_CASE("datapath: a cached flow is re-validated at once by a new revision, and by nothing stale") {
    PinnedToOneCpu pin;
    Harness h;
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.install(kSlot, replies_only(), kRev);
        const Frame f = tcp4(kPod4, 40001, "1.2.3.4", 443);
        open_and_cache(h, p, f);

        // A policy that no longer admits the flow: its next packet is cut.
        h.install(kSlot, podfence::policy::parse_policy(R"({"policyTypes":["Ingress","Egress"]})"), kRev + 1);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));

        // An entry older than PF_FC_TTL_JIFFIES is not served: with the flow gone
        // from conntrack (an LRU eviction), the cached copy lets its replies
        // pass only until then.
        h.install(kSlot, replies_only(), kRev + 2);
        const Frame g = tcp4(kPod4, 40002, "1.2.3.4", 443);
        open_and_cache(h, p, g);
        const pf_ct_key key = ct_key_for(kSlot, PF_DIR_EGRESS, g);
        h.conntrack_delete(key, /*keep_flow_cache=*/true);
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(g))); // within the second
        pf_fc_entry e = *cached(h, key);
        e.until_jiffies -= PF_FC_TTL_JIFFIES; // as if filled that long ago
        h.flow_cache_set(flow_cache_index(key), e);
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(g)));

        // And in wall time, whatever the kernel's HZ: gone after a second.
        const Frame late = tcp4(kPod4, 40004, "1.2.3.4", 443);
        open_and_cache(h, p, late);
        h.conntrack_delete(ct_key_for(kSlot, PF_DIR_EGRESS, late), /*keep_flow_cache=*/true);
        std::this_thread::sleep_for(std::chrono::milliseconds(1050));
        CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(late)));
    }
}

TEST_CASE_FIXTURE(RepliesOnlyPod, "datapath: FIN and RST of a cached flow reach conntrack") {
    for (Prog p : kProgs) {
        for (std::uint8_t flag : {kTcpFin, kTcpRst}) {
            CAPTURE(prog_name(p));
            CAPTURE(int(flag));
            h.conntrack_clear();
            const Frame f = tcp4(kPod4, 40003, "1.2.3.4", 443);
            open_and_cache(h, p, f);
            CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f, flag | kTcpAck)));
            const auto ct = h.conntrack_find(ct_key_for(kSlot, PF_DIR_EGRESS, f));
            REQUIRE(ct.has_value());
            CHECK((ct->flags & PF_CT_F_CLOSING) != 0); // the 10 s timeout from now on
        }
    }
}

TEST_CASE("datapath: an audited flow's cached packets still count as would-deny") {
    PinnedToOneCpu pin;
    Harness h;
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.clear_slot_stats(kSlot);
        h.install(kSlot, replies_only(), kRev);
        h.set_pod(kSlot, kRev + 1, PF_POD_ACTIVE | PF_POD_AUDIT);
        const Frame in = tcp4("1.2.3.4", 5000, kPod4, 22); // no ingress rule: would-deny
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, in));
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(reply(in)))); // conntrack, fills
        REQUIRE(cached(h, ct_key_for(kSlot, PF_DIR_INGRESS, in)).has_value());
        CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(reply(in)))); // the cache
        const pf_counter c = h.counters(kSlot, PF_DIR_INGRESS);
        CHECK(c.would_deny_packets == 3);
        CHECK(c.allowed_packets == 0);
    }
}

TEST_CASE("datapath: a cached flow's egress skips the source check only once that passed") {
    PinnedToOneCpu pin;
    Harness h;
    namespace pol = podfence::policy;
    for (Prog p : kProgs) {
        CAPTURE(prog_name(p));
        h.conntrack_clear();
        h.flow_cache_clear();
        h.clear_slot_stats(kSlot);
        h.set_sources(kSlot, {true, {*pol::parse_source(kPod4)}});
        h.install(kSlot,
                  pol::parse_policy(R"({"policyTypes":["Ingress"],"ingress":[{"ports":[{"port":8080}]}]})"),
                  kRev);
        // Flows the peer opens, so only ingress packets fill their entries:
        // to the pod's address, and to one it does not own (routed to it,
        // say, by a forged ARP reply).
        for (const char* to : {kPod4, "10.0.0.99"}) {
            CAPTURE(to);
            const bool own = std::string(to) == kPod4;
            const Frame in = tcp4("1.2.3.4", 40020, to, 8080);
            REQUIRE(allowed(h, p, kSlot, PF_DIR_INGRESS, in));
            REQUIRE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(reply(in)))); // conntrack, fills
            const pf_ct_key key = ct_key_for(kSlot, PF_DIR_INGRESS, in);
            REQUIRE(cached(h, key).has_value());
            CHECK((cached(h, key)->flags & PF_FC_F_SRC_OK) == 0);
            // The pod's replies: the source check still judges the first.
            CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, reply(in)) == own);
            CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, reply(in)) == own);
            CHECK((cached(h, key)->flags & PF_FC_F_SRC_OK) == (own ? PF_FC_F_SRC_OK : 0u));
            CHECK(h.counters(kSlot, PF_DIR_EGRESS).spoofed_packets == (own ? 0u : 2u));
            h.clear_slot_stats(kSlot);
        }
        // A flow the pod opens is marked by its first egress packet's fill.
        const Frame out = tcp4(kPod4, 40021, "1.2.3.4", 8080);
        REQUIRE(allowed(h, p, kSlot, PF_DIR_EGRESS, out));
        REQUIRE(allowed(h, p, kSlot, PF_DIR_EGRESS, reply(reply(out))));
        const auto e = cached(h, ct_key_for(kSlot, PF_DIR_EGRESS, out));
        REQUIRE(e.has_value());
        CHECK((e->flags & PF_FC_F_SRC_OK) != 0);
        h.set_sources(kSlot, {false, {}});
    }
}

// The per-pod program serves an established flow's common frames itself, in
// both directions, for every family and ported protocol: with the engine
// unplugged (a hand-over then drops) they still pass, and count. What the
// engine must see (FIN, RST, a lone SYN), and a flow never opened, it hands
// over, so they drop here.
TEST_CASE("datapath: the per-pod program serves cached flows itself, nothing else") {
    PinnedToOneCpu pin;
    Harness h;
    h.install(kSlot,
              podfence::policy::parse_policy(
                  R"({"policyTypes":["Ingress","Egress"],"egress":[{"ports":[{"protocol":"TCP","port":443},)"
                  R"({"protocol":"UDP","port":443},{"protocol":"SCTP","port":443}]}]})"),
              kRev);
    const std::vector<Frame> flows = {
        tcp4(kPod4, 40030, "1.2.3.4", 443),
        udp4(kPod4, 40031, "1.2.3.4", 443),
        ip_proto(4, kPod4, "1.2.3.4", kSctp, 40032, 443),
        tcp6(kPod6, 40033, "2001:db8::4", 443),
        udp6(kPod6, 40034, "2001:db8::4", 443),
        ip_proto(6, kPod6, "2001:db8::4", kSctp, 40035, 443),
    };
    for (Prog p : {Prog::FastTc, Prog::FastXdp}) {
        for (const Frame& f : flows) {
            CAPTURE(prog_name(p));
            CAPTURE(f.describe());
            h.conntrack_clear();
            h.flow_cache_clear();
            h.clear_slot_stats(kSlot);
            const Frame in = reply(f);
            const Frame out = reply(in); // the pod's next packet: an ACK for TCP
            REQUIRE(allowed(h, p, kSlot, PF_DIR_EGRESS, f));
            REQUIRE(allowed(h, p, kSlot, PF_DIR_INGRESS, in)); // conntrack, fills
            h.plug_engines(false);
            CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, in));
            CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, out));
            CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, out));
            CHECK(h.counters(kSlot, PF_DIR_INGRESS).allowed_packets == 2);
            CHECK(h.counters(kSlot, PF_DIR_EGRESS).allowed_packets == 3);
            Frame other = f;
            other.sport = static_cast<std::uint16_t>(f.sport + 100);
            CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_EGRESS, other));
            if (f.proto == kTcp) {
                for (std::uint8_t flags :
                     {std::uint8_t(kTcpFin | kTcpAck), std::uint8_t(kTcpRst | kTcpAck), kTcpRst, kTcpSyn}) {
                    CAPTURE(int(flags));
                    CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f, flags)));
                }
            }
            h.plug_engines(true);
        }
    }
}

} // namespace pftest
