// The differential check the policy fuzz targets share: the compiled entries,
// read the way the engine reads them (search_walk.hpp, the unit tests' copy
// of bpf/policy.h's lookup), must decide every probe packet like the
// reference evaluator (test/support/evaluator.hpp). Probes come from the
// policy's own CIDRs and ports (each block's first and last address and
// their neighbours outside, each port range's ends and neighbours) and from
// the fuzz data. Any disagreement aborts with the packet printed.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "policy/cidr.hpp"
#include "policy/compile.hpp"
#include "policy/policy.hpp"
#include "search_walk.hpp"
#include "support/evaluator.hpp"

namespace pf_fuzz {

using namespace podfence::policy;

// Probes per input: enough to visit every boundary of a small policy, few
// enough that one input stays far below a millisecond per probe.
inline constexpr std::size_t kMaxProbes = 512;

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "policy fuzz: %s\n", what);
    std::abort();
}

// What the datapath decides for a new flow: the ADDR match of the peer, then
// the PORT match in the set it names (bpf/policy.h pf_policy_decide).
inline Decision table_decide(const std::vector<PolicyEntry>& entries, const Packet& p) {
    pf_policy_key ak{};
    ak.kind = PF_KIND_ADDR;
    ak.dir = static_cast<std::uint8_t>(p.dir);
    ak.family = p.family;
    const auto& peer = p.dir == Direction::Ingress ? p.src : p.dst;
    std::memcpy(ak.data, peer.data(), sizeof ak.data);
    const search_walk::Walk a = search_walk::walk(entries, ak);
    if (a.cut) fail("ADDR search cut after PF_ROPE_MAX lookups");
    if (a.answer == PF_SET_NONE) return {false, PF_RULE_DEFAULT};

    const bool ported = (p.proto == 6 || p.proto == 17 || p.proto == 132) && !p.non_first_fragment;
    const std::uint16_t port = ported ? p.dport : 0;
    pf_policy_key pk{};
    pk.kind = PF_KIND_PORT;
    pk.dir = ak.dir;
    pk.set = a.answer;
    pk.data[0] = p.proto;
    pk.data[1] = static_cast<std::uint8_t>(port >> 8);
    pk.data[2] = static_cast<std::uint8_t>(port & 0xff);
    const search_walk::Walk r = search_walk::walk(entries, pk);
    if (r.cut) fail("PORT search cut after PF_ROPE_MAX lookups");
    if (r.answer == PF_RULE_NONE) return {false, PF_RULE_DEFAULT};
    return {true, r.answer};
}

// addr + delta (wrapping within the family's width), as a bit string.
inline std::array<std::uint8_t, 16> add(std::array<std::uint8_t, 16> a, std::uint8_t family, int delta) {
    const unsigned bytes = family_bits(family) / 8;
    for (unsigned i = bytes; i-- > 0 && delta != 0;) {
        const int v = a[i] + delta;
        a[i] = static_cast<std::uint8_t>(v & 0xff);
        delta = v < 0 ? -1 : v > 0xff ? 1 : 0;
    }
    return a;
}

// The block's last address: host bits set.
inline std::array<std::uint8_t, 16> last_addr(const Cidr& c) {
    std::array<std::uint8_t, 16> a = c.addr;
    for (unsigned i = c.prefix_len; i < family_bits(c.family); ++i)
        a[i / 8] |= static_cast<std::uint8_t>(0x80u >> (i % 8));
    return a;
}

struct Addr {
    std::uint8_t family;
    std::array<std::uint8_t, 16> a;
};

inline void add_block(std::vector<Addr>& out, const Cidr& c, FuzzedDataProvider& fdp) {
    const auto last = last_addr(c);
    out.push_back({c.family, c.addr});
    out.push_back({c.family, last});
    out.push_back({c.family, add(c.addr, c.family, -1)});
    out.push_back({c.family, add(last, c.family, +1)});
    // Somewhere inside, host bits from the fuzz data.
    std::array<std::uint8_t, 16> in = c.addr;
    for (unsigned i = c.prefix_len; i < family_bits(c.family); ++i)
        if (fdp.ConsumeBool()) in[i / 8] |= static_cast<std::uint8_t>(0x80u >> (i % 8));
    out.push_back({c.family, in});
}

