// compile(): checked against the reference evaluator through a simulator of
// the engine's longest-prefix match over a hash (bpf/policy.h: exact lookups
// at the lengths the LENS bitmaps list, longest first), plus the shape of
// well-known policies, determinism, capacity errors and speed.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>

#include "common/error.hpp"
#include "policy/cidr.hpp"
#include "policy/compile.hpp"
#include "policy/evaluator.hpp"
#include "addr.hpp"
#include "policy/port_ranges.hpp"

using namespace podfence;
using namespace podfence::policy;

namespace {

bool key_less(const TrieEntry& a, const TrieEntry& b) {
    return std::memcmp(&a.key, &b.key, sizeof a.key) < 0;
}

// Exact-match lookup, as in a BPF hash map. compile() output is sorted by key.
const TrieEntry* exact(const std::vector<TrieEntry>& entries, const pf_lpm_key& k) {
    TrieEntry probe;
    probe.key = k;
    auto it = std::lower_bound(entries.begin(), entries.end(), probe, key_less);
    if (it == entries.end() || std::memcmp(&it->key, &k, sizeof k) != 0) return nullptr;
    return &*it;
}

std::uint64_t lens_word(const std::vector<TrieEntry>& entries, pf_lpm_key k) {
    const TrieEntry* e = exact(entries, k);
    return e ? pf_lens_get(&e->val) : 0;
}

// `bits` (0..128) of `data` kept, the rest zeroed: the canonical key data.
void keep_bits(std::uint8_t* data, unsigned bits) {
    for (unsigned i = bits; i < 128; ++i)
        data[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
}

// The engine's match: lengths from the LENS words, highest word and bit
// first; the first exact hit wins. A wrong bitmap gives a wrong answer.
const TrieEntry* longest(const std::vector<TrieEntry>& entries, pf_lpm_key k, pf_lpm_key lens_key,
                         unsigned words, unsigned max_len) {
    std::uint8_t full[16];
    std::memcpy(full, k.data, 16);
    for (unsigned w = words; w-- > 0;) {
        lens_key.data[0] = static_cast<std::uint8_t>(w);
        const std::uint64_t bits = lens_word(entries, lens_key);
        for (unsigned b = 64; b-- > 0;) {
            const unsigned len = 64 * w + b;
            if (!((bits >> b) & 1) || len > max_len) continue;
            k.prefixlen = PF_LPM_HDR_BITS + len;
            std::memcpy(k.data, full, 16);
            keep_bits(k.data, len);
            if (const TrieEntry* e = exact(entries, k)) return e;
        }
    }
    return nullptr;
}

// What the datapath decides for a new flow, via the two matches of the ABI.
Decision trie_decide(const std::vector<TrieEntry>& entries, const Packet& p) {
    pf_lpm_key ak{};
    ak.kind = PF_KIND_ADDR;
    ak.dir = static_cast<std::uint8_t>(p.dir);
    ak.family = p.family;
    const auto& peer = p.dir == Direction::Ingress ? p.src : p.dst;
    std::memcpy(ak.data, peer.data(), 16);
    pf_lpm_key alk{};
    alk.prefixlen = PF_ADDR_LENS_PREFIXLEN;
    alk.kind = PF_KIND_ADDR_LENS;
    alk.dir = ak.dir;
    alk.family = p.family;
    const bool v4 = p.family == PF_FAMILY_V4;
    const TrieEntry* a =
        longest(entries, ak, alk, v4 ? PF_ADDR_LENS_WORDS_V4 : PF_ADDR_LENS_WORDS_V6, family_bits(p.family));
    if (!a || a->val.set == PF_SET_NONE) return {false, PF_RULE_DEFAULT};

    const bool ported = (p.proto == 6 || p.proto == 17 || p.proto == 132) && !p.non_first_fragment;
    const std::uint16_t port = ported ? p.dport : 0;
    pf_lpm_key pk{};
    pk.kind = PF_KIND_PORT;
    pk.dir = ak.dir;
    pk.set = a->val.set;
    pk.data[0] = p.proto;
    pk.data[1] = static_cast<std::uint8_t>(port >> 8);
    pk.data[2] = static_cast<std::uint8_t>(port & 0xff);
    pf_lpm_key plk{};
    plk.prefixlen = PF_PORT_LENS_PREFIXLEN;
    plk.kind = PF_KIND_PORT_LENS;
    plk.dir = ak.dir;
    plk.set = pk.set;
    const TrieEntry* e = longest(entries, pk, plk, 1, PF_PORT_KEY_BITS);
    if (!e) return {false, PF_RULE_DEFAULT};
    return {true, e->val.rule};
}

// ---- random policies over a small, overlapping address/port universe -------

struct Gen {
    std::mt19937 rng;
    explicit Gen(unsigned seed) : rng(seed) {}

    unsigned uni(unsigned lo, unsigned hi) { return std::uniform_int_distribution<unsigned>(lo, hi)(rng); }
    bool coin(unsigned percent) { return uni(1, 100) <= percent; }

    // Addresses concentrated in 10.0.0.0/22 and fd00::/118 so prefixes nest
    // and overlap often; a few elsewhere.
    std::array<std::uint8_t, 16> address(std::uint8_t family) {
        std::array<std::uint8_t, 16> a{};
        if (family == PF_FAMILY_V4) {
            a = addr(coin(90) ? "10.0.0.0" : "192.168.0.0");
            a[2] = static_cast<std::uint8_t>(uni(0, 3));
            a[3] = static_cast<std::uint8_t>(uni(0, 255));
        } else {
            a = addr(coin(90) ? "fd00::" : "2001:db8::");
            a[14] = static_cast<std::uint8_t>(uni(0, 3));
            a[15] = static_cast<std::uint8_t>(uni(0, 255));
        }
        return a;
    }

    Cidr cidr(std::uint8_t family) {
        static const unsigned v4[] = {0, 8, 16, 22, 23, 24, 25, 26, 28, 30, 31, 32};
        static const unsigned v6[] = {0, 16, 64, 118, 119, 120, 121, 122, 124, 126, 127, 128};
        const unsigned len = family == PF_FAMILY_V4 ? v4[uni(0, 11)] : v6[uni(0, 11)];
        Cidr c;
        c.family = family;
        c.prefix_len = static_cast<std::uint8_t>(len);
        c.addr = mask_addr(address(family), len);
        return c;
    }

    IpBlock block() {
        IpBlock b;
        b.cidr = cidr(coin(65) ? PF_FAMILY_V4 : PF_FAMILY_V6);
        const unsigned max = family_bits(b.cidr.family);
        for (unsigned n = uni(0, 3) * coin(50); n > 0 && b.cidr.prefix_len < max; --n) {
            // A sub-prefix of the cidr: keep its bits, randomise the rest.
            Cidr e;
            e.family = b.cidr.family;
            e.prefix_len =
                static_cast<std::uint8_t>(uni(b.cidr.prefix_len + 1, std::min(max, b.cidr.prefix_len + 12u)));
            auto a = address(e.family);
            const auto keep = b.cidr.addr;
            for (unsigned i = 0; i < b.cidr.prefix_len; ++i) {
                const unsigned byte = i / 8, bit = 7 - i % 8;
                a[byte] = static_cast<std::uint8_t>((a[byte] & ~(1u << bit)) | (keep[byte] & (1u << bit)));
            }
            e.addr = mask_addr(a, e.prefix_len);
            b.except.push_back(e);
        }
        return b;
    }

    std::uint16_t port() {
        switch (uni(0, 4)) {
        case 0: return static_cast<std::uint16_t>(uni(1, 20));
        case 1: return static_cast<std::uint16_t>(uni(65520, 65535));
        case 2: return static_cast<std::uint16_t>(uni(1, 65535));
        default: return static_cast<std::uint16_t>(uni(250, 270));
        }
    }

    PortSpec port_spec() {
        PortSpec ps;
        static const Protocol protos[] = {Protocol::TCP, Protocol::UDP, Protocol::SCTP};
        ps.protocol = protos[uni(0, 2)];
        if (coin(15)) return ps; // whole protocol
        ps.has_port = true;
        ps.port = port();
        ps.end_port = ps.port;
        if (coin(60))
            ps.end_port = static_cast<std::uint16_t>(
                std::min<unsigned>(65535, ps.port + uni(0, coin(20) ? 40000 : 300)));
        return ps;
    }

    Rule rule() {
        Rule r;
        r.any_peer = coin(15);
        if (!r.any_peer)
            for (unsigned n = uni(1, 3); n > 0; --n)
                r.peers.push_back(block());
        r.any_port = coin(20);
        if (!r.any_port)
            for (unsigned n = uni(1, 3); n > 0; --n)
                r.ports.push_back(port_spec());
        return r;
    }

    Policy policy(unsigned max_rules) {
        Policy p;
        p.isolate_ingress = coin(85);
        p.isolate_egress = coin(70);
        for (unsigned n = uni(0, max_rules); n > 0; --n)
            p.ingress.push_back(rule());
        for (unsigned n = uni(0, max_rules); n > 0; --n)
            p.egress.push_back(rule());
        return p;
    }

    // A packet whose peer is often on or next to a rule's boundaries.
    Packet packet(const Policy& pol) {
        Packet p;
        p.dir = coin(50) ? Direction::Ingress : Direction::Egress;
        p.family = coin(60) ? PF_FAMILY_V4 : PF_FAMILY_V6;
        auto peer = address(p.family);
        std::vector<Cidr> seen;
        for (const auto* rules : {&pol.ingress, &pol.egress})
            for (const Rule& r : *rules)
                for (const IpBlock& b : r.peers) {
                    if (b.cidr.family != p.family) continue;
                    seen.push_back(b.cidr);
                    seen.insert(seen.end(), b.except.begin(), b.except.end());
                }
        if (!seen.empty() && coin(70)) {
            const Cidr& c = seen[uni(0, static_cast<unsigned>(seen.size() - 1))];
            peer = c.addr;
            const unsigned bits = family_bits(p.family);
            // first, last, or a random address inside, or just outside.
            switch (uni(0, 3)) {
            case 0: break;
            case 1:
                for (unsigned i = c.prefix_len; i < bits; ++i)
                    peer[i / 8] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
                break;
            case 2:
                for (unsigned i = c.prefix_len; i < bits; ++i)
                    if (coin(50)) peer[i / 8] |= static_cast<std::uint8_t>(1u << (7 - i % 8));
                break;
            default:
                if (c.prefix_len > 0) // flip the last network bit: a sibling block
                    peer[(c.prefix_len - 1) / 8] ^=
                        static_cast<std::uint8_t>(1u << (7 - (c.prefix_len - 1) % 8));
            }
        }
        const auto pod = address(p.family);
        p.src = p.dir == Direction::Ingress ? peer : pod;
        p.dst = p.dir == Direction::Ingress ? pod : peer;
        static const std::uint8_t protos[] = {6, 6, 17, 17, 132, 1, 58, 47};
        p.proto = protos[uni(0, 7)];
        p.sport = port();
        p.dport = port();
        if (coin(30)) { // on a spec boundary
            std::vector<std::uint16_t> edges = {0, 1, 65535};
            for (const auto* rules : {&pol.ingress, &pol.egress})
                for (const Rule& r : *rules)
                    for (const PortSpec& ps : r.ports)
                        if (ps.has_port) {
                            edges.push_back(ps.port);
                            edges.push_back(static_cast<std::uint16_t>(ps.port - 1));
                            edges.push_back(ps.end_port);
                            edges.push_back(static_cast<std::uint16_t>(ps.end_port + 1));
                        }
            p.dport = edges[uni(0, static_cast<unsigned>(edges.size() - 1))];
        }
        if (p.proto == 1 || p.proto == 58 || p.proto == 47) {
            p.icmp_echo = p.proto != 47 && coin(50);
            p.sport = p.dport = p.icmp_echo ? p.dport : 0;
            p.icmp_type = p.icmp_echo ? 8 : 3;
        }
        p.non_first_fragment = coin(8);
        return p;
    }
};

// Sorted, no duplicate keys, and canonical: the engine builds keys with
// every bit past prefixlen zero, so a key with such bits would never be hit.
// LENS bitmaps list no length that no entry has (extra lengths only cost
// lookups; missing ones are caught by the simulator's wrong answers).
// Returns the first problem found, "" when none (one assertion per call).
std::string well_formed(const std::vector<TrieEntry>& entries) {
    std::set<std::tuple<int, int, int, std::uint32_t, unsigned>> present; // kind, dir, family, set, len
    for (const TrieEntry& e : entries)
        present.insert({e.key.kind, e.key.dir, e.key.family, e.key.set, e.key.prefixlen - PF_LPM_HDR_BITS});
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const TrieEntry& e = entries[i];
        const std::string at = "entry " + std::to_string(i) + ": ";
        if (i > 0 && !(entries[i - 1] < e)) return at + "not sorted or a duplicate";
        if (i > 0 && !key_less(entries[i - 1], e)) return at + "duplicate key";
        if (e.key.pad != 0 || e.key.prefixlen < PF_LPM_HDR_BITS) return at + "bad pad or prefixlen";
        const bool fam_ok = e.key.family == PF_FAMILY_V4 || e.key.family == PF_FAMILY_V6;
        if (e.key.kind == PF_KIND_ADDR) {
            if (!fam_ok || e.key.set != 0 || e.val.rule != 0 ||
                e.key.prefixlen > PF_LPM_HDR_BITS + family_bits(e.key.family))
                return at + "bad ADDR entry";
        } else if (e.key.kind == PF_KIND_PORT) {
            if (e.key.family != 0 || e.key.set == PF_SET_NONE || e.key.prefixlen > PF_LPM_HDR_BITS + 24 ||
                e.val.set != 0)
                return at + "bad PORT entry";
        } else if (e.key.kind == PF_KIND_ADDR_LENS) {
            const unsigned words =
                e.key.family == PF_FAMILY_V4 ? PF_ADDR_LENS_WORDS_V4 : PF_ADDR_LENS_WORDS_V6;
            if (!fam_ok || e.key.set != 0 || e.key.prefixlen != PF_ADDR_LENS_PREFIXLEN ||
                e.key.data[0] >= words || pf_lens_get(&e.val) == 0)
                return at + "bad ADDR_LENS entry";
            for (unsigned b = 0; b < 64; ++b)
                if ((pf_lens_get(&e.val) >> b) & 1 &&
                    !present.count({PF_KIND_ADDR, e.key.dir, e.key.family, 0, 64u * e.key.data[0] + b}))
                    return at + "ADDR_LENS lists a length no ADDR entry has";
        } else if (e.key.kind == PF_KIND_PORT_LENS) {
            if (e.key.family != 0 || e.key.set == PF_SET_NONE || e.key.prefixlen != PF_PORT_LENS_PREFIXLEN ||
                pf_lens_get(&e.val) == 0)
                return at + "bad PORT_LENS entry";
            for (unsigned b = 0; b < 64; ++b)
                if ((pf_lens_get(&e.val) >> b) & 1 &&
                    !present.count({PF_KIND_PORT, e.key.dir, 0, e.key.set, b}))
                    return at + "PORT_LENS lists a length no PORT entry has";
        } else {
            return at + "unknown kind";
        }
        for (unsigned bit = e.key.prefixlen - PF_LPM_HDR_BITS; bit < 128; ++bit)
            if ((e.key.data[bit / 8] >> (7 - bit % 8)) & 1) return at + "bit set past prefixlen";
    }
    return "";
}

} // namespace

