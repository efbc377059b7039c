// compile(): checked against the reference evaluator through a simulator of
// the engine's longest-prefix match over a hash (bpf/policy.h: a binary
// search over prefix lengths, driven by the ROOT entries' and the entries'
// ropes, search_walk.hpp), plus the shape of well-known policies,
// determinism, capacity errors and speed.
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
#include "support/evaluator.hpp"
#include "policy/length_search.hpp"
#include "addr.hpp"
#include "policy/port_ranges.hpp"
#include "search_walk.hpp"

using namespace podfence;
using namespace podfence::policy;

namespace {

// What the datapath decides for a new flow, via the two matches of the ABI.
Decision table_decide(const std::vector<PolicyEntry>& entries, const Packet& p) {
    pf_policy_key ak{};
    ak.kind = PF_KIND_ADDR;
    ak.dir = static_cast<std::uint8_t>(p.dir);
    ak.family = p.family;
    const auto& peer = p.dir == Direction::Ingress ? p.src : p.dst;
    std::memcpy(ak.data, peer.data(), 16);
    const search_walk::Walk a = search_walk::walk(entries, ak);
    REQUIRE_FALSE(a.cut); // the kernel would stop here, maybe short of the answer
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
    REQUIRE_FALSE(r.cut);
    if (r.answer == PF_RULE_NONE) return {false, PF_RULE_DEFAULT};
    return {true, r.answer};
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

// A search table: ADDR entries of one (dir, family) or PORT entries of one
// (dir, set), each with its ROOT entry. Key: (ADDR or PORT, dir, family, set).
using Table = std::tuple<int, int, int, std::uint32_t>;

bool is_root(const pf_policy_key& k) {
    return k.kind == PF_KIND_ADDR_ROOT || k.kind == PF_KIND_PORT_ROOT;
}

Table table_of(const pf_policy_key& k) {
    const bool port = k.kind == PF_KIND_PORT || k.kind == PF_KIND_PORT_ROOT;
    return {port ? PF_KIND_PORT : PF_KIND_ADDR, k.dir, k.family, k.set};
}

unsigned data_len(const pf_policy_key& k) {
    return k.prefixlen - PF_KEY_HDR_BITS;
}

// A rope lists lengths of its table, strictly decreasing (the leftmost path
// of a subtree goes to ever shorter lengths), each above `above`, then only
// PF_ROPE_END padding. "" or the problem.
std::string rope_problem(std::uint64_t rope, const std::set<unsigned>& lens, int above) {
    int prev = 256;
    bool ended = false;
    for (unsigned i = 0; i < 8; ++i) {
        const auto len = static_cast<int>((rope >> (8 * i)) & 0xff);
        if (len == PF_ROPE_END) {
            ended = true;
            continue;
        }
        if (ended) return "rope has a length after its end";
        if (!lens.count(static_cast<unsigned>(len))) return "rope lists a length its table lacks";
        if (len >= prev) return "rope lengths not strictly decreasing";
        if (len <= above) return "rope of a hit goes back to a length not longer than the hit";
        prev = len;
    }
    return "";
}

// Sorted, no duplicate keys, and canonical: the engine builds keys with
// every bit past prefixlen zero, so a key with such bits would never be hit.
// One ROOT entry per non-empty table and none for an empty one; ropes as
// rope_problem() says; all entries of one table and length carry the same
// rope (the search only knows the length it hit at). Wrong lengths or
// markers are caught by the simulator's wrong answers.
// Returns the first problem found, "" when none (one assertion per call).
std::string well_formed(const std::vector<PolicyEntry>& entries) {
    std::map<Table, std::set<unsigned>> lens;
    for (const PolicyEntry& e : entries)
        if (!is_root(e.key) && e.key.prefixlen >= PF_KEY_HDR_BITS)
            lens[table_of(e.key)].insert(data_len(e.key));
    std::map<std::pair<Table, unsigned>, std::uint64_t> rope_at;
    std::set<Table> roots;
    static const std::set<unsigned> no_lens;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const PolicyEntry& e = entries[i];
        const std::string at = "entry " + std::to_string(i) + ": ";
        if (i > 0 && !(entries[i - 1] < e)) return at + "not sorted or a duplicate";
        if (i > 0 && !search_walk::key_less(entries[i - 1], e)) return at + "duplicate key";
        if (e.key.pad != 0 || e.key.prefixlen < PF_KEY_HDR_BITS) return at + "bad pad or prefixlen";
        const bool fam_ok = e.key.family == PF_FAMILY_V4 || e.key.family == PF_FAMILY_V6;
        const bool zero_data =
            std::all_of(std::begin(e.key.data), std::end(e.key.data), [](std::uint8_t b) { return b == 0; });
        if (e.key.kind == PF_KIND_ADDR) {
            if (!fam_ok || e.key.set != 0 || e.val.rule != 0 ||
                e.key.prefixlen > PF_KEY_HDR_BITS + family_bits(e.key.family))
                return at + "bad ADDR entry";
        } else if (e.key.kind == PF_KIND_PORT) {
            if (e.key.family != 0 || e.key.set == PF_SET_NONE ||
                e.key.prefixlen > PF_KEY_HDR_BITS + PF_PORT_KEY_BITS || e.val.set != 0)
                return at + "bad PORT entry";
        } else if (e.key.kind == PF_KIND_ADDR_ROOT) {
            if (!fam_ok || e.key.set != 0 || e.key.prefixlen != PF_ROOT_PREFIXLEN || !zero_data ||
                e.val.set != 0 || e.val.rule != 0)
                return at + "bad ADDR_ROOT entry";
        } else if (e.key.kind == PF_KIND_PORT_ROOT) {
            if (e.key.family != 0 || e.key.set == PF_SET_NONE || e.key.prefixlen != PF_ROOT_PREFIXLEN ||
                !zero_data || e.val.set != 0 || e.val.rule != 0)
                return at + "bad PORT_ROOT entry";
        } else {
            return at + "unknown kind";
        }
        for (unsigned bit = data_len(e.key); bit < 128; ++bit)
            if ((e.key.data[bit / 8] >> (7 - bit % 8)) & 1) return at + "bit set past prefixlen";

        const Table t = table_of(e.key);
        const auto it = lens.find(t);
        const std::set<unsigned>& table_lens = it == lens.end() ? no_lens : it->second;
        if (is_root(e.key)) {
            if (table_lens.empty()) return at + "ROOT entry of an empty table";
            if (e.val.rope == PF_ROPE_EMPTY) return at + "ROOT entry with an empty rope";
            roots.insert(t);
        } else if (const auto [r, fresh] = rope_at.emplace(std::pair{t, data_len(e.key)}, e.val.rope);
                   !fresh && r->second != e.val.rope) {
            return at + "entries of one table and length with different ropes";
        }
        const int above = is_root(e.key) ? -1 : static_cast<int>(data_len(e.key));
        if (std::string p = rope_problem(e.val.rope, table_lens, above); !p.empty()) return at + p;
    }
    for (const auto& [t, l] : lens)
        if (!roots.count(t)) return "a table without a ROOT entry";
    return "";
}

// The answer an entry gives: val.set for ADDR, val.rule for PORT.
std::uint32_t answer_of(const PolicyEntry& e) {
    return e.key.kind == PF_KIND_PORT ? e.val.rule : e.val.set;
}

// The plain entries of compile()'s output: ADDR and PORT entries without
// ropes and markers. compile() writes an entry only where its answer differs
// from that of the longest shorter prefix covering it, while a marker
// answers exactly like that prefix (or NONE without one): that tells them
// apart.
std::vector<PolicyEntry> plain_of(const std::vector<PolicyEntry>& entries) {
    std::map<Table, std::set<unsigned>> lens;
    for (const PolicyEntry& e : entries)
        if (!is_root(e.key)) lens[table_of(e.key)].insert(data_len(e.key));
    std::vector<PolicyEntry> out;
    for (const PolicyEntry& e : entries) {
        if (is_root(e.key)) continue;
        const std::uint32_t none = e.key.kind == PF_KIND_PORT ? PF_RULE_NONE : PF_SET_NONE;
        std::uint32_t shorter = none;
        const std::set<unsigned>& l = lens[table_of(e.key)];
        for (auto len = l.lower_bound(data_len(e.key)); len != l.begin();) {
            --len;
            pf_policy_key k = e.key;
            k.prefixlen = PF_KEY_HDR_BITS + *len;
            search_walk::keep_bits(k.data, *len);
            if (const PolicyEntry* s = search_walk::exact(entries, k)) {
                shorter = answer_of(*s);
                break;
            }
        }
        if (answer_of(e) == shorter) continue;
        PolicyEntry p = e;
        p.val.rope = 0;
        out.push_back(p);
    }
    return out;
}

// The entries formatted for reading, one string each.
std::string describe(const PolicyEntry& e) {
    std::string rope = " rope";
    for (unsigned i = 0; i < 8; ++i)
        if (const unsigned len = (e.val.rope >> (8 * i)) & 0xff; len != PF_ROPE_END)
            rope += " /" + std::to_string(len);
    if (e.val.rope == PF_ROPE_EMPTY) rope += " -";
    if (e.key.kind == PF_KIND_ADDR_ROOT) return "addr root v" + std::to_string(e.key.family) + rope;
    if (e.key.kind == PF_KIND_PORT_ROOT) return "port root set " + std::to_string(e.key.set) + rope;
    if (e.key.kind == PF_KIND_ADDR) {
        Cidr c;
        c.family = e.key.family;
        c.prefix_len = static_cast<std::uint8_t>(data_len(e.key));
        std::memcpy(c.addr.data(), e.key.data, 16);
        return "addr " + format_cidr(c) + " -> " + std::to_string(e.val.set) + rope;
    }
    const std::string rule = e.val.rule == PF_RULE_NONE      ? "none"
                             : e.val.rule == PF_RULE_DEFAULT ? "default"
                                                             : std::to_string(e.val.rule);
    return "port set " + std::to_string(e.key.set) + " /" + std::to_string(data_len(e.key)) + " proto " +
           std::to_string(e.key.data[0]) + " port " + std::to_string(e.key.data[1] * 256 + e.key.data[2]) +
           " -> rule " + rule + rope;
}

} // namespace

