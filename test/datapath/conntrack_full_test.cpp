// "Table full never blocks allowed new flows": with both conntrack tables
// (pf_conntrack4 for IPv4, pf_conntrack for IPv6) filled to
// PF_CT_MAX_ENTRIES by live flows of other pods, flows the policy admits
// still pass and are still tracked (the LRU evicts), what it refuses stays
// refused, and neither table grows past its capacity.
#include <doctest/doctest.h>
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "datapath/harness.hpp"
#include "policy/policy.hpp"

namespace pftest {
namespace {

constexpr std::uint32_t kSlot = 21;
constexpr std::uint32_t kFillSlot0 = 100; // filler flows live in kFillSlot0 .. + kFillSlots - 1
constexpr std::uint32_t kFillSlots = 4;
constexpr std::size_t kCap = PF_CT_MAX_ENTRIES;
constexpr const char* kPod4 = "10.0.0.21";
constexpr const char* kPod6 = "fd00::21";
// Ingress isolated with no rules, egress open to TCP 443 / UDP 53 of two
// blocks: an ingress packet passes only as the reply of a tracked flow.
constexpr const char* kPolicy =
    R"({"egress":[{"to":[{"ipBlock":{"cidr":"203.0.113.0/24"}},{"ipBlock":{"cidr":"2001:db8::/32"}}],)"
    R"("ports":[{"protocol":"TCP","port":443},{"protocol":"UDP","port":53}]}]})";

// The LRU hands out free nodes from per-CPU caches: a fill that migrates
// between CPUs can evict before the table is full. One CPU makes "full"
// exactly PF_CT_MAX_ENTRIES entries. BPF_PROG_TEST_RUN runs on the caller's CPU.
class PinToOneCpu {
public:
    PinToOneCpu() {
        pinned_ = sched_getaffinity(0, sizeof(saved_), &saved_) == 0;
        int cpu = sched_getcpu();
        if (!pinned_ || cpu < 0) {
            pinned_ = false;
            return;
        }
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pinned_ = sched_setaffinity(0, sizeof(one), &one) == 0;
    }
    ~PinToOneCpu() {
        if (pinned_) sched_setaffinity(0, sizeof(saved_), &saved_);
    }
    PinToOneCpu(const PinToOneCpu&) = delete;
    PinToOneCpu& operator=(const PinToOneCpu&) = delete;
    bool pinned() const { return pinned_; }

private:
    cpu_set_t saved_{};
    bool pinned_ = false;
};

// Filler flow i of a family's table: pod 10.0.1.<slot> (fd00:1::<slot>) of
// a filler slot to 203.0.113.200:443 (2001:db8::200), source port unique
// within the slot (kCap / kFillSlots = 32768 ports).
Frame filler_flow(std::size_t i, bool v6 = false) {
    const auto slot_ix = static_cast<unsigned>(i % kFillSlots);
    Frame f = v6 ? tcp6("fd00:1::", 0, "2001:db8::200", 443) : tcp4("10.0.1.0", 0, "203.0.113.200", 443);
    f.src[v6 ? 15 : 3] = static_cast<std::uint8_t>(slot_ix + 1);
    f.sport = static_cast<std::uint16_t>(10000 + i / kFillSlots);
    return f;
}
std::uint32_t filler_slot(std::size_t i) {
    return kFillSlot0 + static_cast<std::uint32_t>(i % kFillSlots);
}

} // namespace

TEST_CASE("datapath: full conntrack table never blocks allowed new flows") {
    static_assert(kCap / kFillSlots + 10000 <= 65535, "filler source ports must not wrap");
    const auto pol = podfence::policy::parse_policy(kPolicy);
    constexpr std::uint32_t kRev = 7;

    // Admitted egress flows, v4 and v6, TCP and UDP.
    const std::vector<Frame> flows = {
        tcp4(kPod4, 40001, "203.0.113.10", 443), tcp4(kPod4, 40002, "203.0.113.11", 443),
        udp4(kPod4, 40003, "203.0.113.12", 53),  udp4(kPod4, 40004, "203.0.113.13", 53),
        tcp6(kPod6, 40005, "2001:db8::10", 443), tcp6(kPod6, 40006, "2001:db8:1::11", 443),
        udp6(kPod6, 40007, "2001:db8::12", 53),  udp6(kPod6, 40008, "2001:db8:2::13", 53),
    };
    struct Denied {
        const char* what;
        std::uint8_t dir;
        Frame f;
    };
    const std::vector<Denied> denied = {
        {"egress v4 tcp port not listed", PF_DIR_EGRESS, tcp4(kPod4, 40101, "203.0.113.10", 22)},
        {"egress v4 udp outside the block", PF_DIR_EGRESS, udp4(kPod4, 40102, "198.51.100.1", 53)},
        {"egress v6 tcp outside the block", PF_DIR_EGRESS, tcp6(kPod6, 40103, "2001:db9::1", 443)},
        {"egress v6 udp port not listed", PF_DIR_EGRESS, udp6(kPod6, 40104, "2001:db8::12", 54)},
        {"ingress v4 syn", PF_DIR_INGRESS, tcp4("203.0.113.10", 5555, kPod4, 443)},
        {"ingress v6 udp", PF_DIR_INGRESS, udp6("2001:db8::12", 53, kPod6, 40199)},
        // Looks like a reply of flows[0], but from another peer port: not tracked.
        {"ingress v4 fake reply", PF_DIR_INGRESS, tcp4("203.0.113.10", 444, kPod4, 40001, kTcpAck)},
    };

    for (Prog p : {Prog::Tc, Prog::Xdp}) {
        const std::string prog = prog_name(p); // doctest prints a const char* as a pointer
        CAPTURE(prog);
        const auto t0 = std::chrono::steady_clock::now();
        PinToOneCpu pin;
        REQUIRE(pin.pinned());
        Harness h; // fresh, empty table per program (emptying 128k entries is quadratic)

        std::vector<Harness::Install> inst{{kSlot, &pol, kRev}};
        for (std::uint32_t s = 0; s < kFillSlots; ++s)
            inst.push_back({kFillSlot0 + s, &pol, kRev + 1 + s});
        h.install_all(inst);

        // Before the fill: the replies alone are refused, so below they pass
        // only through conntrack.
        for (const Frame& f : flows) {
            CAPTURE(f.describe());
            CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));
        }
        REQUIRE(h.conntrack_size() == 0);