TEST_CASE("compile: not isolated => ADDR 0/0 and ::/0 -> one set with an any entry, rule DEFAULT") {
    const auto entries = compile(default_policy(DefaultAction::Allow));
    REQUIRE(entries.size() == 12);
    int addr_entries = 0, port_entries = 0, lens_entries = 0;
    for (const TrieEntry& e : entries) {
        CHECK(e.key.pad == 0);
        if (e.key.kind == PF_KIND_ADDR_LENS || e.key.kind == PF_KIND_PORT_LENS) {
            ++lens_entries;
            CHECK(pf_lens_get(&e.val) == 1); // length 0 only
            CHECK(e.key.data[0] == 0);
        } else if (e.key.kind == PF_KIND_ADDR) {
            ++addr_entries;
            CHECK(e.key.prefixlen == PF_LPM_HDR_BITS);
            CHECK(e.key.set == 0);
            CHECK(e.val.set == 1);
            CHECK(e.val.rule == 0);
        } else {
            ++port_entries;
            CHECK(e.key.kind == PF_KIND_PORT);
            CHECK(e.key.prefixlen == PF_LPM_HDR_BITS);
            CHECK(e.key.family == 0);
            CHECK(e.key.set == 1);
            CHECK(e.val.rule == PF_RULE_DEFAULT);
            CHECK(e.val.set == 0);
        }
    }
    CHECK(addr_entries == 4);
    CHECK(port_entries == 2);
    CHECK(lens_entries == 6);                                    // per direction: v4 word 0, v6 word 0, set 1
    CHECK(compile(default_policy(DefaultAction::Deny)).empty()); // every lookup misses
}