inline std::vector<Addr> probe_addrs(const Policy& pol, FuzzedDataProvider& fdp) {
    std::vector<Addr> out;
    for (const auto* rules : {&pol.ingress, &pol.egress})
        for (const Rule& r : *rules)
            for (const IpBlock& b : r.peers) {
                add_block(out, b.cidr, fdp);
                for (const Cidr& e : b.except)
                    add_block(out, e, fdp);
            }
    out.push_back({PF_FAMILY_V4, {}});
    out.push_back({PF_FAMILY_V6, {}});
    for (int i = 0; i < 4 && fdp.remaining_bytes() > 0; ++i) {
        Addr a{fdp.ConsumeBool() ? std::uint8_t{PF_FAMILY_V6} : std::uint8_t{PF_FAMILY_V4}, {}};
        const auto raw = fdp.ConsumeBytes<std::uint8_t>(family_bits(a.family) / 8);
        std::copy(raw.begin(), raw.end(), a.a.begin());
        out.push_back(a);
    }
    return out;
}

inline std::vector<std::uint16_t> probe_ports(const Policy& pol, FuzzedDataProvider& fdp) {
    std::vector<std::uint16_t> out = {0, 1, 65535};
    for (const auto* rules : {&pol.ingress, &pol.egress})
        for (const Rule& r : *rules)
            for (const PortSpec& ps : r.ports) {
                if (!ps.has_port) continue;
                for (int p : {ps.port - 1, int{ps.port}, int{ps.end_port}, ps.end_port + 1})
                    if (p >= 0 && p <= 65535) out.push_back(static_cast<std::uint16_t>(p));
            }
    for (int i = 0; i < 4 && fdp.remaining_bytes() > 0; ++i)
        out.push_back(fdp.ConsumeIntegral<std::uint16_t>());
    return out;
}

inline void check_decisions(const Policy& pol, const std::vector<PolicyEntry>& entries,
                            FuzzedDataProvider& fdp) {
    const std::vector<Addr> addrs = probe_addrs(pol, fdp);
    const std::vector<std::uint16_t> ports = probe_ports(pol, fdp);
    // Every address with a port each, cycling through protocols and ports
    // so that each port meets several addresses; then a fuzz-chosen rest.
    constexpr std::uint8_t kProtos[] = {6, 17, 132, 1, 58, 47};
    std::size_t n = 0;
    auto probe = [&](const Addr& a, std::uint8_t proto, std::uint16_t port, bool frag, Direction dir) {
        Packet p;
        p.dir = dir;
        p.family = a.family;
        (dir == Direction::Ingress ? p.src : p.dst) = a.a;
        p.proto = proto;
        p.dport = port;
        p.sport = 40000;
        p.non_first_fragment = frag;
        const Decision want = evaluate(pol, p);
        const Decision got = table_decide(entries, p);
        if (got.allowed != want.allowed || got.rule != want.rule) {
            std::fprintf(
                stderr, "mismatch: %s peer %s proto %u port %u%s: evaluator %s rule %u, entries %s rule %u\n",
                dir == Direction::Ingress ? "ingress" : "egress", format_addr(a.family, a.a).c_str(),
                unsigned{proto}, unsigned{port}, frag ? " (non-first fragment)" : "",
                want.allowed ? "allow" : "deny", want.rule, got.allowed ? "allow" : "deny", got.rule);
            fail("compiled entries disagree with the reference evaluator");
        }
        ++n;
    };
    for (std::size_t i = 0; i < addrs.size() && n < kMaxProbes; ++i)
        for (Direction dir : {Direction::Ingress, Direction::Egress})
            probe(addrs[i], kProtos[i % std::size(kProtos)], ports[i % ports.size()], false, dir);
    for (std::size_t i = 0; i < ports.size() && n < kMaxProbes; ++i)
        probe(addrs[(i * 7) % addrs.size()], kProtos[i % 3], ports[i], i % 5 == 4, Direction::Ingress);
    while (n < kMaxProbes && fdp.remaining_bytes() > 0) {
        const Addr& a = addrs[fdp.ConsumeIntegralInRange<std::size_t>(0, addrs.size() - 1)];
        const std::uint8_t proto = fdp.ConsumeBool() ? kProtos[fdp.ConsumeIntegralInRange<std::size_t>(0, 5)]
                                                     : fdp.ConsumeIntegral<std::uint8_t>();
        const std::uint16_t port = ports[fdp.ConsumeIntegralInRange<std::size_t>(0, ports.size() - 1)];
        const bool frag = fdp.ConsumeBool();
        probe(a, proto, port, frag, fdp.ConsumeBool() ? Direction::Ingress : Direction::Egress);
    }
}

// Shape the engine relies on: sorted by key, no key twice (a hash map holds
// one value per key).
inline void check_entries(const std::vector<PolicyEntry>& entries) {
    for (std::size_t i = 1; i < entries.size(); ++i)
        if (!search_walk::key_less(entries[i - 1], entries[i])) fail("entries not sorted or a key twice");
}

} // namespace pf_fuzz