        // Fill both tables with valid, fresh flows of the other slots (their
        // revision, origin egress).
        const std::uint64_t now = coarse_now_ns();
        for (bool v6 : {false, true})
            for (std::size_t i = 0; i < kCap; ++i) {
                const std::uint32_t slot = filler_slot(i);
                pf_ct_val v{};
                v.last_seen_ns = now;
                v.rev = kRev + 1 + (slot - kFillSlot0);
                v.origin = PF_DIR_EGRESS;
                h.conntrack_put(ct_key_for(slot, PF_DIR_EGRESS, filler_flow(i, v6)), v);
            }
        REQUIRE(h.conntrack_size() == 2 * kCap);
        // The fillers are live flows the engine honours: the newest one's reply passes.
        const std::size_t last = kCap - 1;
        for (bool v6 : {false, true})
            CHECK(allowed(h, p, filler_slot(last), PF_DIR_INGRESS, reply(filler_flow(last, v6))));

        // New admitted flows on the full table: allowed and tracked.
        for (const Frame& f : flows) {
            CAPTURE(f.describe());
            CHECK(allowed(h, p, kSlot, PF_DIR_EGRESS, f));
            auto v = h.conntrack_find(ct_key_for(kSlot, PF_DIR_EGRESS, f));
            REQUIRE(v.has_value());
            CHECK(v->rev == kRev);
            CHECK(v->origin == PF_DIR_EGRESS);
            CHECK(h.conntrack_size() <= 2 * kCap);
        }
        // Every reply in the isolated direction passes (no new flow evicted another).
        for (const Frame& f : flows) {
            CAPTURE(f.describe());
            CHECK(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(f)));
        }
        CHECK(h.rule_hits(kSlot, PF_DIR_EGRESS, 0) == flows.size());

        // The full table opens nothing: refused packets stay refused, untracked.
        for (const Denied& d : denied) {
            const std::string what = d.what;
            CAPTURE(what);
            CHECK_FALSE(allowed(h, p, kSlot, d.dir, d.f));
            CHECK_FALSE(h.conntrack_find(ct_key_for(kSlot, d.dir, d.f)).has_value());
        }
        for (const Denied& d : denied)
            if (d.dir == PF_DIR_EGRESS) {
                const std::string what = d.what;
                CAPTURE(what);
                CHECK_FALSE(allowed(h, p, kSlot, PF_DIR_INGRESS, reply(d.f)));
            }

        // Room was made by evicting fillers, never by growing.
        const std::size_t size = h.conntrack_size();
        CHECK(size <= 2 * kCap);
        CHECK(size >= flows.size());
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
        MESSAGE(prog << ": " << size << " entries after the new flows (" << 2 * kCap - size + flows.size()
                     << " fillers evicted), " << ms.count() << " ms");
    }
}

} // namespace pftest