TEST_CASE("compile: the documented example, entry by entry") {
    const Policy p = parse_policy(R"({"policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                     "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "UDP", "port": 5000, "endPort": 5007}]}]})");
    const auto entries = compile(p);
    std::vector<std::string> got;
    for (const TrieEntry& e : entries) {
        if (e.key.dir != PF_DIR_INGRESS) continue;
        if (e.key.kind == PF_KIND_ADDR_LENS || e.key.kind == PF_KIND_PORT_LENS) {
            std::string lens =
                e.key.kind == PF_KIND_ADDR_LENS
                    ? "addr lens v" + std::to_string(e.key.family) + " word " + std::to_string(e.key.data[0])
                    : "port lens set " + std::to_string(e.key.set);
            for (unsigned b = 0; b < 64; ++b)
                if ((pf_lens_get(&e.val) >> b) & 1) lens += " /" + std::to_string(b);
            got.push_back(lens);
        } else if (e.key.kind == PF_KIND_ADDR) {
            Cidr c;
            c.family = e.key.family;
            c.prefix_len = static_cast<std::uint8_t>(e.key.prefixlen - PF_LPM_HDR_BITS);
            std::memcpy(c.addr.data(), e.key.data, 16);
            got.push_back("addr " + format_cidr(c) + " -> " + std::to_string(e.val.set));
        } else {
            got.push_back("port set " + std::to_string(e.key.set) + " /" +
                          std::to_string(e.key.prefixlen - PF_LPM_HDR_BITS) + " proto " +
                          std::to_string(e.key.data[0]) + " port " +
                          std::to_string(e.key.data[1] * 256 + e.key.data[2]) + " -> rule " +
                          std::to_string(e.val.rule));
        }
    }
    std::sort(got.begin(), got.end());
    const std::vector<std::string> want = {
        "addr 10.0.0.0/8 -> 1",
        "addr 10.1.0.0/16 -> 0", // the except: longest match denies
        "addr lens v4 word 0 /8 /16",
        "port lens set 1 /21 /24",
        "port set 1 /21 proto 17 port 5000 -> rule 0",
        "port set 1 /24 proto 6 port 8080 -> rule 0",
    };
    CHECK(got == want);
}