TEST_CASE("compile: not isolated => ADDR 0/0 and ::/0 -> one set with an any entry, rule DEFAULT") {
    const auto entries = compile(default_policy(DefaultAction::Allow));
    REQUIRE(entries.size() == 12);
    CHECK(well_formed(entries) == "");
    // One length per table (/0): the ROOT rope tries it, a hit has nothing longer to try.
    const std::uint64_t only_len0 = PF_ROPE_EMPTY << 8;
    int addr_entries = 0, port_entries = 0, root_entries = 0;
    for (const PolicyEntry& e : entries) {
        CHECK(e.key.pad == 0);
        if (e.key.kind == PF_KIND_ADDR_ROOT || e.key.kind == PF_KIND_PORT_ROOT) {
            ++root_entries;
            CHECK(e.key.prefixlen == PF_ROOT_PREFIXLEN);
            CHECK(e.val.rope == only_len0);
        } else if (e.key.kind == PF_KIND_ADDR) {
            ++addr_entries;
            CHECK(e.key.prefixlen == PF_KEY_HDR_BITS);
            CHECK(e.key.set == 0);
            CHECK(e.val.set == 1);
            CHECK(e.val.rule == 0);
            CHECK(e.val.rope == PF_ROPE_EMPTY);
        } else {
            ++port_entries;
            CHECK(e.key.kind == PF_KIND_PORT);
            CHECK(e.key.prefixlen == PF_KEY_HDR_BITS);
            CHECK(e.key.family == 0);
            CHECK(e.key.set == 1);
            CHECK(e.val.rule == PF_RULE_DEFAULT);
            CHECK(e.val.set == 0);
            CHECK(e.val.rope == PF_ROPE_EMPTY);
        }
    }
    CHECK(addr_entries == 4);
    CHECK(port_entries == 2);
    CHECK(root_entries == 6);                                    // per direction: v4, v6, set 1
    CHECK(compile(default_policy(DefaultAction::Deny)).empty()); // no ROOT: every search is empty
    Packet pkt;
    pkt.family = PF_FAMILY_V6;
    pkt.src = addr("2001:db8::1");
    pkt.proto = 47;
    CHECK(table_decide(entries, pkt).allowed);
    CHECK(table_decide(entries, pkt).rule == PF_RULE_DEFAULT);
}

