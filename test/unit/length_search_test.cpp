// with_search() on its own: random ADDR and PORT tables, searched with the
// engine's walk (search_walk.hpp) on keys at and around every prefix, must
// give the longest-prefix match of the plain entries, found here by brute
// force, within the lookup bound of a balanced search over the lengths.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.hpp"
#include "policy/compile.hpp"
#include "policy/length_search.hpp"
#include "search_walk.hpp"

using namespace podfence;
using namespace podfence::policy;

namespace {

using Key = pf_policy_key;

unsigned data_len(const Key& k) {
    return k.prefixlen - PF_KEY_HDR_BITS;
}

bool is_root(const Key& k) {
    return k.kind == PF_KIND_ADDR_ROOT || k.kind == PF_KIND_PORT_ROOT;
}

// Data bits a table's keys use: the address, or proto + port.
unsigned key_bits(const Key& k) {
    return k.kind == PF_KIND_PORT ? PF_PORT_KEY_BITS : k.family == PF_FAMILY_V6 ? 128 : 32;
}

bool get_bit(const std::uint8_t* d, unsigned i) {
    return (d[i / 8] >> (7 - i % 8)) & 1;
}

void put_bit(std::uint8_t* d, unsigned i, bool v) {
    const auto m = static_cast<std::uint8_t>(0x80u >> (i % 8));
    d[i / 8] = static_cast<std::uint8_t>(v ? d[i / 8] | m : d[i / 8] & ~m);
}

bool same_table(const Key& a, const Key& b) {
    return a.kind == b.kind && a.dir == b.dir && a.family == b.family && a.set == b.set;
}

bool same_key(const Key& a, const Key& b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

std::uint32_t none_of(const Key& k) {
    return k.kind == PF_KIND_PORT ? PF_RULE_NONE : PF_SET_NONE;
}

std::uint32_t answer_of(const PolicyEntry& e) {
    return e.key.kind == PF_KIND_PORT ? e.val.rule : e.val.set;
}

// `e`'s prefix contains the (unmasked) data `d`.
bool contains(const PolicyEntry& e, const std::uint8_t* d) {
    std::uint8_t m[16];
    std::memcpy(m, d, sizeof m);
    search_walk::keep_bits(m, data_len(e.key));
    return std::memcmp(m, e.key.data, sizeof m) == 0;
}

// Longest-prefix match by brute force: the answer of the longest plain entry
// of k's table, at most `max_len` long, containing k's data; NONE if none.
std::uint32_t brute(const std::vector<PolicyEntry>& plain, const Key& k, unsigned max_len = 128) {
    const PolicyEntry* best = nullptr;
    for (const PolicyEntry& e : plain)
        if (same_table(e.key, k) && data_len(e.key) <= max_len && contains(e, k.data) &&
            (!best || data_len(e.key) > data_len(best->key)))
            best = &e;
    return best ? answer_of(*best) : none_of(k);
}

std::string describe(const Key& k) {
    static const char* hexd = "0123456789abcdef";
    std::string s = "kind " + std::to_string(k.kind) + " dir " + std::to_string(k.dir) + " family " +
                    std::to_string(k.family) + " set " + std::to_string(k.set) + " prefixlen " +
                    std::to_string(k.prefixlen) + " data ";
    for (std::uint8_t b : k.data) {
        s += hexd[b >> 4];
        s += hexd[b & 15];
    }
    return s;
}

// Distinct lengths per table (key header with prefixlen and data zeroed).
std::map<std::string, std::set<unsigned>> lengths(const std::vector<PolicyEntry>& plain) {
    std::map<std::string, std::set<unsigned>> out;
    for (const PolicyEntry& e : plain) {
        Key h = e.key;
        h.prefixlen = 0;
        std::memset(h.data, 0, sizeof h.data);
        out[std::string(reinterpret_cast<const char*>(&h), sizeof h)].insert(data_len(e.key));
    }
    return out;
}

struct Gen {
    std::mt19937 rng;
    explicit Gen(unsigned seed) : rng(seed) {}

    unsigned uni(unsigned lo, unsigned hi) { return std::uniform_int_distribution<unsigned>(lo, hi)(rng); }
    bool coin(unsigned percent) { return uni(1, 100) <= percent; }

    // Lengths for one table: a few (nested prefixes of few lengths, as most
    // policies), or many; the shortest and longest possible ones often.
    std::vector<unsigned> length_pool(bool port, unsigned bits) {
        std::vector<unsigned> all;
        for (unsigned l = 0; l <= bits; ++l)
            if (!port || l == 0 || l >= 8) all.push_back(l);
        std::shuffle(all.begin(), all.end(), rng);
        all.resize(coin(50) ? uni(1, std::min<unsigned>(6, static_cast<unsigned>(all.size())))
                            : uni(1, static_cast<unsigned>(all.size())));
        if (coin(40)) all.push_back(0);
        if (coin(40)) all.push_back(bits);
        return all;
    }

    // Entries of one table (`hdr`'s kind, dir, family, set): prefixes of a
    // few related addresses (so they nest and share markers) and of some
    // unrelated ones (disjoint).
    void table(std::vector<PolicyEntry>& out, const Key& hdr) {
        const bool port = hdr.kind == PF_KIND_PORT;
        const unsigned bits = key_bits(hdr);
        const std::vector<unsigned> lens = length_pool(port, bits);
        std::uint8_t base[16] = {};
        for (unsigned i = 0; i < bits; ++i)
            put_bit(base, i, coin(50));
        if (port && coin(80)) base[0] = static_cast<std::uint8_t>(coin(50) ? 6 : 17);
        std::vector<std::array<std::uint8_t, 16>> parents;
        for (unsigned n = uni(1, 4); n > 0; --n) {
            std::array<std::uint8_t, 16> p{};
            std::memcpy(p.data(), base, 16);
            const unsigned b = uni(0, bits - 1);
            put_bit(p.data(), b, !get_bit(p.data(), b));
            parents.push_back(p);
        }
        for (unsigned n = uni(1, coin(20) ? 80 : 20); n > 0; --n) {
            PolicyEntry e;
            e.key = hdr;
            const unsigned len = lens[uni(0, static_cast<unsigned>(lens.size() - 1))];
            e.key.prefixlen = PF_KEY_HDR_BITS + len;
            if (coin(85)) {
                std::memcpy(e.key.data, parents[uni(0, static_cast<unsigned>(parents.size() - 1))].data(),
                            16);
                for (unsigned f = uni(0, 2); f > 0; --f) {
                    const unsigned b = uni(0, bits - 1);
                    put_bit(e.key.data, b, !get_bit(e.key.data, b));
                }
            } else {
                for (unsigned i = 0; i < bits; ++i)
                    put_bit(e.key.data, i, coin(50));
            }
            search_walk::keep_bits(e.key.data, len);
            if (port) {
                static const std::uint32_t rules[] = {0, 1, 2, 3, 7, 100, PF_RULE_DEFAULT, PF_RULE_NONE};
                e.val.rule = rules[uni(0, coin(95) ? 6 : 7)];
            } else {
                e.val.set = uni(0, 5); // PF_SET_NONE (0) included: an except
            }
            out.push_back(e);
        }
    }

    // Several tables, ADDR and PORT, keys unique (the first one of a key kept).
    std::vector<PolicyEntry> plain() {
        std::vector<PolicyEntry> out;
        for (unsigned n = uni(1, 4); n > 0; --n) {
            Key hdr{};
            hdr.dir = static_cast<std::uint8_t>(uni(0, 1));
            if (coin(50)) {
                hdr.kind = PF_KIND_ADDR;
                hdr.family = coin(50) ? PF_FAMILY_V4 : PF_FAMILY_V6;
            } else {
                hdr.kind = PF_KIND_PORT;
                hdr.set = uni(1, 3);
            }
            table(out, hdr);
        }
        std::stable_sort(out.begin(), out.end(), search_walk::key_less);
        out.erase(
            std::unique(out.begin(), out.end(),
                        [](const PolicyEntry& a, const PolicyEntry& b) { return same_key(a.key, b.key); }),
            out.end());
        std::shuffle(out.begin(), out.end(), rng);
        return out;
    }
};

// Keys at and around each prefix of `entries` (plain or markers): its data,
// one bit past it, its sibling (last prefix bit flipped), the last address
// inside it and a random one, plus a random key of its table; all unmasked
// full keys.
std::vector<Key> probes(const std::vector<PolicyEntry>& entries, Gen& gen) {
    std::vector<Key> out;
    for (const PolicyEntry& e : entries) {
        if (is_root(e.key)) continue;
        const unsigned len = data_len(e.key), bits = key_bits(e.key);
        Key k = e.key;
        k.prefixlen = 0; // the walk sets it
        out.push_back(k);
        if (len < bits) {
            Key past = k;
            put_bit(past.data, len, true);
            out.push_back(past);
            Key last = k, rnd = k;
            for (unsigned i = len; i < bits; ++i) {
                put_bit(last.data, i, true);
                put_bit(rnd.data, i, gen.coin(50));
            }
            out.push_back(last);
            out.push_back(rnd);
        }
        if (len > 0) {
            Key sib = k;
            put_bit(sib.data, len - 1, !get_bit(sib.data, len - 1));
            out.push_back(sib);
        }
        Key any = k;
        for (unsigned i = 0; i < bits; ++i)
            put_bit(any.data, i, gen.coin(50));
        out.push_back(any);
    }
    return out;
}

// Every probe: the walk's answer is the brute-force longest match, in at
// most ceil(log2(lengths + 1)) lookups, never cut short by PF_ROPE_MAX.
// Returns how many searches ended on a marker (their answer is a marker's).
std::size_t check_searches(const std::vector<PolicyEntry>& plain, const std::vector<PolicyEntry>& out,
                           const std::vector<Key>& keys) {
    const auto lens = lengths(plain);
    std::vector<PolicyEntry> real = plain;
    std::sort(real.begin(), real.end(), search_walk::key_less);
    std::size_t on_marker = 0;
    for (const Key& k : keys) {
        Key h = k;
        h.prefixlen = 0;
        std::memset(h.data, 0, sizeof h.data);
        const auto it = lens.find(std::string(reinterpret_cast<const char*>(&h), sizeof h));
        const std::size_t n = it == lens.end() ? 0 : it->second.size();
        const search_walk::Walk w = search_walk::walk(out, k);
        CAPTURE(describe(k));
        CAPTURE(n);
        REQUIRE(w.answer == brute(plain, k));
        REQUIRE(w.lookups <= static_cast<unsigned>(std::bit_width(n)));
        REQUIRE_FALSE(w.cut);
        on_marker += w.last && !search_walk::exact(real, w.last->key);
    }
    return on_marker;
}

} // namespace

TEST_CASE("with_search: the walk finds the longest prefix match (random tables)") {
    Gen gen(20250117);
    std::size_t searches = 0, markers = 0, hits = 0, on_marker = 0;
    for (int round = 0; round < 300; ++round) {
        const auto plain = gen.plain();
        const auto out = with_search(plain);
        // Probes around the plain entries and around the markers (the keys
        // that hit a marker but no longer real entry are the tricky ones).
        std::vector<Key> keys = probes(plain, gen);
        const std::vector<Key> more = probes(out, gen);
        keys.insert(keys.end(), more.begin(), more.end());
        on_marker += check_searches(plain, out, keys);
        searches += keys.size();
        markers += out.size() - plain.size();
        for (const Key& k : keys)
            hits += brute(plain, k) != none_of(k);
    }
    MESSAGE(searches << " searches, " << hits << " matches, " << markers << " markers and ROOT entries, "
                     << on_marker << " searches ending on a marker");
    // The generator must give both outcomes and need markers.
    CHECK(hits > searches / 4);
    CHECK(hits < searches * 9 / 10);
    CHECK(markers > 3000);
    CHECK(on_marker > searches / 20);
}

TEST_CASE("with_search: a marker answers like the longest real prefix covering it") {
    // Lengths 8 < 16 < 24: the search starts at /16, so the /24 entry needs
    // a /16 marker, which must answer like 10.0.0.0/8 for 10.1.3.4.
    auto entry = [](unsigned len, std::array<std::uint8_t, 4> a, std::uint32_t set) {
        PolicyEntry e;
        e.key.prefixlen = PF_KEY_HDR_BITS + len;
        e.key.kind = PF_KIND_ADDR;
        e.key.dir = PF_DIR_EGRESS;
        e.key.family = PF_FAMILY_V4;
        std::memcpy(e.key.data, a.data(), 4);
        e.val.set = set;
        return e;
    };
    const std::vector<PolicyEntry> plain = {entry(8, {10, 0, 0, 0}, 1), entry(24, {10, 1, 2, 0}, 2),
                                            entry(16, {192, 168, 0, 0}, 3)};
    const auto out = with_search(plain);
    REQUIRE(out.size() == 3 + 1 + 1); // plain, the marker, ROOT
    const PolicyEntry* marker = search_walk::exact(out, entry(16, {10, 1, 0, 0}, 0).key);
    REQUIRE(marker);
    CHECK(marker->val.set == 1);
    CHECK(marker->val.rope == (PF_ROPE_EMPTY << 8 | 24)); // a hit at /16 goes on to /24

    auto search = [&](std::array<std::uint8_t, 4> a) {
        Key k = entry(0, a, 0).key;
        return search_walk::walk(out, k);
    };
    CHECK(search({10, 1, 3, 4}).answer == 1); // marker hit, /24 miss
    CHECK(search({10, 1, 3, 4}).lookups == 2);
    CHECK(search({10, 1, 2, 9}).answer == 2); // marker hit, /24 hit
    CHECK(search({10, 9, 9, 9}).answer == 1); // /16 miss, /8 hit
    CHECK(search({192, 168, 7, 7}).answer == 3);
    CHECK(search({192, 169, 7, 7}).answer == PF_SET_NONE);
    // Another table is empty: no ROOT, nothing tried.
    Key v6{};
    v6.kind = PF_KIND_ADDR;
    v6.dir = PF_DIR_EGRESS;
    v6.family = PF_FAMILY_V6;
    CHECK(search_walk::walk(out, v6).answer == PF_SET_NONE);
    CHECK(search_walk::walk(out, v6).lookups == 0);
}

TEST_CASE("with_search: lookups per search <= ceil(log2(distinct lengths + 1))") {
    // A chain: prefixes of one v6 address at lengths 0..n-1. That address
    // hits at every length tried, so its search goes down the deepest path.
    const std::pair<unsigned, unsigned> cases[] = {{1, 1},  {2, 2},  {3, 2},   {4, 3},   {7, 3},  {8, 4},
                                                   {33, 6}, {81, 7}, {127, 7}, {128, 8}, {129, 8}};
    std::mt19937 rng(5);
    for (const auto& c : cases) {
        const unsigned n = c.first, depth = c.second;
        CAPTURE(n);
        REQUIRE(static_cast<unsigned>(std::bit_width(n)) == depth);
        std::uint8_t a[16];
        for (std::uint8_t& b : a)
            b = static_cast<std::uint8_t>(rng());
        std::vector<PolicyEntry> plain;
        for (unsigned len = 0; len < n; ++len) {
            PolicyEntry e;
            e.key.prefixlen = PF_KEY_HDR_BITS + len;
            e.key.kind = PF_KIND_ADDR;
            e.key.family = PF_FAMILY_V6;
            std::memcpy(e.key.data, a, 16);
            search_walk::keep_bits(e.key.data, len);
            e.val.set = len % 3; // PF_SET_NONE included
            plain.push_back(e);
        }
        const auto out = with_search(plain);
        // The address itself, and the address diverging at each bit: the
        // longest match is then the prefix of that length.
        std::vector<Key> keys;
        Key k = plain.front().key;
        std::memcpy(k.data, a, 16);
        keys.push_back(k);
        for (unsigned i = 0; i < 128; ++i) {
            Key d = k;
            put_bit(d.data, i, !get_bit(d.data, i));
            keys.push_back(d);
        }
        check_searches(plain, out, keys);
        unsigned most = 0;
        for (const Key& key : keys)
            most = std::max(most, search_walk::walk(out, key).lookups);
        CHECK(most == depth);
    }
}

TEST_CASE("with_search: plain entries kept, markers never on a real key, markers only where needed") {
    Gen gen(4242);
    for (int round = 0; round < 200; ++round) {
        const auto plain = gen.plain();
        const auto out = with_search(plain);
        for (std::size_t i = 1; i < out.size(); ++i)
            REQUIRE(search_walk::key_less(out[i - 1], out[i])); // sorted, each key once
        for (const PolicyEntry& e : plain) {
            const PolicyEntry* o = search_walk::exact(out, e.key);
            REQUIRE(o);
            CHECK(o->val.set == e.val.set);
            CHECK(o->val.rule == e.val.rule);
        }
        const auto lens = lengths(plain);
        std::size_t roots = 0;
        for (const PolicyEntry& m : out) {
            if (is_root(m.key)) {
                ++roots;
                continue;
            }
            const bool real = std::any_of(plain.begin(), plain.end(),
                                          [&](const PolicyEntry& e) { return same_key(e.key, m.key); });
            if (real) continue;
            CAPTURE(describe(m.key));
            // At a length of its table, covering a longer real entry (whose
            // search needs to hit there), answering like the longest real
            // entry not longer than itself that covers it.
            CHECK(std::count_if(plain.begin(), plain.end(), [&](const PolicyEntry& e) {
                      return same_table(e.key, m.key) && data_len(e.key) == data_len(m.key);
                  }) > 0);
            CHECK(std::any_of(plain.begin(), plain.end(), [&](const PolicyEntry& e) {
                return same_table(e.key, m.key) && data_len(e.key) > data_len(m.key) &&
                       contains(m, e.key.data);
            }));
            CHECK(answer_of(m) == brute(plain, m.key, data_len(m.key)));
            CHECK((m.key.kind == PF_KIND_PORT ? m.val.set : m.val.rule) == 0);
        }
        CHECK(roots == lens.size());
    }
}

TEST_CASE("with_search: deterministic whatever the input order") {
    Gen gen(99);
    for (int round = 0; round < 100; ++round) {
        auto plain = gen.plain();
        const auto out = with_search(plain);
        CHECK(with_search(plain) == out);
        std::shuffle(plain.begin(), plain.end(), gen.rng);
        CHECK(with_search(plain) == out);
        std::sort(plain.begin(), plain.end());
        CHECK(with_search(plain) == out);
    }
    CHECK(with_search({}).empty());
}

TEST_CASE("with_search: more entries than the capacity => InvalidPolicy with a lower bound") {
    Gen gen(2024);
    int tried = 0;
    for (int round = 0; round < 50; ++round) {
        const auto plain = gen.plain();
        const auto out = with_search(plain);
        CHECK(with_search(plain, out.size()) == out);
        // Any capacity from the plain entries' count up: the markers and
        // ROOT entries push it over.
        for (std::size_t cap : {plain.size(), (plain.size() + out.size()) / 2, out.size() - 1}) {
            if (cap >= out.size()) continue;
            ++tried;
            try {
                (void)with_search(plain, cap);
                FAIL("no error");
            } catch (const Error& e) {
                const std::string msg = e.what();
                CAPTURE(msg);
                CHECK(e.code() == Code::InvalidPolicy);
                CHECK(msg.find("at least") != std::string::npos);
                CHECK(msg == "podfence.io/policy: policy needs at least " + std::to_string(cap + 1) +
                                 " map entries, more than the per-pod capacity " + std::to_string(cap));
            }
        }
    }
    CHECK(tried >= 100);
}

TEST_CASE("with_search: only plain ADDR and PORT entries are accepted") {
    PolicyEntry root;
    root.key.prefixlen = PF_ROOT_PREFIXLEN;
    root.key.kind = PF_KIND_ADDR_ROOT;
    root.key.family = PF_FAMILY_V4;
    CHECK_THROWS_AS(with_search({root}), std::logic_error);
}