TEST_CASE("range_to_prefixes covers exactly the range with aligned blocks") {
    CHECK(range_to_prefixes(0, 65535) == std::vector<PortPrefix>{{0, 0}});
    CHECK(range_to_prefixes(80, 80) == std::vector<PortPrefix>{{80, 16}});
    CHECK(range_to_prefixes(1, 65535).size() == 16);
    std::mt19937 rng(7);
    for (int i = 0; i < 300; ++i) {
        unsigned lo = rng() % 65536, hi = rng() % 65536;
        if (lo > hi) std::swap(lo, hi);
        std::uint32_t next = lo;
        for (const PortPrefix& pp : range_to_prefixes(lo, hi)) {
            const std::uint32_t size = 1u << (16 - pp.len);
            REQUIRE(pp.port == next);
            REQUIRE(pp.port % size == 0);
            next += size;
        }
        REQUIRE(next == hi + 1);
    }
}

TEST_CASE("compile agrees with evaluate() under longest-prefix match (random policies)") {
    Gen gen(20240601);
    int allowed = 0, denied = 0;
    for (int round = 0; round < 400; ++round) {
        const Policy pol = gen.policy(round % 4 ? 8 : 30);
        CAPTURE(to_json(pol));
        const auto entries = compile(pol);
        REQUIRE(well_formed(entries) == "");
        REQUIRE(compile(pol) == entries);           // deterministic
        REQUIRE(parse_policy(to_json(pol)) == pol); // round trip on arbitrary policies too
        for (int i = 0; i < 150; ++i) {
            const Packet pkt = gen.packet(pol);
            const Decision want = evaluate(pol, pkt);
            const Decision got = trie_decide(entries, pkt);
            CAPTURE(format_addr(pkt.family, pkt.src));
            CAPTURE(format_addr(pkt.family, pkt.dst));
            CAPTURE(static_cast<int>(pkt.dir));
            CAPTURE(static_cast<int>(pkt.proto));
            CAPTURE(pkt.dport);
            CAPTURE(pkt.non_first_fragment);
            REQUIRE(got.allowed == want.allowed);
            REQUIRE(got.rule == want.rule);
            (want.allowed ? allowed : denied)++;
        }
    }
    // The generator must exercise both outcomes substantially.
    CHECK(allowed > 10000);
    CHECK(denied > 10000);
}