TEST_CASE("compile: the documented example, entry by entry") {
    const Policy p = parse_policy(R"({"policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                     "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "UDP", "port": 5000, "endPort": 5007}]}]})");
    const auto entries = compile(p);
    CHECK(well_formed(entries) == "");
    std::vector<std::string> got;
    for (const PolicyEntry& e : entries)
        if (e.key.dir == PF_DIR_INGRESS) got.push_back(describe(e));
    std::sort(got.begin(), got.end());
    const std::vector<std::string> want = {
        "addr 10.0.0.0/8 -> 1 rope /16",
        "addr 10.1.0.0/16 -> 0 rope -", // the except: longest match denies
        "addr root v4 rope /8",         // lengths 8 < 16: the search starts at /8
        "port root set 1 rope /21",
        "port set 1 /21 proto 17 port 5000 -> rule 0 rope /24",
        // Marker: TCP 8080 must hit at /21 to go on to /24; nothing shorter matches it.
        "port set 1 /21 proto 6 port 8080 -> rule none rope /24",
        "port set 1 /24 proto 6 port 8080 -> rule 0 rope -",
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
            const Decision got = table_decide(entries, pkt);
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
        const Decision got = table_decide(entries, pkt);
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
    for (const PolicyEntry& e : compile(p)) {
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
    // Ingress: 0/0, ::/0, 30 port prefixes at 15 lengths (/10../24, two each:
    // one from each end of the range), 2 markers at each of the 7 inner
    // nodes of that length tree (port 0 and all ones, masked), 3 ROOT
    // entries. Egress, not isolated: 0/0, ::/0, any, 3 ROOT entries.
    const auto entries = compile(p);
    CHECK(entries.size() == 55);
    CHECK(plain_of(entries).size() == 35);
    CHECK(well_formed(entries) == "");

    // Over capacity with the plain entries alone: counted as such.
    try {
        compile(p, 20);
        FAIL("no error");
    } catch (const Error& e) {
        const std::string msg = e.what();
        CAPTURE(msg);
        CHECK(e.code() == Code::InvalidPolicy);
        const std::string head = "podfence.io/policy: policy needs ";
        const std::string tail = " map entries, more than the per-pod capacity 20";
        REQUIRE(msg.rfind(head, 0) == 0);
        REQUIRE(msg.size() > head.size() + tail.size());
        REQUIRE(msg.compare(msg.size() - tail.size(), tail.size(), tail) == 0);
        // The number is a bound: above the capacity, not above the real need.
        std::string n = msg.substr(head.size(), msg.size() - head.size() - tail.size());
        if (n.rfind("at least ", 0) == 0) n = n.substr(9);
        CHECK(std::stoul(n) > 20);
        CHECK(std::stoul(n) <= 55);
    }
    // Plain entries fit, markers and ROOT entries do not: a lower bound.
    for (std::size_t cap : {35u, 54u}) {
        try {
            compile(p, cap);
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.code() == Code::InvalidPolicy);
            CHECK(std::string(e.what()) ==
                  "podfence.io/policy: policy needs at least " + std::to_string(cap + 1) +
                      " map entries, more than the per-pod capacity " + std::to_string(cap));
        }
    }
    CHECK(compile(p, 55) == entries);
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
    CHECK(table_decide(entries, pkt).rule == evaluate(p, pkt).rule);
    CHECK(evaluate(p, pkt).rule == 5); // even rules went to ingress
    pkt.dport = 1011;
    CHECK_FALSE(table_decide(entries, pkt).allowed);
    pkt.proto = 17;
    CHECK(table_decide(entries, pkt).rule == 50000);
}

TEST_CASE("compile: decisions follow the ropes (cutting one changes the answer)") {
    const Policy p = parse_policy(
        R"({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                                                  "ports": [{"port": 8080}, {"protocol": "UDP", "port": 5000, "endPort": 5007}]}]})");
    const auto entries = compile(p);
    Packet denied;
    denied.src = addr("10.1.0.1"); // in the except
    denied.dport = 8080;
    Packet allowed = denied;
    allowed.src = addr("10.2.0.1");
    REQUIRE_FALSE(evaluate(p, denied).allowed);
    REQUIRE(evaluate(p, allowed).allowed);
    CHECK_FALSE(table_decide(entries, denied).allowed);
    CHECK(table_decide(entries, allowed).allowed);
    CHECK(table_decide(entries, allowed).rule == 0);

    auto cut = [&](auto&& pick, std::uint64_t rope) {
        auto out = entries;
        int n = 0;
        for (PolicyEntry& e : out)
            if (e.key.dir == PF_DIR_INGRESS && pick(e)) {
                e.val.rope = rope;
                ++n;
            }
        REQUIRE(n == 1);
        return out;
    };
    // Without its ROOT rope the v4 table looks empty: nothing is tried.
    const auto no_root = cut(
        [](const PolicyEntry& e) { return e.key.kind == PF_KIND_ADDR_ROOT && e.key.family == PF_FAMILY_V4; },
        PF_ROPE_EMPTY);
    CHECK_FALSE(table_decide(no_root, allowed).allowed);
    // The /8 hit leads on to /16: without that the except is never tried and the /8 answers.
    const auto no_16 = cut(
        [](const PolicyEntry& e) {
            return e.key.kind == PF_KIND_ADDR && e.key.prefixlen == PF_KEY_HDR_BITS + 8;
        },
        PF_ROPE_EMPTY);
    CHECK(table_decide(no_16, denied).allowed);
    // TCP 8080 (/24) is reached through the /21 marker's rope.
    auto is_marker = [](const PolicyEntry& e) {
        return e.key.kind == PF_KIND_PORT && e.key.prefixlen == PF_KEY_HDR_BITS + 21 && e.key.data[0] == 6;
    };
    const auto marker_cut = cut(is_marker, PF_ROPE_EMPTY);
    CHECK_FALSE(table_decide(marker_cut, allowed).allowed);
    // And without the marker itself the miss at /21 goes to shorter lengths: none here.
    auto no_marker = entries;
    std::erase_if(no_marker, is_marker);
    REQUIRE(no_marker.size() == entries.size() - 1);
    CHECK_FALSE(table_decide(no_marker, allowed).allowed);
    // A rope that names a length the table lacks only costs a lookup.
    const auto detour = cut(
        [](const PolicyEntry& e) { return e.key.kind == PF_KIND_ADDR_ROOT && e.key.family == PF_FAMILY_V4; },
        PF_ROPE_EMPTY << 16 | 8 << 8 | 12);
    CHECK_FALSE(table_decide(detour, denied).allowed);
    CHECK(table_decide(detour, allowed).rule == 0);
}

TEST_CASE("with_search() rebuilds compile()'s output from its plain entries") {
    Gen gen(77);
    for (int round = 0; round < 50; ++round) {
        const Policy pol = gen.policy(12);
        CAPTURE(to_json(pol));
        const auto entries = compile(pol);
        const auto plain = plain_of(entries);
        CHECK(with_search(plain) == entries);
        auto shuffled = plain;
        std::shuffle(shuffled.begin(), shuffled.end(), gen.rng);
        CHECK(with_search(shuffled) == entries);
        // Markers taken for real entries change nothing: they already
        // answer like the longest real entry covering them.
        std::vector<PolicyEntry> all;
        for (PolicyEntry e : entries)
            if (!is_root(e.key)) {
                e.val.rope = 0;
                all.push_back(e);
            }
        CHECK(with_search(all) == entries);
    }
}