TEST_CASE("compile: overlapping ranges and any-port rules resolve to the first admitting rule") {
    const Policy p = parse_policy(R"({"ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"port": 100, "endPort": 200}]},
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 1, "endPort": 65535}, {"protocol": "UDP"}]},
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/16"}}]},
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/25"}}], "ports": [{"port": 150}]},
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/25"}}], "ports": [{"protocol": "SCTP", "port": 7}]}]})");
    const auto entries = compile(p);
    struct Case {
        const char* peer;
        std::uint8_t proto;
        std::uint16_t dport;
        bool frag;
        bool allowed;
        std::uint32_t rule;
    };
    const Case cases[] = {
        {"10.0.0.1", 6, 150, false, true, 0}, {"10.0.0.1", 6, 99, false, true, 1},
        {"10.0.0.1", 6, 0, true, true, 2},    {"10.0.0.1", 1, 0, false, true, 2},
        {"10.0.0.1", 132, 7, false, true, 2}, {"10.0.0.1", 17, 0, true, true, 1},
        {"10.1.0.1", 6, 0, true, false, 0},   {"10.1.0.1", 17, 0, true, true, 1},
        {"10.1.0.1", 47, 0, false, false, 0}, {"10.0.1.1", 47, 0, false, true, 2},
        {"11.0.0.1", 6, 80, false, false, 0},
    };
    for (const Case& c : cases) {
        Packet pkt;
        pkt.src = addr(c.peer);
        pkt.dst = addr("10.99.0.1");
        pkt.proto = c.proto;
        pkt.dport = c.dport;
        pkt.non_first_fragment = c.frag;
        CAPTURE(c.peer);
        CAPTURE(int(c.proto));
        CAPTURE(c.dport);
        const Decision want = evaluate(p, pkt);
        CHECK(want.allowed == c.allowed);
        if (c.allowed) CHECK(want.rule == c.rule);
        const Decision got = trie_decide(entries, pkt);
        CHECK(got.allowed == want.allowed);
        CHECK(got.rule == want.rule);
    }
}

TEST_CASE("compile: identical port sets share one id; ids start at 1 per direction") {
    const Policy p = parse_policy(R"({"ingress": [
        {"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}, {"ipBlock": {"cidr": "10.0.2.0/24"}}], "ports": [{"port": 80}]},
        {"from": [{"ipBlock": {"cidr": "fd00::/64"}}], "ports": [{"port": 443}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}]})");
    std::map<std::pair<int, std::uint32_t>, int> port_entries_per_set;
    std::set<std::uint32_t> ingress_addr_sets;
    for (const TrieEntry& e : compile(p)) {
        if (e.key.kind == PF_KIND_PORT)
            port_entries_per_set[{e.key.dir, e.key.set}]++;
        else if (e.key.kind == PF_KIND_ADDR && e.key.dir == PF_DIR_INGRESS)
            ingress_addr_sets.insert(e.val.set);
    }
    CHECK(ingress_addr_sets == std::set<std::uint32_t>{1, 2});
    CHECK(port_entries_per_set.size() == 3);
    CHECK(port_entries_per_set.count({PF_DIR_INGRESS, 1}) == 1);
    CHECK(port_entries_per_set.count({PF_DIR_INGRESS, 2}) == 1);
    CHECK(port_entries_per_set.count({PF_DIR_EGRESS, 1}) == 1);
}

TEST_CASE("compile: too many entries for the per-pod capacity") {
    const Policy p = parse_policy(R"({"ingress": [{"ports": [{"port": 1, "endPort": 65534}]}]})");
    const auto n = compile(p).size(); // ingress: 0/0, ::/0 + 30 port prefixes + 3 LENS
    CHECK(n == 41);                   // + egress not isolated: 0/0, ::/0, any + 3 LENS
    try {
        compile(p, 20);
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == Code::InvalidPolicy);
        CHECK(std::string(e.what()) ==
              "podfence.io/policy: policy needs 41 map entries, more than the per-pod capacity 20");
    }
    CHECK(compile(p, 41).size() == 41);
}

TEST_CASE("compile: a policy far beyond capacity fails fast with a lower bound") {
    // 1000 any-peer rules, one port each, then 2000 single-address rules:
    // every address region needs its own ~1001-entry port set (2M entries).
    Policy p;
    p.isolate_ingress = true;
    for (std::uint16_t i = 0; i < 1000; ++i) {
        Rule r;
        r.any_port = false;
        r.ports.push_back(
            {Protocol::TCP, true, static_cast<std::uint16_t>(i + 1), static_cast<std::uint16_t>(i + 1)});
        p.ingress.push_back(r);
    }
    for (std::uint32_t i = 0; i < 2000; ++i) {
        Rule r;
        r.any_peer = false;
        IpBlock b;
        b.cidr.prefix_len = 32;
        const std::uint32_t a = htonl(0x0a000000u + i);
        std::memcpy(b.cidr.addr.data(), &a, 4);
        r.peers.push_back(b);
        p.ingress.push_back(r);
    }
    try {
        compile(p, 1000);
        FAIL("no error");
    } catch (const Error& e) {
        const std::string msg = e.what();
        CAPTURE(msg);
        CHECK(e.code() == Code::InvalidPolicy);
        CHECK(msg.rfind("podfence.io/policy: policy needs at least ", 0) == 0);
        CHECK(msg.find(" map entries, more than the per-pod capacity 1000") != std::string::npos);
    }
}

TEST_CASE("compile: 100000 rules with distinct CIDRs compile quickly") {
    Policy p;
    p.isolate_ingress = p.isolate_egress = true;
    for (std::uint32_t i = 0; i < 100000; ++i) {
        Rule r;
        r.any_peer = false;
        IpBlock b;
        b.cidr.family = PF_FAMILY_V4;
        b.cidr.prefix_len = 32;
        const std::uint32_t a = htonl(0x0a000000u + i * 7);
        std::memcpy(b.cidr.addr.data(), &a, 4);
        r.peers.push_back(b);
        r.any_port = false;
        r.ports.push_back({Protocol::TCP, true, static_cast<std::uint16_t>(1000 + i % 50),
                           static_cast<std::uint16_t>(1000 + i % 50)});
        (i % 2 ? p.egress : p.ingress).push_back(std::move(r));
    }
    // One rule covering everything: every region's set includes it.
    p.ingress.push_back(parse_policy(R"({"ingress": [{"ports": [{"protocol": "UDP"}]}]})").ingress[0]);
    // CPU time of this thread: wall time depends on what else the machine runs.
    auto cpu_ms = [] {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
    };
    const double t0 = cpu_ms();
    const auto entries = compile(p);
    const double ms = cpu_ms() - t0;
    MESSAGE("100000 rules -> " << entries.size() << " entries in " << ms << " ms CPU");
#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
    CHECK(ms < 1000); // optimised builds only: -O0 and ASan are several times slower
#endif
    CHECK(entries.size() > 100000);
    CHECK(well_formed(entries) == "");

    // Spot checks through the simulator (binary searches).
    Packet pkt;
    pkt.dir = Direction::Ingress;
    const std::uint32_t a = htonl(0x0a000000u + 10 * 7);
    std::memcpy(pkt.src.data(), &a, 4);
    pkt.dport = 1010;
    CHECK(trie_decide(entries, pkt).rule == evaluate(p, pkt).rule);
    CHECK(evaluate(p, pkt).rule == 5); // even rules went to ingress
    pkt.dport = 1011;
    CHECK_FALSE(trie_decide(entries, pkt).allowed);
    pkt.proto = 17;
    CHECK(trie_decide(entries, pkt).rule == 50000);
}

TEST_CASE("compile: decisions follow the LENS bitmaps (a missing length changes the answer)") {
    const Policy p = parse_policy(
        R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                                                  "ports": [{"port": 8080}]}]})");
    auto entries = compile(p);
    Packet pkt;
    pkt.src = addr("10.1.0.1"); // in the except
    pkt.dport = 8080;
    CHECK_FALSE(evaluate(p, pkt).allowed);
    CHECK_FALSE(trie_decide(entries, pkt).allowed);
    // Drop /16 from the v4 ingress bitmap: the except entry is no longer
    // tried and the /8 answers, as the engine would.
    for (TrieEntry& e : entries)
        if (e.key.kind == PF_KIND_ADDR_LENS && e.key.dir == PF_DIR_INGRESS && e.key.family == PF_FAMILY_V4)
            pf_lens_set(&e.val, pf_lens_get(&e.val) & ~(1ull << 16));
    CHECK(trie_decide(entries, pkt).allowed);
}

TEST_CASE("length_entries() rebuilds exactly the LENS entries compile() writes") {
    Gen gen(77);
    for (int round = 0; round < 50; ++round) {
        const Policy pol = gen.policy(12);
        const auto entries = compile(pol);
        std::vector<TrieEntry> plain, lens;
        for (const TrieEntry& e : entries)
            (e.key.kind == PF_KIND_ADDR || e.key.kind == PF_KIND_PORT ? plain : lens).push_back(e);
        auto rebuilt = length_entries(plain);
        std::sort(rebuilt.begin(), rebuilt.end());
        CHECK(rebuilt == lens);
    }
}
